import { isIPv4 } from '../common/cidr.js';
import { NotFound, UserError } from '../common/errors.js';
import { peerName } from '../common/format.js';
import { route, stringParam, type ParamParser } from '../common/route.js';
import type { Subsystem } from '../common/subsystem.js';
import type { IpamService } from './service.js';

const IDENT = /^[\w.:@/-]{1,256}$/;

/** An IPAM identity in a path: percent-encoded when it holds slashes (stack/service/1). */
const ident: ParamParser<string> = (raw) => {
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    throw new UserError('malformed identity in the path');
  }
  if (!IDENT.test(id)) throw new UserError(`invalid identity "${id.slice(0, 60)}"`);
  return id;
};

const address: ParamParser<string> = (raw) => {
  if (!isIPv4(raw)) throw new UserError(`invalid address "${raw.slice(0, 40)}"`);
  return raw;
};

const prefixLength: ParamParser<number> = (raw) => {
  if (!/^\d{1,2}$/.test(raw) || Number(raw) > 32) throw new UserError(`invalid prefix length "${raw.slice(0, 10)}"`);
  return Number(raw);
};

const cidrText = (r: { cidr: string }) => r.cidr;

/**
 * IPAM as the router carries it, with Weave's HTTP API: POST /ip/<ident> allocates (idempotent),
 * PUT /ip/<ident>/<ip>/<len> claims, DELETE /ip/<ident>[/<ip>] releases, GET /ip/<ident> looks up.
 * Answers are text/plain CIDRs, as Weave's CNI plugin and users' scripts expect; JSON on request.
 */
export function ipamSubsystem(ipam: IpamService): Subsystem {
  const params = { ident, ip: address, len: prefixLength };
  return {
    name: 'ipam',
    channels: [ipam.channel],
    requests: ipam.requests,
    routes: [
      route({
        method: 'POST',
        path: '/ip/:ident',
        params,
        query: { subnet: stringParam },
        text: cidrText,
        handle: ({ params: p, query }) => ipam.allocate(p.ident!, query.subnet),
      }),
      route({
        method: 'PUT',
        path: '/ip/:ident/:ip/:len',
        params,
        text: cidrText,
        handle: ({ params: p }) => ipam.claim(p.ident!, p.ip!, p.len!),
      }),
      route({
        method: 'DELETE',
        path: '/ip/:ident/:ip?',
        params,
        handle: async ({ params: p }) => ({ released: (await ipam.release(p.ident!, p.ip)).length }),
      }),
      route({
        method: 'GET',
        path: '/ip/:ident',
        params,
        text: (found: { cidr: string }[]) => found.map((a) => a.cidr).join('\n'),
        handle: ({ params: p }) => {
          const found = ipam.lookup(p.ident!);
          if (found.length === 0) throw new NotFound(`unknown identity "${p.ident}"`);
          return found;
        },
      }),
      route({
        method: 'POST',
        path: '/ipam/rmpeer',
        query: { peer: stringParam },
        handle: ({ query }) => {
          if (!query.peer) throw new UserError('rmpeer needs ?peer=NAME');
          return ipam.rmpeer(query.peer);
        },
      }),
      route({ method: 'POST', path: '/ipam/reset', handle: () => ipam.reset() }),
    ],
    report: () => ({ ipam: ipam.report() }),
    status: () => {
      const r = ipam.report();
      return {
        service: 'ipam',
        rows: [
          ['Status', r.status],
          ['Range', r.range],
          ['DefaultSubnet', r.defaultSubnet],
          ...r.mismatches.map((m): [string, string] => [
            'Refused',
            `${peerName(m.peer, m.nickname)} has range ${m.range}`,
          ]),
        ],
      };
    },
    views: { ipam: () => renderShares(ipam) },
    metrics: [
      {
        name: 'weave_ipam_addresses',
        help: 'IPAM addresses in use and free.',
        type: 'gauge',
        labels: ['state'],
        samples: () => {
          const r = ipam.report();
          return [
            { labels: { state: 'in_use' }, value: r.inUse },
            { labels: { state: 'free' }, value: r.free },
          ];
        },
      },
    ],
    stop: async () => ipam.close(),
  };
}

/** `weave status ipam`: each peer's share of the range, unreachable ones marked. */
function renderShares(ipam: IpamService): string {
  const peers = [...ipam.report().peers].sort(
    (a, b) => Number(b.self) - Number(a.self) || a.nickname.localeCompare(b.nickname),
  );
  return peers
    .map(
      (p) =>
        `${peerName(p.name, p.nickname).padEnd(40)} ${String(p.owned).padStart(8)} IPs (${p.percent.toFixed(1)}% of total)` +
        ` (${p.owned - p.free} active)${p.reachable ? '' : ' - unreachable!'}\n`,
    )
    .join('');
}
