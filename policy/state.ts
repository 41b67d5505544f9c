import { weave } from '../proto/gen/weave.js';
import { MAX_CLOCK_SKEW_MS, newerRegister, nextVersion, takeSelfAuthored } from '../common/channel.js';
import { channelSpec, type Crdt } from '../gossip/typed-channel.js';
import { type Policy, policyKey, validPolicy } from './parse.js';
import type { Pod } from './model.js';

export const POLICY = channelSpec('policy', weave.PolicyState);

export interface PolicyRecord {
  key: string;
  spec: string;
  version: number;
  author: string;
  deleted: boolean;
}
/** What a host says of its own containers. */
export interface PodsReport {
  peer: string;
  version: number;
  pods: Pod[];
}

/** The most policies and hosts a router keeps, and pods per host, whatever gossip says. */
const MAX_ENTRIES = 4096;
const MAX_PODS = 65536;

/**
 * The policy channel's replicated state, on the scheduler's pattern. Policies: a last-writer-wins
 * register per namespace/name that any peer may write (`weave policy apply` anywhere), removal a
 * tombstone. Hosts: one register per host, written only by that host: its containers' addresses,
 * namespaces and labels.
 */
export class PolicyState implements Crdt<weave.IPolicyState> {
  readonly policies = new Map<string, PolicyRecord>();
  readonly hosts = new Map<string, PodsReport>();
  rejected = 0;

  constructor(
    readonly self: string,
    private readonly now: () => number = Date.now,
    private readonly onChange: () => void = () => {},
  ) {}

  live(): Policy[] {
    return [...this.policies.values()]
      .filter((p) => !p.deleted)
      .sort((a, b) => (a.key < b.key ? -1 : 1))
      .map((p) => JSON.parse(p.spec) as Policy);
  }

  /** Writes (or, without a policy, removes) one policy; the delta to publish. */
  put(key: string, p: Policy | undefined): weave.IPolicyState {
    const r: PolicyRecord = {
      key,
      spec: p ? JSON.stringify(p) : '',
      version: nextVersion(this.policies.get(key)?.version ?? 0, this.now()),
      author: this.self,
      deleted: !p,
    };
    this.policies.set(key, r);
    this.onChange();
    return { policies: [r] };
  }

  putSelf(pods: Pod[]): weave.IPolicyState {
    const version = nextVersion(this.hosts.get(this.self)?.version ?? 0, this.now());
    const h: PodsReport = { peer: this.self, version, pods };
    this.hosts.set(this.self, h);
    this.onChange();
    return { hosts: [toWire(h)] };
  }

  merge(m: weave.IPolicyState, from: string | undefined): boolean | weave.IPolicyState {
    const out = { policies: [] as weave.IPolicyRecord[], hosts: [] as weave.IPolicyHost[] };
    const future = this.now() + MAX_CLOCK_SKEW_MS;
    for (const w of m.policies ?? []) {
      const r: PolicyRecord = {
        key: w.key ?? '',
        spec: w.spec ?? '',
        version: Number(w.version ?? 0),
        author: w.author ?? '',
        deleted: !!w.deleted,
      };
      const p = r.deleted ? undefined : validPolicy(r.spec);
      if (!r.key || !r.author || r.version > future || (!r.deleted && (!p || policyKey(p) !== r.key))) {
        this.rejected++;
        continue;
      }
      if (!newerRegister(r, this.policies.get(r.key))) continue;
      if (!this.policies.has(r.key) && this.policies.size >= MAX_ENTRIES) {
        this.rejected++;
        continue;
      }
      this.policies.set(r.key, r);
      out.policies.push(w);
    }
    const o = { from, self: this.self, now: this.now(), max: MAX_ENTRIES };
    const hosts = takeSelfAuthored(this.hosts, m.hosts, fromWire, o);
    this.rejected += hosts.rejected;
    out.hosts = hosts.taken;
    if (out.policies.length + out.hosts.length === 0) return false;
    this.onChange();
    return out;
  }

  state(): weave.IPolicyState {
    const byKey = <T>(m: Map<string, T>) => [...m.keys()].sort().map((k) => m.get(k)!);
    return { policies: byKey(this.policies), hosts: byKey(this.hosts).map(toWire) };
  }
}

const toWire = (h: PodsReport): weave.IPolicyHost => ({
  peer: h.peer,
  version: h.version,
  pods: h.pods.map((p) => ({ address: p.ip, namespace: p.namespace, labels: { ...p.labels }, name: p.name })),
});

const fromWire = (w: weave.IPolicyHost): PodsReport => ({
  peer: w.peer ?? '',
  version: Number(w.version ?? 0),
  pods: (w.pods ?? []).slice(0, MAX_PODS).map((p) => ({
    ip: p.address ?? '',
    namespace: p.namespace ?? 'default',
    labels: { ...(p.labels ?? {}) },
    name: p.name ?? '',
  })),
});
