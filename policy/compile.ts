import { ipv4 } from './parse.js';
import type { Direction, Policy, PortRule } from './parse.js';
import { policyKey } from './parse.js';
import { dirName, formatIp, peerRanges, type Pod, type Range, selects } from './model.js';

/** The firewall section policies are compiled into: every chain and set is named `policy_…`. */
export const SECTION = 'policy';

/** A counted rule: its comment in the kernel is `namespace/name rule` (`rule`: ingress[0], egress drop). */
export interface CountedRule {
  policy: string;
  rule: string;
  verdict: 'allow' | 'drop';
}
export const commentOf = (r: { policy: string; rule: string }): string => `${r.policy} ${r.rule}`;

export interface Compiled {
  body: string;
  rules: CountedRule[];
  /** Number of kernel rules written (for the status page). */
  size: number;
}

const elements = (rs: Range[]) =>
  rs.map(([a, b]) => (a === b ? formatIp(a) : `${formatIp(a)}-${formatIp(b)}`)).join(', ');

function set(name: string, rs: Range[]): string {
  return `  set ${name} {\n    type ipv4_addr\n    flags interval\n${rs.length ? `    elements = { ${elements(rs)} }\n` : ''}  }`;
}

const PROTO: Record<PortRule['protocol'], string> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

/** nft match expressions for a rule's ports: one per port entry (empty string: every port). */
function portMatches(ports: PortRule[]): string[] {
  if (ports.length === 0) return [''];
  return ports.map((p) =>
    p.port === undefined
      ? `meta l4proto ${PROTO[p.protocol]}`
      : `${PROTO[p.protocol]} dport ${p.endPort && p.endPort !== p.port ? `${p.port}-${p.endPort}` : p.port}`,
  );
}

const quote = (s: string) => `"${s.replace(/["\\]/g, '')}"`;

/**
 * This host's rules: for each policy, the set of its local pods that it isolates per direction,
 * the addresses each rule allows (pods anywhere in the cluster, ipBlocks less their excepts) as
 * interval sets, an accepting (ingress) or returning (egress) rule per rule and port, and one
 * counted drop per policy and direction. Replies of allowed connections pass first (conntrack).
 * An egress that is allowed returns to the base chain, so the destination's ingress is checked
 * too when both ends are here.
 */
export function compile(policies: readonly Policy[], local: readonly Pod[], all: readonly Pod[]): Compiled {
  const sets: string[] = [];
  const chains: Record<Direction, string[]> = { Ingress: [], Egress: [] };
  const drops: Record<Direction, string[]> = { Ingress: [], Egress: [] };
  const rules: CountedRule[] = [];
  const sorted = [...policies].sort((a, b) => (policyKey(a) < policyKey(b) ? -1 : 1));
  sorted.forEach((p, i) => {
    const selected = local
      .filter((pod) => selects(p, pod))
      .flatMap((pod) => {
        const n = ipv4(pod.ip);
        return n === undefined ? [] : [[n, n] as Range];
      });
    if (selected.length === 0) return;
    for (const d of p.policyTypes) {
      const dn = dirName(d);
      const mine = `policy_p${i}_${d === 'Ingress' ? 'in' : 'out'}`;
      sets.push(set(mine, selected));
      const self = d === 'Ingress' ? 'ip daddr' : 'ip saddr';
      const other = d === 'Ingress' ? 'ip saddr' : 'ip daddr';
      const verdict = d === 'Ingress' ? 'accept' : 'return';
      (d === 'Ingress' ? p.ingress : p.egress).forEach((r, j) => {
        const counted = { policy: policyKey(p), rule: `${dn}[${j}]`, verdict: 'allow' as const };
        rules.push(counted);
        const rs = peerRanges(p, r.peers, all);
        let peerMatch = '';
        if (rs) {
          if (rs.length === 0) return; // names nobody yet
          const name = `policy_p${i}_${d === 'Ingress' ? 'i' : 'e'}${j}`;
          sets.push(set(name, rs));
          peerMatch = ` ${other} @${name}`;
        }
        for (const pm of portMatches(r.ports))
          chains[d].push(
            `    ${self} @${mine}${peerMatch}${pm ? ` ${pm}` : ''} counter ${verdict} comment ${quote(commentOf(counted))}`,
          );
      });
      const drop = { policy: policyKey(p), rule: `${dn} drop`, verdict: 'drop' as const };
      rules.push(drop);
      drops[d].push(`    ${self} @${mine} counter drop comment ${quote(commentOf(drop))}`);
    }
  });
  const chain = (name: string, lines: string[]) => `  chain ${name} {\n${lines.join('\n')}\n  }`;
  const eg = [...chains.Egress, ...drops.Egress];
  const ig = [...chains.Ingress, ...drops.Ingress];
  const base = [
    '    type filter hook forward priority 0; policy accept;',
    '    ct state established,related accept',
    ...(eg.length ? ['    meta nfproto ipv4 jump policy_egress'] : []),
    ...(ig.length ? ['    meta nfproto ipv4 jump policy_ingress'] : []),
  ];
  const body = [
    ...sets,
    ...(eg.length ? [chain('policy_egress', eg)] : []),
    ...(ig.length ? [chain('policy_ingress', ig)] : []),
    chain('policy_forward', base),
  ].join('\n');
  return { body, rules, size: eg.length + ig.length };
}
