import { isIPv4 } from '../common/cidr.js';
import { BadRequest } from './errors.js';

/** What the IPAM endpoints need from the router. */
export interface IpamHandlers {
  allocate(ident: string, subnet?: string): Promise<unknown>;
  claim(ident: string, ip: string, prefix: number): Promise<unknown>;
  release(ident: string, ip?: string): Promise<unknown>;
  lookup(ident: string): unknown;
  rmpeer(peer: string): Promise<unknown>;
  reset(): Promise<unknown>;
}

const IDENT = /^[\w.:@/-]{1,256}$/;

function ident(raw: string): string {
  let id: string;
  try { id = decodeURIComponent(raw); } catch { throw new BadRequest('malformed identity in the path'); }
  if (!IDENT.test(id)) throw new BadRequest(`invalid identity "${id.slice(0, 60)}"`);
  return id;
}

function address(ip: string): string {
  if (!isIPv4(ip)) throw new BadRequest(`invalid address "${ip.slice(0, 40)}"`);
  return ip;
}

/**
 * Weave's IPAM endpoints: POST /ip/<ident> allocates (idempotent), PUT /ip/<ident>/<ip>/<len>
 * claims, DELETE /ip/<ident>[/<ip>] releases, GET /ip/<ident> looks up. Identities may contain
 * slashes when percent-encoded. Returns undefined for paths that are not IPAM's.
 */
export function ipamRoute(h: IpamHandlers, method: string, path: string, query: { subnet?: string; peer?: string }): (() => Promise<unknown> | unknown) | undefined {
  if (path === '/ipam/rmpeer' && method === 'POST') {
    const peer = query.peer;
    if (!peer) throw new BadRequest('rmpeer needs ?peer=NAME');
    return () => h.rmpeer(peer);
  }
  if (path === '/ipam/reset' && method === 'POST') return () => h.reset();
  const m = /^\/ip\/([^/]+)(?:\/([^/]+)(?:\/([^/]+))?)?$/.exec(path);
  if (!m) return undefined;
  const [, rawIdent, ip, len] = m;
  const id = ident(rawIdent);
  if (method === 'POST' && ip === undefined) return () => h.allocate(id, query.subnet);
  if (method === 'PUT' && ip !== undefined && len !== undefined) {
    const prefix = Number(len);
    if (!/^\d{1,2}$/.test(len) || prefix > 32) throw new BadRequest(`invalid prefix length "${len.slice(0, 10)}"`);
    return () => h.claim(id, address(ip), prefix);
  }
  if (method === 'DELETE' && len === undefined) return () => h.release(id, ip === undefined ? undefined : address(ip));
  if (method === 'GET' && ip === undefined) return () => h.lookup(id);
  throw new BadRequest(`${method} ${path.slice(0, 80)}: expected POST /ip/<ident>, PUT /ip/<ident>/<ip>/<len>, DELETE /ip/<ident>[/<ip>] or GET /ip/<ident>`);
}
