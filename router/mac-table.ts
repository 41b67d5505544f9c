import { type Mac, formatMac } from '../common/mac.js';

export const LOCAL = ''; // the peer name used for MACs that live on this host's bridge

interface Entry {
  peer: string;
  seen: number;
}

export interface MacEntryView {
  mac: string;
  peer: string;
  local: boolean;
  ageSeconds: number;
}

/** How many MACs a table holds: a container sending from random source MACs must not grow it without bound. */
export const MAC_LIMIT = 8192;

/**
 * Where each MAC lives, learned from traffic; entries not refreshed within maxAgeMs expire. When
 * full, the entry learnt first goes (an active one is learnt again by its next frame), counted.
 */
export class MacTable {
  private readonly entries = new Map<Mac, Entry>();
  evicted = 0;
  constructor(
    private readonly maxAgeMs = 300_000,
    private readonly now: () => number = Date.now,
    private readonly limit = MAC_LIMIT,
    private readonly onFirstEviction: () => void = () => {},
  ) {}

  /** Records that mac was seen at peer. Returns true when the MAC is new or moved. */
  learn(mac: Mac, peer: string): boolean {
    const e = this.entries.get(mac);
    const t = this.now();
    if (e && e.peer === peer) {
      e.seen = t;
      return false;
    }
    if (!e && this.entries.size >= this.limit) {
      this.entries.delete(this.entries.keys().next().value!);
      if (this.evicted++ === 0) this.onFirstEviction();
    }
    this.entries.set(mac, { peer, seen: t });
    return true;
  }

  /** The peer a MAC lives at, or undefined when unknown or expired. */
  lookup(mac: Mac): string | undefined {
    const e = this.entries.get(mac);
    if (!e) return undefined;
    if (this.now() - e.seen > this.maxAgeMs) {
      this.entries.delete(mac);
      return undefined;
    }
    return e.peer;
  }

  forget(mac: Mac): void {
    this.entries.delete(mac);
  }

  /** Forgets every MAC at a peer (it disconnected). */
  forgetPeer(peer: string): void {
    for (const [mac, e] of this.entries) if (e.peer === peer) this.entries.delete(mac);
  }

  expire(): void {
    const t = this.now();
    for (const [mac, e] of this.entries) if (t - e.seen > this.maxAgeMs) this.entries.delete(mac);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every MAC the table holds (some may have expired: lookup says). */
  macs(): IterableIterator<Mac> {
    return this.entries.keys();
  }

  view(): MacEntryView[] {
    const t = this.now();
    return [...this.entries]
      .map(([mac, e]) => ({
        mac: formatMac(mac),
        peer: e.peer,
        local: e.peer === LOCAL,
        ageSeconds: Math.round((t - e.seen) / 1000),
      }))
      .sort((a, b) => a.mac.localeCompare(b.mac));
  }
}
