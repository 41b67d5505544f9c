import { weave } from '../proto/gen/weave.js';
import { MAX_CLOCK_SKEW_MS, nextVersion, takeSelfAuthored } from '../common/channel.js';
import { channelSpec, type Crdt } from '../gossip/typed-channel.js';

export const HOSTS = channelSpec('hosts', weave.HostsState);

/** A host's own record: who it is, and what it says of the others (whom it has lost, whether it is fenced). */
export interface HostRecord {
  peer: string;
  version: number;
  incarnation: number;
  nickname: string;
  labels: Record<string, string>;
  lost: string[];
  fenced: boolean;
}
export interface Death {
  peer: string;
  incarnation: number;
  at: number;
}

/** The most hosts a router keeps, whatever gossip says. */
const MAX_ENTRIES = 4096;

/**
 * The hosts channel's replicated state. Hosts: one register per host, written only by that host
 * (who it is, whom it has lost). Deaths: the highest incarnation of each host that a majority
 * declared dead; a host is a member while its incarnation is above that.
 */
export class MembershipState implements Crdt<weave.IHostsState> {
  readonly hosts = new Map<string, HostRecord>();
  readonly deaths = new Map<string, Death>();
  rejected = 0;

  constructor(
    readonly self: string,
    private readonly now: () => number = Date.now,
    private readonly onChange: () => void = () => {},
  ) {}

  /** Hosts not declared dead (this incarnation), by name. */
  members(): HostRecord[] {
    return [...this.hosts.values()].filter((h) => !this.isDead(h.peer)).sort((a, b) => (a.peer < b.peer ? -1 : 1));
  }

  isDead(peer: string): boolean {
    const h = this.hosts.get(peer),
      d = this.deaths.get(peer);
    return !!h && !!d && d.incarnation >= h.incarnation;
  }

  /** Our own record, rewritten; the delta to publish. */
  putSelf(r: Omit<HostRecord, 'peer' | 'version'>): weave.IHostsState {
    const version = nextVersion(this.hosts.get(this.self)?.version ?? 0, this.now());
    const h: HostRecord = { ...r, peer: this.self, version };
    this.hosts.set(this.self, h);
    this.onChange();
    return { hosts: [h] };
  }

  declareDead(peer: string, incarnation: number): weave.IHostsState {
    const d: Death = { peer, incarnation, at: this.now() };
    this.deaths.set(peer, d);
    this.onChange();
    return { deaths: [d] };
  }

  merge(m: weave.IHostsState, from: string | undefined): boolean | weave.IHostsState {
    const o = { from, self: this.self, now: this.now(), max: MAX_ENTRIES };
    const hosts = takeSelfAuthored(this.hosts, m.hosts, fromWire, o);
    this.rejected += hosts.rejected;
    const out = { hosts: hosts.taken, deaths: [] as weave.IHostDeath[] };
    const future = this.now() + MAX_CLOCK_SKEW_MS;
    for (const w of m.deaths ?? []) {
      const d: Death = { peer: w.peer ?? '', incarnation: Number(w.incarnation ?? 0), at: Number(w.at ?? 0) };
      if (!d.peer || d.incarnation > future) {
        this.rejected++;
        continue;
      }
      if ((this.deaths.get(d.peer)?.incarnation ?? 0) >= d.incarnation) continue;
      this.deaths.set(d.peer, d);
      out.deaths.push(d);
    }
    if (out.hosts.length + out.deaths.length === 0) return false;
    this.onChange();
    return out;
  }

  state(): weave.IHostsState {
    const byKey = <T>(m: Map<string, T>) => [...m.keys()].sort().map((k) => m.get(k)!);
    return { hosts: byKey(this.hosts), deaths: byKey(this.deaths) };
  }
}

const fromWire = (w: weave.IHostRecord): HostRecord => ({
  peer: w.peer ?? '',
  version: Number(w.version ?? 0),
  incarnation: Number(w.incarnation ?? 0),
  nickname: w.nickname ?? '',
  labels: { ...(w.labels ?? {}) },
  lost: [...(w.lost ?? [])],
  fenced: !!w.fenced,
});
