import type { weave } from '../proto/gen/weave.js';
import type { Subnet } from '../common/subnet.js';

export interface Entry {
  token: number;
  peer: string;
  version: number;
}
export interface Allocation {
  addr: number;
  ident: string;
  version: number;
  released: boolean;
}

/** (version, peer) orders writes to one ring piece; ties can only come from an rmpeer of a live peer. */
const newerEntry = (a: Entry, b: Entry | undefined) =>
  !b || a.version > b.version || (a.version === b.version && a.peer > b.peer);
const allocKey = (a: Allocation) => `${a.released ? 1 : 0}:${a.ident}`;
const newerAlloc = (a: Allocation, b: Allocation | undefined) =>
  !b || a.version > b.version || (a.version === b.version && allocKey(a) > allocKey(b));

/**
 * The replicated IPAM state: the ring (the range cut into pieces, each owned by one peer) and every
 * allocation. Each piece and each allocation is a versioned register; only the owner of a piece
 * writes it or the allocations inside it, so merging by highest version is exact. Pieces are only
 * ever split (tokens are never removed), so every peer ends with the same cut.
 */
export class IpamState {
  readonly entries = new Map<number, Entry>();
  readonly allocations = new Map<number, Allocation>();
  private sorted: number[] = [];

  constructor(readonly range: Subnet) {}

  get empty(): boolean {
    return this.entries.size === 0;
  }

  /** The owner of an address, per our current view. */
  owner(addr: number): string | undefined {
    const t = this.tokenOf(addr);
    return t === undefined ? undefined : this.entries.get(t)!.peer;
  }

  /** Pieces as [start, end) with owners, in address order. */
  pieces(): { start: number; end: number; entry: Entry }[] {
    return this.sorted.map((t, i) => ({
      start: t,
      end: this.sorted[i + 1] ?? this.range.end,
      entry: this.entries.get(t)!,
    }));
  }

  identAllocations(ident: string): Allocation[] {
    return [...this.allocations.values()].filter((a) => a.ident === ident && !a.released);
  }

  isAllocated(addr: number): boolean {
    const a = this.allocations.get(addr);
    return !!a && !a.released;
  }

  /** Writes a piece (local change); returns it as a delta entry. */
  setEntry(token: number, peer: string): Entry {
    const e = { token, peer, version: (this.entries.get(token)?.version ?? 0) + 1 };
    this.put(e);
    return e;
  }

  /** Writes a piece as given (a takeover's remainder at version 0); returns it. */
  putEntry(e: Entry): Entry {
    this.put(e);
    return e;
  }

  setAllocation(addr: number, ident: string, released: boolean): Allocation {
    const a = { addr, ident, released, version: (this.allocations.get(addr)?.version ?? 0) + 1 };
    this.allocations.set(addr, a);
    return a;
  }

  /** Merges remote entries and allocations; returns what changed here. */
  merge(entries: Entry[], allocations: Allocation[]): { entries: Entry[]; allocations: Allocation[] } {
    const changed = { entries: [] as Entry[], allocations: [] as Allocation[] };
    for (const e of entries) {
      if (e.token < this.range.start || e.token >= this.range.end || !e.peer) continue;
      if (newerEntry(e, this.entries.get(e.token))) {
        this.put(e);
        changed.entries.push(e);
      }
    }
    for (const a of allocations) {
      if (a.addr < this.range.start || a.addr >= this.range.end) continue;
      if (newerAlloc(a, this.allocations.get(a.addr))) {
        this.allocations.set(a.addr, a);
        changed.allocations.push(a);
      }
    }
    return changed;
  }

  /** Encodes a delta, or by default the whole state in canonical order (so equal states hash alike). */
  encode(
    entries: Entry[] = this.sorted.map((t) => this.entries.get(t)!),
    allocations: Allocation[] = [...this.allocations.values()].sort((a, b) => a.addr - b.addr),
  ): weave.IIpamState {
    return { range: this.range.text, entries, allocations };
  }

  static decode(msg: weave.IIpamState): { range: string; entries: Entry[]; allocations: Allocation[] } {
    return {
      range: msg.range ?? '',
      entries: (msg.entries ?? []).map((e) => ({
        token: e.token ?? 0,
        peer: e.peer ?? '',
        version: Number(e.version ?? 0),
      })),
      allocations: (msg.allocations ?? []).map((a) => ({
        addr: a.addr ?? 0,
        ident: a.ident ?? '',
        version: Number(a.version ?? 0),
        released: !!a.released,
      })),
    };
  }

  private put(e: Entry): void {
    const isNew = !this.entries.has(e.token);
    this.entries.set(e.token, e);
    if (isNew) this.sorted = [...this.entries.keys()].sort((a, b) => a - b);
  }

  private tokenOf(addr: number): number | undefined {
    if (addr < this.range.start || addr >= this.range.end) return undefined;
    let lo = 0,
      hi = this.sorted.length - 1,
      found: number | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid] <= addr) {
        found = this.sorted[mid];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }
}
