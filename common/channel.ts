/**
 * A replicated fact as the gossip engine carries it: a CRDT whose merge is commutative,
 * associative and idempotent, so deltas over gossipsub and full states exchanged on connect can
 * arrive in any order, any number of times. Subsystems do not implement this by hand: they
 * declare a typed channel (gossip/typed-channel.ts), which encodes and decodes for them.
 */
export interface Channel {
  readonly name: string;
  /**
   * Merges an encoded state or delta. `from` is the peer that published it when it came as a
   * delta (only that peer may author what it says about itself), undefined for a full state.
   * `sender` is the peer the message came from either way. Returns false when nothing changed, and
   * when something did, true or (better) the encoded delta of just what changed, which is what the
   * engine passes on. Throws on an undecodable message.
   */
  merge(data: Uint8Array, from: string | undefined, sender: string): boolean | Uint8Array;
  /** The whole state, encoded. */
  state(): Uint8Array;
  /**
   * What of a delta queued for `peer` it may still lack, when it is sent: undefined when nothing
   * (it sent us all of it already, or newer versions are queued behind it). Without this, every
   * peer received each change from every neighbour.
   */
  prune?(delta: Uint8Array, peer: string): Uint8Array | undefined;
  /**
   * The versions of what this state holds (a record's key and version, not the record), encoded:
   * equal whenever the states are equal, and cheaper to make. Anti-entropy hashes it to compare
   * states, and when they differ trades summaries and sends each end only what is newer (`newer`):
   * a hundred routers started at once sent each other whole topologies, both ways, on every connection. Without it, the
   * hash is of the whole state and the whole state is sent.
   */
  summary?(): Uint8Array;
  /** What of this state is newer than, or missing from, a peer's summary; undefined when nothing. */
  newer?(summary: Uint8Array): Uint8Array | undefined;
  /** Entries refused as hostile or impossible (a peer claiming to be us, versions from the future). */
  readonly rejected: number;
  /**
   * Deltas go only neighbour to neighbour (each change pushed on over every connection), never on
   * gossipsub: for a channel whose every change is pushed to everyone anyway, gossipsub was a second
   * flood of the same deltas, signed and checked at every peer.
   */
  readonly direct?: boolean;
  /** Given by the gossip engine when the channel is added: sends one of our deltas to every peer. */
  attach(publish: (delta: Uint8Array) => void): void;
}

/** Answers one kind of request from peers, encoded; typed with gossip/typed-channel.ts's `handler`. */
export interface RequestHandler {
  readonly name: string;
  handle(from: string, data: Uint8Array): Promise<Uint8Array>;
}

/** Versions are hybrid clocks in ms: a version this far ahead of our clock is impossible. */
export const MAX_CLOCK_SKEW_MS = 24 * 3600 * 1000;

/** The next version for an entry we author: ahead of both our clock and anything seen before. */
export const nextVersion = (prev: number, now: number): number => Math.max(now, prev + 1);

/**
 * Whether to take a record that only its own peer writes (a host's record about itself), versioned:
 * 'take' it, 'skip' it (older than ours, or ours: our own record is ours alone, and an old copy
 * coming back after a restart is stale), or 'reject' it (a delta from another peer speaking for
 * it, a version from the future, a table full).
 */
export function selfAuthored<T extends { peer: string; version: number }>(
  records: ReadonlyMap<string, T>,
  r: T,
  o: {
    from: string | undefined;
    self: string;
    now: number;
    max: number;
  },
): 'take' | 'skip' | 'reject' {
  if (!r.peer || (o.from !== undefined && r.peer !== o.from) || r.version > o.now + MAX_CLOCK_SKEW_MS) return 'reject';
  if (r.peer === o.self) return 'skip';
  const cur = records.get(r.peer);
  if (cur && cur.version >= r.version) return 'skip';
  return !cur && records.size >= o.max ? 'reject' : 'take';
}

/** Merges records that only their own peers write (each judged by selfAuthored): those it took, as given. */
export function takeSelfAuthored<W, T extends { peer: string; version: number }>(
  records: Map<string, T>,
  given: readonly W[] | null | undefined,
  read: (w: W) => T,
  o: Parameters<typeof selfAuthored>[2],
): { taken: W[]; rejected: number } {
  const taken: W[] = [];
  let rejected = 0;
  for (const w of given ?? []) {
    const r = read(w);
    const verdict = selfAuthored(records, r, o);
    if (verdict === 'reject') rejected++;
    if (verdict !== 'take') continue;
    records.set(r.peer, r);
    taken.push(w);
  }
  return { taken, rejected };
}

/**
 * Whether a record of a last-writer-wins register that any peer may write (a stack, a policy)
 * replaces the one held: a higher version, or the same version from a higher author.
 */
export const newerRegister = (
  a: { version: number; author: string },
  b: { version: number; author: string } | undefined,
): boolean => !b || a.version > b.version || (a.version === b.version && a.author > b.author);
