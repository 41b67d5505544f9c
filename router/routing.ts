import type { ControlPlane } from '../gossip/control-plane.js';
import { shortId } from '../gossip/identity.js';
import type { Routing } from './datapath.js';

/** A snapshot of the control plane's routes in the shape the forwarder asks for; rebuilt on every topology change. */
export function routingOf(cp: ControlPlane): Routing {
  const routes = cp.routes;
  const byId = new Map<bigint, string>();
  const idOf = new Map<string, bigint>();
  for (const p of [cp.name, ...cp.topology.peers.keys()]) {
    const id = shortId(p);
    byId.set(id, p);
    idOf.set(p, id);
  }
  return {
    self: cp.name,
    nextHop: (p) => routes.nextHop(p),
    children: (s) => routes.children(s),
    linked: (a, b) => cp.topology.neighbours(a).includes(b),
    peerOf: (id) => byId.get(id),
    shortIdOf: (p) => idOf.get(p) ?? shortId(p),
  };
}
