import type { ControlPlane } from '../gossip/control-plane.js';
import { Datapath } from './datapath.js';
import { Endpoints, makeEndpoint } from './endpoints.js';
import { Forwarder, Routing } from './forwarder.js';
import { LOCAL, MacTable } from './mac-table.js';
import { isUnicastMac, parseMac } from '../common/mac.js';
import { UdpTransport } from './udp.js';
import { attach, detach, resolveTarget, type Attachment } from './attach.js';
import { addBridgeAddresses, bridgeAddresses, EXPOSE_ID, removeBridgeAddresses } from './expose.js';
import { DockerClient, DockerError, NoDockerEngine } from '../docker/client.js';
import { routingOf } from './routing.js';
import { Cidr, formatCidr, parseCidr } from '../common/cidr.js';
import { parseVxlanPeer } from '../common/address.js';
import { IpamError, IpamService } from '../ipam/service.js';
import { ipToNum } from '../common/subnet.js';
import { BadRequest } from '../api/errors.js';
import { log } from '../common/log.js';
import { RouterConfig, VERSION } from '../contract/config.js';

const MAC_AGE_MS = 300_000;

/** What a target names: its IPAM identity, its namespace (attach.ts form; empty when not running), how to show it. */
export interface Resolved { ident: string; nsTarget: string; label: string; container?: string }
export interface AttachedEntry { ident: string; label: string; container?: string; mac: string; cidrs: string[] }


/** The running router: the data plane (datapath, forwarder, UDP) following the control plane's peers, routes and MACs. */
export class Router {
  readonly macs = new MacTable(MAC_AGE_MS);
  readonly endpoints = new Endpoints();
  readonly forwarder: Forwarder;
  private routing: Routing;
  private readonly started = Date.now();
  private ager?: NodeJS.Timeout;
  /** Everything attached here, by IPAM identity (a container's full id, or the netns/pid target). */
  readonly attached = new Map<string, AttachedEntry>();
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(readonly cfg: RouterConfig, readonly mtu: number,
              private readonly datapath: Datapath, private readonly udp: UdpTransport, readonly control: ControlPlane,
              readonly ipam: IpamService, readonly docker: DockerClient) {
    this.routing = routingOf(control);
    this.forwarder = new Forwarder({
      vni: cfg.vni, maxFrame: mtu + 14 + 4, macs: this.macs, endpoints: this.endpoints, routing: () => this.routing,
      send: (d, ep) => udp.send(d, ep), inject: (f) => datapath.inject(f),
    });
    for (const v of cfg.vxlanPeers) {
      const { ip, port } = parseVxlanPeer(v, cfg.udpPort);
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
        this.udp.forget(ep);
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
   * A netns:/pid: target is its own IPAM identity; a Docker container (docker:REF or just REF) is
   * known by its full id, so a restarted or moved container keeps its address.
   */
  async attach(body: { target?: unknown; cidrs?: unknown; mac?: unknown }) {
    if (typeof body.target !== 'string') throw new BadRequest('attach needs a target');
    const specs = Array.isArray(body.cidrs) && body.cidrs.length ? body.cidrs.map(String) : ['net:default'];
    if (body.mac !== undefined && (typeof body.mac !== 'string' || !isUnicastMac(body.mac))) throw new BadRequest(`invalid MAC "${String(body.mac)}": expected a unicast MAC like 02:00:00:00:00:01`);
    const t = await this.resolve(body.target);
    return this.serial(t.ident, () => this.attachResolved(t, specs, body.mac as string | undefined));
  }

  /** Attach with the identity and namespace already known (also used to re-attach a restarted container). */
  async attachResolved(t: Resolved, specs: string[], mac?: string): Promise<Attachment> {
    const cidrs = await this.addresses(t.ident, specs, !!t.container);
    const a = await attach(t.nsTarget, cidrs.all, this.mtu, mac).catch(async (err) => {
      for (const ip of cidrs.taken) await this.ipam.release(t.ident, ip).catch(() => {}); // nothing left half-attached
      throw err;
    });
    this.register(t, a.mac, a.cidrs);
    log.info(`attached ${t.label} (${a.mac}) with ${a.cidrs.join(' ')}`);
    return { ...a, target: t.label };
  }

  /** Addresses for ident from Weave-style specs, taken from IPAM where they are in its range; all or nothing. */
  private async addresses(ident: string, specs: string[], ipamOnly = false): Promise<{ all: Cidr[]; taken: string[] }> {
    const parsed = specs.map((spec) => (spec.startsWith('net:') ? { subnet: spec.slice(4) } : { cidr: parseCidr(spec) }));
    const all: Cidr[] = [];
    const taken: string[] = [];
    try {
      for (const p of parsed) {
        if ('subnet' in p) { const a = await this.ipam.allocate(ident, p.subnet); all.push(parseCidr(a.cidr)); taken.push(a.ip); continue; }
        const n = ipToNum(p.cidr.ip);
        if (n >= this.ipam.range.start && n < this.ipam.range.end) { await this.ipam.claim(ident, p.cidr.ip, p.cidr.prefix); taken.push(p.cidr.ip); }
        // A container's addresses are IPAM's, so that its restarts and removal keep and free them.
        else if (ipamOnly) throw new BadRequest(`${formatCidr(p.cidr)} is outside the allocation range ${this.ipam.range.text}`);
        all.push(p.cidr);
      }
    } catch (err) {
      for (const ip of taken) await this.ipam.release(ident, ip).catch(() => {});
      throw err instanceof IpamError ? new BadRequest(err.message) : err;
    }
    return { all, taken };
  }

  /** Records an attachment and tells every peer where its MAC lives. */
  register(t: Resolved, mac: string, cidrs: string[]): void {
    this.attached.set(t.ident, { ident: t.ident, label: t.label, container: t.container, mac, cidrs });
    const m = parseMac(mac);
    this.macs.learn(m, LOCAL);
    this.control.announceMac(m);
  }

  /** Forgets an attachment whose namespace is gone or emptied; returns what it was. */
  unregister(ident: string): AttachedEntry | undefined {
    const e = this.attached.get(ident);
    if (!e) return undefined;
    this.attached.delete(ident);
    this.withdrawMac(e.mac);
    return e;
  }

  /** The MAC no longer lives here: forget it, and tell every peer. */
  private withdrawMac(mac: string): void {
    const m = parseMac(mac);
    this.macs.forget(m);
    this.control.withdrawMac(m);
  }

  async detach(body: { target?: unknown }) {
    if (typeof body.target !== 'string') throw new BadRequest('detach needs a target');
    const t = await this.resolve(body.target, { running: false });
    return this.serial(t.ident, async () => {
      const cidrs = this.attached.get(t.ident)?.cidrs ?? this.ipam.lookup(t.ident).map((a) => a.cidr);
      let mac = this.attached.get(t.ident)?.mac;
      if (t.nsTarget) mac = (await detach(t.nsTarget)).mac;
      else if (!mac && this.ipam.lookup(t.ident).length === 0) throw new BadRequest(`${t.label} is not attached`);
      if (!this.unregister(t.ident) && mac) this.withdrawMac(mac);
      await this.ipam.release(t.ident).catch(() => { /* attached with addresses outside IPAM */ });
      log.info(`detached ${t.label}${mac ? ` (${mac})` : ''}`);
      return { mac, cidrs };
    });
  }

  /**
   * What a target string names: its IPAM identity and where its namespace is. A container that is
   * not running has no namespace (nsTarget empty): it can be detached (its address released) but not attached.
   */
  async resolve(target: string, o: { running: boolean } = { running: true }): Promise<Resolved> {
    if (/^(netns|pid):/.test(target)) { resolveTarget(target); return { ident: target, nsTarget: target, label: target }; }
    const ref = target.replace(/^docker:/, '');
    let c;
    try { c = await this.docker.inspect(ref); } catch (err) {
      if (!(err instanceof DockerError)) throw err;
      throw new BadRequest(err.status === 404 ? `unknown target "${target}": no such container, and not netns:NAME, netns:/path or pid:PID`
        : err instanceof NoDockerEngine ? `unknown target "${target}": not netns:NAME, netns:/path or pid:PID, and ${err.message}` : err.message);
    }
    if (!c.State.Running && o.running) throw new BadRequest(`container ${ref} is not running (${c.State.Status})`);
    return { ident: c.Id, nsTarget: c.State.Running ? `pid:${c.State.Pid}` : '', label: c.Id.slice(0, 12), container: c.Id };
  }

  /** One attach/detach at a time per identity: the events watcher and the API may race on a container. */
  serial<T>(ident: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(ident) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(fn);
    const tail = next.catch(() => {});
    this.locks.set(ident, tail);
    void tail.then(() => { if (this.locks.get(ident) === tail) this.locks.delete(ident); });
    return next;
  }

  /** `weave ps`: the host's own exposed address first, then every attachment (optionally only the given containers). */
  async ps(body: { targets?: unknown }) {
    const wanted = Array.isArray(body.targets) && body.targets.length ? await Promise.all(body.targets.map((x) => this.resolve(String(x), { running: false }))) : undefined;
    const rows: { id: string; mac: string; cidrs: string[] }[] = [];
    const exposed = wanted ? undefined : await bridgeAddresses();
    if (exposed && exposed.cidrs.length) rows.push({ id: EXPOSE_ID, mac: exposed.mac, cidrs: exposed.cidrs });
    for (const e of this.attached.values()) {
      if (wanted && !wanted.some((w) => w.ident === e.ident)) continue;
      rows.push({ id: e.container ? e.container.slice(0, 12) : e.label, mac: e.mac, cidrs: e.cidrs });
    }
    return rows;
  }

  /** `weave expose`: the host itself joins the overlay with an address on the bridge (IPAM identity weave:expose). */
  async expose(body: { cidrs?: unknown }) {
    const specs = Array.isArray(body.cidrs) && body.cidrs.length ? body.cidrs.map(String) : ['net:default'];
    return this.serial(EXPOSE_ID, async () => {
      const cidrs = await this.addresses(EXPOSE_ID, specs);
      await addBridgeAddresses(cidrs.all).catch(async (err) => {
        for (const ip of cidrs.taken) await this.ipam.release(EXPOSE_ID, ip).catch(() => {});
        throw err;
      });
      log.info(`exposed this host as ${cidrs.all.map(formatCidr).join(' ')}`);
      return { cidrs: cidrs.all.map(formatCidr) };
    });
  }

  /** `weave hide`: takes the host's overlay addresses away again. */
  async hide() {
    return this.serial(EXPOSE_ID, async () => {
      const removed = await removeBridgeAddresses();
      await this.ipam.release(EXPOSE_ID).catch(() => { /* none from IPAM */ });
      log.info(`hid this host (${removed.join(' ') || 'was not exposed'})`);
      return { cidrs: removed };
    });
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
  for (const p of cfg.vxlanPeers) parseVxlanPeer(p, cfg.udpPort);
}
