import type { Channel, RequestHandler } from '../common/channel.js';

/** A protobufjs static message type, as far as the gossip engine needs one. */
export interface Codec<M> {
  encode(m: M): { finish(): Uint8Array };
  decode(data: Uint8Array): M;
}

/** A channel's name paired with its message type: declared once, used by both ends. `direct`: see Channel.direct. */
export interface ChannelSpec<M> {
  readonly name: string;
  readonly codec: Codec<M>;
  readonly direct?: boolean;
}
export const channelSpec = <M>(name: string, codec: Codec<M>, o: { direct?: boolean } = {}): ChannelSpec<M> => ({
  name,
  codec,
  ...o,
});

/** A request kind: its name, the request's message type and the reply's. */
export interface RequestSpec<Q, R> {
  readonly name: string;
  readonly request: Codec<Q>;
  readonly reply: Codec<R>;
}
export const requestSpec = <Q, R>(name: string, request: Codec<Q>, reply: Codec<R>): RequestSpec<Q, R> => ({
  name,
  request,
  reply,
});

/** The replicated state behind a channel, in decoded messages. */
export interface Crdt<M> {
  /**
   * Merges a state or delta (see Channel.merge): false when nothing changed; true, or better just
   * what changed (a delta of it), when something did: that is what is passed on to other peers.
   */
  merge(m: M, from: string | undefined, sender: string): boolean | M;
  state(): M;
  /** See Channel.summary: canonical (equal whenever the states are), in the channel's own message. */
  summary?(): M;
  /** See Channel.newer. */
  newer?(summary: M): M | undefined;
  /** See Channel.prune. */
  prune?(delta: M, peer: string): M | undefined;
  readonly rejected: number;
}

/**
 * A typed gossip channel: the CRDT sees messages, never bytes, and tells its listeners what
 * changed with a typed event `E` (built with the `emit` it is given).
 */
export class GossipChannel<M, E = void> implements Channel {
  readonly crdt: Crdt<M>;
  private readonly listeners: ((e: E) => void)[] = [];
  private out?: (delta: Uint8Array) => void;

  constructor(
    readonly spec: ChannelSpec<M>,
    build: (emit: (e: E) => void) => Crdt<M>,
  ) {
    this.crdt = build((e) => {
      for (const l of this.listeners) l(e);
    });
    const crdt = this.crdt,
      codec = spec.codec;
    if (crdt.summary) this.summary = () => codec.encode(crdt.summary!()).finish();
    if (crdt.newer)
      this.newer = (summary) => {
        const m = crdt.newer!(codec.decode(summary));
        return m && codec.encode(m).finish();
      };
  }

  readonly summary?: () => Uint8Array;
  readonly newer?: (summary: Uint8Array) => Uint8Array | undefined;

  get name(): string {
    return this.spec.name;
  }
  get direct(): boolean {
    return !!this.spec.direct;
  }
  get rejected(): number {
    return this.crdt.rejected;
  }
  merge(data: Uint8Array, from: string | undefined, sender: string): boolean | Uint8Array {
    const r = this.crdt.merge(this.spec.codec.decode(data), from, sender);
    return typeof r === 'boolean' ? r : this.spec.codec.encode(r).finish();
  }
  state(): Uint8Array {
    return this.spec.codec.encode(this.crdt.state()).finish();
  }
  prune(delta: Uint8Array, peer: string): Uint8Array | undefined {
    if (!this.crdt.prune) return delta;
    const m = this.crdt.prune(this.spec.codec.decode(delta), peer);
    return m && this.spec.codec.encode(m).finish();
  }
  attach(publish: (delta: Uint8Array) => void): void {
    this.out = publish;
  }

  /** Sends one of our own changes to every peer (before registration, the full state sent on add carries it). */
  publish(delta: M): void {
    this.out?.(this.spec.codec.encode(delta).finish());
  }

  on(listener: (e: E) => void): void {
    this.listeners.push(listener);
  }
}

/** Answers requests of one kind with typed messages. */
export const handler = <Q, R>(spec: RequestSpec<Q, R>, fn: (from: string, req: Q) => Promise<R>): RequestHandler => ({
  name: spec.name,
  handle: async (from, data) => spec.reply.encode(await fn(from, spec.request.decode(data))).finish(),
});
