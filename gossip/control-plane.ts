import { EventEmitter } from 'node:events';
import type { weave } from '../proto/gen/weave.js';
import type { ConnectionView } from '../contract/report.js';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { writeHint } from '../common/files.js';
import type { Connection } from '@libp2p/interface';
import { loadOrCreateKey } from './identity.js';
import { createNode, type Node } from './node.js';
import { Gossip, type ChannelCounters } from './gossip.js';
import type { Channel, RequestHandler } from '../common/channel.js';
import { TopologyChannel, TOPOLOGY, type Link } from './topology.js';
import { MacsChannel, MACS, type MacChange } from './macs.js';
import { GossipChannel, type RequestSpec } from './typed-channel.js';
import { libp2pNet } from './libp2p-net.js';
import { Requests } from './requests.js';
import { peerKeySigner, type Signer } from './signer.js';
import { Routes } from './routes.js';
import { ConnectionMaker } from './connection-maker.js';
import { Liveness } from './liveness.js';
import { DATA_FILES } from '../contract/files.js';

const KNOWN_FILE = DATA_FILES.knownPeers;
/** How long changes to our connections, or records from peers, are gathered before we act on them. */
const COALESCE_MS = 50;
/** How long topology changes are gathered before the neighbours' addresses are saved. */
const SAVE_KNOWN_MS = 1000;

export interface ControlPlaneOptions {
  dataDir: string;
  nickname: string;
  port: number;
  udpPort: number;
  /** Where our userspace takes relayed frames, when not the data port (fastdp: the kernel has that). */
  sleevePort?: number;
  mtu?: number;
  datapath?: string;
  password?: string;
  connLimit: number;
  discovery: boolean;
}

/** A directly connected peer, as the data plane needs it. */
export interface Neighbour {
  name: string;
  nickname: string;
  ip: string;
  /** Its VXLAN port (the kernel's on a fastdp host). */
  udpPort: number;
  /** Where its userspace takes relayed frames (the VXLAN port itself on a sleeve host). */
  sleevePort: number;
  /** Its overlay MTU: a frame larger than ours and its own cannot reach it. */
  mtu: number;
  /**
   * Its datapath: only a fastdp peer's kernel takes our kernel's frames (they may carry checksums still to be filled
   * in).
   */
  datapath: string;
}

export type { ConnectionView };

/** ip:port of a /ip4/A/tcp/P multiaddr. */
const ipPort = (ma: { toString(): string }): string => {
  const m = /^\/ip[46]\/([^/]+)\/tcp\/(\d+)/.exec(ma.toString());
  return m ? `${m[1]}:${m[2]}` : ma.toString();
};
const hostOf = (ma: { toString(): string }): string => ipPort(ma).replace(/:\d+$/, '');

/**
 * The libp2p control plane: who we are, whom we are connected to, and the replicated facts
 * (topology, MAC locations) with the routes derived from them. Emits 'routes' when the topology
 * changes; `macChannel.on` tells of gossiped MAC locations. Subsystems add their own channels and
 * request handlers, before or after start.
 */
export class ControlPlane extends EventEmitter {
  readonly topology: TopologyChannel;
  readonly macs: MacsChannel;
  readonly macChannel: GossipChannel<weave.IMacs, MacChange>;
  private readonly topologyChannel: GossipChannel<weave.ITopology>;
  routes: Routes;
  private readonly gossip: Gossip;
  private readonly requests: Requests;
  private readonly maker: ConnectionMaker;
  private readonly liveness: Liveness;
  private selfUpdate?: NodeJS.Timeout;
  private routesUpdate?: NodeJS.Timeout;
  private known = '';
  private saveTimer?: NodeJS.Timeout;
  /** The neighbours' addresses being written, one write after another. */
  private saving: Promise<void> = Promise.resolve();
  private gcTimer?: NodeJS.Timeout;

  private constructor(
    private readonly node: Node,
    readonly name: string,
    signer: Signer,
    private readonly o: ControlPlaneOptions,
  ) {
    super();
    this.topologyChannel = new GossipChannel(TOPOLOGY, () => new TopologyChannel(name));
    this.topology = this.topologyChannel.crdt as TopologyChannel;
    this.macChannel = new GossipChannel(MACS, (emit) => new MacsChannel(name, Date.now, emit));
    this.macs = this.macChannel.crdt as MacsChannel;
    this.routes = new Routes(this.topology);
    const net = libp2pNet(node, (peer) => this.liveness.heard(peer));
    this.gossip = new Gossip(net, (ch) => {
      if (ch === TOPOLOGY.name) this.scheduleTopologyChanged();
      this.emit('changed', ch);
    });
    this.requests = new Requests(net, name, signer, (peer) => this.routes.nextHop(peer));
    this.gossip.addChannel(this.topologyChannel);
    this.gossip.addChannel(this.macChannel);
    this.maker = new ConnectionMaker(node, {
      port: o.port,
      connLimit: o.connLimit,
      file: join(o.dataDir, DATA_FILES.targets),
      password: !!o.password,
      self: name,
    });
    this.liveness = new Liveness(node);
  }

  static async create(o: ControlPlaneOptions): Promise<ControlPlane> {
    const key = await loadOrCreateKey(join(o.dataDir, 'peer.key'));
    const node = await createNode({ key, host: '0.0.0.0', port: o.port, password: o.password, connLimit: o.connLimit });
    return new ControlPlane(node, node.peerId.toString(), peerKeySigner(key), o);
  }

  /** Starts listening (a taken port is an error) and connects to the saved targets plus `peers`. */
  async start(peers: string[]): Promise<void> {
    const saved = this.maker.loadSaved();
    try {
      await this.node.start();
    } catch (err) {
      throw new Error(
        /EADDRINUSE/.test(String(err))
          ? `TCP port ${this.o.port} is already in use`
          : `cannot start the control plane: ${(err as Error).message}`,
      );
    }
    await this.gossip.start();
    await this.requests.start();
    this.node.addEventListener('connection:open', () => this.scheduleSelfUpdate());
    this.node.addEventListener('connection:close', () => this.scheduleSelfUpdate());
    this.liveness.start();
    this.gcTimer = setInterval(() => {
      if (this.topology.gc()) this.topologyChanged();
      this.macs.collect();
    }, 5000);
    this.updateSelf();
    this.maker.connect([...saved, ...peers]);
    this.maker.discover(this.loadKnown()); // the peers we had before a restart: they may not know we are back yet
  }

  async stop(): Promise<void> {
    this.maker.stop();
    this.liveness.stop();
    this.gossip.stop();
    clearInterval(this.gcTimer);
    clearTimeout(this.selfUpdate);
    clearTimeout(this.routesUpdate);
    if (this.saveTimer) {
      clearTimeout(this.saveTimer);
      this.saveTimer = undefined;
      this.saveKnown();
    }
    await this.saving;
    await this.node.stop();
  }

  /** Adds a replicated channel (IPAM, later DNS...), before or after start. */
  addChannel(c: Channel): void {
    this.gossip.addChannel(c);
  }

  /** Answers peers' requests of one kind. */
  handle(h: RequestHandler): Promise<void> {
    return this.requests.handle(h);
  }

  /** Asks any peer in the topology: directly when it is a neighbour, else relayed along the route. */
  async request<Q, R>(peer: string, spec: RequestSpec<Q, R>, req: Q, timeoutMs?: number): Promise<R> {
    return spec.reply.decode(
      await this.requests.request(peer, spec.name, spec.request.encode(req).finish(), timeoutMs),
    );
  }

  /** Requests sent, relayed for others, and refused. */
  get requestCounters() {
    return this.requests.counters;
  }

  connect(addresses: string[], replace: boolean): void {
    this.maker.connect(addresses, replace);
  }
  forget(addresses: string[]): void {
    this.maker.forget(addresses);
  }

  announceMac(mac: number): void {
    this.macChannel.publish(this.macs.announce(mac));
  }
  withdrawMac(mac: number): void {
    const d = this.macs.withdraw(mac);
    if (d) this.macChannel.publish(d);
  }

  /** Peers we hold a connection to, with the address their datagrams come from. */
  neighbours(): Neighbour[] {
    const out = new Map<string, Neighbour>();
    for (const c of this.openConnections()) {
      const name = c.remotePeer.toString();
      if (out.has(name)) continue;
      const rec = this.topology.peers.get(name);
      const udpPort = rec?.udpPort || this.o.udpPort;
      out.set(name, {
        name,
        nickname: rec?.nickname ?? '',
        ip: hostOf(c.remoteAddr),
        udpPort,
        sleevePort: rec?.sleevePort || udpPort,
        mtu: rec?.mtu || 0,
        datapath: rec?.datapath ?? '',
      });
    }
    return [...out.values()];
  }

  nickname(peer: string): string {
    return this.topology.peers.get(peer)?.nickname ?? '';
  }

  /** A peer in the topology by its name or nickname (the first, by name, when two share a nickname). */
  resolvePeer(nameOrNickname: string): string | undefined {
    if (this.topology.peers.has(nameOrNickname)) return nameOrNickname;
    return [...this.topology.peers.values()]
      .filter((p) => p.nickname === nameOrNickname)
      .map((p) => p.name)
      .sort()[0];
  }

  /** Anti-entropy: digest exchanges we started and their bytes. */
  get repairs() {
    return this.gossip.repairs;
  }

  view(): { targets: string[]; connections: ConnectionView[]; gossip: Record<string, ChannelCounters> } {
    const connections: ConnectionView[] = [];
    for (const c of this.openConnections()) {
      const name = c.remotePeer.toString();
      if (connections.some((x) => x.name === name)) continue; // two peers that dialled each other at once
      connections.push({
        direction: c.direction,
        address: ipPort(c.remoteAddr),
        state: 'established',
        info: 'encrypted (noise)',
        name,
        nickname: this.nickname(name),
      });
    }
    for (const t of this.maker.view()) {
      if (t.state === 'established' && connections.some((c) => c.name === t.peer)) continue;
      connections.push({
        direction: 'outbound',
        address: t.address,
        state: t.state,
        info:
          t.state === 'failed'
            ? `${t.error ?? ''}${t.retryInSeconds !== undefined ? `, retry in ${t.retryInSeconds}s` : ''}`
            : '',
      });
    }
    return { targets: this.maker.userTargets(), connections, gossip: Object.fromEntries(this.gossip.counters) };
  }

  get rejectedGossip(): number {
    return this.topology.rejected + this.macs.rejected;
  }

  private openConnections(): Connection[] {
    return this.node.getConnections().filter((c) => c.status === 'open');
  }

  /**
   * Connections that come up together (a host joining, a hundred starting at once) make one new
   * version of our record, not one each: every version is sent to every peer, and each of them
   * recomputes its routes.
   */
  private scheduleSelfUpdate(): void {
    if (this.selfUpdate) return;
    this.selfUpdate = setTimeout(() => {
      this.selfUpdate = undefined;
      this.updateSelf();
    }, COALESCE_MS);
  }

  /** Routes follow the topology at most every COALESCE_MS: a burst of records is one recomputation. */
  private scheduleTopologyChanged(): void {
    if (this.routesUpdate) return;
    this.routesUpdate = setTimeout(() => {
      this.routesUpdate = undefined;
      this.topologyChanged();
    }, COALESCE_MS);
  }

  /** Our own topology record follows our connections; every change is a new version. */
  private updateSelf(): void {
    const links: Link[] = [];
    for (const c of this.openConnections()) {
      const peer = c.remotePeer.toString();
      if (!links.some((l) => l.peer === peer))
        links.push({ peer, addr: ipPort(c.remoteAddr), outbound: c.direction === 'outbound' });
    }
    const addrs = this.node
      .getMultiaddrs()
      .map(ipPort)
      .filter((a) => !a.startsWith('127.'));
    const prev = this.topology.peers.get(this.name);
    const same =
      prev &&
      JSON.stringify(prev.links) === JSON.stringify(links) &&
      JSON.stringify(prev.addrs) === JSON.stringify(addrs);
    if (same) return;
    this.topologyChannel.publish(
      this.topology.setSelf({
        nickname: this.o.nickname,
        udpPort: this.o.udpPort,
        sleevePort: this.o.sleevePort ?? 0,
        mtu: this.o.mtu ?? 0,
        datapath: this.o.datapath ?? '',
        addrs,
        links,
      }),
    );
    this.topologyChanged();
  }

  /** Addresses of the neighbours we had, saved as they change, so a restarted router dials them at once. */
  private loadKnown(): string[] {
    try {
      return (JSON.parse(readFileSync(join(this.o.dataDir, KNOWN_FILE), 'utf8')) as unknown[]).filter(
        (x): x is string => typeof x === 'string',
      );
    } catch {
      return [];
    }
  }

  private saveKnown(): void {
    const addrs = this.topology
      .neighbours(this.name)
      .flatMap((n) => this.topology.peers.get(n)?.addrs ?? [])
      .sort();
    const text = JSON.stringify(addrs);
    if (text === this.known || addrs.length === 0) return;
    this.known = text;
    const file = join(this.o.dataDir, KNOWN_FILE);
    this.saving = this.saving
      .then(() => writeHint(file, `${text}\n`))
      .catch(() => {
        /* best effort: only speeds up a restart */
      });
  }

  /**
   * The neighbours' addresses are written at most once a second: while a hundred routers start,
   * the topology changes many times a second, and only the last list matters.
   */
  private scheduleSaveKnown(): void {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      this.saveKnown();
    }, SAVE_KNOWN_MS);
  }

  private topologyChanged(): void {
    this.scheduleSaveKnown();
    this.routes = new Routes(this.topology);
    if (this.o.discovery) {
      const connected = new Set(this.openConnections().map((c) => c.remotePeer.toString()));
      const addrs: string[] = [];
      // Of two peers that learn of each other, the one with the lower name dials: no crossed connections.
      for (const p of this.topology.peers.values())
        if (p.name > this.name && !connected.has(p.name)) addrs.push(...p.addrs);
      this.maker.discover(addrs);
    }
    this.emit('routes');
  }
}
