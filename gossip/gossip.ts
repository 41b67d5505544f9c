import { createHash } from 'node:crypto';
import type { PeerId } from '@libp2p/interface';
import { weave } from '../proto/gen/weave.js';
import { Channel } from '../common/channel.js';
import type { Node } from './node.js';

export const SYNC_PROTOCOL = '/weave-ts/sync/1.0.0';
const ANTI_ENTROPY_MS = 3000;
const MAX_SYNC_BYTES = 16 << 20;
const topic = (channel: string) => `weave-ts/${channel}/1`;

export interface ChannelCounters { messagesIn: number; bytesIn: number; messagesOut: number; bytesOut: number; dropped: number; syncs: number }

/**
 * Carries channels between routers: deltas on a gossipsub topic per channel, and direct pushes
 * over a stream protocol: every channel's full state both ways when a connection comes up, and
 * each of our own deltas to every neighbour. A pushed message that changes our state is pushed on
 * to our other neighbours (a duplicate changes nothing and stops there), so facts cross peers that
 * gossipsub has not meshed yet: gossipsub is fast but best effort, the pushes are what make it sure.
 * Every three seconds each router also compares a hash of every channel with one random neighbour,
 * and the two exchange the channels that differ: whatever was lost on the way is repaired.
 */
export class Gossip {
  readonly counters = new Map<string, ChannelCounters>();
  private readonly channels = new Map<string, Channel>();
  private antiEntropy?: NodeJS.Timeout;

  constructor(private readonly node: Node, channels: Channel[], private readonly onChange: (channel: string) => void) {
    for (const c of channels) this.add(c);
  }

  /** Adds a channel; before start(). */
  add(c: Channel): void {
    this.channels.set(c.name, c);
    this.counters.set(c.name, { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0, dropped: 0, syncs: 0 });
  }

  /** Answers requests of one kind from peers (one message each way per stream). */
  async handle(name: string, fn: (from: string, data: Uint8Array) => Promise<Uint8Array>): Promise<void> {
    await this.node.handle(`/weave-ts/${name}/1.0.0`, async (stream, connection) => {
      try {
        const reply = await fn(connection.remotePeer.toString(), await readAll(stream));
        stream.send(reply);
        await stream.close();
      } catch (err) { stream.abort(err as Error); }
    });
  }

  /** Asks a connected peer; rejects when it cannot be reached or does not answer in time. */
  async request(peer: PeerId, name: string, data: Uint8Array, timeoutMs = 5000): Promise<Uint8Array> {
    const signal = AbortSignal.timeout(timeoutMs);
    const stream = await this.node.dialProtocol(peer, `/weave-ts/${name}/1.0.0`, { signal });
    stream.send(data);
    await stream.close({ signal });
    return readAll(stream);
  }

  async start(): Promise<void> {
    const pubsub = this.node.services.pubsub;
    pubsub.addEventListener('message', (evt) => {
      const m = evt.detail;
      const name = m.topic.split('/')[1];
      const ch = this.channels.get(name);
      if (!ch || m.type !== 'signed') return;
      this.receive(ch, m.data, m.from.toString(), m.from.toString());
    });
    for (const name of this.channels.keys()) pubsub.subscribe(topic(name));
    await this.node.handle(SYNC_PROTOCOL, async (stream, connection) => {
      try {
        const from = connection.remotePeer.toString();
        for (const { ch, state, changed } of this.mergeStates(weave.Sync.decode(await readAll(stream)), from)) {
          if (changed) this.push(ch.name, state, from);
        }
      } catch {
        for (const c of this.counters.values()) c.dropped++;
        stream.abort(new Error('bad sync message'));
      }
    }, { runOnLimitedConnection: false });
    this.node.addEventListener('peer:connect', (evt) => { void this.sync(evt.detail); });
    await this.handle('digest', async (from, data) => {
      const theirs = new Map((weave.Digest.decode(data).channels ?? []).map((d) => [d.channel ?? '', Buffer.from(d.hash ?? [])]));
      const differing = [...this.channels.values()].map((c) => ({ channel: c.name, state: c.state() }))
        .filter((c) => !hash(c.state).equals(theirs.get(c.channel) ?? Buffer.alloc(0)));
      return weave.Sync.encode({ channels: differing }).finish();
    });
    this.antiEntropy = setInterval(() => void this.compareWithOne(), ANTI_ENTROPY_MS);
  }

  stop(): void { clearInterval(this.antiEntropy); }

  /** Compares digests with one random neighbour; both sides end with the union of what differed. */
  private async compareWithOne(): Promise<void> {
    const peers = this.node.getPeers();
    if (peers.length === 0) return;
    const peer = peers[Math.floor(Math.random() * peers.length)];
    try {
      const mine = weave.Digest.encode({ channels: [...this.channels.values()].map((c) => ({ channel: c.name, hash: hash(c.state()) })) }).finish();
      const reply = weave.Sync.decode(await this.request(peer, 'digest', mine));
      // They sent the channels that differ; send back ours after merging: what we had that they lacked.
      const repaired = this.mergeStates(reply, peer.toString()).map(({ ch }) => ({ channel: ch.name, state: ch.state() }));
      if (repaired.length) await this.send(peer, repaired);
    } catch { /* the peer went away: another one next time */ }
  }

  /** Merges the full states in a sync message from a peer; returns each known channel in it, and whether it changed. */
  private mergeStates(sync: weave.ISync, from: string): { ch: Channel; state: Uint8Array; changed: boolean }[] {
    const out: { ch: Channel; state: Uint8Array; changed: boolean }[] = [];
    for (const s of sync.channels ?? []) {
      const ch = this.channels.get(s.channel ?? '');
      if (!ch || !s.state) continue;
      this.counters.get(ch.name)!.syncs++;
      out.push({ ch, state: s.state, changed: this.receive(ch, s.state, undefined, from) });
    }
    return out;
  }

  /**
   * Publishes a delta of one of our channels on gossipsub, and pushes it directly to the neighbours
   * gossipsub does not know as subscribers yet (a connection that just came up).
   */
  publish(channel: string, delta: Uint8Array): void {
    const c = this.counters.get(channel)!;
    c.messagesOut++; c.bytesOut += delta.length;
    const pubsub = this.node.services.pubsub;
    pubsub.publish(topic(channel), delta).catch(() => { /* no peers yet: the sync on connect carries it */ });
    const subscribed = new Set(pubsub.getSubscribers(topic(channel)).map((p) => p.toString()));
    for (const peer of this.node.getPeers()) if (!subscribed.has(peer.toString())) void this.send(peer, [{ channel, state: delta }]);
  }

  /** Sends every channel's full state to a peer that just connected. */
  sync(peer: PeerId): Promise<void> {
    return this.send(peer, [...this.channels.values()].map((c) => ({ channel: c.name, state: c.state() })));
  }

  private push(channel: string, data: Uint8Array, except?: string): void {
    for (const peer of this.node.getPeers()) if (peer.toString() !== except) void this.send(peer, [{ channel, state: data }]);
  }

  private async send(peer: PeerId, channels: weave.IChannelState[]): Promise<void> {
    try {
      const msg = weave.Sync.encode({ channels }).finish();
      for (const ch of channels) { const c = this.counters.get(ch.channel!)!; c.messagesOut++; c.bytesOut += ch.state!.length; }
      const stream = await this.node.dialProtocol(peer, SYNC_PROTOCOL, { signal: AbortSignal.timeout(10_000) });
      stream.send(msg);
      await stream.close();
    } catch { /* the connection went away; the next one syncs */ }
  }

  /** Merges what a peer sent; true when it changed our state. */
  private receive(ch: Channel, data: Uint8Array, from: string | undefined, sender: string): boolean {
    const c = this.counters.get(ch.name)!;
    c.messagesIn++; c.bytesIn += data.length;
    try {
      if (!ch.merge(data, from, sender)) return false;
      this.onChange(ch.name);
      return true;
    } catch {
      c.dropped++; // undecodable: counted, never fatal
      return false;
    }
  }
}

const hash = (state: Uint8Array): Buffer => createHash('sha256').update(state).digest();

/** Reads a stream to its end: one message per stream direction. */
async function readAll(stream: AsyncIterable<Uint8Array | { subarray(): Uint8Array }>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = chunk instanceof Uint8Array ? chunk : chunk.subarray();
    size += b.length;
    if (size > MAX_SYNC_BYTES) throw new Error('message too large');
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}
