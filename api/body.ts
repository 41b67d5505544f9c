import type http from 'node:http';
import { UserError } from '../common/errors.js';
import type { BodySpec } from '../common/route.js';

/** A manifest or a file of NetworkPolicies (a thousand rules is some 100 KiB) fits. */
const MAX_BODY = 1024 * 1024;

/** Reads a JSON object body (empty means {}), at most 1 MiB. */
export function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > MAX_BODY) {
        reject(new UserError('request body too large'));
        req.destroy();
      }
    });
    req.on('end', () => {
      try {
        const v = body ? JSON.parse(body) : {};
        if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error();
        resolve(v as Record<string, unknown>);
      } catch {
        reject(new UserError('request body is not a JSON object'));
      }
    });
    req.on('error', reject);
  });
}

const is: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === 'string',
  'string[]': (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'),
  boolean: (v) => typeof v === 'boolean',
};

/** Checks a body against its route's spec: every field of the right type, required ones present, no others. */
export function checkBody(body: Record<string, unknown>, spec: BodySpec, what: string): Record<string, unknown> {
  for (const key of Object.keys(body)) {
    if (!Object.hasOwn(spec, key))
      throw new UserError(
        `${what}: unknown field "${key.slice(0, 40)}" (accepted: ${Object.keys(spec).join(', ') || 'none'})`,
      );
  }
  for (const [key, type] of Object.entries(spec)) {
    const optional = type.endsWith('?');
    const base = optional ? type.slice(0, -1) : type;
    if (body[key] === undefined || body[key] === null) {
      if (!optional)
        throw new UserError(`${what} needs ${key} (${base === 'string[]' ? 'a list of strings' : `a ${base}`})`);
      delete body[key];
    } else if (!is[base](body[key]))
      throw new UserError(`${what}: ${key} must be ${base === 'string[]' ? 'a list of strings' : `a ${base}`}`);
  }
  return body;
}
