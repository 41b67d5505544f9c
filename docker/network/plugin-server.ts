// A Docker (legacy) plugin on a unix socket: JSON over HTTP, POST only, /Plugin.Activate answered
// from the interfaces the handlers implement. The handlers are a table of their own (see plugin.ts),
// so another socket (the managed plugin's relay) can serve the same ones. Errors go back as
// the message with status 200, as libnetwork's protocols want it: the network driver's in "Err", the
// IPAM driver's in "Error" (so both are given); dockerd then shows the message itself.
import http from 'node:http';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { clearStaleSocket, PLUGIN_CONTENT_TYPE, readPluginBody } from '../../common/plugin-socket.js';
import type { Body, PluginHandlers } from './body.js';

const oneLine = (e: unknown): string =>
  (e instanceof Error ? e.message : String(e))
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join('; ')
    .slice(0, 500) || 'failed';

/** One call: the status and the JSON answer (thrown errors are the caller's to turn into {"Err"}). */
export async function handlePluginCall(
  implementsList: readonly string[],
  handlers: PluginHandlers,
  req: http.IncomingMessage,
): Promise<[number, Body]> {
  const url = (req.url ?? '').split('?')[0];
  const activate = () => ({ Implements: [...implementsList] });
  const h = url === '/Plugin.Activate' ? activate : Object.hasOwn(handlers, url) ? handlers[url] : undefined;
  if (!h) {
    req.resume();
    return [404, { Err: `unknown endpoint ${url.slice(0, 60)}` }];
  }
  if (req.method !== 'POST') {
    req.resume();
    return [405, { Err: `${req.method} not allowed, use POST` }];
  }
  return [200, await h(await readPluginBody(req))];
}

export async function servePluginSocket(
  socketPath: string,
  implementsList: readonly string[],
  handlers: PluginHandlers,
): Promise<{ close(): Promise<void> }> {
  mkdirSync(dirname(socketPath), { recursive: true });
  await clearStaleSocket(socketPath, 'plugin');
  const server = http.createServer((req, res) => {
    const reply = (status: number, body: Body) => {
      if (res.headersSent || res.destroyed) return;
      res.writeHead(status, { 'Content-Type': PLUGIN_CONTENT_TYPE }).end(`${JSON.stringify(body)}\n`);
    };
    handlePluginCall(implementsList, handlers, req)
      .then(
        ([status, body]) => reply(status, body),
        (e: unknown) => reply(200, { Err: oneLine(e), Error: oneLine(e) }),
      )
      .catch(() => res.destroy());
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`cannot serve a plugin on ${socketPath}: ${e.message}`)));
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
