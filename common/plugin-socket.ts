// What Docker's (legacy) plugin sockets share, the volume plugin's and the network plugin's: the
// content type, reading a call's JSON body, and taking over a socket path a dead server left.
import type http from 'node:http';
import net from 'node:net';
import { lstatSync, rmSync } from 'node:fs';

/** A plugin call's JSON body, and a plugin's calls by path (/NetworkDriver.Join ...), each giving the answer's body. */
export type Body = Record<string, unknown>;
export type PluginHandlers = Record<string, (b: Body) => Promise<Body> | Body>;

export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';
const MAX_BODY = 64 * 1024;

/** The request's JSON object; dockerd sends `null` (or nothing) for a call without arguments: {} then. */
export function readPluginBody(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      if ((text += chunk).length > MAX_BODY) {
        reject(new Error('request body too large'));
        req.destroy();
      }
    });
    req.on('end', () => {
      let v: unknown;
      try {
        v = text.trim() ? JSON.parse(text) : null;
      } catch {
        return reject(new Error('request body is not JSON'));
      }
      if (v === null) return resolve({});
      if (typeof v !== 'object' || Array.isArray(v)) return reject(new Error('request body is not a JSON object'));
      resolve(v as Record<string, unknown>);
    });
    req.on('error', reject);
  });
}

/** Throws when a live server answers on socketPath (`what`: "another ... is serving"); removes it when stale. */
export async function clearStaleSocket(socketPath: string, what: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(socketPath).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new Error(`${socketPath} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const c = net.connect(socketPath, () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (live) throw new Error(`another ${what} is serving on ${socketPath}`);
  rmSync(socketPath, { force: true });
}
