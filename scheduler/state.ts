import { weave } from '../proto/gen/weave.js';
import { MAX_CLOCK_SKEW_MS, newerRegister, nextVersion, takeSelfAuthored } from '../common/channel.js';
import { channelSpec, type Crdt } from '../gossip/typed-channel.js';
import type { Stack } from './stack.js';

export const SCHEDULER = channelSpec('scheduler', weave.SchedulerState);

export interface StackEntry {
  name: string;
  spec: string;
  version: number;
  author: string;
  deleted: boolean;
}
export interface ReplicaState {
  ident: string;
  state: string;
  since: number;
  address: string;
  digest: string;
  container: string;
  error: string;
}
/** What a host says of its replicas (who the hosts are is membership's). */
export interface HostReport {
  peer: string;
  version: number;
  replicas: ReplicaState[];
  /** Why this host cannot run containers now (empty when it can): it is placed nothing. */
  engineError: string;
}

/** The most stacks and hosts a router keeps, whatever gossip says. */
const MAX_ENTRIES = 4096;

/**
 * The scheduler's replicated state. Stacks: a last-writer-wins register per name that any peer may
 * write (`weave deploy` anywhere), removal a tombstone. Hosts: one register per host, written only
 * by that host (what it runs). Which hosts are members is membership's (the hosts channel).
 */
export class SchedulerState implements Crdt<weave.ISchedulerState> {
  readonly stacks = new Map<string, StackEntry>();
  readonly hosts = new Map<string, HostReport>();
  rejected = 0;

  constructor(
    readonly self: string,
    private readonly now: () => number = Date.now,
    private readonly onChange: () => void = () => {},
  ) {}

  /** The deployed stacks, parsed, by name. */
  liveStacks(): Stack[] {
    return [...this.stacks.values()]
      .filter((s) => !s.deleted)
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((s) => JSON.parse(s.spec) as Stack);
  }

  /** Deploys (or, without spec, removes) a stack; the delta to publish. */
  putStack(name: string, spec: string | undefined): weave.ISchedulerState {
    const e: StackEntry = {
      name,
      spec: spec ?? '',
      version: nextVersion(this.stacks.get(name)?.version ?? 0, this.now()),
      author: this.self,
      deleted: spec === undefined,
    };
    this.stacks.set(name, e);
    this.onChange();
    return { stacks: [e] };
  }

  /** Our own record, rewritten; the delta to publish. */
  putSelf(r: Omit<HostReport, 'peer' | 'version'>): weave.ISchedulerState {
    const version = nextVersion(this.hosts.get(this.self)?.version ?? 0, this.now());
    const h: HostReport = { ...r, peer: this.self, version };
    this.hosts.set(this.self, h);
    this.onChange();
    return { hosts: [toWire(h)] };
  }

  merge(m: weave.ISchedulerState, from: string | undefined): boolean | weave.ISchedulerState {
    const out = { stacks: [] as weave.ISchedStack[], hosts: [] as weave.ISchedHost[] };
    const future = this.now() + MAX_CLOCK_SKEW_MS;
    for (const w of m.stacks ?? []) {
      const e: StackEntry = {
        name: w.name ?? '',
        spec: w.spec ?? '',
        version: Number(w.version ?? 0),
        author: w.author ?? '',
        deleted: !!w.deleted,
      };
      if (!e.name || !e.author || e.version > future || (!e.deleted && !validSpec(e.spec))) {
        this.rejected++;
        continue;
      }
      if (!newerRegister(e, this.stacks.get(e.name))) continue;
      if (!this.stacks.has(e.name) && this.stacks.size >= MAX_ENTRIES) {
        this.rejected++;
        continue;
      }
      this.stacks.set(e.name, e);
      out.stacks.push(w);
    }
    const o = { from, self: this.self, now: this.now(), max: MAX_ENTRIES };
    const hosts = takeSelfAuthored(this.hosts, m.hosts, fromWire, o);
    this.rejected += hosts.rejected;
    out.hosts = hosts.taken;
    if (out.stacks.length + out.hosts.length === 0) return false;
    this.onChange();
    return out;
  }

  state(): weave.ISchedulerState {
    const byKey = <T>(m: Map<string, T>) => [...m.keys()].sort().map((k) => m.get(k)!);
    return { stacks: byKey(this.stacks), hosts: byKey(this.hosts).map(toWire) };
  }
}

function validSpec(spec: string): boolean {
  try {
    const s = JSON.parse(spec) as Stack;
    return typeof s.name === 'string' && typeof s.services === 'object' && s.services !== null;
  } catch {
    return false;
  }
}

const toWire = (h: HostReport): weave.ISchedHost => ({ ...h, replicas: h.replicas.map((r) => ({ ...r })) });

function fromWire(w: weave.ISchedHost): HostReport {
  return {
    peer: w.peer ?? '',
    version: Number(w.version ?? 0),
    engineError: w.engineError ?? '',
    replicas: (w.replicas ?? []).map((r) => ({
      ident: r.ident ?? '',
      state: r.state ?? '',
      since: Number(r.since ?? 0),
      address: r.address ?? '',
      digest: r.digest ?? '',
      container: r.container ?? '',
      error: r.error ?? '',
    })),
  };
}
