import { weave } from '../proto/gen/weave.js';
import { MAX_CLOCK_SKEW_MS, nextVersion } from '../common/channel.js';
import { channelSpec, type Crdt } from '../gossip/typed-channel.js';
import { TOMBSTONE_TTL_MS } from '../gossip/macs.js';

export const DNS = channelSpec('dns', weave.DnsRecords);

export interface DnsRecord {
  name: string;
  ip: string;
  peer: string;
  version: number;
  deleted: boolean;
  ident: string;
}

/** The most records (tombstones included) a router keeps. */
export const MAX_RECORDS = 65536;

const key = (r: { name: string; ip: string; peer: string }) => `${r.name}|${r.ip}|${r.peer}`;
const NAME = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** A DNS label sequence we store: lower case, no trailing dot, no domain. */
export const isValidName = (name: string): boolean => NAME.test(name);

/**
 * The cluster's names: one register per (name, address, peer), written only by that peer, last
 * version wins. Removal writes a tombstone so that a late copy of the record does not bring it
 * back; the tombstones and records of a peer that has left the topology are collected with it.
 */
export class DnsRecords implements Crdt<weave.IDnsRecords> {
  private readonly entries = new Map<string, DnsRecord>();
  /** The newest version seen of each collected peer: an old copy coming back is not taken again. */
  private readonly forgotten = new Map<string, number>();
  rejected = 0;

  constructor(
    readonly self: string,
    private readonly now: () => number = Date.now,
    private readonly onChange: (name: string) => void = () => {},
  ) {}

  /** Our record of name → ip (for the attachment ident); returns the delta to publish. */
  add(name: string, ip: string, ident: string): weave.IDnsRecords {
    return this.write(name, ip, ident, false);
  }

  /** Removes our records matching (name and/or ip and/or ident); returns the delta, or undefined when none matched. */
  remove(match: { name?: string; ip?: string; ident?: string }): weave.IDnsRecords | undefined {
    const gone = [...this.entries.values()].filter(
      (r) =>
        r.peer === this.self &&
        !r.deleted &&
        (match.name === undefined || r.name === match.name) &&
        (match.ip === undefined || r.ip === match.ip) &&
        (match.ident === undefined || r.ident === match.ident),
    );
    if (gone.length === 0) return undefined;
    return { entries: gone.flatMap((r) => this.write(r.name, r.ip, r.ident, true).entries ?? []) };
  }

  /** The live addresses of a name, anywhere in the cluster. */
  lookup(name: string): string[] {
    return [...new Set([...this.entries.values()].filter((r) => !r.deleted && r.name === name).map((r) => r.ip))];
  }

  /** The live names of an address (PTR). */
  names(ip: string): string[] {
    return [...new Set([...this.entries.values()].filter((r) => !r.deleted && r.ip === ip).map((r) => r.name))];
  }

  live(): DnsRecord[] {
    return [...this.entries.values()]
      .filter((r) => !r.deleted)
      .sort((a, b) => a.name.localeCompare(b.name) || a.ip.localeCompare(b.ip));
  }

  get size(): number {
    return this.entries.size;
  }

  merge(m: weave.IDnsRecords, from: string | undefined): boolean {
    let changed = false;
    for (const e of m.entries ?? []) {
      const r: DnsRecord = {
        name: e.name ?? '',
        ip: e.ip ?? '',
        peer: e.peer ?? '',
        version: Number(e.version ?? 0),
        deleted: !!e.deleted,
        ident: e.ident ?? '',
      };
      if (
        !r.peer ||
        !isValidName(r.name) ||
        !/^\d+\.\d+\.\d+\.\d+$/.test(r.ip) ||
        (from !== undefined && r.peer !== from) ||
        r.version > this.now() + MAX_CLOCK_SKEW_MS
      ) {
        this.rejected++;
        continue;
      }
      const cur = this.entries.get(key(r));
      if ((cur && cur.version >= r.version) || r.version <= (this.forgotten.get(r.peer) ?? 0)) continue;
      if (!cur && this.entries.size >= MAX_RECORDS) {
        this.rejected++;
        continue;
      } // bounded, whatever gossip says
      if (r.deleted && !cur && r.version < this.now() - TOMBSTONE_TTL_MS) continue; // one we collected already
      // Ours from before a restart: whatever it named is not attached now (attachments register
      // again), so answer with a tombstone that anti-entropy carries back.
      if (r.peer === this.self) {
        this.entries.set(key(r), { ...r, deleted: true, version: r.version + 1 });
        changed = true;
        continue;
      }
      this.entries.set(key(r), r);
      this.onChange(r.name);
      changed = true;
    }
    return changed;
  }

  /** Forgets every record of peers no longer in the topology, and old removals; true when any was. */
  collect(alive: (peer: string) => boolean): boolean {
    let forgot = false;
    const horizon = this.now() - TOMBSTONE_TTL_MS;
    for (const [k, r] of this.entries) {
      if (r.deleted && r.version < horizon) {
        this.entries.delete(k);
        forgot = true;
        continue;
      }
      if (r.peer === this.self || alive(r.peer)) continue;
      this.forgotten.set(r.peer, Math.max(this.forgotten.get(r.peer) ?? 0, r.version));
      this.entries.delete(k);
      this.onChange(r.name);
      forgot = true;
    }
    return forgot;
  }

  state(): weave.IDnsRecords {
    return { entries: [...this.entries.keys()].sort().map((k) => this.entries.get(k)!) };
  }

  private write(name: string, ip: string, ident: string, deleted: boolean): weave.IDnsRecords {
    const prev = this.entries.get(key({ name, ip, peer: this.self }));
    const r: DnsRecord = {
      name,
      ip,
      peer: this.self,
      version: nextVersion(prev?.version ?? 0, this.now()),
      deleted,
      ident,
    };
    this.entries.set(key(r), r);
    this.onChange(name);
    return { entries: [r] };
  }
}
