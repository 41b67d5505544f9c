import { UserError } from '../common/errors.js';
import type { ParamSpec } from '../common/route.js';

/**
 * Parses the query string of a request URL against spec. Strict on purpose: a typo in a
 * parameter name would otherwise be ignored silently and look like a bug in the router.
 */
export function parseQuery(search: string, spec: ParamSpec = {}): Record<string, unknown> {
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
      throw new UserError(`malformed query string: bad percent-encoding in "${part.slice(0, 40)}"`);
    }
    const parse = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (!parse) {
      const known = Object.keys(spec);
      throw new UserError(
        `unknown query parameter "${name.slice(0, 40)}"${known.length ? ` (accepted: ${known.join(', ')})` : ' (this endpoint takes none)'}`,
      );
    }
    if (Object.hasOwn(out, name)) throw new UserError(`query parameter "${name}" given twice`);
    out[name] = parse(raw, `query parameter ${name}`);
  }
  return out;
}
