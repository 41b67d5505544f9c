import {
  cidrRange,
  ipv4,
  type Direction,
  type LabelSelector,
  type Peer,
  type Policy,
  type PortRule,
  type Protocol,
} from './parse.js';
import { policyKey } from './parse.js';

/** A container as policies see it: its overlay address, namespace and labels (Kubernetes' pod). */
export interface Pod {
  ip: string;
  namespace: string;
  labels: Record<string, string>;
  /** The container's name, for `weave policy why` and messages. */
  name: string;
}

/** The label every namespace has, as in Kubernetes, so that a namespaceSelector can name one. */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/** A container's namespace: its `weave.namespace` label, its stack's name for a replica, `default` otherwise. */
export const namespaceOf = (labels: Record<string, string>): string =>
  labels['weave.namespace'] || labels['weave.stack'] || 'default';

export function matches(s: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(s.matchLabels)) if (labels[k] !== v) return false;
  for (const e of s.matchExpressions) {
    const has = Object.hasOwn(labels, e.key);
    const ok =
      e.operator === 'In'
        ? has && e.values.includes(labels[e.key])
        : e.operator === 'NotIn'
          ? !has || !e.values.includes(labels[e.key])
          : e.operator === 'Exists'
            ? has
            : !has;
    if (!ok) return false;
  }
  return true;
}

const nsLabels = (ns: string) => ({ [NAMESPACE_NAME_LABEL]: ns });

/** The pods a policy selects (isolates). */
export const selects = (p: Policy, pod: Pod): boolean =>
  pod.namespace === p.namespace && matches(p.podSelector, pod.labels);

/** Whether a peer entry names this pod (selector peers only). */
export function peerHasPod(p: Policy, peer: Peer, pod: Pod): boolean {
  if (peer.ipBlock) return false;
  const nsOk = peer.namespaceSelector
    ? matches(peer.namespaceSelector, nsLabels(pod.namespace))
    : pod.namespace === p.namespace;
  return nsOk && (!peer.podSelector || matches(peer.podSelector, pod.labels));
}

export type Range = [number, number];

/** Ranges of addresses, merged and sorted. */
export function mergeRanges(rs: Range[]): Range[] {
  const s = [...rs].sort((a, b) => a[0] - b[0]);
  const out: Range[] = [];
  for (const r of s) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}

/** A range less some others. */
export function subtract(r: Range, cut: Range[]): Range[] {
  let parts: Range[] = [r];
  for (const c of cut)
    parts = parts.flatMap(([a, b]) => {
      if (c[1] < a || c[0] > b) return [[a, b] as Range];
      const keep: Range[] = [];
      if (c[0] > a) keep.push([a, c[0] - 1]);
      if (c[1] < b) keep.push([c[1] + 1, b]);
      return keep;
    });
  return parts;
}

/** The addresses a rule's peers name, given every pod the cluster knows; undefined when the rule names anywhere. */
export function peerRanges(p: Policy, peers: Peer[] | undefined, pods: readonly Pod[]): Range[] | undefined {
  if (!peers) return undefined;
  const rs: Range[] = [];
  for (const peer of peers) {
    if (peer.ipBlock) {
      const outer = cidrRange(peer.ipBlock.cidr)!;
      rs.push(
        ...subtract(
          outer,
          peer.ipBlock.except.map((e) => cidrRange(e)!),
        ),
      );
      continue;
    }
    for (const pod of pods)
      if (peerHasPod(p, peer, pod)) {
        const n = ipv4(pod.ip);
        if (n !== undefined) rs.push([n, n]);
      }
  }
  return mergeRanges(rs);
}

export const formatIp = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

export const portMatches = (ports: PortRule[], port: number, proto: Protocol): boolean =>
  ports.length === 0 ||
  ports.some(
    (r) => r.protocol === proto && (r.port === undefined || (port >= r.port && port <= (r.endPort ?? r.port))),
  );

/** What `weave policy why` answers for one direction of a flow. */
export interface DirectionVerdict {
  /** open: no policy isolates that end for this direction; allow: a rule does; drop: none does. */
  verdict: 'open' | 'allow' | 'drop';
  /** The policies isolating that end (namespace/name). */
  isolatedBy: string[];
  /** The rule that allows it: `namespace/name ingress[0]`. */
  rule?: string;
}
export interface Why {
  verdict: 'open' | 'allow' | 'drop';
  egress: DirectionVerdict;
  ingress: DirectionVerdict;
  text: string;
}

/** The lower-case names used in rules' comments and `why`: ingress, egress. */
export const dirName = (d: Direction): 'ingress' | 'egress' => (d === 'Ingress' ? 'ingress' : 'egress');

function direction(
  policies: readonly Policy[],
  d: Direction,
  end: Pod | undefined,
  other: string,
  port: number,
  proto: Protocol,
  pods: readonly Pod[],
): DirectionVerdict {
  if (!end) return { verdict: 'open', isolatedBy: [] };
  const isolating = policies.filter((p) => p.policyTypes.includes(d) && selects(p, end));
  if (isolating.length === 0) return { verdict: 'open', isolatedBy: [] };
  const otherN = ipv4(other);
  for (const p of isolating) {
    const rules = d === 'Ingress' ? p.ingress : p.egress;
    for (const [i, r] of rules.entries()) {
      if (!portMatches(r.ports, port, proto)) continue;
      const rs = peerRanges(p, r.peers, pods);
      if (!rs || (otherN !== undefined && rs.some(([a, b]) => otherN >= a && otherN <= b)))
        return { verdict: 'allow', isolatedBy: isolating.map(policyKey), rule: `${policyKey(p)} ${dirName(d)}[${i}]` };
    }
  }
  return { verdict: 'drop', isolatedBy: isolating.map(policyKey) };
}

/** Which rule allows or drops a new flow from src to dst:port, by the same semantics the kernel's rules have. */
export function why(
  policies: readonly Policy[],
  pods: readonly Pod[],
  src: string,
  dst: string,
  port: number,
  proto: Protocol,
): Why {
  const byIp = (ip: string) => pods.find((p) => p.ip === ip);
  const egress = direction(policies, 'Egress', byIp(src), dst, port, proto, pods);
  const ingress = direction(policies, 'Ingress', byIp(dst), src, port, proto, pods);
  const verdict =
    egress.verdict === 'drop' || ingress.verdict === 'drop'
      ? 'drop'
      : egress.verdict === 'open' && ingress.verdict === 'open'
        ? 'open'
        : 'allow';
  const say = (v: DirectionVerdict, d: string, who: string) =>
    v.verdict === 'open'
      ? `${d} open: no policy selects ${who}`
      : v.verdict === 'allow'
        ? `${d} allowed by ${v.rule}`
        : `${d} dropped: ${who} is isolated by ${v.isolatedBy.join(', ')} and no rule allows it`;
  const text =
    verdict === 'open'
      ? 'open: no policy selects DST (nor SRC for egress)'
      : `${verdict === 'drop' ? 'drop' : 'allow'}: ${say(egress, 'egress', 'SRC')}; ${say(ingress, 'ingress', 'DST')}`;
  return { verdict, egress, ingress, text };
}
