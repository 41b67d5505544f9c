import type { ControlPlane } from '../gossip/control-plane.js';
import { Datapath } from './datapath.js';
import { Endpoints, makeEndpoint } from './endpoints.js';
import { Forwarder, Routing } from './forwarder.js';
import { LOCAL, MacTable } from './mac-table.js';
import { isUnicastMac, parseMac } from './mac.js';
import { UdpTransport } from './udp.js';
import { attach, detach, resolveTarget } from './attach.js';
import { routingOf } from './routing.js';
import { Cidr, isIPv4, parseCidr } from '../common/cidr.js';
import { IpamError, IpamService } from '../ipam/service.js';
import { ipToNum } from '../ipam/address.js';
import { BadRequest } from '../api/errors.js';
import { log } from '../common/log.js';
import { RouterConfig, VERSION } from './config.js';

const MAC_AGE_MS = 300_000;

const splitHostPort = (a: string): [string, number] => [a.slice(0, a.lastIndexOf(':')), Number(a.slice(a.lastIndexOf(':') + 1))];

/** The running router: the data plane (datapath, forwarder, UDP) following the control plane's peers, routes and MACs. */
export class Router {
  readonly macs = new MacTable(MAC_AGE_MS);
  readonly endpoints = new Endpoints();
  readonly forwarder: Forwarder;
  private routing: Routing;
  private readonly started = Date.now();
  private ager?: NodeJS.Timeout;

  constructor(readonly cfg: RouterConfig, readonly mtu: number,
              private readonly datapath: Datapath, private readonly udp: UdpTransport, readonly control: ControlPlane,
              readonly ipam: IpamService) {
    this.routing = routingOf(control);
    this.forwarder = new Forwarder({
      vni: cfg.vni, maxFrame: mtu + 14 + 4, macs: this.macs, endpoints: this.endpoints, routing: () => this.routing,
      send: (d, ep) => udp.send(d, ep), inject: (f) => datapath.inject(f),
    });
    for (const v of cfg.vxlanPeers) {
      const [ip, port] = v.includes(':') ? splitHostPort(v) : [v, cfg.udpPort];
      this.endpoints.add(makeEndpoint(`vxlan:${ip}`, 'vxlan', ip, port, 'vxlan'));
    }
    control.on('routes', () => { this.routing = routingOf(control); this.syncEndpoints(); });
    control.on('mac', (mac: number, owner: string | undefined) => {
      // A gossiped move overrides what traffic taught us; a withdrawal forgets a remote location.
      if (owner === undefined) { if (this.macs.lookup(mac) !== LOCAL) this.macs.forget(mac); }
      else if (owner !== control.name) this.macs.learn(mac, owner);
    });
  }

  get name(): string { return this.control.name; }

  /** Router endpoints are exactly the peers we hold a control connection with. */
  private syncEndpoints(): void {
    const now = new Map(this.control.neighbours().map((n) => [n.name, n]));
    for (const ep of this.endpoints.list) {
      if (ep.kind !== 'router') continue;
      const n = now.get(ep.name);
      if (!n || n.ip !== ep.ip || n.udpPort !== ep.port) {
        this.endpoints.remove(ep.name);
        if (!n) { this.macs.forgetPeer(ep.name); log.info(`lost ${ep.name}(${ep.nickname})`); }
      }
    }
    for (const n of now.values()) {
      if (this.endpoints.named(n.name)) continue;
      this.endpoints.add(makeEndpoint(n.name, n.nickname, n.ip, n.udpPort, 'router'));
      log.info(`connected to ${n.name}(${n.nickname}) at ${n.ip}`);
    }
  }

  async start(): Promise<void> {
    await this.datapath.start((f) => this.forwarder.fromBridge(f));
    this.ager = setInterval(() => this.macs.expire(), 10_000);
  }

  async stop(): Promise<void> {
    clearInterval(this.ager);
    await this.control.stop();
    await this.datapath.stop();
    this.udp.close();
  }

  onDatagram(msg: Buffer, ip: string): void { this.forwarder.fromPeer(msg, ip); }

  /**
   * Attaches a target with addresses written as Weave does: CIDR (claimed from IPAM when inside the
   * range), net:CIDR or net:default (allocated from that subnet); none means one from the default.
   * The target string is the IPAM identity, so the same target attached elsewhere keeps its address.
   */
  async attach(body: { target?: unknown; cidrs?: unknown; mac?: unknown }) {
    if (typeof body.target !== 'string') throw new BadRequest('attach needs a target');
    const target = body.target;
    resolveTarget(target);
    const specs = Array.isArray(body.cidrs) && body.cidrs.length ? body.cidrs.map(String) : ['net:default'];
    if (body.mac !== undefined && (typeof body.mac !== 'string' || !isUnicastMac(body.mac))) throw new BadRequest(`invalid MAC "${String(body.mac)}": expected a unicast MAC like 02:00:00:00:00:01`);
    const parsed = specs.map((spec) => (spec.startsWith('net:') ? { subnet: spec.slice(4) } : { cidr: parseCidr(spec) }));
    const cidrs: Cidr[] = [];
    const taken: string[] = [];
    try {
      for (const p of parsed) {
        if ('subnet' in p) { const a = await this.ipam.allocate(target, p.subnet); cidrs.push(parseCidr(a.cidr)); taken.push(a.ip); continue; }
        const n = ipToNum(p.cidr.ip);
        if (n >= this.ipam.range.start && n < this.ipam.range.end) { await this.ipam.claim(target, p.cidr.ip, p.cidr.prefix); taken.push(p.cidr.ip); }
        cidrs.push(p.cidr);
      }
    } catch (err) {
      for (const ip of taken) await this.ipam.release(target, ip).catch(() => {});
      throw err instanceof IpamError ? new BadRequest(err.message) : err;
    }
    const a = await attach(target, cidrs, this.mtu, body.mac as string | undefined).catch(async (err) => {
      for (const ip of taken) await this.ipam.release(target, ip).catch(() => {}); // nothing left half-attached
      throw err;
    });
    const mac = parseMac(a.mac);
    this.macs.learn(mac, LOCAL);
    this.control.announceMac(mac);
    log.info(`attached ${a.target} (${a.mac}) with ${a.cidrs.join(' ')}`);
    return a;
  }

  async detach(body: { target?: unknown }) {
    if (typeof body.target !== 'string') throw new Error('detach needs a target');
    const r = await detach(body.target);
    await this.ipam.release(body.target).catch(() => { /* attached with addresses outside IPAM */ });
    const mac = parseMac(r.mac);
    this.macs.forget(mac);
    this.control.withdrawMac(mac);
    log.info(`detached ${body.target} (${r.mac})`);
    return r;
  }

  /** The HTTP API's IPAM endpoints: IPAM's own refusals are the client's problem (400). */
  readonly ipamApi = {
    allocate: (ident: string, subnet?: string) => this.ipamCall(() => this.ipam.allocate(ident, subnet)),
    claim: (ident: string, ip: string, prefix: number) => this.ipamCall(() => this.ipam.claim(ident, ip, prefix)),
    release: (ident: string, ip?: string) => this.ipamCall(async () => ({ released: (await this.ipam.release(ident, ip)).length })),
    lookup: (ident: string) => {
      const found = this.ipam.lookup(ident);
      if (found.length === 0) throw new BadRequest(`unknown identity "${ident}"`);
      return found;
    },
    rmpeer: (peer: string) => this.ipamCall(async () => {
      const p = this.ipam.report().peers.find((x) => x.name === peer || x.nickname === peer);
      if (!p) throw new IpamError(`no peer "${peer}" owns any of the range`);
      return { peer: p.name, addresses: await this.ipam.allocator.rmpeer(p.name) };
    }),
    reset: () => this.ipamCall(async () => ({ heir: await this.ipam.allocator.reset() })),
  };

  private async ipamCall<T>(fn: () => Promise<T>): Promise<T> {
    try { return await fn(); } catch (err) { throw err instanceof IpamError ? new BadRequest(err.message) : err; }
  }

  connect(body: { peers?: unknown; replace?: unknown }) {
    if (!Array.isArray(body.peers) || !body.peers.every((p) => typeof p === 'string')) throw new Error('connect needs a list of peers');
    this.control.connect(body.peers as string[], body.replace === true);
    return { targets: this.control.view().targets };
  }

  forget(body: { peers?: unknown }) {
    if (!Array.isArray(body.peers) || !body.peers.every((p) => typeof p === 'string')) throw new Error('forget needs a list of peers');
    this.control.forget(body.peers as string[]);
    return { targets: this.control.view().targets };
  }

  report() {
    const c = this.control.view();
    const byName = new Map(this.endpoints.list.map((e) => [e.name, e]));
    const topo = this.control.topology;
    const nick = (p: string) => this.control.nickname(p);
    const reachable = new Set(this.control.routes.reachable);
    return {
      version: VERSION,
      name: this.name,
      nickname: this.cfg.nickname,
      pid: process.pid,
      dataDir: this.cfg.dataDir,
      uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
      datapath: this.datapath.name,
      encryption: !!this.cfg.password,
      peerDiscovery: this.cfg.discovery,
      vni: this.cfg.vni,
      mtu: this.mtu,
      port: this.cfg.port,
      udpPort: this.cfg.udpPort,
      connLimit: this.cfg.connLimit,
      targets: c.targets,
      connections: c.connections.map((x) => {
        const ep = x.name ? byName.get(x.name) : undefined;
        return { ...x, traffic: ep ? { tx: ep.tx, rx: ep.rx } : undefined };
      }),
      peers: [...topo.peers.values()].map((p) => ({
        name: p.name, nickname: p.nickname, self: p.name === this.name, reachable: p.name === this.name || reachable.has(p.name),
        nextHop: this.control.routes.nextHop(p.name), version: p.version,
        connections: p.links.map((l) => ({ ...l, nickname: nick(l.peer), established: topo.neighbours(p.name).includes(l.peer) })),
      })),
      vxlanEndpoints: this.endpoints.list.filter((e) => e.kind === 'vxlan'),
      macs: this.macs.view().map((m) => ({ ...m, peer: m.local ? this.name : m.peer, nickname: m.local ? this.cfg.nickname : nick(m.peer) })),
      counters: { ...this.forwarder.counters, gossipRejected: this.control.rejectedGossip },
      gossip: c.gossip,
      ipam: this.ipam.report(),
    };
  }
}

export type Report = ReturnType<Router['report']>;

export function validateConfig(cfg: RouterConfig): void {
  for (const p of cfg.vxlanPeers) {
    const [ip, port] = p.includes(':') ? splitHostPort(p) : [p, cfg.udpPort];
    if (!isIPv4(ip) || !(port > 0 && port < 65536)) throw new Error(`invalid VXLAN peer "${p}": expected IP or IP:PORT`);
  }
}
