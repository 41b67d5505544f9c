import '../common/polyfill.js';
// One router's control plane for bench/gossip.ts, in its own process, driven by the parent over IPC.
// Every reply carries Date.now() taken here: all processes share one clock, so the parent can
// difference timestamps across peers without IPC or polling latency in the figures.
import { mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { ControlPlane, type ControlPlaneOptions } from '../gossip/control-plane.js';
import type { ChannelCounters } from '../gossip/gossip.js';

/** Parent -> worker. */
export type Command =
  | { type: 'create'; opts: ControlPlaneOptions; total: number }
  | { type: 'start'; peers: string[] }
  | { type: 'poll'; id: number; detail: boolean }
  | { type: 'watch'; mac: number; owner: string }
  | { type: 'announce'; mac: number }
  /** Records a MAC without telling anyone: only anti-entropy can spread it. */
  | { type: 'sneak'; mac: number }
  | { type: 'crash' }
  | { type: 'stop' };

export interface PeerState {
  reachable: number;
  known: number;
  /**
   * Since when this peer has seen all `total` peers reachable without a break (local clock); undefined while it does
   * not.
   */
  fullSince?: number;
  /** Topology changes seen ('routes' events): at rest, each one means a connection came or went somewhere. */
  topologyChanges: number;
  /** When the number of peers this one reaches last changed (local clock). */
  reachableChangedAt: number;
  /** A hash of this peer's topology (every peer's name and record version): equal at two peers when their views are. */
  view: string;
  /** When `view` last changed (local clock). */
  viewChangedAt: number;
  /** Only in a detailed poll. */
  rss?: number;
  /** process.cpuUsage(), user + system, µs. */
  cpuMicros?: number;
  gossip?: Record<string, ChannelCounters>;
  connections?: number;
  rejected?: number;
  /** Anti-entropy digest bytes, both ways. */
  digestBytes?: number;
  /** Targets not connected, by the reason the connection maker gives. */
  failing?: Record<string, number>;
}

/** Worker -> parent. */
export type Reply =
  | { type: 'ready'; t: number }
  | { type: 'created'; name: string; t: number }
  | { type: 'started'; t: number }
  | { type: 'state'; id: number; t: number; state: PeerState }
  | { type: 'watching'; t: number }
  | { type: 'mac'; t: number }
  | { type: 'announced'; t: number }
  | { type: 'stopped'; t: number }
  | { type: 'error'; during: string; message: string };

/** One control plane driven by commands; in its own process (below) or in the bench's (--one-process). */
export class Peer {
  private cp?: ControlPlane;
  private total = 0;
  private fullSince?: number;
  private topologyChanges = 0;
  private reachable = 0;
  private reachableChangedAt = 0;
  private view = '';
  private viewChangedAt = 0;

  constructor(
    private readonly send: (r: Reply) => void,
    private readonly ownProcess: boolean,
  ) {}

  /** Tracks fullSince; called on every topology change and every poll. */
  private checkFull(reachable = this.cp!.topology.reachable().size): void {
    if (reachable !== this.reachable) {
      this.reachable = reachable;
      this.reachableChangedAt = Date.now();
    }
    if (reachable < this.total) this.fullSince = undefined;
    else this.fullSince ??= Date.now();
  }

  /**
   * The view's hash, made when polled; viewChangedAt is kept by the events (a record merged, our own record changed).
   */
  private checkView(): void {
    this.view = createHash('sha256').update(JSON.stringify(this.cp!.topology.summary())).digest('hex');
  }

  private ownVersion = 0;
  private ownChanged(): void {
    const v = this.cp!.topology.peers.get(this.cp!.name)?.version ?? 0;
    if (v !== this.ownVersion) {
      this.ownVersion = v;
      this.viewChangedAt = Date.now();
    }
  }

  private state(detail: boolean): PeerState {
    const c = this.cp!;
    const reachable = c.topology.reachable().size;
    this.checkFull(reachable);
    if (reachable === this.total) this.checkView(); // views cannot be the same before
    const base = {
      reachable,
      known: c.topology.peers.size,
      fullSince: this.fullSince,
      topologyChanges: this.topologyChanges,
      reachableChangedAt: this.reachableChangedAt,
      view: this.view,
      viewChangedAt: this.viewChangedAt,
    };
    if (!detail) return base;
    const v = c.view();
    return {
      ...base,
      // In one process the figures are the whole process's: the bench divides them by the peers.
      rss: process.memoryUsage().rss,
      cpuMicros: ((u) => u.user + u.system)(process.cpuUsage()),
      gossip: v.gossip as Record<string, ChannelCounters>,
      connections: v.connections.filter((x) => x.state === 'established').length,
      rejected: c.rejectedGossip,
      digestBytes: c.repairs.bytesIn + c.repairs.bytesOut,
      failing: v.connections
        .filter((x) => x.state !== 'established')
        .reduce<Record<string, number>>((m, x) => {
          const why = `${x.state}: ${x.info.replace(/, retry in \d+s$/, '').slice(0, 80)}`;
          m[why] = (m[why] ?? 0) + 1;
          return m;
        }, {}),
    };
  }

  async handle(cmd: Command): Promise<void> {
    const send = this.send;
    switch (cmd.type) {
      case 'create': {
        mkdirSync(cmd.opts.dataDir, { recursive: true });
        this.total = cmd.total;
        this.cp = await ControlPlane.create(cmd.opts);
        this.cp.on('routes', () => {
          this.topologyChanges++;
          this.checkFull();
          this.ownChanged();
        });
        this.cp.on('changed', (ch: string) => {
          if (ch === 'topology') this.viewChangedAt = Date.now();
        });
        send({ type: 'created', name: this.cp.name, t: Date.now() });
        return;
      }
      case 'start':
        await this.cp!.start(cmd.peers);
        send({ type: 'started', t: Date.now() });
        return;
      case 'poll':
        send({ type: 'state', id: cmd.id, t: Date.now(), state: this.state(cmd.detail) });
        return;
      case 'watch': {
        const c = this.cp!;
        let done = false;
        const check = (): void => {
          if (done || c.macs.owner(cmd.mac) !== cmd.owner) return;
          done = true;
          send({ type: 'mac', t: Date.now() });
        };
        c.macChannel.on((m) => {
          if (m.mac === cmd.mac && m.owner === cmd.owner) check();
        });
        send({ type: 'watching', t: Date.now() });
        check(); // already known (never the case in the bench, but no event would come)
        return;
      }
      case 'announce': {
        const t = Date.now();
        this.cp!.announceMac(cmd.mac);
        send({ type: 'announced', t });
        return;
      }
      case 'sneak': {
        const t = Date.now();
        this.cp!.macs.announce(cmd.mac); // the delta it returns is dropped: as if every message of it were lost
        // What publishing does besides sending (the engine notes the channel changed): only the messages are lost.
        (this.cp as unknown as { gossip: { changed(channel: string): void } }).gossip.changed('macs');
        send({ type: 'announced', t });
        return;
      }
      case 'crash': // in its own process the bench kills it with SIGKILL instead; here its connections just end
        await this.cp?.stop();
        send({ type: 'stopped', t: Date.now() });
        return;
      case 'stop':
        await this.cp?.stop();
        send({ type: 'stopped', t: Date.now() });
        if (this.ownProcess) {
          process.disconnect?.();
          process.exit(0);
        }
    }
  }
}

// Forked by the bench: one peer in this process, driven over IPC.
if (process.send) {
  const send = (r: Reply): void => {
    if (process.connected) process.send!(r);
  };
  const peer = new Peer(send, true);
  process.on('message', (cmd: Command) => {
    peer
      .handle(cmd)
      .catch((err: Error) => send({ type: 'error', during: cmd.type, message: err?.stack ?? String(err) }));
  });
  // The parent went away (crashed or killed): nobody will stop us, so stop now.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', t: Date.now() });
}
