import { weave } from '../proto/gen/weave.js';
import { MAX_CLOCK_SKEW_MS, nextVersion, selfAuthored } from '../common/channel.js';
import { channelSpec, type Crdt } from '../gossip/typed-channel.js';

export const VOLUMES = channelSpec('volumes', weave.VolumesState);

export interface VolumeRecord {
  name: string;
  owner: string;
  version: number;
  replicas: number;
  deleted: boolean;
  gen: number;
  author: string;
}
export interface VolumeHost {
  peer: string;
  version: number;
  held: Map<string, number>;
}

/** The most volumes and hosts a router keeps, whatever gossip says. */
const MAX_ENTRIES = 16384;

/** Versions order a volume's records; equal versions (two creations at once) by author, the same everywhere. */
const newer = (a: VolumeRecord, b: VolumeRecord | undefined) =>
  !b || a.version > b.version || (a.version === b.version && a.author > b.author);

/**
 * The volumes channel. A volume's record (owner, copies wanted, removal) changes only by its owner:
 * create, hand over, remove; or by a host promoting its copy after the owner's death. So at any
 * version there is one owner, and every host agrees on it once it has the highest version. Each
 * host's record (the newest snapshot it holds of each volume) is written by that host only.
 */
export class VolumesState implements Crdt<weave.IVolumesState> {
  readonly volumes = new Map<string, VolumeRecord>();
  readonly hosts = new Map<string, VolumeHost>();
  rejected = 0;

  constructor(
    readonly self: string,
    private readonly now: () => number = Date.now,
    private readonly onChange: (names: string[]) => void = () => {},
  ) {}

  live(name: string): VolumeRecord | undefined {
    const r = this.volumes.get(name);
    return r && !r.deleted ? r : undefined;
  }

  /** Writes a volume's record as its owner (or its new owner by promotion); the delta to publish. */
  put(r: Omit<VolumeRecord, 'version' | 'author'>): weave.IVolumesState {
    const e: VolumeRecord = {
      ...r,
      version: nextVersion(this.volumes.get(r.name)?.version ?? 0, this.now()),
      author: this.self,
    };
    this.volumes.set(e.name, e);
    this.onChange([e.name]);
    return { volumes: [e] };
  }

  /** Our own snapshots' generations, rewritten; the delta to publish (undefined when nothing changed). */
  putHeld(held: Map<string, number>): weave.IVolumesState | undefined {
    const cur = this.hosts.get(this.self);
    if (cur && sameHeld(cur.held, held)) return undefined;
    const h: VolumeHost = { peer: this.self, version: nextVersion(cur?.version ?? 0, this.now()), held: new Map(held) };
    this.hosts.set(this.self, h);
    this.onChange([...new Set([...held.keys(), ...(cur?.held.keys() ?? [])])]);
    return { hosts: [hostWire(h)] };
  }

  /** Hosts holding a snapshot of a volume, freshest first (ties by name, the same order everywhere). */
  holders(name: string): { peer: string; gen: number }[] {
    const out: { peer: string; gen: number }[] = [];
    for (const h of this.hosts.values()) {
      const gen = h.held.get(name);
      if (gen) out.push({ peer: h.peer, gen });
    }
    return out.sort((a, b) => b.gen - a.gen || (a.peer < b.peer ? -1 : 1));
  }

  merge(m: weave.IVolumesState, from: string | undefined): boolean | weave.IVolumesState {
    const out = { volumes: [] as weave.IVolumeRecord[], hosts: [] as weave.IVolumeHost[] };
    const future = this.now() + MAX_CLOCK_SKEW_MS;
    const changed = new Set<string>();
    for (const w of m.volumes ?? []) {
      const r: VolumeRecord = {
        name: w.name ?? '',
        owner: w.owner ?? '',
        version: Number(w.version ?? 0),
        replicas: w.replicas ?? 1,
        deleted: !!w.deleted,
        gen: Number(w.gen ?? 0),
        author: w.author ?? '',
      };
      // A delta is the author's own word; the author is the old owner, or the new one promoting itself.
      if (!r.name || !r.owner || !r.author || r.version > future || (from !== undefined && r.author !== from)) {
        this.rejected++;
        continue;
      }
      if (!newer(r, this.volumes.get(r.name))) continue;
      if (!this.volumes.has(r.name) && this.volumes.size >= MAX_ENTRIES) {
        this.rejected++;
        continue;
      }
      this.volumes.set(r.name, r);
      out.volumes.push(w);
      changed.add(r.name);
    }
    for (const w of m.hosts ?? []) {
      const h: VolumeHost = {
        peer: w.peer ?? '',
        version: Number(w.version ?? 0),
        held: new Map((w.held ?? []).map((x) => [x.name ?? '', Number(x.gen ?? 0)])),
      };
      const verdict = selfAuthored(this.hosts, h, { from, self: this.self, now: this.now(), max: MAX_ENTRIES });
      if (verdict === 'reject') this.rejected++;
      if (verdict !== 'take') continue;
      const cur = this.hosts.get(h.peer);
      this.hosts.set(h.peer, h);
      out.hosts.push(w);
      for (const n of new Set([...h.held.keys(), ...(cur?.held.keys() ?? [])])) changed.add(n);
    }
    if (out.volumes.length + out.hosts.length === 0) return false;
    this.onChange([...changed]);
    return out;
  }

  state(): weave.IVolumesState {
    const byKey = <T>(m: Map<string, T>) => [...m.keys()].sort().map((k) => m.get(k)!);
    return { volumes: byKey(this.volumes), hosts: byKey(this.hosts).map(hostWire) };
  }
}

const sameHeld = (a: Map<string, number>, b: Map<string, number>) =>
  a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
const hostWire = (h: VolumeHost): weave.IVolumeHost => ({
  peer: h.peer,
  version: h.version,
  held: [...h.held].sort().map(([name, gen]) => ({ name, gen })),
});
