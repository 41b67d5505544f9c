// What Docker's (legacy) plugin sockets share, the volume plugin's and the network plugin's: the
// content type, reading a call's JSON body, taking over a socket path a dead server left, and the server.
import http from 'node:http';
import net from 'node:net';
import { lstatSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';

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

/** An error as one line of at most 500 characters, for a plugin's {"Err"}. */
export const oneLine = (e: unknown): string =>
  (e instanceof Error ? e.message : String(e))
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join('; ')
    .slice(0, 500) || 'failed';

/**
 * A plugin's HTTP server on a unix socket (`what` names it in errors: "volume plugin"). handle answers
 * one call with a status and a body; what it throws goes back with status 200 as errorBody(message), as
 * Docker's plugin protocols want. Never crashes its process on a bad connection.
 */
export async function servePluginSocket(
  socketPath: string,
  what: string,
  handle: (req: http.IncomingMessage) => Promise<[number, Body]>,
  errorBody: (message: string) => Body,
): Promise<{ close(): Promise<void> }> {
  mkdirSync(dirname(socketPath), { recursive: true });
  await clearStaleSocket(socketPath, what);
  const server = http.createServer((req, res) => {
    const reply = (status: number, body: Body) => {
      if (res.headersSent || res.destroyed) return;
      let text: string;
      try {
        text = JSON.stringify(body);
      } catch (e) {
        [status, text] = [200, JSON.stringify(errorBody(oneLine(e)))];
      }
      res.writeHead(status, { 'Content-Type': PLUGIN_CONTENT_TYPE }).end(`${text}\n`);
    };
    handle(req)
      .then(
        ([status, body]) => reply(status, body),
        (e: unknown) => reply(200, errorBody(oneLine(e))),
      )
      .catch(() => res.destroy());
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`cannot serve the ${what} on ${socketPath}: ${e.message}`)));
    server.listen(socketPath, () => resolve());
  });
  server.on('error', () => {}); // after listen, errors are per connection; never crash the router
  let closing: Promise<void> | undefined;
  return {
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => rmSync(socketPath, { force: true }))),
  };
}
