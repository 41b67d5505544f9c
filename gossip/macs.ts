import { weave } from '../proto/gen/weave.js';
import { MAX_CLOCK_SKEW_MS, nextVersion } from '../common/channel.js';
import { channelSpec, type Crdt } from './typed-channel.js';

export const MACS = channelSpec('macs', weave.Macs);

/** A gossiped MAC location changed: its owner now, undefined when withdrawn. */
export interface MacChange {
  mac: number;
  owner: string | undefined;
}

export interface MacRecord {
  peer: string;
  ts: number;
  deleted: boolean;
}

/** (ts, peer) orders writes to one MAC; the greater wins everywhere. */
const newer = (a: MacRecord, b: MacRecord | undefined) => !b || a.ts > b.ts || (a.ts === b.ts && a.peer > b.peer);

/**
 * Where each announced MAC lives: a last-writer-wins register per MAC. A router announces the MACs
 * of the containers it attaches and withdraws them on detach; a MAC that moves is announced by its
 * new router with a timestamp above the old entry's, so the move wins whatever the clocks say.
 */
/** How many MAC records a peer may have, and all peers together: gossip must not grow without bound. */
export const MACS_PER_PEER = 8192;
export const MACS_TOTAL = 65536;
/**
 * How long a withdrawal is remembered. Far longer than any gossip takes to spread; after it a
 * host that churns containers does not carry every MAC it ever had (nor hit the per-peer limit).
 */
export const TOMBSTONE_TTL_MS = 10 * 60_000;

export class MacsChannel implements Crdt<weave.IMacs> {
  readonly entries = new Map<number, MacRecord>();
  private readonly perPeer = new Map<string, number>();
  rejected = 0;

  constructor(
    readonly self: string,
    private readonly now: () => number = Date.now,
    private readonly onChange: (c: MacChange) => void = () => {},
  ) {}

  announce(mac: number): weave.IMacs {
    return this.write(mac, false);
  }

  /** Withdraws a MAC we announced; undefined when it is not ours (it moved on already). */
  withdraw(mac: number): weave.IMacs | undefined {
    return this.entries.get(mac)?.peer === this.self ? this.write(mac, true) : undefined;
  }

  owner(mac: number): string | undefined {
    const e = this.entries.get(mac);
    return e && !e.deleted ? e.peer : undefined;
  }

  /** Takes the entries newer than ours; returns them (what to pass on), or false when nothing changed. */
  merge(m: weave.IMacs, from: string | undefined): weave.IMacs | false {
    const changed: weave.IMacEntry[] = [];
    for (const e of m.entries ?? []) {
      const rec: MacRecord = { peer: e.peer ?? '', ts: Number(e.ts ?? 0), deleted: !!e.deleted };
      const mac = Number(e.mac ?? 0);
      if (
        !rec.peer ||
        (from !== undefined && rec.peer !== from) ||
        rec.ts > this.now() + MAX_CLOCK_SKEW_MS ||
        (rec.peer === this.self && newer(rec, this.entries.get(mac)))
      ) {
        this.rejected++;
        continue;
      }
      const cur = this.entries.get(mac);
      if (!newer(rec, cur)) continue;
      if (rec.deleted && !cur && rec.ts < this.now() - TOMBSTONE_TTL_MS) continue; // one we collected already
      // Over a limit: refused and counted (a full state that invents peers is bounded by the total).
      if (
        (cur?.peer !== rec.peer && (this.perPeer.get(rec.peer) ?? 0) >= MACS_PER_PEER) ||
        (!cur && this.entries.size >= MACS_TOTAL)
      ) {
        this.rejected++;
        continue;
      }
      this.set(mac, rec);
      this.onChange({ mac, owner: rec.deleted ? undefined : rec.peer });
      changed.push(e);
    }
    return changed.length ? { entries: changed } : false;
  }

  state(): weave.IMacs {
    return { entries: [...this.entries].sort((a, b) => a[0] - b[0]).map(([mac, e]) => ({ mac, ...e })) };
  }

  /** Forgets withdrawals older than TOMBSTONE_TTL_MS; true when any was. */
  collect(): boolean {
    const horizon = this.now() - TOMBSTONE_TTL_MS;
    let any = false;
    for (const [mac, e] of this.entries)
      if (e.deleted && e.ts < horizon) {
        this.set(mac, undefined);
        any = true;
      }
    return any;
  }

  /** Counts live records per peer (the limit is on those, not on what a peer once had). */
  private set(mac: number, rec: MacRecord | undefined): void {
    const old = this.entries.get(mac);
    if (old && !old.deleted) this.perPeer.set(old.peer, (this.perPeer.get(old.peer) ?? 1) - 1);
    if (rec && !rec.deleted) this.perPeer.set(rec.peer, (this.perPeer.get(rec.peer) ?? 0) + 1);
    if (rec) this.entries.set(mac, rec);
    else this.entries.delete(mac);
  }

  private write(mac: number, deleted: boolean): weave.IMacs {
    const rec = { peer: this.self, ts: nextVersion(this.entries.get(mac)?.ts ?? 0, this.now()), deleted };
    this.set(mac, rec);
    return { entries: [{ mac, ...rec }] };
  }
}
