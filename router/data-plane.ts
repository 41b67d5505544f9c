import type { ControlPlane } from '../gossip/control-plane.js';
import type { RouterReport } from '../contract/report.js';
import { parseMac } from '../common/mac.js';
import { log } from '../common/log.js';
import type { Datapath, PeerLink } from './datapath.js';
import { LOCAL } from './mac-table.js';
import { routingOf } from './routing.js';
import { DataKeys } from './data-keys.js';
import type { RequestHandler } from '../common/channel.js';
import { handler, requestSpec } from '../gossip/typed-channel.js';
import { weave } from '../proto/gen/weave.js';
import { contains, ipToNum, type Subnet } from '../common/subnet.js';

const DATA_KEY = requestSpec('datakey', weave.DataKeyRequest, weave.DataKeyReply);

/** The encrypted data plane's settings: the password keys are mixed with, the subnets trusted to go plain. */
export interface DataSecurity {
  password: string;
  trustedSubnets: Subnet[];
  rotateMs: number;
  aes: boolean;
}

/** Where the MACs of what is attached here live: the attachments tell the data plane, which tells every peer. */
export interface LocalMacs {
  add(mac: string): void;
  remove(mac: string): void;
}

/**
 * The data plane: tells the datapath what the control plane knows (peers, routes, gossiped MAC
 * locations) as it changes, and tells every peer where the MACs attached here live. The datapath
 * does the frames.
 */
export class DataPlane implements LocalMacs {
  private peers = new Map<string, PeerLink>();
  private readonly modes = new Map<string, string>();
  private learnedFromTraffic = 0;

  /** With a password: the keys of each neighbour, agreed over the control plane. */
  readonly keys?: DataKeys;
  readonly requests: RequestHandler[] = [];

  constructor(
    readonly mtu: number,
    readonly vni: number,
    readonly datapath: Datapath,
    private readonly control: ControlPlane,
    security?: DataSecurity,
  ) {
    if (security) {
      const trusted = security.trustedSubnets;
      const keys = new DataKeys({
        self: control.name,
        password: security.password,
        aes: security.aes,
        rotateMs: security.rotateMs,
        trusts: (ip) => trusted.some((s) => contains(s, ipToNum(ip))),
        ask: (peer, req) => control.request(peer, DATA_KEY, req),
        install: (peer, st) => datapath.setSecurity?.(peer, st),
        sent: (peer) => datapath.sentTo?.(peer) ?? 0,
      });
      this.keys = keys;
      this.requests.push(handler(DATA_KEY, (from, req) => keys.handle(from, req)));
    }
    control.on('routes', () => this.follow());
    control.macChannel.on(({ mac, owner }) => datapath.setMac(mac, owner === control.name ? LOCAL : owner));
  }

  async start(): Promise<void> {
    await this.datapath.start({
      learned: (batch) => {
        this.learnedFromTraffic += batch.length;
      },
      pathChanged: (peer, p) => {
        if (this.modes.get(peer) === p.mode) return;
        this.modes.set(peer, p.mode);
        log.info(`${this.label(peer)}: frames go by ${p.mode}${p.reason ? ` (${p.reason})` : ''}`);
      },
    });
    this.follow();
    this.keys?.start();
  }

  async stop(): Promise<void> {
    this.keys?.stop();
    await this.datapath.stop();
  }

  add(mac: string): void {
    const m = parseMac(mac);
    this.datapath.setMac(m, LOCAL);
    this.control.announceMac(m);
  }

  remove(mac: string): void {
    const m = parseMac(mac);
    this.datapath.setMac(m, undefined);
    this.control.withdrawMac(m);
  }

  /** Routes and neighbours follow the topology; a neighbour that does not say its MTU is taken to have ours. */
  private follow(): void {
    this.datapath.setRouting(routingOf(this.control));
    const now = new Map(this.control.neighbours().map((n) => [n.name, { ...n, mtu: n.mtu || this.mtu }]));
    for (const p of this.peers.values())
      if (!now.has(p.name)) {
        log.info(`lost ${this.label(p.name)}`);
        this.modes.delete(p.name);
      }
    for (const p of now.values())
      if (!this.peers.has(p.name)) log.info(`connected to ${p.name}(${p.nickname}) at ${p.ip}`);
    this.peers = now;
    this.datapath.setPeers([...now.values()]);
    this.keys?.setNeighbours([...now.values()]);
  }

  private label(peer: string): string {
    return `${peer}(${this.control.nickname(peer)})`;
  }

  report(self: {
    name: string;
    nickname: string;
  }): Pick<
    RouterReport,
    'datapath' | 'vni' | 'mtu' | 'vxlanEndpoints' | 'macs' | 'counters' | 'paths' | 'fdb' | 'offloads'
  > {
    const r = this.datapath.report();
    return {
      datapath: this.datapath.name,
      vni: this.vni,
      mtu: this.mtu,
      vxlanEndpoints: r.endpoints.filter((e) => e.kind === 'vxlan').map(({ path: _, ...e }) => e),
      paths: Object.fromEntries(
        r.endpoints.filter((e) => e.path).map((e) => [e.name, { ...e.path!, tx: e.tx, rx: e.rx }]),
      ),
      fdb: r.fdb,
      offloads: r.offloads,
      macs: r.macs.map((m) => ({
        ...m,
        peer: m.local ? self.name : m.peer,
        nickname: m.local ? self.nickname : this.control.nickname(m.peer),
      })),
      counters: {
        ...r.counters,
        gossipRejected: this.control.rejectedGossip,
        macsEvicted: r.macsEvicted,
        macsLearned: this.learnedFromTraffic,
      },
    };
  }
}
