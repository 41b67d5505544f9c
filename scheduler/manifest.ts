// The stack manifest: YAML mapping service names to services, checked first against a JSON schema
// (shape and types) and then for sense (names, constraints, volumes, env), and normalised to a Stack.
// Every mistake is one line, `source:line:col: services.web.replicas: must be >= 0`, so the CLI can
// print it as it is.
import { createHash } from 'node:crypto';
import { Ajv, type ErrorObject } from 'ajv';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml';
import { UserError } from '../common/errors.js';
import { parsePort, type PublishSpec } from '../docker/publish.js';
import { NAME, type Constraint, type RestartPolicy, type ServiceSpec, type Stack, type VolumeMount } from './stack.js';

/** A service as written, once the schema has accepted it. */
interface RawService {
  image: string;
  cmd?: string | string[];
  replicas?: number;
  env?: Record<string, string | number | boolean> | string[];
  constraints?: string | string[];
  spread?: string;
  volumes?: (string | { name: string; path: string; readonly?: boolean; replicas?: number })[];
  restart?: RestartPolicy | false;
  ports?: string[];
}

const serviceProperties = {
  image: { type: 'string', minLength: 1 },
  cmd: { type: ['string', 'array'], minLength: 1, minItems: 1, items: { type: 'string' } },
  replicas: { type: 'integer', minimum: 0, maximum: 1000 },
  env: {
    type: ['object', 'array'],
    additionalProperties: { type: ['string', 'number', 'boolean'] },
    items: { type: 'string' },
  },
  constraints: { type: ['string', 'array'], items: { type: 'string' } },
  spread: { type: 'string' },
  // name:/path[:ro], or a map that can also say how many copies of each replica's volume are kept.
  volumes: {
    type: 'array',
    items: {
      type: ['string', 'object'],
      required: ['name', 'path'],
      additionalProperties: false,
      properties: {
        name: { type: 'string' },
        path: { type: 'string' },
        readonly: { type: 'boolean' },
        replicas: { type: 'integer', minimum: 1, maximum: 16 },
      },
    },
  },
  // YAML 1.2 reads `no` as the string "no", but `false` is the boolean: both mean the same here.
  restart: { enum: ['always', 'on-failure', 'no', false] },
  // [IP:]HOSTPORT:PORT[/tcp|/udp], as -p: published by the kernel on each replica's host.
  ports: { type: 'array', items: { type: 'string' } },
};
const SERVICE_KEYS = Object.keys(serviceProperties).join(', ');

// allErrors, so that the one reported can be the first in the file rather than the first the schema meets.
const validate = new Ajv({ allErrors: true, allowUnionTypes: true }).compile<Record<string, RawService>>({
  type: 'object',
  additionalProperties: {
    type: 'object',
    required: ['image'],
    additionalProperties: false,
    properties: serviceProperties,
  },
});

const NAME_RULE = 'lowercase letters, digits and -, at most 32, not starting or ending with -';
const LABEL = /^[a-zA-Z0-9_.-]+$/;
const CONSTRAINT = /^([a-zA-Z0-9_.-]+)\s*(==|!=)\s*(\S+)$/;
const VOLUME = /^([a-zA-Z0-9][a-zA-Z0-9_.-]*):(\/[^:]*)(?::(ro|rw))?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ENV_ITEM = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s;

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  array: 'a list',
  object: 'a map',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
};

function schemaMessage(e: ErrorObject): string {
  switch (e.keyword) {
    case 'type': {
      const words = String(e.params.type)
        .split(',')
        .map((t) => TYPE_WORDS[t] ?? t);
      return `must be ${words.length > 1 ? `${words.slice(0, -1).join(', ')} or ${words.at(-1)}` : words[0]}`;
    }
    case 'enum':
      return `must be one of ${(e.params.allowedValues as unknown[]).filter((v) => typeof v === 'string').join(', ')}`;
    case 'minLength':
    case 'minItems':
      return 'must not be empty';
    case 'required':
      return `missing required key "${String(e.params.missingProperty)}"`;
    case 'additionalProperties':
      return `unknown key ${JSON.stringify(e.params.additionalProperty)} (expected ${/\/volumes\/\d+$/.test(e.instancePath) ? 'name, path, readonly, replicas' : SERVICE_KEYS})`;
    default:
      return e.message ?? 'invalid';
  }
}

type Path = (string | number)[];
interface Place {
  label: string;
  key?: YamlNode;
  value?: YamlNode;
}

const keyText = (k: unknown): string => (isScalar(k) ? String(k.value) : String(k));
const labelPart = (s: string | number): string =>
  typeof s === 'number' ? `[${s}]` : /^[A-Za-z0-9_-]+$/.test(s) ? `.${s}` : `[${JSON.stringify(s)}]`;

/** The YAML key and value at `path` under the top-level map, and its label: services.web.volumes[1]. */
function locate(root: YamlNode, path: Path): Place {
  let place: Place = { label: 'services', value: root };
  for (const [i, seg] of path.entries()) {
    const node = place.value;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === String(seg));
      if (pair) {
        place = {
          label: place.label + labelPart(String(seg)),
          key: pair.key as YamlNode,
          value: (pair.value ?? undefined) as YamlNode | undefined,
        };
        continue;
      }
    } else if (isSeq(node) && node.items[Number(seg)] !== undefined) {
      place = { label: place.label + labelPart(Number(seg)), value: node.items[Number(seg)] as YamlNode };
      continue;
    }
    // Not in the YAML as such (an alias, say): name the whole path, point at the deepest node found.
    return {
      ...place,
      label:
        place.label +
        path
          .slice(i)
          .map((s) => labelPart(s))
          .join(''),
    };
  }
  return place;
}

/** Whether a document of a manifest is a NetworkPolicy (carried beside the services, applied with the stack as namespace). */
const POLICY_DOC = /^kind:\s*["']?NetworkPolicy["']?\s*(#.*)?$/m;

/**
 * A manifest's services document: the text with its NetworkPolicy documents and the `---` lines
 * blanked, so that what is left is one document whose lines and columns are the file's own.
 */
export function servicesOf(text: string): { services: string; policies: boolean } {
  const lines = text.split('\n');
  const chunks: { from: number; to: number }[] = [];
  let from = 0;
  for (const [i, l] of lines.entries())
    if (/^---(\s|$)/.test(l) || /^\.\.\.\s*$/.test(l)) {
      chunks.push({ from, to: i });
      from = i + 1;
    }
  if (chunks.length === 0) return { services: text, policies: false };
  chunks.push({ from, to: lines.length });
  let policies = false;
  const out = lines.map((l) => (/^---(\s|$)/.test(l) || /^\.\.\.\s*$/.test(l) ? '' : l));
  for (const c of chunks) {
    if (!POLICY_DOC.test(lines.slice(c.from, c.to).join('\n'))) continue;
    policies = true;
    for (let i = c.from; i < c.to; i++) out[i] = '';
  }
  return { services: out.join('\n'), policies };
}

/**
 * The stack `stackName` from manifest text: a YAML map of service name to service. `source` names
 * the text in messages (a file name). Throws a one-line UserError on the first mistake.
 */
export function parseManifest(text: string, stackName: string, source = 'manifest'): Stack {
  if (!NAME.test(stackName)) throw new UserError(`invalid stack name ${JSON.stringify(stackName)}: ${NAME_RULE}`);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number, msg: string) => {
    const { line, col } = lines.linePos(offset);
    return new UserError(`${source}:${line}:${col}: ${msg.trim().split('\n')[0]}`);
  };
  const err = (node: YamlNode | undefined, msg: string) => at(node?.range?.[0] ?? 0, msg);
  if (doc.errors.length) throw at(doc.errors[0].pos[0], doc.errors[0].message);

  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null))
    throw at(0, 'no services: expected a map of service name to service');
  if (!isMap(root)) throw err(root, 'expected a map of service name to service');
  if (!root.items.length) throw err(root, 'no services');
  for (const p of root.items) {
    const name = keyText(p.key);
    if (!NAME.test(name)) throw err(p.key as YamlNode, `invalid service name ${JSON.stringify(name)}: ${NAME_RULE}`);
  }

  let data: unknown;
  // Aliases are resolved only here: an unknown anchor or an alias bomb fails, at no one place.
  try {
    data = doc.toJS();
  } catch (e) {
    throw at(0, (e as Error).message);
  }

  const fail = (path: Path, msg: string) => {
    const p = locate(root, path);
    return err(p.value ?? p.key, `${p.label}: ${msg}`);
  };
  const failKey = (path: Path, msg: string) => {
    const p = locate(root, path);
    return err(p.key ?? p.value, `${p.label}: ${msg}`);
  };

  if (!validate(data)) {
    const found = validate.errors!.map((e) => {
      const path = e.instancePath
        .split('/')
        .slice(1)
        .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
      const place = locate(root, path);
      // An unknown key is shown where it is written; a missing one at the name of its service.
      const node =
        e.keyword === 'additionalProperties'
          ? locate(root, [...path, String(e.params.additionalProperty)]).key
          : e.keyword === 'required'
            ? place.key
            : (place.value ?? place.key);
      return { e, place, offset: node?.range?.[0] ?? 0 };
    });
    // A missing key is often a misspelt one: report the misspelling (an unknown key) before it.
    const rank = (f: (typeof found)[number]) => (f.e.keyword === 'required' ? 1 : 0);
    found.sort((a, b) => rank(a) - rank(b) || a.offset - b.offset);
    const { e, place, offset } = found[0];
    throw at(offset, `${place.label}: ${schemaMessage(e)}`);
  }

  const services: [string, ServiceSpec][] = Object.entries(data).map(([name, raw]) => {
    const env: [string, string][] = [];
    if (Array.isArray(raw.env)) {
      raw.env.forEach((item, i) => {
        const m = ENV_ITEM.exec(item);
        if (!m) throw fail([name, 'env', i], `invalid env ${JSON.stringify(item)}: expected NAME=value`);
        if (env.some(([k]) => k === m[1])) throw fail([name, 'env', i], `env ${m[1]} set twice`);
        env.push([m[1], m[2]]);
      });
    } else {
      for (const [k, v] of Object.entries(raw.env ?? {})) {
        if (!ENV_NAME.test(k))
          throw failKey(
            [name, 'env', k],
            `invalid env name ${JSON.stringify(k)}: letters, digits and _, not starting with a digit`,
          );
        env.push([k, String(v)]);
      }
    }

    const constraints: Constraint[] = [];
    const list = typeof raw.constraints === 'string' ? [raw.constraints] : (raw.constraints ?? []);
    list.forEach((text, i) => {
      const path = typeof raw.constraints === 'string' ? [name, 'constraints'] : [name, 'constraints', i];
      const m = CONSTRAINT.exec(text.trim());
      if (!m) throw fail(path, `invalid constraint ${JSON.stringify(text)}: expected label==value or label!=value`);
      const c: Constraint = { label: m[1], op: m[2] as Constraint['op'], value: m[3] };
      const clash = constraints.find(
        (d) => d.label === c.label && (d.op === c.op ? c.op === '==' && d.value !== c.value : d.value === c.value),
      );
      const show = (x: Constraint) => JSON.stringify(`${x.label}${x.op}${x.value}`);
      if (clash) throw fail(path, `impossible constraints: ${show(clash)} and ${show(c)} cannot both hold`);
      constraints.push(c);
    });

    if (raw.spread !== undefined && !LABEL.test(raw.spread)) {
      throw fail([name, 'spread'], `invalid label ${JSON.stringify(raw.spread)}: letters, digits, _ . -`);
    }

    const volumes: VolumeMount[] = [];
    (raw.volumes ?? []).forEach((item, i) => {
      const text = typeof item === 'string' ? item : `${item.name}:${item.path}${item.readonly ? ':ro' : ''}`;
      const m = VOLUME.exec(text);
      if (!m)
        throw fail(
          [name, 'volumes', i],
          `invalid volume ${JSON.stringify(text)}: expected name:/absolute/path or name:/absolute/path:ro`,
        );
      // Docker refuses two mounts on one path, but only when each replica is created.
      if (volumes.some((v) => v.path === m[2])) throw fail([name, 'volumes', i], `two volumes mounted on ${m[2]}`);
      if (volumes.some((v) => v.name === m[1])) throw fail([name, 'volumes', i], `volume ${m[1]} mounted twice`);
      volumes.push({
        name: m[1],
        path: m[2],
        readOnly: m[3] === 'ro',
        replicas: typeof item === 'string' ? 1 : (item.replicas ?? 1),
      });
    });

    const ports: string[] = [];
    const published: PublishSpec[] = [];
    (raw.ports ?? []).forEach((text, i) => {
      const p = parsePort(text);
      if (!p)
        throw fail([name, 'ports', i], `invalid port ${JSON.stringify(text)}: expected [IP:]HOSTPORT:PORT[/tcp|/udp]`);
      // One host port a protocol, whatever address it is on: each replica's container takes it on its host.
      if (published.some((q) => q.hostPort === p.hostPort && q.proto === p.proto))
        throw fail([name, 'ports', i], `host port ${p.hostPort}/${p.proto} published twice`);
      published.push(p);
      ports.push(`${p.hostIp ? `${p.hostIp}:` : ''}${p.hostPort}:${p.port}/${p.proto}`);
    });

    const spec: ServiceSpec = {
      image: raw.image,
      // Absent fields are left out, not undefined, so that deepEqual and the canonical form agree.
      ...(raw.cmd !== undefined && { cmd: typeof raw.cmd === 'string' ? ['sh', '-c', raw.cmd] : raw.cmd }),
      replicas: raw.replicas ?? 1,
      // fromEntries, so that a name like __proto__ is an entry and not the prototype.
      env: Object.fromEntries(env),
      constraints,
      ...(raw.spread !== undefined && { spread: raw.spread }),
      volumes,
      restart: raw.restart === false ? 'no' : (raw.restart ?? 'always'),
      ...(ports.length && { ports }),
    };
    return [name, spec];
  });
  return { name: stackName, services: Object.fromEntries(services) };
}

const sortKeys = (v: unknown): unknown =>
  Array.isArray(v)
    ? v.map(sortKeys)
    : v !== null && typeof v === 'object'
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
        )
      : v;

/**
 * A service as stable JSON (keys sorted at every level, absent fields left out): equal iff the service is unchanged.
 */
export const canonicalService = (s: ServiceSpec): string => JSON.stringify(sortKeys(s));

/**
 * A stack as every router stores it: services in name order, each in canonical form, so equal manifests are equal text.
 */
export const canonicalStack = (s: Stack): string => JSON.stringify(sortKeys(s));

/**
 * A short name for what a replica's container runs: the first 12 hex digits of the sha256 of the
 * container's part of the service (not replicas, constraints or spread: scaling or moving a service
 * restarts nothing). A replica whose container has another digest is rolled.
 */
export const serviceDigest = ({
  replicas: _r,
  constraints: _c,
  spread: _s,
  volumes,
  ...container
}: ServiceSpec): string =>
  createHash('sha256')
    .update(JSON.stringify(sortKeys({ ...container, volumes: volumes.map(({ replicas: _n, ...mount }) => mount) })))
    .digest('hex')
    .slice(0, 12);
