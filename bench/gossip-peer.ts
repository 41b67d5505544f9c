import '../common/polyfill.js';
// One router's control plane for bench/gossip.ts, in its own process, driven by the parent over IPC.
// Every reply carries Date.now() taken here: all processes share one clock, so the parent can
// difference timestamps across peers without IPC or polling latency in the figures.
import { mkdirSync } from 'node:fs';
import { ControlPlane, type ControlPlaneOptions } from '../gossip/control-plane.js';
import type { ChannelCounters } from '../gossip/gossip.js';

/** Parent -> worker. */
export type Command =
  | { type: 'create'; opts: ControlPlaneOptions; total: number }
  | { type: 'start'; peers: string[] }
  | { type: 'poll'; id: number; detail: boolean }
  | { type: 'watch'; mac: number; owner: string }
  | { type: 'announce'; mac: number }
  | { type: 'stop' };

export interface PeerState {
  reachable: number;
  known: number;
  /** Since when this peer has seen all `total` peers reachable without a break (local clock); undefined while it does not. */
  fullSince?: number;
  /** Topology changes seen ('routes' events): at rest, each one means a connection came or went somewhere. */
  topologyChanges: number;
  /** Only in a detailed poll. */
  rss?: number;
  /** process.cpuUsage(), user + system, µs. */
  cpuMicros?: number;
  gossip?: Record<string, ChannelCounters>;
  connections?: number;
  rejected?: number;
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

const send = (r: Reply): void => { if (process.connected) process.send!(r); };

let cp: ControlPlane | undefined;
let total = 0;
let fullSince: number | undefined;
let topologyChanges = 0;

/** Tracks fullSince; called on every topology change and every poll. */
function checkFull(reachable = cp!.topology.reachable().size): void {
  if (reachable < total) fullSince = undefined;
  else fullSince ??= Date.now();
}

function state(detail: boolean): PeerState {
  const c = cp!;
  const reachable = c.topology.reachable().size;
  checkFull(reachable);
  if (!detail) return { reachable, known: c.topology.peers.size, fullSince, topologyChanges };
  const v = c.view();
  return {
    reachable,
    known: c.topology.peers.size,
    fullSince,
    topologyChanges,
    rss: process.memoryUsage().rss,
    cpuMicros: ((u) => u.user + u.system)(process.cpuUsage()),
    gossip: v.gossip as Record<string, ChannelCounters>,
    connections: v.connections.filter((x) => x.state === 'established').length,
    rejected: c.rejectedGossip,
  };
}

async function handle(cmd: Command): Promise<void> {
  switch (cmd.type) {
    case 'create': {
      mkdirSync(cmd.opts.dataDir, { recursive: true });
      total = cmd.total;
      cp = await ControlPlane.create(cmd.opts);
      cp.on('routes', () => { topologyChanges++; checkFull(); });
      send({ type: 'created', name: cp.name, t: Date.now() });
      return;
    }
    case 'start':
      await cp!.start(cmd.peers);
      send({ type: 'started', t: Date.now() });
      return;
    case 'poll':
      send({ type: 'state', id: cmd.id, t: Date.now(), state: state(cmd.detail) });
      return;
    case 'watch': {
      const c = cp!;
      let done = false;
      const check = (): void => {
        if (done || c.macs.owner(cmd.mac) !== cmd.owner) return;
        done = true;
        c.off('mac', onMac);
        send({ type: 'mac', t: Date.now() });
      };
      const onMac = (mac: number, owner: string | undefined): void => { if (mac === cmd.mac && owner === cmd.owner) check(); };
      c.on('mac', onMac);
      send({ type: 'watching', t: Date.now() });
      check(); // already known (never the case in the bench, but no event would come)
      return;
    }
    case 'announce': {
      const t = Date.now();
      cp!.announceMac(cmd.mac);
      send({ type: 'announced', t });
      return;
    }
    case 'stop':
      await cp?.stop();
      send({ type: 'stopped', t: Date.now() });
      process.disconnect?.();
      process.exit(0);
  }
}

process.on('message', (cmd: Command) => {
  handle(cmd).catch((err: Error) => send({ type: 'error', during: cmd.type, message: err?.stack ?? String(err) }));
});
// The parent went away (crashed or killed): nobody will stop us, so stop now.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', t: Date.now() });
