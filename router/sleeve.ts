import type { Mac } from '../common/mac.js';
import { log } from '../common/log.js';
import type {
  Datapath,
  DatapathConfig,
  DatapathEvents,
  DatapathReport,
  PeerLink,
  PeerPath,
  Routing,
  Traffic,
} from './datapath.js';
import { type Endpoint, Endpoints, makeEndpoint } from './endpoints.js';
import { Forwarder } from './forwarder.js';
import type { ForwarderCounters } from './datapath.js';
import { heartbeatDatagram, heartbeatSender, HEARTBEAT_INTERVAL_MS, Heartbeats } from './heartbeat.js';
import { LOCAL, MAC_LIMIT, MacTable } from './mac-table.js';
import type { FastRoute, IoReport, SleeveIo } from './sleeve-io.js';
import type { PeerSecurity } from './data-keys.js';

const MAC_AGE_MS = 300_000;
const NO_ROUTES: Routing = {
  self: '',
  nextHop: () => undefined,
  children: () => [],
  linked: () => false,
  peerOf: () => undefined,
  shortIdOf: () => 0n,
};

/**
 * The userspace datapath: the TypeScript forwarder decides where frames go, and its I/O moves them
 * (libpcap and Node's UDP, or the native addon's threads, which decide most frames alone from the
 * routes the forwarder's tables give them). It takes frames on its own UDP port (the VXLAN port on
 * a sleeve host; on a fastdp host the kernel has that one, and this takes relayed and fallback
 * frames on the sleeve port).
 */
export class Sleeve implements Datapath {
  get name(): string {
    return this.io.name;
  }
  get sleevePort(): number {
    return this.cfg.sleevePort;
  }
  /** Its port on the bridge. */
  get bridgePort(): string {
    return this.io.port;
  }
  /** The MAC table's clock: read per frame, so a second's precision, refreshed by a timer (ages are minutes). */
  private clock = Date.now();
  readonly macs = new MacTable(
    MAC_AGE_MS,
    () => this.clock,
    MAC_LIMIT,
    () => log.warn(`MAC table full (${MAC_LIMIT}): the oldest entries are evicted (counted in /metrics; logged once)`),
  );
  readonly endpoints = new Endpoints();
  readonly forwarder: Forwarder;
  /** Gossiped MAC locations: what traffic has not told us yet. */
  private readonly announced = new Map<Mac, string>();
  readonly heartbeats: Heartbeats;
  private routing: Routing = NO_ROUTES;
  private events?: DatapathEvents;
  private learnedBatch: { mac: Mac; owner: string }[] = [];
  private timers: NodeJS.Timeout[] = [];
  /** The routes the I/O was given, by MAC, as text to compare. */
  private readonly pushed = new Map<Mac, string>();
  /** With encryption: each neighbour's keys, by name (its address may come after them). */
  private readonly security = new Map<string, PeerSecurity>();
  /** The I/O's counters, read at most once a second for sentTo. */
  private ioReport?: IoReport;
  private ioReportAt = 0;

  constructor(
    readonly cfg: DatapathConfig,
    private readonly io: SleeveIo,
  ) {
    const buffer = () => io.buffer();
    this.forwarder = new Forwarder({
      vni: cfg.vni,
      maxFrame: cfg.mtu + 14,
      macs: this.macs,
      endpoints: this.endpoints,
      routing: () => this.routing,
      announced: (mac) => this.announced.get(mac),
      send: (d, ep, final) => io.send(d, ep.ip, this.portFor(ep, final)),
      buffer,
      inject: (f) => io.inject(f),
      heartbeat: (f, ep) => this.heartbeatFrom(f, ep.name),
      via: (ep) => (ep.kind !== 'router' || this.heartbeats.reaches(ep.name) ? ep : this.detour(ep)),
      learned: (mac, owner) => this.learned(mac, owner),
    });
    for (const { ip, port } of cfg.vxlanPeers) {
      this.endpoints.add(makeEndpoint(`vxlan:${ip}`, 'vxlan', ip, port, 'vxlan', cfg.mtu));
      if (cfg.encrypt) io.secure(ip, { plain: true }); // a plain VXLAN device cannot seal: the user named it
    }
    this.heartbeats = new Heartbeats({
      send: (peer, kind, flags) => {
        const ep = this.endpoints.named(peer);
        if (ep)
          io.send(
            heartbeatDatagram(cfg.vni, this.routing.shortIdOf(this.routing.self), flags),
            ep.ip,
            kind === 'sleeve' ? ep.sleevePort : ep.port,
          );
      },
      onChange: (peer) => {
        this.routeAll();
        this.events?.pathChanged(peer, this.pathOf(peer));
      },
    });
  }

  async start(events: DatapathEvents): Promise<void> {
    this.events = events;
    this.io.peers(this.endpoints.list.map((e) => e.ip));
    await this.io.start({
      fromBridge: this.fromBridge,
      fromPeer: this.fromPeer,
      seen: this.seen,
      dropped: this.dropped,
    });
    this.timers.push(
      setInterval(() => {
        this.clock = Date.now();
      }, 1000),
    );
    this.timers.push(
      setInterval(() => {
        this.macs.expire();
        this.routeAll();
      }, 10_000),
    );
    this.timers.push(
      setInterval(
        () => this.heartbeats.tick(this.routers().map((e) => ({ name: e.name, twoPorts: e.sleevePort !== e.port }))),
        HEARTBEAT_INTERVAL_MS,
      ),
    );
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.io.stop();
  }

  setRouting(routing: Routing): void {
    this.routing = routing;
    this.routeAll();
  }

  /** Router endpoints are exactly the peers we hold a control connection with. */
  setPeers(peers: PeerLink[]): void {
    const now = new Map(peers.map((p) => [p.name, p]));
    for (const ep of this.routers()) {
      const p = now.get(ep.name);
      if (
        !p ||
        p.ip !== ep.ip ||
        p.udpPort !== ep.port ||
        p.sleevePort !== ep.sleevePort ||
        Math.min(p.mtu, this.cfg.mtu) !== ep.mtu
      ) {
        this.endpoints.remove(ep.name);
        if (this.cfg.encrypt && this.endpoints.fromIp(ep.ip) === undefined) this.io.secure(ep.ip, undefined);
        if (!p) {
          this.macs.forgetPeer(ep.name);
          this.security.delete(ep.name);
        }
      }
    }
    for (const p of now.values()) {
      const ep = this.endpoints.named(p.name);
      if (ep)
        ep.nickname = p.nickname; // it may arrive after the connection
      else {
        this.endpoints.add(
          makeEndpoint(p.name, p.nickname, p.ip, p.udpPort, 'router', Math.min(p.mtu, this.cfg.mtu), p.sleevePort),
        );
        if (this.cfg.encrypt) this.io.secure(p.ip, this.security.get(p.name));
      }
    }
    this.io.peers(this.endpoints.list.map((e) => e.ip));
    this.routeAll();
  }

  setMac(mac: Mac, owner: string | undefined): void {
    if (owner === undefined) {
      this.announced.delete(mac);
      if (this.macs.lookup(mac) !== LOCAL) this.macs.forget(mac); // a withdrawal forgets a remote location
    } else {
      this.announced.set(mac, owner);
      // A gossiped move overrides what traffic taught us.
      if (owner === LOCAL) this.macs.learn(mac, LOCAL);
      else if (this.macs.lookup(mac) !== undefined) this.macs.learn(mac, owner);
    }
    this.route(mac);
  }

  setSecurity(peer: string, s: PeerSecurity | undefined): void {
    if (s) this.security.set(peer, s);
    else this.security.delete(peer);
    const ep = this.endpoints.named(peer);
    if (ep && this.cfg.encrypt) this.io.secure(ep.ip, s);
  }

  sentTo(peer: string): number {
    const ep = this.endpoints.named(peer);
    if (!ep) return 0;
    if (this.io.report && Date.now() - this.ioReportAt > 1000) {
      this.ioReport = this.io.report();
      this.ioReportAt = Date.now();
    }
    return ep.tx.frames + (this.ioReport?.peers.get(ep.ip)?.tx.frames ?? 0);
  }
  /** Where the sleeve sends a frame for mac: what traffic taught it, else what gossip says (the forwarder's order). */
  ownerOf(mac: Mac): string | undefined {
    return this.macs.lookup(mac) ?? this.announced.get(mac);
  }

  /** Every MAC it knows a location of, from traffic or gossip (a MAC may come twice). */
  *knownMacs(): Iterable<Mac> {
    yield* this.macs.macs();
    yield* this.announced.keys();
  }

  /** A heartbeat the kernel took on a fastdp host (captured on its vxlan device). */
  heartbeatFrom(frame: Buffer, via?: string): void {
    const { sender, flags } = heartbeatSender(frame);
    const peer = this.routing.peerOf(sender);
    const ep = peer === undefined ? undefined : this.endpoints.named(peer);
    if (!ep || (via !== undefined && via !== peer)) return;
    this.heartbeats.receive(ep.name, flags, ep.sleevePort !== ep.port);
  }

  /**
   * Our heartbeats and the peer's say whether its VXLAN port can be reached, and whether anything of ours reaches it
   * directly.
   */
  pathOf(peer: string): PeerPath {
    const heartbeat = this.heartbeats.up(peer);
    if (this.heartbeats.reaches(peer)) return { mode: 'sleeve', heartbeat };
    const ep = this.endpoints.named(peer);
    const q = ep && this.detour(ep);
    return {
      mode: 'sleeve',
      heartbeat,
      reason: q ? `no UDP path: relayed by ${q.nickname || q.name}` : 'no UDP path, and no router to relay',
    };
  }

  /** A neighbour our datagrams reach that is connected to ep's peer: it passes our frames on. */
  private detour(ep: Endpoint): Endpoint | undefined {
    return this.routers().find(
      (q) => q !== ep && this.heartbeats.reaches(q.name) && this.routing.linked(q.name, ep.name),
    );
  }

  /**
   * Frames for the peer itself go to its VXLAN port (its kernel, on a fastdp host) while heartbeats say it works; the
   * rest to its sleeve.
   */
  private portFor(ep: Endpoint, final: boolean): number {
    if (ep.kind === 'vxlan') return ep.port;
    return final && this.heartbeats.up(ep.name) ? ep.port : ep.sleevePort;
  }

  /**
   * Where a native I/O sends frames for mac without asking: exactly where the forwarder would send
   * a frame from the bridge, when that is plain VXLAN straight to a neighbour (or the bridge
   * itself); detours and floods stay with the forwarder.
   */
  private fastRoute(mac: Mac): FastRoute | undefined {
    const to = this.forwarder.unicast(mac);
    if (to === LOCAL) return 'local';
    if (!to?.ep || (to.ep.kind === 'router' && !this.heartbeats.reaches(to.ep.name))) return undefined;
    return { ip: to.ep.ip, port: this.portFor(to.ep, to.final), mtu: to.ep.mtu };
  }

  private route(mac: Mac): void {
    if (!this.io.route) return;
    const to = this.fastRoute(mac);
    const key = to === undefined ? undefined : to === 'local' ? 'local' : `${to.ip}:${to.port}:${to.mtu}`;
    if (this.pushed.get(mac) === key) return;
    if (key === undefined) this.pushed.delete(mac);
    else this.pushed.set(mac, key);
    this.io.route(mac, to);
  }

  /** Peers, paths or routes changed, or entries aged out: every route is looked at again. */
  private routeAll(): void {
    if (!this.io.route) return;
    for (const mac of new Set([...this.pushed.keys(), ...this.knownMacs()])) this.route(mac);
  }

  report(): DatapathReport {
    const io = this.io.report?.();
    return {
      endpoints: this.endpoints.list.map((e) => {
        const fast = io?.peers.get(e.ip);
        return {
          name: e.name,
          nickname: e.nickname,
          ip: e.ip,
          port: e.port,
          kind: e.kind,
          tx: fast ? sum(e.tx, fast.tx) : e.tx,
          rx: fast ? sum(e.rx, fast.rx) : e.rx,
          path: e.kind === 'router' ? this.pathOf(e.name) : undefined,
        };
      }),
      macs: this.macs.view(),
      counters: io ? withIo(this.forwarder.counters, io) : this.forwarder.counters,
      macsEvicted: this.macs.evicted,
      offloads: io?.offloads,
    };
  }

  private routers(): Endpoint[] {
    return this.endpoints.list.filter((e) => e.kind === 'router');
  }

  private learned(mac: Mac, owner: string): void {
    this.route(mac);
    if (this.learnedBatch.push({ mac, owner }) > 1) return;
    setImmediate(() => {
      const b = this.learnedBatch;
      this.learnedBatch = [];
      this.events?.learned(b);
    });
  }

  // No frame or datagram may take the router down: a fault is counted, logged once, and the next
  // one goes on. One handler each, made once: no closure per frame.
  private readonly fromBridge = (frame: Buffer): void => {
    try {
      this.forwarder.fromBridge(frame);
    } catch (err) {
      this.fault(err);
    }
  };
  private readonly fromPeer = (datagram: Buffer, ip: string): void => {
    try {
      this.forwarder.fromPeer(datagram, ip);
    } catch (err) {
      this.fault(err);
    }
  };
  /**
   * A native I/O saw a MAC where its routes did not say (or confirms one now and then, so the table does not age it
   * out).
   */
  private readonly seen = (mac: Mac, ip: string | undefined): void => {
    const owner = ip === undefined ? LOCAL : this.endpoints.fromIp(ip)?.name;
    if (owner !== undefined && this.macs.learn(mac, owner)) this.learned(mac, owner);
  };

  private readonly dropped = (reason: string): void => this.forwarder.drop(reason);

  private fault(err: unknown): void {
    if (!this.forwarder.counters.dropped.fault)
      log.error(`data plane fault (counted as dropped "fault"; logged once): ${(err as Error).stack ?? err}`);
    this.forwarder.drop('fault');
  }
}

const sum = (a: Traffic, b: Traffic): Traffic => ({ frames: a.frames + b.frames, bytes: a.bytes + b.bytes });

/** The I/O read everything (what it handed up included) and moved what the forwarder never saw. */
function withIo(c: ForwarderCounters, io: IoReport): ForwarderCounters {
  const dropped = { ...c.dropped };
  for (const [k, n] of Object.entries(io.dropped)) dropped[k] = (dropped[k] ?? 0) + n;
  return {
    ...c,
    captured: io.captured,
    received: io.received,
    dropped,
    injected: sum(c.injected, io.injected),
    sent: { datagrams: c.sent.datagrams + io.sent.datagrams, bytes: c.sent.bytes + io.sent.bytes },
  };
}
