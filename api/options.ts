import { isIPv4 } from '../common/cidr.js';
import { text } from '../common/options.js';

/** The API carries no authentication: anything but loopback is a deliberate choice, so it must be exact. */
function httpAddress(v: string): string {
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(v);
  if (!m || !isIPv4(m[1]) || !(Number(m[2]) > 0 && Number(m[2]) < 65536)) {
    throw new Error(`invalid HTTP address "${v}": expected IPv4:PORT, like ${DEFAULT_HTTP_ADDR}`);
  }
  return v;
}

/** Where the CLI finds the router when WEAVE_HTTP_ADDR does not say. */
export const DEFAULT_HTTP_ADDR = '127.0.0.1:6784';

export const apiOptions = {
  httpAddr: text(
    '--http-addr <addr>',
    'HTTP API and status page address (IP:PORT; anything but loopback exposes the API)',
    { default: DEFAULT_HTTP_ADDR, check: httpAddress },
  ),
};
