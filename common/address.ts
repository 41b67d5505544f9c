import { isIPv4 } from './cidr.js';

const validPort = (p: string) => /^\d+$/.test(p) && Number(p) > 0 && Number(p) < 65536;

/** A peer to connect to: HOST or HOST:PORT. */
export function parsePeerAddress(text: string): { host: string; port?: number } {
  const m = /^([^:\s/]+)(?::(\d+))?$/.exec(text);
  if (!m || (m[2] !== undefined && !validPort(m[2])))
    throw new Error(`invalid peer "${text}": expected HOST or HOST:PORT`);
  return { host: m[1], port: m[2] === undefined ? undefined : Number(m[2]) };
}

/** A plain VXLAN endpoint: IP or IP:PORT. */
export function parseVxlanPeer(text: string, defaultPort: number): { ip: string; port: number } {
  const [ip, port, extra] = text.split(':');
  if (!isIPv4(ip) || extra !== undefined || (port !== undefined && !validPort(port)))
    throw new Error(`invalid VXLAN peer "${text}": expected IP or IP:PORT`);
  return { ip, port: port === undefined ? defaultPort : Number(port) };
}
