import { parseAllDocuments } from 'yaml';
import { UserError } from '../common/errors.js';

/** A Kubernetes label selector: every matchLabels pair and every expression must hold. */
export interface LabelSelector {
  matchLabels: Record<string, string>;
  matchExpressions: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values: string[] }[];
}
export interface IpBlock {
  cidr: string;
  except: string[];
}
/** A `from`/`to` entry: pods (in the policy's namespace unless a namespaceSelector says which), namespaces, or addresses. */
export interface Peer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IpBlock;
}
export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export interface PortRule {
  protocol: Protocol;
  /** Absent: every port of the protocol. */
  port?: number;
  endPort?: number;
}
/** One ingress or egress rule: `peers` undefined means from/to anywhere; `ports` empty means every port. */
export interface Rule {
  peers?: Peer[];
  ports: PortRule[];
}
export type Direction = 'Ingress' | 'Egress';
/** A NetworkPolicy, normalised (defaults filled, namespace given). */
export interface Policy {
  namespace: string;
  name: string;
  podSelector: LabelSelector;
  policyTypes: Direction[];
  ingress: Rule[];
  egress: Rule[];
  /** The stack whose manifest carried it (it goes with the stack). */
  stack?: string;
}

export const policyKey = (p: { namespace: string; name: string }): string => `${p.namespace}/${p.name}`;

type Obj = Record<string, unknown>;

/** A place in a document, for messages: `spec.ingress[0].ports[1].port`. */
class At {
  constructor(readonly path: string) {}
  key(k: string): At {
    return new At(this.path ? `${this.path}.${k}` : k);
  }
  index(i: number): At {
    return new At(`${this.path}[${i}]`);
  }
  fail(what: string): never {
    throw new PolicyError(`${this.path || 'document'}: ${what}`);
  }
}
export class PolicyError extends UserError {}

const show = (v: unknown) => JSON.stringify(v)?.slice(0, 60) ?? String(v);
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

function object(v: unknown, at: At, keys: readonly string[]): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) at.fail(`expected a mapping, got ${show(v)}`);
  for (const k of Object.keys(v as Obj))
    if (!keys.includes(k)) at.key(k).fail(`unknown key (expected one of ${keys.join(', ')})`);
  return v as Obj;
}
function list(v: unknown, at: At): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) at.fail(`expected a list, got ${show(v)}`);
  return v;
}
function str(v: unknown, at: At): string {
  if (typeof v !== 'string') at.fail(`expected a string, got ${show(v)}`);
  return v;
}
function labelKey(k: string, at: At): string {
  if (k.length > 316 || !LABEL_KEY.test(k)) at.fail(`"${k.slice(0, 60)}" is not a label key`);
  return k;
}
function labelValue(v: unknown, at: At): string {
  const s = typeof v === 'number' || typeof v === 'boolean' ? String(v) : str(v, at);
  if (s.length > 63 || !LABEL_VALUE.test(s)) at.fail(`"${s.slice(0, 60)}" is not a label value`);
  return s;
}

export function parseSelector(v: unknown, at: At): LabelSelector {
  if (v === null || v === undefined) return { matchLabels: {}, matchExpressions: [] };
  const o = object(v, at, ['matchLabels', 'matchExpressions']);
  const matchLabels: Record<string, string> = {};
  if (o.matchLabels !== undefined && o.matchLabels !== null) {
    const ml = object(o.matchLabels, at.key('matchLabels'), Object.keys(o.matchLabels as Obj));
    for (const [k, val] of Object.entries(ml))
      matchLabels[labelKey(k, at.key('matchLabels'))] = labelValue(val, at.key('matchLabels').key(k));
  }
  const matchExpressions = list(o.matchExpressions, at.key('matchExpressions')).map((e, i) => {
    const eat = at.key('matchExpressions').index(i);
    const x = object(e, eat, ['key', 'operator', 'values']);
    const key = labelKey(str(x.key, eat.key('key')), eat.key('key'));
    const operator = str(x.operator, eat.key('operator'));
    if (operator !== 'In' && operator !== 'NotIn' && operator !== 'Exists' && operator !== 'DoesNotExist')
      eat.key('operator').fail(`"${operator.slice(0, 40)}" is not an operator (In, NotIn, Exists, DoesNotExist)`);
    const values = list(x.values, eat.key('values')).map((val, j) => labelValue(val, eat.key('values').index(j)));
    if ((operator === 'In' || operator === 'NotIn') && values.length === 0)
      eat.key('values').fail(`${operator} needs at least one value`);
    if ((operator === 'Exists' || operator === 'DoesNotExist') && values.length > 0)
      eat.key('values').fail(`${operator} takes no values`);
    return { key, operator, values } as LabelSelector['matchExpressions'][number];
  });
  return { matchLabels, matchExpressions };
}

/** Parses an IPv4 address to a number; undefined when it is not one. */
export function ipv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const b = m.slice(1).map(Number);
  if (b.some((x) => x > 255)) return undefined;
  return ((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3];
}
/** A CIDR as [first, last] address numbers; undefined when it is not an IPv4 CIDR with its host bits clear. */
export function cidrRange(s: string): [number, number] | undefined {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(s);
  const ip = m ? ipv4(m[1]) : undefined;
  const len = m ? Number(m[2]) : -1;
  if (ip === undefined || len < 0 || len > 32) return undefined;
  const size = 2 ** (32 - len);
  if (ip % size !== 0) return undefined;
  return [ip, ip + size - 1];
}

function ipBlock(v: unknown, at: At): IpBlock {
  const o = object(v, at, ['cidr', 'except']);
  const cidr = str(o.cidr, at.key('cidr'));
  const outer =
    cidrRange(cidr) ??
    at
      .key('cidr')
      .fail(/:/.test(cidr) ? `${cidr}: IPv6 is not on the overlay` : `"${cidr.slice(0, 40)}" is not a CIDR`);
  const except = list(o.except, at.key('except')).map((e, i) => {
    const eat = at.key('except').index(i);
    const c = str(e, eat);
    const r = cidrRange(c) ?? eat.fail(`"${c.slice(0, 40)}" is not a CIDR`);
    if (r[0] < outer[0] || r[1] > outer[1]) eat.fail(`${c} is not inside ${cidr}`);
    return c;
  });
  return { cidr, except };
}

function peer(v: unknown, at: At): Peer {
  const o = object(v, at, ['podSelector', 'namespaceSelector', 'ipBlock']);
  const p: Peer = {};
  if ('podSelector' in o) p.podSelector = parseSelector(o.podSelector, at.key('podSelector'));
  if ('namespaceSelector' in o) p.namespaceSelector = parseSelector(o.namespaceSelector, at.key('namespaceSelector'));
  if ('ipBlock' in o) {
    if (p.podSelector || p.namespaceSelector) at.fail('ipBlock cannot be combined with a selector');
    p.ipBlock = ipBlock(o.ipBlock, at.key('ipBlock'));
  }
  if (!p.podSelector && !p.namespaceSelector && !p.ipBlock)
    at.fail('a peer needs podSelector, namespaceSelector or ipBlock');
  return p;
}

function portNumber(v: unknown, at: At): number {
  if (typeof v === 'string') at.fail(`named port "${v.slice(0, 40)}" is not supported: give a number`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) at.fail(`${show(v)} is not a port`);
  return v;
}

function port(v: unknown, at: At): PortRule {
  const o = object(v, at, ['protocol', 'port', 'endPort']);
  const protocol = o.protocol === undefined ? 'TCP' : str(o.protocol, at.key('protocol'));
  if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP')
    at.key('protocol').fail(`"${protocol.slice(0, 40)}" is not a protocol (TCP, UDP, SCTP)`);
  const r: PortRule = { protocol: protocol as Protocol };
  if (o.port !== undefined) r.port = portNumber(o.port, at.key('port'));
  if (o.endPort !== undefined) {
    r.endPort = portNumber(o.endPort, at.key('endPort'));
    if (r.port === undefined) return at.key('endPort').fail('endPort needs port');
    if (r.endPort < r.port) at.key('endPort').fail(`${r.endPort} is below port ${r.port}`);
  }
  return r;
}

function rule(v: unknown, at: At, peersKey: 'from' | 'to'): Rule {
  const o = object(v ?? {}, at, [peersKey, 'ports']);
  const r: Rule = { ports: list(o.ports, at.key('ports')).map((p, i) => port(p, at.key('ports').index(i))) };
  const peers = list(o[peersKey], at.key(peersKey)).map((p, i) => peer(p, at.key(peersKey).index(i)));
  if (peers.length) r.peers = peers;
  return r;
}

function name(v: unknown, at: At): string {
  const s = str(v, at);
  if (s.length > 253 || !NAME.test(s))
    at.fail(`"${s.slice(0, 60)}" is not a name (lower case letters, digits, - and .)`);
  return s;
}

/** One NetworkPolicy object (a parsed document); `namespace` when its metadata names none. */
export function policyOf(doc: unknown, namespace: string, at = new At('')): Policy {
  const o = object(doc, at, ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  if (o.apiVersion !== 'networking.k8s.io/v1')
    at.key('apiVersion').fail(`${show(o.apiVersion)}: expected networking.k8s.io/v1`);
  if (o.kind !== 'NetworkPolicy') at.key('kind').fail(`${show(o.kind)}: expected NetworkPolicy`);
  const meta = object(o.metadata, at.key('metadata'), [
    'name',
    'namespace',
    'labels',
    'annotations',
    'uid',
    'resourceVersion',
    'generation',
    'creationTimestamp',
  ]);
  const p: Policy = {
    name: name(meta.name, at.key('metadata').key('name')),
    namespace: meta.namespace === undefined ? namespace : name(meta.namespace, at.key('metadata').key('namespace')),
    podSelector: { matchLabels: {}, matchExpressions: [] },
    policyTypes: [],
    ingress: [],
    egress: [],
  };
  const sat = at.key('spec');
  const spec = object(o.spec, sat, ['podSelector', 'policyTypes', 'ingress', 'egress']);
  if (!('podSelector' in spec)) sat.key('podSelector').fail('missing (use {} to select every pod of the namespace)');
  p.podSelector = parseSelector(spec.podSelector, sat.key('podSelector'));
  p.ingress = list(spec.ingress, sat.key('ingress')).map((r, i) => rule(r, sat.key('ingress').index(i), 'from'));
  p.egress = list(spec.egress, sat.key('egress')).map((r, i) => rule(r, sat.key('egress').index(i), 'to'));
  const types = list(spec.policyTypes, sat.key('policyTypes')).map((t, i) => {
    const s = str(t, sat.key('policyTypes').index(i));
    if (s !== 'Ingress' && s !== 'Egress')
      sat
        .key('policyTypes')
        .index(i)
        .fail(`"${s.slice(0, 40)}" is not a policy type (Ingress, Egress)`);
    return s as Direction;
  });
  p.policyTypes =
    spec.policyTypes === undefined || spec.policyTypes === null
      ? ['Ingress', ...(p.egress.length ? (['Egress'] as const) : [])]
      : [...new Set(types)].sort();
  return p;
}

/**
 * Every NetworkPolicy in a YAML file of one or several documents. Any error is one line naming the
 * file, the document and the place, and nothing is returned: a file is applied whole or not at all.
 * `others`: what to do with a document of another kind (a manifest's services); by default, an error.
 */
export function parsePolicies(
  text: string,
  o: { file: string; namespace: string; others?: 'skip' | 'refuse' },
): Policy[] {
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  const out: Policy[] = [];
  const seen = new Set<string>();
  list.forEach((d, i) => {
    const where = `${o.file}: document ${i + 1}`;
    if (d.errors.length) throw new PolicyError(`${where}: ${d.errors[0].message.split('\n')[0]}`);
    let js: unknown;
    // Aliases are resolved here: an unknown anchor or an alias bomb fails, at no one place.
    try {
      js = d.toJS() as unknown;
    } catch (err) {
      throw new PolicyError(`${where}: ${(err as Error).message.split('\n')[0].slice(0, 200)}`);
    }
    if (js === null || js === undefined) return;
    if (o.others === 'skip' && (js as Obj).kind !== 'NetworkPolicy') return;
    try {
      const p = policyOf(js, o.namespace);
      if (seen.has(policyKey(p))) throw new PolicyError(`metadata.name: ${policyKey(p)} is given twice`);
      seen.add(policyKey(p));
      out.push(p);
    } catch (err) {
      if (err instanceof PolicyError) throw new PolicyError(`${where}: ${err.message}`);
      throw err;
    }
  });
  if (out.length === 0 && o.others !== 'skip') throw new PolicyError(`${o.file}: no NetworkPolicy in it`);
  return out;
}

/** Checks a normalised policy as it comes back from gossip (JSON); undefined when it is not one. */
export function validPolicy(json: string): Policy | undefined {
  try {
    const p = JSON.parse(json) as Policy;
    const again = policyOf(
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: p.name, namespace: p.namespace },
        spec: {
          podSelector: p.podSelector,
          policyTypes: p.policyTypes,
          ingress: p.ingress.map((r) => ({ from: r.peers, ports: r.ports })),
          egress: p.egress.map((r) => ({ to: r.peers, ports: r.ports })),
        },
      },
      p.namespace,
    );
    return typeof p.stack === 'string' && p.stack ? { ...again, stack: p.stack } : again;
  } catch {
    return undefined;
  }
}
