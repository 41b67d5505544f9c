import { BadRequest } from './errors.js';

/** How one query parameter is read: returns the value, or throws BadRequest with the reason. */
export type ParamParser<T> = (raw: string, name: string) => T;

/** The parameters a route accepts; anything else in the query string is a mistake worth a 400. */
export type QuerySpec = Record<string, ParamParser<unknown>>;

export function intParam(min: number, max: number): ParamParser<number> {
  return (raw, name) => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min || n > max) throw new BadRequest(`invalid query parameter ${name}="${raw}": expected an integer ${min}..${max}`);
    return n;
  };
}

/**
 * Parses the query string of a request URL against spec. Strict on purpose: a typo in a
 * parameter name would otherwise be ignored silently and look like a bug in the router.
 */
export function parseQuery(search: string, spec: QuerySpec = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!search) return out;
  for (const part of search.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    let name: string, raw: string;
    try {
      name = decodeURIComponent((eq < 0 ? part : part.slice(0, eq)).replace(/\+/g, ' '));
      raw = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, ' '));
    } catch {
      throw new BadRequest(`malformed query string: bad percent-encoding in "${part.slice(0, 40)}"`);
    }
    const parse = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (!parse) {
      const known = Object.keys(spec);
      throw new BadRequest(`unknown query parameter "${name.slice(0, 40)}"${known.length ? ` (accepted: ${known.join(', ')})` : ' (this endpoint takes none)'}`);
    }
    if (Object.hasOwn(out, name)) throw new BadRequest(`query parameter "${name}" given twice`);
    out[name] = parse(raw, name);
  }
  return out;
}
