// A Docker (legacy) plugin on a unix socket: JSON over HTTP, POST only, /Plugin.Activate answered
// from the interfaces the handlers implement. The handlers are a table of their own (see plugin.ts),
// so another socket (the managed plugin's relay) can serve the same ones. Errors go back as
// the message with status 200, as libnetwork's protocols want it: the network driver's in "Err", the
// IPAM driver's in "Error" (so both are given); dockerd then shows the message itself.
import type http from 'node:http';
import { readPluginBody, servePluginSocket } from '../../common/plugin-socket.js';
import type { Body, PluginHandlers } from './body.js';

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

/** The network plugin's calls on a socket: the network driver wants errors in "Err", IPAM in "Error". */
export function serveNetworkPlugin(
  socketPath: string,
  implementsList: readonly string[],
  handlers: PluginHandlers,
): Promise<{ close(): Promise<void> }> {
  return servePluginSocket(
    socketPath,
    'network plugin',
    (req) => handlePluginCall(implementsList, handlers, req),
    (message) => ({ Err: message, Error: message }),
  );
}
