// External adapters in Powerstrip's protocol (version 1), and the adapters file that names them.
//
// An adapter is an HTTP endpoint: the proxy POSTs it {"PowerstripProtocolVersion":1,"Type":"pre-hook",
// "ClientRequest":{...}} and expects {"PowerstripProtocolVersion":1,"ModifiedClientRequest":{...}}
// back (post-hook: ClientRequest + ServerResponse in, ModifiedServerResponse out). The file is
// Powerstrip's adapters.yml: endpoints name adapters, adapters name URLs.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node as YamlNode, type YAMLMap } from 'yaml';
import { UserError } from '../../common/errors.js';
import { HookError, type Adapter, type ClientRequest, type HookedEndpoint, type ServerResponse } from './hooks.js';

export { mergeEndpoints } from './match.js';

export const PROTOCOL_VERSION = 1;
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_ANSWER_BYTES = 4 << 20;

export interface PowerstripOptions {
  timeoutMs?: number;
}

/** Adapters answer Body as JSON text; some send the object itself or null: take those too. */
const bodyText = (v: unknown): string | undefined =>
  typeof v === 'string'
    ? v
    : v === null || v === undefined
      ? ''
      : typeof v === 'object'
        ? JSON.stringify(v)
        : undefined;

function asClientRequest(v: unknown): ClientRequest | undefined {
  const o = v as Record<string, unknown> | null;
  const Body = bodyText(o?.Body);
  if (
    typeof o?.Method !== 'string' ||
    !/^[A-Za-z]+$/.test(o.Method) ||
    typeof o.Request !== 'string' ||
    !o.Request.startsWith('/') ||
    Body === undefined
  )
    return undefined;
  return { Method: o.Method.toUpperCase(), Request: o.Request, Body };
}

function asServerResponse(v: unknown): ServerResponse | undefined {
  const o = v as Record<string, unknown> | null;
  const Body = bodyText(o?.Body);
  const code = Number(o?.Code);
  if (!Number.isInteger(code) || code < 100 || code > 599 || Body === undefined) return undefined;
  return { ContentType: typeof o?.ContentType === 'string' ? o.ContentType : '', Body, Code: code };
}

/** An adapter's own words about a failure: a JSON "message", else its first line of text. */
function reason(text: string): string {
  let msg = text;
  try {
    msg = ((JSON.parse(text) as { message?: unknown }).message as string) ?? text;
  } catch {
    /* plain text */
  }
  msg = String(msg).trim().split('\n')[0];
  return msg.length > 200 ? `${msg.slice(0, 200)}...` : msg;
}

/** The hook for an adapter at `url` (http only): each call is one POST; failures become HookErrors naming it. */
export function powerstripAdapter(name: string, url: string, o: PowerstripOptions = {}): Adapter {
  const target = new URL(url);
  if (target.protocol !== 'http:') throw new UserError(`adapter "${name}": ${url} is not an http:// URL`);
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const fail = (what: string, status = 500) => new HookError(`powerstrip adapter "${name}" (${url}): ${what}`, status);

  const call = (payload: object): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const data = JSON.stringify({ PowerstripProtocolVersion: PROTOCOL_VERSION, ...payload });
      const req = http.request(
        target,
        { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_ANSWER_BYTES) req.destroy(fail(`answer larger than ${MAX_ANSWER_BYTES} bytes`));
            else chunks.push(c);
          });
          res.on('error', (err) => reject(err instanceof HookError ? err : fail(err.message)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 500;
            // An adapter refusing with 4xx is a verdict on the request: the client sees that status.
            if (status < 200 || status >= 300)
              return reject(
                fail(
                  `HTTP ${status}${text.trim() ? `: ${reason(text)}` : ''}`,
                  status >= 400 && status < 500 ? status : 500,
                ),
              );
            try {
              const answer = JSON.parse(text) as Record<string, unknown>;
              if (answer?.PowerstripProtocolVersion !== PROTOCOL_VERSION)
                return reject(
                  fail(
                    `answered protocol version ${JSON.stringify(answer?.PowerstripProtocolVersion)}, expected ${PROTOCOL_VERSION}`,
                  ),
                );
              resolve(answer);
            } catch {
              reject(fail(`answered something that is not JSON: ${reason(text) || '(empty)'}`));
            }
          });
        },
      );
      const timer = setTimeout(() => req.destroy(fail(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      req.on('close', () => clearTimeout(timer));
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(err instanceof HookError ? err : fail(`cannot reach it: ${err.code ?? err.message}`)),
      );
      req.end(data);
    });

  return {
    name,
    async pre(req) {
      const answer = await call({ Type: 'pre-hook', ClientRequest: req });
      const modified = asClientRequest(answer.ModifiedClientRequest);
      if (!modified) throw fail('answer has no valid ModifiedClientRequest {Method, Request, Body}');
      return modified;
    },
    async post(req, res) {
      const answer = await call({ Type: 'post-hook', ClientRequest: req, ServerResponse: res });
      const modified = asServerResponse(answer.ModifiedServerResponse);
      if (!modified) throw fail('answer has no valid ModifiedServerResponse {ContentType, Body, Code}');
      return modified;
    },
  };
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Reads a Powerstrip adapters.yml: `endpoints` maps "METHOD /path" to {pre: [names], post: [names]},
 * `adapters` maps names to http:// URLs; a name may also be one of builtIn. Every mistake is one
 * line naming the file, line and column.
 */
export function loadAdapterConfig(
  path: string,
  builtIn: Record<string, Adapter>,
  o: PowerstripOptions = {},
): HookedEndpoint[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read the adapters file ${path}: ${(err as Error).message}`);
  }
  return parseAdapterConfig(text, path, builtIn, o);
}

export function parseAdapterConfig(
  text: string,
  file: string,
  builtIn: Record<string, Adapter>,
  o: PowerstripOptions = {},
): HookedEndpoint[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number, msg: string) => {
    const { line, col } = lines.linePos(offset);
    return new UserError(`${file}:${line}:${col}: ${msg.split('\n')[0]}`);
  };
  const err = (node: YamlNode | null | undefined, msg: string) => at(node?.range?.[0] ?? 0, msg);
  if (doc.errors.length) throw at(doc.errors[0].pos[0], doc.errors[0].message);

  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return [];
  if (!isMap(root)) throw err(root, 'expected a mapping with version, endpoints and adapters');

  const section = (key: string): { key: YamlNode; value: YamlNode | null } | undefined => {
    const pair = root.items.find((p) => isScalar(p.key) && p.key.value === key);
    return pair ? { key: pair.key as YamlNode, value: pair.value as YamlNode | null } : undefined;
  };
  for (const p of root.items) {
    const k = isScalar(p.key) ? p.key.value : undefined;
    if (k !== 'version' && k !== 'endpoints' && k !== 'adapters') {
      throw err(
        p.key as YamlNode,
        `unknown key ${JSON.stringify(k ?? String(p.key))} (expected version, endpoints, adapters)`,
      );
    }
  }
  const version = section('version');
  if (version && !(isScalar(version.value) && version.value.value === PROTOCOL_VERSION)) {
    throw err(version.value ?? version.key, `version must be ${PROTOCOL_VERSION} (Powerstrip's adapter protocol)`);
  }
  const mapOf = (s: { key: YamlNode; value: YamlNode | null } | undefined, what: string): YAMLMap | undefined => {
    if (!s || s.value === null || (isScalar(s.value) && s.value.value === null)) return undefined;
    if (!isMap(s.value)) throw err(s.value, `${what} must be a mapping`);
    return s.value;
  };

  const adapters = new Map<string, Adapter>(Object.entries(builtIn));
  for (const p of mapOf(section('adapters'), 'adapters')?.items ?? []) {
    const key = p.key as YamlNode;
    const name = isScalar(p.key) ? String(p.key.value) : '';
    if (!NAME_RE.test(name)) throw err(key, `invalid adapter name ${JSON.stringify(name)} (letters, digits, _ . -)`);
    if (builtIn[name]) throw err(key, `adapter "${name}" is built in; give the external one another name`);
    const value = p.value as YamlNode | null;
    if (!isScalar(value) || typeof value.value !== 'string')
      throw err(value ?? key, `adapter "${name}": expected a URL like http://127.0.0.1:9000/adapter`);
    let url: URL;
    try {
      url = new URL(value.value);
    } catch {
      throw err(value, `adapter "${name}": invalid URL ${JSON.stringify(value.value)}`);
    }
    if (url.protocol !== 'http:')
      throw err(value, `adapter "${name}": ${url.protocol.slice(0, -1)} is not supported, only http://`);
    adapters.set(name, powerstripAdapter(name, value.value, o));
  }

  const endpoints: HookedEndpoint[] = [];
  for (const p of mapOf(section('endpoints'), 'endpoints')?.items ?? []) {
    const key = p.key as YamlNode;
    const spec = isScalar(p.key) ? String(p.key.value) : '';
    const m = /^([A-Za-z]+)\s+(\/[^\s?#]*)$/.exec(spec.trim());
    if (!m || !METHODS.has(m[1].toUpperCase()))
      throw err(
        key,
        `invalid endpoint ${JSON.stringify(spec)}: expected "METHOD /path", e.g. "POST /*/containers/create"`,
      );
    const value = p.value as YamlNode | null;
    if (!isMap(value)) throw err(value ?? key, `endpoint "${spec}": expected a mapping with pre and/or post lists`);
    const hooks: Record<'pre' | 'post', Adapter[]> = { pre: [], post: [] };
    for (const h of value.items) {
      const kind = isScalar(h.key) ? h.key.value : undefined;
      if (kind !== 'pre' && kind !== 'post')
        throw err(
          h.key as YamlNode,
          `endpoint "${spec}": unknown key ${JSON.stringify(kind ?? String(h.key))} (expected pre, post)`,
        );
      const list = h.value as YamlNode | null;
      if (list === null || (isScalar(list) && list.value === null)) continue;
      if (!isSeq(list)) throw err(list, `endpoint "${spec}": ${kind} must be a list of adapter names`);
      for (const item of list.items as (YamlNode | null)[]) {
        const name = isScalar(item) ? String(item.value) : undefined;
        const adapter = name === undefined ? undefined : adapters.get(name);
        if (!adapter)
          throw err(
            item ?? list,
            `endpoint "${spec}": unknown adapter ${JSON.stringify(name ?? '')} (known: ${[...adapters.keys()].join(', ') || 'none'})`,
          );
        if (!adapter[kind]) throw err(item, `endpoint "${spec}": adapter "${name}" has no ${kind} hook`);
        hooks[kind].push(adapter);
      }
    }
    if (hooks.pre.length || hooks.post.length) endpoints.push({ method: m[1].toUpperCase(), pattern: m[2], ...hooks });
  }
  return endpoints;
}
