// Where every replica runs. Each router computes this on its own from the same stacks and the same agreed set of
// live hosts, so it must be a pure function of those inputs, independent of their order: no leader, no coordination.
//
// Rendezvous (highest-random-weight) hashing keeps placement stable as hosts come and go; a per-host load bound
// (1.5 times an even share of the replicas placed so far) keeps the load near even; `spread` deals replicas
// round-robin over a label's values first.

import { score } from '../common/rendezvous.js';
import { replicaIdent, type Constraint, type SchedHost, type ServiceSpec, type Stack } from './stack.js';

export interface Placement {
  ident: string;
  stack: string;
  service: string;
  index: number;
  host?: string;
  why?: string;
}

// Plain code-unit order: localeCompare depends on the process's locale, and every router must agree.
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const satisfies = (h: SchedHost, c: Constraint): boolean => (h.labels[c.label] === c.value) === (c.op === '==');

const show = (c: Constraint): string => `${c.label}${c.op}${c.value}`;

export { score };

/** The hosts a service may run on (its constraints; with spread, only hosts that have the spread label). */
export function eligible(s: ServiceSpec, hosts: readonly SchedHost[]): SchedHost[] {
  return hosts.filter(
    (h) => s.constraints.every((c) => satisfies(h, c)) && (s.spread === undefined || h.labels[s.spread] !== undefined),
  );
}

/** `os=centos ×2, os=ubuntu ×2`: how the hosts fall on these labels, so a failure message shows what there is. */
function summary(hosts: readonly SchedHost[], labels: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const h of hosts) {
    const key = labels.map((l) => (h.labels[l] === undefined ? `${l} unset` : `${l}=${h.labels[l]}`)).join(' ');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts]
    .sort(([a], [b]) => cmp(a, b))
    .map(([k, n]) => (n === 1 ? k : `${k} ×${n}`))
    .join(', ');
}

/**
 * Why a service cannot be placed at all on these hosts, or undefined: e.g. `no host has os==solaris (hosts: os=centos
 * ×2, os=ubuntu ×2)`.
 */
export function unplaceable(s: ServiceSpec, hosts: readonly SchedHost[]): string | undefined {
  if (s.replicas <= 0 || eligible(s, hosts).length > 0) return undefined;
  if (hosts.length === 0) return 'no live hosts';
  // Name the first constraint no host meets on its own; failing that, it is their combination, or the spread label.
  const alone = s.constraints.find((c) => !hosts.some((h) => satisfies(h, c)));
  if (alone) return `no host has ${show(alone)} (hosts: ${summary(hosts, [alone.label])})`;
  const matching = hosts.filter((h) => s.constraints.every((c) => satisfies(h, c)));
  if (matching.length === 0) {
    const labels = [...new Set(s.constraints.map((c) => c.label))];
    return `no host has ${s.constraints.map(show).join(' and ')} (hosts: ${summary(hosts, labels)})`;
  }
  const spread = s.spread as string; // the only other reason a matching host is not eligible
  return `no host${s.constraints.length ? ` with ${s.constraints.map(show).join(' and ')}` : ''} has label ${spread} to spread on (hosts: ${summary(matching, [spread])})`;
}

/**
 * How far over an even share a host may go: a little room lets most replicas stay on their rendezvous
 * host when another host comes or goes, instead of being pushed along by full hosts.
 */
const SLACK = 1.5;

/**
 * Where a replica must run whatever the hashes say: the host its volume is on (the volume's owner, or
 * after the owner's death the live host with the freshest copy). Undefined: no such tie.
 */
export type Pin = (p: { stack: string; service: string; index: number }, s: ServiceSpec) => string | undefined;

/** Replica index → host name for one service, over hosts already sorted by name. */
function placeService(
  stack: string,
  service: string,
  s: ServiceSpec,
  hosts: readonly SchedHost[],
  pin: Pin,
  pinned: Map<number, string>,
): Map<number, string> {
  const out = new Map<number, string>();
  const elig = eligible(s, hosts);
  if (elig.length === 0 || s.replicas <= 0) return out;
  const load = new Map<string, number>();
  for (let i = 1; i <= s.replicas; i++) {
    const at = pin({ stack, service, index: i }, s);
    if (at === undefined) continue;
    pinned.set(i, at);
    if (hosts.some((h) => h.name === at)) {
      out.set(i, at);
      load.set(at, (load.get(at) ?? 0) + 1);
    }
  }

  // Groups: one per spread value (sorted by value), or a single group of every eligible host.
  let groups: SchedHost[][];
  if (s.spread === undefined) groups = [elig];
  else {
    const by = new Map<string, SchedHost[]>();
    for (const h of elig) {
      const v = h.labels[s.spread] as string;
      (by.get(v) ?? by.set(v, []).get(v)!).push(h);
    }
    groups = [...by].sort(([a], [b]) => cmp(a, b)).map(([, hs]) => hs);
  }

  // Replica i goes to group (i-1) mod G. Within its group, the k-th replica may go to a host that
  // holds fewer than ceil(k·SLACK / hosts): the cap grows with k, not with the service's replica count,
  // so replica i's host depends only on replicas 1..i-1, and scaling never moves a replica that stays.
  const G = groups.length;
  for (let i = 1; i <= s.replicas; i++) {
    if (pinned.has(i)) continue;
    const g = (i - 1) % G;
    const k = Math.floor((i - 1) / G) + 1;
    const cap = Math.ceil((k * SLACK) / groups[g].length);
    const ident = replicaIdent(stack, service, i);
    let best: string | undefined;
    let bestScore = -1;
    // Hosts are in name order and only a strictly higher score wins, so ties go to the lower name.
    for (const h of groups[g]) {
      if ((load.get(h.name) ?? 0) >= cap) continue;
      const w = score(ident, h.name);
      if (w > bestScore) {
        best = h.name;
        bestScore = w;
      }
    }
    // Unpinned, k-1 replicas are in the group and the caps sum to at least k, so some host has room;
    // pinned replicas may fill every host, and then the cap gives way.
    if (best === undefined)
      for (const h of groups[g]) {
        const w = score(ident, h.name);
        if (w > bestScore) {
          best = h.name;
          bestScore = w;
        }
      }
    out.set(i, best!);
    load.set(best!, (load.get(best!) ?? 0) + 1);
  }
  return out;
}

/**
 * One entry per replica (index 1..replicas) of every service of every stack, sorted by ident; host undefined when no
 * host is eligible (why says so).
 */
export function place(stacks: readonly Stack[], hosts: readonly SchedHost[], pin: Pin = () => undefined): Placement[] {
  const sorted = [...hosts].sort((a, b) => cmp(a.name, b.name));
  const out: Placement[] = [];
  for (const st of stacks) {
    for (const [service, s] of Object.entries(st.services)) {
      const pinned = new Map<number, string>();
      const where = placeService(st.name, service, s, sorted, pin, pinned);
      const why = where.size === 0 ? unplaceable(s, sorted) : undefined;
      for (let index = 1; index <= s.replicas; index++) {
        const base = { ident: replicaIdent(st.name, service, index), stack: st.name, service, index };
        const host = where.get(index);
        const tied = pinned.get(index);
        out.push(
          host !== undefined
            ? { ...base, host }
            : {
                ...base,
                why:
                  tied !== undefined
                    ? `its volume is on ${tied}, which is not a live host`
                    : (why ?? 'no eligible host'),
              },
        );
      }
    }
  }
  return out.sort((a, b) => cmp(a.ident, b.ident));
}
