import { createHash } from 'node:crypto';
import { weave } from '../proto/gen/weave.js';
import type { Channel } from '../common/channel.js';
import type { GossipChannelCounters } from '../contract/report.js';
import type { GossipNet } from './net.js';
import { requestProtocol } from './requests.js';

export const SYNC_PROTOCOL = '/weave-ts/sync/1.0.0';
export const topic = (channel: string) => `weave-ts/${channel}/1`;
const DIGEST = 'digest';
/**
 * How often a router compares digests with a random neighbour while things change: a lost delta is
 * back within about this long. Each round that finds nothing doubles the wait, up to
 * ANTI_ENTROPY_BACKOFF times this; any change here brings it back at once (a router whose delta
 * was lost has just changed, so it is the one that compares often, as are all who got the delta).
 */
const ANTI_ENTROPY_MS = 500;
const ANTI_ENTROPY_BACKOFF = 8;
/** How long a channel must have been still before anti-entropy compares it. */
const QUIET_MS = 250;
/** The longest a channel's hash is reused: bounds how stale it is after a change made outside gossip. */
const DIGEST_TTL_MS = 2000;

/** What a channel counts: the report's shape. */
export type ChannelCounters = GossipChannelCounters;
export interface GossipOptions {
  antiEntropyMs?: number;
  quietMs?: number;
}

/**
 * Carries channels between routers: deltas on a gossipsub topic per channel, and direct pushes
 * over a stream protocol. Each of our own deltas goes to every neighbour; whatever a pushed message
 * changes here is pushed on to our other neighbours (a duplicate changes nothing and stops there),
 * so facts cross peers that gossipsub has not meshed yet: gossipsub is fast but best effort, the
 * pushes are what make it sure. When a connection comes up, and every half second with one random
 * neighbour, the two compare a hash of every channel and exchange only the channels that differ:
 * a reconnect costs two digests, and whatever was lost on the way is repaired (and passed on).
 * Channels may be added before or after start.
 */
export class Gossip {
  readonly counters = new Map<string, ChannelCounters>();
  /** Digest exchanges we started, and the digest traffic both ways (what differed is in the channels' counters). */
  readonly repairs = { rounds: 0, bytesIn: 0, bytesOut: 0 };
  private readonly channels = new Map<string, Channel>();
  private readonly outboxes = new Map<string, Outbox>();
  private readonly digests = new Map<string, { hash: Buffer; at: number }>();
  private readonly changedAt = new Map<string, number>();
  private antiEntropy?: NodeJS.Timeout;
  /** When the pending round is due, and the wait after the next round that finds nothing. */
  private antiEntropyDue = 0;
  private antiEntropyWait: number;
  private started = false;
  private stopped = false;

  constructor(
    private readonly net: GossipNet,
    private readonly onChange: (channel: string) => void,
    private readonly o: GossipOptions = {},
  ) {
    this.antiEntropyWait = this.antiEntropyMs;
  }

  private get antiEntropyMs(): number {
    return this.o.antiEntropyMs ?? ANTI_ENTROPY_MS;
  }

  addChannel(c: Channel): void {
    if (this.channels.has(c.name)) throw new Error(`gossip channel ${c.name} is registered twice`);
    this.channels.set(c.name, c);
    this.counters.set(c.name, { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0, dropped: 0, syncs: 0 });
    c.attach((delta) => this.publish(c.name, delta));
    if (this.started) {
      if (!c.direct) this.net.subscribe(topic(c.name));
      for (const peer of this.net.peers()) this.enqueue(peer, { full: [c.name] });
    }
  }

  async start(): Promise<void> {
    this.started = true;
    this.net.onBroadcast((t, data, from) => {
      const ch = this.channels.get(t.split('/')[1]);
      if (ch && t === topic(ch.name)) this.receive(ch, data, from, from);
    });
    for (const c of this.channels.values()) if (!c.direct) this.net.subscribe(topic(c.name));
    await this.net.serve(SYNC_PROTOCOL, async (from, data) => {
      let sync: weave.Sync;
      try {
        sync = weave.Sync.decode(data);
      } catch (err) {
        for (const c of this.counters.values()) c.dropped++;
        throw err;
      }
      for (const c of sync.channels ?? []) {
        const ch = this.channels.get(c.channel ?? '');
        if (ch && c.state) this.mergeState(ch, c.state, from);
      }
      return undefined;
    });
    // A new connection: the lower-named end compares every channel (both doing it sent everything twice).
    this.net.onConnect((peer) => {
      if (this.net.self < peer) void this.connected(peer);
    });
    await this.net.serve(requestProtocol(DIGEST), async (_from, data) => {
      const digest = weave.Digest.decode(data);
      const theirs = new Map((digest.channels ?? []).map((d) => [d.channel ?? '', d]));
      const differing = [...this.channels.values()]
        .filter(
          (c) =>
            (digest.all || (theirs.has(c.name) && this.quiet(c))) &&
            !this.digest(c).equals(theirs.get(c.name)?.hash ?? EMPTY),
        )
        .map((c) => this.answer(c, digest.summaries ? (theirs.get(c.name)?.summary ?? EMPTY) : undefined));
      const reply = weave.Sync.encode({ channels: differing }).finish();
      this.repairs.bytesIn += data.length;
      this.repairs.bytesOut += reply.length;
      return reply;
    });
    this.scheduleRound(this.antiEntropyMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.antiEntropy);
  }

  /** Sets the next anti-entropy round `delay` from now, unless one is due sooner. */
  private scheduleRound(delay: number): void {
    if (this.stopped || !this.started) return;
    const due = Date.now() + delay;
    if (this.antiEntropy && this.antiEntropyDue <= due) return;
    clearTimeout(this.antiEntropy);
    this.antiEntropyDue = due;
    this.antiEntropy = setTimeout(() => {
      this.antiEntropy = undefined;
      void this.round();
    }, delay);
  }

  /**
   * One anti-entropy round; still (nothing differed, and no channel was left out for changing), the
   * next one waits twice as long, up to the cap. A round that came right after a change compared
   * without the changed channel: counting it as still put the repair of a lost delta a second off.
   */
  private async round(): Promise<void> {
    const changing = [...this.channels.values()].some((c) => !this.quiet(c));
    const differed = await this.repair();
    if (differed !== undefined)
      this.antiEntropyWait =
        differed || changing
          ? this.antiEntropyMs
          : Math.min(this.antiEntropyWait * 2, this.antiEntropyMs * ANTI_ENTROPY_BACKOFF);
    this.scheduleRound(this.antiEntropyWait);
  }

  /**
   * Compares digests with one random neighbour; both sides end with the union of what differed.
   * With `all` (a connection that just came up), every channel is compared, changing or not.
   * A channel with summaries (versions) is compared by hash first, then by summaries: each end
   * gets only what it lacks. Whether any channel differed; undefined when no comparison was made
   * (no peer, or it failed).
   */
  async repair(peer = pick(this.net.peers()), all = false): Promise<boolean | undefined> {
    if (!peer) return undefined;
    this.repairs.rounds++;
    try {
      let channels = [...this.channels.values()].filter((c) => all || this.quiet(c));
      let summaries = all; // a connection just up differs for certain: summaries go with the first ask
      let differed = false;
      while (channels.length) {
        const reply = await this.ask(peer, channels, all, summaries);
        const back: weave.IChannelState[] = [];
        const again: Channel[] = [];
        for (const s of reply.channels ?? []) {
          const ch = this.channels.get(s.channel ?? '');
          if (!ch) continue;
          differed = true;
          if (s.state?.length) this.mergeState(ch, s.state, peer);
          // They sent what differs; what we have that they lack goes back.
          if (!ch.newer || !s.summary?.length) back.push({ channel: ch.name, state: ch.state() });
          else if (!summaries)
            again.push(ch); // they answered with their summary: now ours
          else {
            const newer = ch.newer(s.summary);
            if (newer) back.push({ channel: ch.name, state: newer });
          }
        }
        if (back.length) await this.send(peer, back);
        channels = again;
        summaries = true;
      }
      return differed;
    } catch {
      return undefined; /* the peer went away: another one next time */
    }
  }

  /**
   * Compares every channel with a peer just connected; once more after a while if that failed (it may not serve the
   * protocol yet).
   */
  private async connected(peer: string): Promise<void> {
    if ((await this.repair(peer, true)) !== undefined || this.stopped) return;
    await new Promise((r) => setTimeout(r, this.antiEntropyMs));
    if (!this.stopped && this.net.peers().includes(peer)) await this.repair(peer, true);
  }

  private async ask(peer: string, channels: Channel[], all: boolean, summaries: boolean): Promise<weave.Sync> {
    const mine = weave.Digest.encode({
      all,
      summaries,
      channels: channels.map((c) => ({
        channel: c.name,
        hash: this.digest(c),
        summary: summaries ? c.summary?.() : undefined,
      })),
    }).finish();
    const data = await this.net.call(peer, requestProtocol(DIGEST), mine, { timeoutMs: 5000 });
    this.repairs.bytesOut += mine.length;
    this.repairs.bytesIn += data.length;
    return weave.Sync.decode(data);
  }

  /**
   * A channel that differs from a peer's: only what is newer than its summary, with ours, when the channel has them;
   * else the whole state.
   */
  private answer(c: Channel, theirs: Uint8Array | undefined): weave.IChannelState {
    if (!c.summary || !c.newer) return { channel: c.name, state: c.state() };
    return { channel: c.name, state: theirs && c.newer(theirs), summary: c.summary() };
  }

  /**
   * A channel's hash, kept until the channel changes: encoding and hashing a large state (IPAM's,
   * with thousands of allocations) twice a second, on both ends of every round, stalled the router
   * for milliseconds. Changes through gossip drop it at once; the few made outside it (forgetting
   * old peers and tombstones) within DIGEST_TTL_MS.
   */
  private digest(c: Channel): Buffer {
    const d = this.digests.get(c.name);
    if (d && Date.now() - d.at < DIGEST_TTL_MS) return d.hash;
    const fresh = { hash: hash(c.summary ? c.summary() : c.state()), at: Date.now() };
    this.digests.set(c.name, fresh);
    return fresh.hash;
  }

  private changed(channel: string): void {
    this.digests.delete(channel);
    this.changedAt.set(channel, Date.now());
    if (this.antiEntropyWait !== this.antiEntropyMs) {
      this.antiEntropyWait = this.antiEntropyMs;
      this.scheduleRound(this.antiEntropyMs);
    }
  }

  /**
   * Whether a channel has been still long enough to compare: while it changes, its deltas are on
   * their way to everyone and the hashes differ for that alone; exchanging whole states then (all of
   * IPAM's allocations, during a burst of them) repairs nothing and stalls both routers.
   */
  private quiet(c: Channel): boolean {
    return Date.now() - (this.changedAt.get(c.name) ?? 0) >= (this.o.quietMs ?? QUIET_MS);
  }

  /**
   * Merges a state (or a part of one) that a peer sent; what changed here is passed on to our other
   * neighbours: only that, never a whole state that came on connect.
   */
  private mergeState(ch: Channel, state: Uint8Array, from: string): void {
    this.counters.get(ch.name)!.syncs++;
    const changed = this.receive(ch, state, undefined, from);
    if (changed) this.push(ch.name, changed, from);
  }

  /**
   * Publishes a delta of one of our channels on gossipsub, and pushes it directly to the neighbours
   * gossipsub does not know as subscribers yet (a connection that just came up); a direct channel's
   * goes to every neighbour by push alone.
   */
  private publish(channel: string, delta: Uint8Array): void {
    const c = this.counters.get(channel)!;
    c.messagesOut++;
    c.bytesOut += delta.length;
    this.changed(channel);
    const direct = !!this.channels.get(channel)!.direct;
    if (!direct) this.net.broadcast(topic(channel), delta);
    const subscribed = new Set(direct ? [] : this.net.subscribers(topic(channel)));
    for (const peer of this.net.peers())
      if (!subscribed.has(peer)) this.enqueue(peer, { deltas: [{ channel, state: delta }] });
  }

  private push(channel: string, data: Uint8Array, except?: string): void {
    for (const peer of this.net.peers())
      if (peer !== except) this.enqueue(peer, { deltas: [{ channel, state: data }] });
  }

  /**
   * Queues deltas, or whole channels, for a peer. One push is in flight to a peer at a time, and
   * whatever is queued meanwhile goes in the next one, as one message: when a hundred routers start
   * at once and every connection changes the topology, pushes coalesce instead of each opening a
   * stream. A whole channel queued replaces the deltas of it (its state is taken when sent), and
   * past MAX_QUEUED_DELTAS the queued deltas become their whole channels: a slow peer's queue stays bounded.
   */
  private enqueue(peer: string, add: { deltas?: weave.IChannelState[]; full?: string[] }): void {
    let box = this.outboxes.get(peer);
    if (!box) {
      box = { full: new Set(), deltas: [], busy: false };
      this.outboxes.set(peer, box);
    }
    for (const name of add.full ?? []) box.full.add(name);
    for (const d of add.deltas ?? []) if (!box.full.has(d.channel!)) box.deltas.push(d);
    if (box.deltas.length > MAX_QUEUED_DELTAS) {
      for (const d of box.deltas) box.full.add(d.channel!);
      box.deltas = [];
    }
    if (!box.busy) {
      box.busy = true;
      setImmediate(() => void this.flush(peer, box));
    }
  }

  private async flush(peer: string, box: Outbox): Promise<void> {
    while (box.full.size || box.deltas.length) {
      const full = [...box.full].filter((name) => this.channels.has(name));
      const deltas = box.deltas
        .filter((d) => !box.full.has(d.channel!))
        .map((d) => {
          const ch = this.channels.get(d.channel!);
          return ch?.prune ? { channel: d.channel, state: ch.prune(d.state!, peer) } : d;
        })
        .filter((d) => d.state);
      const channels = [...full.map((name) => ({ channel: name, state: this.channels.get(name)!.state() })), ...deltas];
      box.full.clear();
      box.deltas = [];
      if (channels.length) await this.send(peer, channels);
    }
    box.busy = false;
    this.outboxes.delete(peer);
  }

  private async send(peer: string, channels: weave.IChannelState[]): Promise<void> {
    try {
      const msg = weave.Sync.encode({ channels }).finish();
      for (const ch of channels) {
        const c = this.counters.get(ch.channel!)!;
        c.messagesOut++;
        c.bytesOut += ch.state!.length;
      }
      await this.net.call(peer, SYNC_PROTOCOL, msg, { timeoutMs: 10_000, oneWay: true });
    } catch {
      /* the connection went away; the next one syncs */
    }
  }

  /**
   * Merges what a peer sent; returns what changed our state (the channel's delta of it, or all that came), if anything.
   */
  private receive(ch: Channel, data: Uint8Array, from: string | undefined, sender: string): Uint8Array | undefined {
    const c = this.counters.get(ch.name)!;
    c.messagesIn++;
    c.bytesIn += data.length;
    try {
      const r = ch.merge(data, from, sender);
      if (!r) return undefined;
      this.changed(ch.name);
      this.onChange(ch.name);
      return r === true ? data : r;
    } catch {
      c.dropped++; // undecodable: counted, never fatal
      return undefined;
    }
  }
}

interface Outbox {
  full: Set<string>;
  deltas: weave.IChannelState[];
  busy: boolean;
}
/** Deltas queued for one peer beyond which its channels are sent whole instead. */
const MAX_QUEUED_DELTAS = 256;

const EMPTY = new Uint8Array();
const hash = (state: Uint8Array): Buffer => createHash('sha256').update(state).digest();
const pick = <T>(xs: T[]): T | undefined => xs[Math.floor(Math.random() * xs.length)];
