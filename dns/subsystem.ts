import { networkInterfaces } from 'node:os';
import { NotFound, UserError } from '../common/errors.js';
import { peerName } from '../common/format.js';
import { route, type ParamParser } from '../common/route.js';
import type { Subsystem } from '../common/subsystem.js';
import type { ControlPlane } from '../gossip/control-plane.js';
import { GossipChannel } from '../gossip/typed-channel.js';
import type { weave } from '../proto/gen/weave.js';
import { DNS, DnsRecords, isValidName } from './records.js';
import { DnsServer } from './server.js';
import { Upstream } from './upstream.js';

export interface DnsOptions {
  /** The cluster domain (weave.local). */
  domain: string;
  resolvConf: string;
  /** The Linux bridge whose addresses the server listens on. */
  bridge: string;
  /** Whether an address is the overlay's (IPAM's range). */
  inOverlay(ip: string): boolean;
  /** An attachment's identity and addresses, by the target the user names. */
  addressesOf(target: string): Promise<{ ident: string; ips: string[] }>;
  port?: number;
}

/** What the rest of the router tells DNS and asks of it. */
export interface Dns {
  readonly domain: string;
  /** Names for an attachment's addresses (a container's name and hostname). */
  register(ident: string, names: string[], ips: string[]): void;
  /** Its names are gone with it. */
  unregister(ident: string): void;
}

const LISTEN_POLL_MS = 1000;
const COLLECT_MS = 5000;

/** Bare names under the domain; a name given with the domain is taken without it. */
function bareName(domain: string): ParamParser<string> {
  return (raw) => {
    let n: string;
    try {
      n = decodeURIComponent(raw);
    } catch {
      throw new UserError('malformed name in the path');
    }
    n = n.toLowerCase().replace(/\.$/, '');
    if (n.endsWith(`.${domain}`)) n = n.slice(0, -domain.length - 1);
    if (!isValidName(n)) throw new UserError(`invalid DNS name "${raw.slice(0, 60)}"`);
    return n;
  };
}

/**
 * Service discovery: every container's names as a gossiped channel, served as DNS on the
 * bridge's addresses (the router is the containers' resolver), `weave dns-add/remove/lookup`.
 */
export function dnsSubsystem(control: ControlPlane, o: DnsOptions): { subsystem: Subsystem; dns: Dns } {
  const channel = new GossipChannel(DNS, () => new DnsRecords(control.name));
  const records = channel.crdt as DnsRecords;
  const bridgeAddrs = () =>
    (networkInterfaces()[o.bridge] ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address);
  const upstream = new Upstream(o.resolvConf, bridgeAddrs);
  const server = new DnsServer({
    domain: o.domain,
    records,
    upstream,
    port: o.port,
    inOverlay: o.inOverlay,
    mayAsk: (ip) => o.inOverlay(ip) || bridgeAddrs().includes(ip),
  });
  const publish = (d: weave.IDnsRecords | undefined) => {
    if (d) channel.publish(d);
  };
  const nameOf = bareName(o.domain);
  const timers: NodeJS.Timeout[] = [];
  let listenError = '';
  const listen = async () => {
    try {
      await server.listen(bridgeAddrs());
      listenError = '';
    } catch (err) {
      listenError = (err as Error).message;
    }
  };

  const dns: Dns = {
    domain: o.domain,
    register: (ident, names, ips) => {
      for (const n of names.map((x) => x.toLowerCase()).filter(isValidName))
        for (const ip of ips) publish(records.add(n, ip, ident));
    },
    unregister: (ident) => publish(records.remove({ ident })),
  };

  /** dns-add and dns-remove: addresses given, or the target's. */
  const resolve = async (body: { ips?: string[]; target?: string }) => {
    for (const ip of body.ips ?? [])
      if (!/^\d+\.\d+\.\d+\.\d+$/.test(ip)) throw new UserError(`invalid address "${ip.slice(0, 40)}"`);
    if (body.target === undefined) {
      if (!body.ips?.length) throw new UserError('name an address or a container');
      return { ident: 'weave:dns-add', ips: body.ips };
    }
    const t = await o.addressesOf(body.target);
    return { ident: t.ident, ips: body.ips?.length ? body.ips : t.ips };
  };

  const report = () => ({
    domain: o.domain,
    listening: server.addresses,
    upstream: upstream.nameservers(),
    entries: records.live().map((r) => ({
      name: `${r.name}.${o.domain}`,
      address: r.ip,
      peer: r.peer,
      nickname: r.peer === control.name ? '' : control.nickname(r.peer),
      ident: r.ident,
    })),
    counters: server.counters,
  });

  const subsystem: Subsystem = {
    name: 'dns',
    channels: [channel],
    routes: [
      route({
        method: 'POST',
        path: '/dns/add',
        body: { name: 'string', ips: 'string[]?', target: 'string?' },
        handle: async ({ body }) => {
          const name = nameOf(body.name, 'name');
          const t = await resolve(body);
          for (const ip of t.ips) publish(records.add(name, ip, t.ident));
          return { name: `${name}.${o.domain}`, addresses: t.ips };
        },
      }),
      route({
        method: 'POST',
        path: '/dns/remove',
        body: { name: 'string?', ips: 'string[]?', target: 'string?' },
        handle: async ({ body }) => {
          const name = body.name === undefined ? undefined : nameOf(body.name, 'name');
          if (name === undefined && body.target === undefined && !body.ips?.length)
            throw new UserError('name a name, an address or a container');
          const t =
            body.target === undefined && !body.ips?.length
              ? { ident: undefined, ips: [undefined] }
              : await resolve(body);
          let removed = 0;
          for (const ip of t.ips) {
            const d = records.remove({ name, ip, ident: body.target === undefined ? undefined : t.ident });
            removed += d?.entries?.length ?? 0;
            publish(d);
          }
          if (removed === 0) throw new NotFound('no such record registered here');
          return { removed };
        },
      }),
      route({
        method: 'GET',
        path: '/dns/lookup/:name',
        params: { name: nameOf },
        text: (r: { addresses: string[] }) => r.addresses.join('\n'),
        handle: ({ params }) => {
          const addresses = records.lookup(params.name!);
          if (addresses.length === 0) throw new NotFound(`${params.name}.${o.domain} is not known`);
          return { name: `${params.name}.${o.domain}`, addresses: addresses.sort() };
        },
      }),
    ],
    report: () => ({ dns: report() }),
    status: () => {
      const r = report();
      return {
        service: 'dns',
        rows: [
          ['Domain', `${o.domain}.`],
          [
            'Listen',
            r.listening.length
              ? r.listening.map((a) => `${a}:${o.port ?? 53}`).join(', ')
              : listenError || 'no address on the bridge yet (weave expose, or weave run)',
          ],
          ['Upstream', r.upstream.join(', ') || `none (${o.resolvConf} names no nameserver)`],
          ['Entries', String(r.entries.length)],
        ],
      };
    },
    views: {
      dns: () =>
        report()
          .entries.map((e) => `${e.name.padEnd(40)} ${e.address.padEnd(15)} ${peerName(e.peer, e.nickname)}\n`)
          .join(''),
    },
    metrics: [
      {
        name: 'weave_dns_queries_total',
        help: 'DNS queries, by how they were answered.',
        type: 'counter',
        labels: ['result'],
        samples: () =>
          Object.entries(server.counters)
            .filter(([k]) => k !== 'queries')
            .map(([result, value]) => ({ labels: { result }, value })),
      },
    ],
    start: async () => {
      await listen();
      timers.push(setInterval(() => void listen(), LISTEN_POLL_MS));
      timers.push(setInterval(() => records.collect((p) => control.topology.peers.has(p)), COLLECT_MS));
    },
    stop: async () => {
      for (const t of timers) clearInterval(t);
      server.close();
    },
  };
  return { subsystem, dns };
}
