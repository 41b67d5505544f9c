import type { PeerId } from '@libp2p/interface';
import { weave } from '../proto/gen/weave.js';
import { Channel } from './channel.js';
import type { Node } from './node.js';

export const SYNC_PROTOCOL = '/weave-ts/sync/1.0.0';
const MAX_SYNC_BYTES = 16 << 20;
const topic = (channel: string) => `weave-ts/${channel}/1`;

export interface ChannelCounters { messagesIn: number; bytesIn: number; messagesOut: number; bytesOut: number; dropped: number; syncs: number }

/**
 * Carries channels between routers: deltas on a gossipsub topic per channel (best effort), and
 * every channel's full state both ways when a connection comes up, which repairs what gossip lost.
 */
export class Gossip {
  readonly counters = new Map<string, ChannelCounters>();
  private readonly channels = new Map<string, Channel>();

  constructor(private readonly node: Node, channels: Channel[], private readonly onChange: (channel: string) => void) {
    for (const c of channels) {
      this.channels.set(c.name, c);
      this.counters.set(c.name, { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0, dropped: 0, syncs: 0 });
    }
  }

  async start(): Promise<void> {
    const pubsub = this.node.services.pubsub;
    pubsub.addEventListener('message', (evt) => {
      const m = evt.detail;
      const name = m.topic.split('/')[1];
      const ch = this.channels.get(name);
      if (!ch || m.type !== 'signed') return;
      this.receive(ch, m.data, m.from.toString());
    });
    for (const name of this.channels.keys()) pubsub.subscribe(topic(name));
    await this.node.handle(SYNC_PROTOCOL, async (stream) => {
      try {
        const chunks: Uint8Array[] = [];
        let size = 0;
        for await (const chunk of stream) {
          const b = chunk instanceof Uint8Array ? chunk : chunk.subarray();
          size += b.length;
          if (size > MAX_SYNC_BYTES) throw new Error('sync message too large');
          chunks.push(b);
        }
        const sync = weave.Sync.decode(Buffer.concat(chunks));
        for (const s of sync.channels) {
          const ch = this.channels.get(s.channel ?? '');
          if (ch && s.state) { this.counters.get(ch.name)!.syncs++; this.receive(ch, s.state, undefined); }
        }
      } catch {
        for (const c of this.counters.values()) c.dropped++;
        stream.abort(new Error('bad sync message'));
      }
    }, { runOnLimitedConnection: false });
    this.node.addEventListener('peer:connect', (evt) => { void this.sync(evt.detail); });
  }

  /** Publishes a delta of one channel to every peer. */
  publish(channel: string, delta: Uint8Array): void {
    const c = this.counters.get(channel)!;
    c.messagesOut++; c.bytesOut += delta.length;
    this.node.services.pubsub.publish(topic(channel), delta).catch(() => { /* no peers yet: the sync on connect carries it */ });
  }

  /** Sends every channel's full state to a peer that just connected. */
  async sync(peer: PeerId): Promise<void> {
    try {
      const stream = await this.node.dialProtocol(peer, SYNC_PROTOCOL, { signal: AbortSignal.timeout(10_000) });
      const msg = weave.Sync.encode({ channels: [...this.channels.values()].map((c) => ({ channel: c.name, state: c.state() })) }).finish();
      stream.send(msg);
      await stream.close();
    } catch { /* the connection went away again; the next one syncs */ }
  }

  private receive(ch: Channel, data: Uint8Array, from: string | undefined): void {
    const c = this.counters.get(ch.name)!;
    c.messagesIn++; c.bytesIn += data.length;
    try {
      if (ch.merge(data, from)) this.onChange(ch.name);
    } catch {
      c.dropped++; // undecodable: counted, never fatal
    }
  }
}
