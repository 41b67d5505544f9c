import type { ControlPlane } from '../gossip/control-plane.js';
import type { RouterReport } from '../contract/report.js';
import { parseVxlanPeer } from '../common/address.js';
import { parseMac } from '../common/mac.js';
import { log } from '../common/log.js';
import { Datapath } from './datapath.js';
import { Endpoints, makeEndpoint } from './endpoints.js';
import { Forwarder, Routing } from './forwarder.js';
import { LOCAL, MAC_LIMIT, MacTable } from './mac-table.js';
import { UdpTransport } from './udp.js';
import { routingOf } from './routing.js';

const MAC_AGE_MS = 300_000;

export interface DataPlaneConfig { vni: number; udpPort: number; mtu: number; vxlanPeers: string[] }

/** Where the MACs of what is attached here live: the attachments tell the data plane, which tells every peer. */
export interface LocalMacs {
  add(mac: string): void;
  remove(mac: string): void;
}

/**
 * The data plane: the datapath, the forwarder, the MAC table and the endpoints, following the
 * control plane's peers, routes and gossiped MAC locations. It owns the datapath and the UDP
 * socket; the control plane is the composition root's.
 */
export class DataPlane implements LocalMacs {
  readonly macs = new MacTable(MAC_AGE_MS, Date.now, MAC_LIMIT, () => log.warn(`MAC table full (${MAC_LIMIT}): the oldest entries are evicted (counted in /metrics; logged once)`));
  readonly endpoints = new Endpoints();
  readonly forwarder: Forwarder;
  private routing: Routing;
  private ager?: NodeJS.Timeout;

  constructor(readonly cfg: DataPlaneConfig, readonly datapath: Datapath, private readonly udp: UdpTransport, private readonly control: ControlPlane) {
    this.routing = routingOf(control);
    this.forwarder = new Forwarder({
      vni: cfg.vni, maxFrame: cfg.mtu + 14, macs: this.macs, endpoints: this.endpoints, routing: () => this.routing,
      send: (d, ep) => udp.send(d, ep), inject: (f) => datapath.inject(f),
    });
    for (const v of cfg.vxlanPeers) {
      const { ip, port } = parseVxlanPeer(v, cfg.udpPort);
      this.endpoints.add(makeEndpoint(`vxlan:${ip}`, 'vxlan', ip, port, 'vxlan'));
    }
    control.on('routes', () => { this.routing = routingOf(control); this.syncEndpoints(); });
    control.macChannel.on(({ mac, owner }) => {
      // A gossiped move overrides what traffic taught us; a withdrawal forgets a remote location.
      if (owner === undefined) { if (this.macs.lookup(mac) !== LOCAL) this.macs.forget(mac); }
      else if (owner !== control.name) this.macs.learn(mac, owner);
    });
  }

  async start(): Promise<void> {
    await this.datapath.start((f) => this.guarded(() => this.forwarder.fromBridge(f)));
    this.ager = setInterval(() => this.macs.expire(), 10_000);
  }

  async stop(): Promise<void> {
    clearInterval(this.ager);
    await this.datapath.stop();
    this.udp.close();
  }

  onDatagram(msg: Buffer, ip: string): void { this.guarded(() => this.forwarder.fromPeer(msg, ip)); }

  /** No frame or datagram may take the router down: a fault is counted, logged once, and the next one goes on. */
  private guarded(fn: () => void): void {
    try { fn(); } catch (err) {
      const d = this.forwarder.counters.dropped;
      if (!d.fault) log.error(`data plane fault (counted as dropped "fault"; logged once): ${(err as Error).stack ?? err}`);
      d.fault = (d.fault ?? 0) + 1;
    }
  }

  add(mac: string): void {
    const m = parseMac(mac);
    this.macs.learn(m, LOCAL);
    this.control.announceMac(m);
  }

  remove(mac: string): void {
    const m = parseMac(mac);
    this.macs.forget(m);
    this.control.withdrawMac(m);
  }

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

  report(self: { name: string; nickname: string }): Pick<RouterReport, 'datapath' | 'vni' | 'mtu' | 'vxlanEndpoints' | 'macs' | 'counters'> {
    return {
      datapath: this.datapath.name,
      vni: this.cfg.vni,
      mtu: this.cfg.mtu,
      vxlanEndpoints: this.endpoints.list.filter((e) => e.kind === 'vxlan'),
      macs: this.macs.view().map((m) => ({ ...m, peer: m.local ? self.name : m.peer, nickname: m.local ? self.nickname : this.control.nickname(m.peer) })),
      counters: { ...this.forwarder.counters, gossipRejected: this.control.rejectedGossip, macsEvicted: this.macs.evicted },
    };
  }
}
