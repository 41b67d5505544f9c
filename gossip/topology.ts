import type { weave } from '../proto/gen/weave.js';
import { MAX_CLOCK_SKEW_MS, nextVersion } from '../common/channel.js';
import { channelSpec, type Crdt } from './typed-channel.js';
import { sameRecord, topologyWire } from './topology-wire.js';

/**
 * Direct: every change of a record is pushed over every connection (that is how a joiner's record
 * crosses peers gossipsub has not meshed yet), so gossipsub only doubled the work: with it, a
 * hundred routers started at once converged in 17 s; without it, in 12 s.
 */
export const TOPOLOGY = channelSpec('topology', topologyWire, { direct: true });

export interface Link {
  peer: string;
  addr: string;
  outbound: boolean;
}
export interface PeerRecord {
  name: string;
  version: number;
  nickname: string;
  udpPort: number;
  sleevePort: number;
  mtu: number;
  datapath: string;
  addrs: string[];
  links: Link[];
}

const toRecord = (p: weave.ITopologyPeer): PeerRecord => ({
  name: p.name ?? '',
  version: Number(p.version ?? 0),
  nickname: p.nickname ?? '',
  udpPort: p.udpPort ?? 0,
  sleevePort: p.sleevePort ?? 0,
  mtu: p.mtu ?? 0,
  datapath: p.datapath ?? '',
  addrs: p.addrs ?? [],
  links: (p.links ?? []).map((l) => ({ peer: l.peer ?? '', addr: l.addr ?? '', outbound: !!l.outbound })),
});

/** How long a peer may stay unreachable before it is forgotten: records arrive one by one, so a peer
 * whose link to us is announced by a record still on its way must not be dropped at once. */
export const FORGET_AFTER_MS = 30_000;

/** The most peers a topology holds: far above any real cluster, and a bound on what gossip can make us keep. */
export const MAX_PEERS = 10_000;

/**
 * Every peer's own view of its connections, versioned per peer (last version wins). Peers that
 * can no longer be reached from us over connections both ends report are forgotten after a while.
 */
export class TopologyChannel implements Crdt<weave.ITopology> {
  readonly peers = new Map<string, PeerRecord>();
  private readonly unreachableSince = new Map<string, number>();
  /** Versions of peers we forgot: an old copy coming back from a slower peer is not taken again. */
  private readonly forgotten = new Map<string, number>();
  /** Per neighbour, the newest version of each record it sent us: it has that one, so it is not sent back. */
  private readonly sentUs = new Map<string, Map<string, number>>();
  private readonly versions = new WeakMap<PeerRecord, weave.ITopologyPeer>();
  /** Each peer's neighbours over links both ends report, kept as records change (routes, reachability
   * and gc ask for them peer by peer, many times per change), and sorted when asked. */
  private readonly mutual = new Map<string, Set<string>>();
  private readonly sorted = new Map<string, string[]>();
  rejected = 0;

  constructor(
    readonly self: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Replaces our own record; returns the delta to publish. */
  setSelf(r: Omit<PeerRecord, 'name' | 'version'>): weave.ITopology {
    const prev = this.peers.get(this.self)?.version ?? 0;
    const rec: PeerRecord = { ...r, name: this.self, version: nextVersion(prev, this.now()) };
    this.put(this.self, rec);
    this.gc();
    return { peers: [rec] };
  }

  /**
   * Takes the records newer than ours; returns them (what to pass on: not the whole message, which
   * may be a full state), or false when nothing changed. Forgetting peers is gc's, on a timer: not
   * a walk of the whole graph for every record that arrives.
   */
  merge(msg: weave.ITopology, from: string | undefined, sender?: string): weave.ITopology | false {
    const changed: PeerRecord[] = [];
    let seen = sender === undefined ? undefined : this.sentUs.get(sender);
    if (sender !== undefined && !seen) this.sentUs.set(sender, (seen = new Map()));
    for (const p of msg.peers ?? []) {
      const name = p.name ?? '',
        version = Number(p.version ?? 0);
      if (seen && name && version > (seen.get(name) ?? 0) && seen.size < MAX_PEERS) seen.set(name, version);
      if (!name || (from !== undefined && name !== from)) {
        this.rejected++;
        continue;
      } // only a peer speaks for itself
      if (name === this.self || version > this.now() + MAX_CLOCK_SKEW_MS) {
        this.rejected++;
        continue;
      }
      const cur = this.peers.get(name);
      // most copies stop here, undecoded further
      if ((cur && cur.version >= version) || version <= (this.forgotten.get(name) ?? 0)) continue;
      if (!cur && this.peers.size >= MAX_PEERS) {
        this.rejected++;
        continue;
      } // a full state inventing peers is bounded
      if ((p.links?.length ?? 0) > MAX_PEERS || (p.addrs?.length ?? 0) > 64) {
        this.rejected++;
        continue;
      }
      const rec = toRecord(p);
      sameRecord(rec, p);
      this.put(name, rec);
      changed.push(rec);
    }
    return changed.length ? { peers: changed } : false;
  }

  /** The records of a queued delta that `peer` has not sent us, and that are still our newest. */
  prune(delta: weave.ITopology, peer: string): weave.ITopology | undefined {
    const seen = this.sentUs.get(peer);
    const peers = (delta.peers ?? []).filter((p) => {
      const v = Number(p.version ?? 0);
      return v > (seen?.get(p.name ?? '') ?? 0) && v >= (this.peers.get(p.name ?? '')?.version ?? 0);
    });
    return peers.length ? { peers } : undefined;
  }

  /** Canonical (sorted), so that equal states hash alike in anti-entropy. */
  state(): weave.ITopology {
    return { peers: [...this.peers.values()].sort((a, b) => (a.name < b.name ? -1 : 1)) };
  }

  /**
   * Each peer's name and version, sorted: a record changes only with a new version, so equal summaries are equal
   * states.
   */
  summary(): weave.ITopology {
    return { peers: [...this.peers.keys()].sort().map((name) => this.versionOf(this.peers.get(name)!)) };
  }

  /** A record's entry in summaries, made once (so encoded once). */
  private versionOf(rec: PeerRecord): weave.ITopologyPeer {
    let v = this.versions.get(rec);
    if (!v) this.versions.set(rec, (v = { name: rec.name, version: rec.version }));
    return v;
  }

  /** Our records newer than a peer's summary says it has. */
  newer(summary: weave.ITopology): weave.ITopology | undefined {
    const theirs = new Map((summary.peers ?? []).map((p) => [p.name ?? '', Number(p.version ?? 0)]));
    const peers = [...this.peers.values()].filter((p) => p.version > (theirs.get(p.name) ?? 0));
    return peers.length ? { peers } : undefined;
  }

  /** Neighbours over connections that both ends report, sorted so every peer computes alike. */
  neighbours(name: string): string[] {
    let out = this.sorted.get(name);
    if (!out) this.sorted.set(name, (out = [...(this.mutual.get(name) ?? [])].sort()));
    return out;
  }

  /** Stores a peer's record (or drops it), and follows the links it adds or removes. */
  private put(name: string, rec?: PeerRecord): void {
    const before = this.peers.get(name)?.links ?? [];
    if (rec) this.peers.set(name, rec);
    else this.peers.delete(name);
    for (const l of before) this.relink(name, l.peer);
    for (const l of rec?.links ?? []) this.relink(name, l.peer);
  }

  private relink(a: string, b: string): void {
    const both = this.links(a, b) && this.links(b, a);
    this.mark(a, b, both);
    this.mark(b, a, both);
  }

  private mark(a: string, b: string, on: boolean): void {
    const set = this.mutual.get(a);
    if (on === !!set?.has(b)) return;
    if (!on) set!.delete(b);
    else if (set) set.add(b);
    else this.mutual.set(a, new Set([b]));
    this.sorted.delete(a);
  }

  private links(a: string, b: string): boolean {
    return this.peers.get(a)?.links.some((l) => l.peer === b) ?? false;
  }

  /** Peers reachable from us over connections both ends report. */
  reachable(): Set<string> {
    const seen = new Set([this.self]);
    const queue = [this.self];
    while (queue.length)
      for (const n of this.neighbours(queue.shift()!))
        if (!seen.has(n)) {
          seen.add(n);
          queue.push(n);
        }
    return seen;
  }

  /** Forgets peers unreachable for longer than FORGET_AFTER_MS; returns true when any was. */
  gc(): boolean {
    const seen = this.reachable();
    const now = this.now();
    let forgot = false;
    for (const name of this.peers.keys()) {
      if (seen.has(name)) {
        this.unreachableSince.delete(name);
        continue;
      }
      const since = this.unreachableSince.get(name) ?? now;
      this.unreachableSince.set(name, since);
      if (now - since >= FORGET_AFTER_MS) {
        this.forgotten.set(name, this.peers.get(name)!.version);
        this.sentUs.delete(name);
        this.put(name);
        this.unreachableSince.delete(name);
        forgot = true;
      }
    }
    return forgot;
  }
}
