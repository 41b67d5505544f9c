import type { Mac } from '../common/mac.js';
import { log } from '../common/log.js';
import { Capture } from './capture.js';
import { BRIDGE_PORT_IF, CAPTURE_IF } from './bridge.js';
import { runOk } from '../common/exec.js';
import type { Datapath, DatapathConfig, DatapathEvents, DatapathReport, PeerLink, PeerPath, Routing } from './datapath.js';
import { Endpoint, Endpoints, makeEndpoint } from './endpoints.js';
import { Forwarder } from './forwarder.js';
import { heartbeatDatagram, heartbeatSender, HEARTBEAT_INTERVAL_MS, Heartbeats } from './heartbeat.js';
import { LOCAL, MAC_LIMIT, MacTable } from './mac-table.js';
import { UdpTransport } from './udp.js';

const MAC_AGE_MS = 300_000;
const NO_ROUTES: Routing = { self: '', nextHop: () => undefined, children: () => [], linked: () => false, peerOf: () => undefined, shortIdOf: () => 0n };

/**
 * The userspace datapath: libpcap on the capture veth, the TypeScript forwarder, UDP through Node.
 * It takes frames on its own UDP port (the VXLAN port on a sleeve host; on a fastdp host the kernel
 * has that one, and this takes relayed and fallback frames on the sleeve port). The `inbound`
 * filter keeps our own injections out of the capture, so a frame we put on the bridge is never
 * captured and sent back where it came from.
 */
export class SleevePcap implements Datapath {
  readonly name: string = 'sleeve-pcap';
  get sleevePort(): number { return this.cfg.sleevePort; }
  /** The MAC table's clock: read per frame, so a second's precision, refreshed by a timer (ages are minutes). */
  private clock = Date.now();
  readonly macs = new MacTable(MAC_AGE_MS, () => this.clock, MAC_LIMIT, () => log.warn(`MAC table full (${MAC_LIMIT}): the oldest entries are evicted (counted in /metrics; logged once)`));
  readonly endpoints = new Endpoints();
  readonly forwarder: Forwarder;
  /** Gossiped MAC locations: what traffic has not told us yet. */
  private readonly announced = new Map<Mac, string>();
  readonly heartbeats: Heartbeats;
  private routing: Routing = NO_ROUTES;
  private readonly capture = new Capture(CAPTURE_IF, 'inbound', 16 << 20);
  private events?: DatapathEvents;
  private learnedBatch: { mac: Mac; owner: string }[] = [];
  private timers: NodeJS.Timeout[] = [];

  private constructor(readonly cfg: DatapathConfig, private readonly udp: UdpTransport, private readonly onUdp: { fn: (m: Buffer, ip: string) => void },
                      private readonly inner: boolean) {
    this.forwarder = new Forwarder({
      vni: cfg.vni, maxFrame: cfg.mtu + 14, macs: this.macs, endpoints: this.endpoints, routing: () => this.routing,
      announced: (mac) => this.announced.get(mac),
      send: (d, ep, final) => this.udp.send(d, ep.ip, this.portFor(ep, final)),
      buffer: () => this.udp.buffer(),
      inject: (f) => this.capture.send(f),
      heartbeat: (f, ep) => this.heartbeatFrom(f, ep.name),
      via: (ep) => (ep.kind !== 'router' || this.heartbeats.reaches(ep.name) ? ep : this.detour(ep)),
      learned: (mac, owner) => this.learned(mac, owner),
    });
    for (const { ip, port } of cfg.vxlanPeers) this.endpoints.add(makeEndpoint(`vxlan:${ip}`, 'vxlan', ip, port, 'vxlan', cfg.mtu));
    this.heartbeats = new Heartbeats({
      send: (peer, kind, flags) => {
        const ep = this.endpoints.named(peer);
        if (ep) this.udp.send(heartbeatDatagram(cfg.vni, this.routing.shortIdOf(this.routing.self), flags), ep.ip, kind === 'sleeve' ? ep.sleevePort : ep.port);
      },
      onChange: (peer) => this.events?.pathChanged(peer, this.pathOf(peer)),
    });
    onUdp.fn = this.fromPeer;
  }

  /** Takes the UDP port; nothing else is touched yet. inner: the sleeve of a fastdp datapath. */
  static async open(cfg: DatapathConfig, inner = false): Promise<SleevePcap> {
    const onUdp = { fn: (_m: Buffer, _ip: string) => {} };
    const udp = await UdpTransport.open(cfg.sleevePort, (m, ip) => onUdp.fn(m, ip));
    return new SleevePcap(cfg, udp, onUdp, inner);
  }

  async start(events: DatapathEvents): Promise<void> {
    this.events = events;
    // Alone, the sleeve is the bridge's only overlay port and learns like any other (fastdp changes that).
    if (!this.inner) await runOk(['bridge', 'link', 'set', 'dev', BRIDGE_PORT_IF, 'learning', 'on', 'isolated', 'off']);
    this.capture.open(this.fromBridge);
    this.timers.push(setInterval(() => { this.clock = Date.now(); }, 1000));
    this.timers.push(setInterval(() => this.macs.expire(), 10_000));
    this.timers.push(setInterval(() => this.heartbeats.tick(this.routers().map((e) => ({ name: e.name, twoPorts: e.sleevePort !== e.port }))), HEARTBEAT_INTERVAL_MS));
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.capture.close();
    this.udp.close();
  }

  setRouting(routing: Routing): void { this.routing = routing; }

  /** Router endpoints are exactly the peers we hold a control connection with. */
  setPeers(peers: PeerLink[]): void {
    const now = new Map(peers.map((p) => [p.name, p]));
    for (const ep of this.routers()) {
      const p = now.get(ep.name);
      if (!p || p.ip !== ep.ip || p.udpPort !== ep.port || p.sleevePort !== ep.sleevePort || Math.min(p.mtu, this.cfg.mtu) !== ep.mtu) {
        this.endpoints.remove(ep.name);
        this.udp.forget(ep.ip);
        if (!p) this.macs.forgetPeer(ep.name);
      }
    }
    for (const p of now.values()) {
      const ep = this.endpoints.named(p.name);
      if (ep) ep.nickname = p.nickname; // it may arrive after the connection
      else this.endpoints.add(makeEndpoint(p.name, p.nickname, p.ip, p.udpPort, 'router', Math.min(p.mtu, this.cfg.mtu), p.sleevePort));
    }
  }

  setMac(mac: Mac, owner: string | undefined): void {
    if (owner === undefined) {
      this.announced.delete(mac);
      if (this.macs.lookup(mac) !== LOCAL) this.macs.forget(mac); // a withdrawal forgets a remote location
    } else {
      this.announced.set(mac, owner);
      // A gossiped move overrides what traffic taught us.
      if (owner === LOCAL) this.macs.learn(mac, LOCAL); else if (this.macs.lookup(mac) !== undefined) this.macs.learn(mac, owner);
    }
  }

  /** Where the sleeve sends a frame for mac: what traffic taught it, else what gossip says (the forwarder's order). */
  ownerOf(mac: Mac): string | undefined { return this.macs.lookup(mac) ?? this.announced.get(mac); }

  /** Every MAC it knows a location of, from traffic or gossip (a MAC may come twice). */
  *knownMacs(): Iterable<Mac> { yield* this.macs.macs(); yield* this.announced.keys(); }

  /** A heartbeat the kernel took on a fastdp host (captured on its vxlan device). */
  heartbeatFrom(frame: Buffer, via?: string): void {
    const { sender, flags } = heartbeatSender(frame);
    const peer = this.routing.peerOf(sender);
    const ep = peer === undefined ? undefined : this.endpoints.named(peer);
    if (!ep || (via !== undefined && via !== peer)) return;
    this.heartbeats.receive(ep.name, flags, ep.sleevePort !== ep.port);
  }

  /** Our heartbeats and the peer's say whether its VXLAN port can be reached, and whether anything of ours reaches it directly. */
  pathOf(peer: string): PeerPath {
    const heartbeat = this.heartbeats.up(peer);
    if (this.heartbeats.reaches(peer)) return { mode: 'sleeve', heartbeat };
    const ep = this.endpoints.named(peer);
    const q = ep && this.detour(ep);
    return { mode: 'sleeve', heartbeat, reason: q ? `no UDP path: relayed by ${q.nickname || q.name}` : 'no UDP path, and no router to relay' };
  }

  /** A neighbour our datagrams reach that is connected to ep's peer: it passes our frames on. */
  private detour(ep: Endpoint): Endpoint | undefined {
    return this.routers().find((q) => q !== ep && this.heartbeats.reaches(q.name) && this.routing.linked(q.name, ep.name));
  }

  /** Frames for the peer itself go to its VXLAN port (its kernel, on a fastdp host) while heartbeats say it works; the rest to its sleeve. */
  private portFor(ep: Endpoint, final: boolean): number {
    if (ep.kind === 'vxlan') return ep.port;
    return final && this.heartbeats.up(ep.name) ? ep.port : ep.sleevePort;
  }

  report(): DatapathReport {
    return {
      endpoints: this.endpoints.list.map((e) => ({ name: e.name, nickname: e.nickname, ip: e.ip, port: e.port, kind: e.kind, tx: e.tx, rx: e.rx,
        path: e.kind === 'router' ? this.pathOf(e.name) : undefined })),
      macs: this.macs.view(),
      counters: this.forwarder.counters,
      macsEvicted: this.macs.evicted,
    };
  }

  private routers(): Endpoint[] { return this.endpoints.list.filter((e) => e.kind === 'router'); }

  private learned(mac: Mac, owner: string): void {
    if (this.learnedBatch.push({ mac, owner }) > 1) return;
    setImmediate(() => { const b = this.learnedBatch; this.learnedBatch = []; this.events?.learned(b); });
  }

  // No frame or datagram may take the router down: a fault is counted, logged once, and the next
  // one goes on. One handler each, made once: no closure per frame.
  private readonly fromBridge = (frame: Buffer): void => { try { this.forwarder.fromBridge(frame); } catch (err) { this.fault(err); } };
  private readonly fromPeer = (datagram: Buffer, ip: string): void => { try { this.forwarder.fromPeer(datagram, ip); } catch (err) { this.fault(err); } };

  private fault(err: unknown): void {
    const d = this.forwarder.counters.dropped;
    if (!d.fault) log.error(`data plane fault (counted as dropped "fault"; logged once): ${(err as Error).stack ?? err}`);
    d.fault = (d.fault ?? 0) + 1;
  }
}
