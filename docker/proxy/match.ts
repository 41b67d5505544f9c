// Which hooks a request goes through. Patterns are compiled once; a request is split once and
// compared segment by segment, so unhooked requests (nearly all of them) pay next to nothing.
import type { Adapter, HookedEndpoint } from './hooks.js';

/** An API version prefix: /v1.41, /v1 (the docker CLI sends one on every request after _ping). */
const VERSION_SEGMENT = /^v\d+(?:\.\d+)?$/;

export interface Route {
  method: string;
  segments: string[];
  pre: Adapter[];
  post: Adapter[];
}
export interface Hooks {
  pre: Adapter[];
  post: Adapter[];
}

const segmentsOf = (path: string): string[] => path.split('?')[0].split('/').filter(Boolean);

/**
 * A pattern's segments; Powerstrip's leading "/*" (or a literal version) stands for the version prefix and is dropped.
 */
export function patternSegments(pattern: string): string[] {
  const s = segmentsOf(pattern);
  return s.length > 1 && (s[0] === '*' || VERSION_SEGMENT.test(s[0])) ? s.slice(1) : s;
}

/** A request path's segments without its query string and API version prefix. */
export function requestSegments(url: string): string[] {
  const s = segmentsOf(url);
  return s.length && VERSION_SEGMENT.test(s[0]) ? s.slice(1) : s;
}

/** The API version a request names ("1.41"), if any. */
export function requestVersion(url: string): string | undefined {
  const m = /^\/v(\d+(?:\.\d+)?)\//.exec(url);
  return m?.[1];
}

export function compileRoutes(endpoints: HookedEndpoint[]): Route[] {
  return endpoints.map((e) => ({
    method: e.method.toUpperCase(),
    segments: patternSegments(e.pattern),
    pre: e.pre,
    post: e.post,
  }));
}

function matches(route: Route, method: string, segs: string[]): boolean {
  if (route.method !== method || route.segments.length !== segs.length) return false;
  return route.segments.every((p, i) => p === '*' || p === segs[i]);
}

/** The hooks of every route the request matches (in route order, each adapter once); undefined when none does. */
export function hooksFor(routes: Route[], method: string, url: string): Hooks | undefined {
  if (routes.length === 0) return undefined;
  const m = method.toUpperCase();
  const segs = requestSegments(url);
  let found: Hooks | undefined;
  for (const r of routes) {
    if (!matches(r, m, segs)) continue;
    found ??= { pre: [], post: [] };
    for (const a of r.pre) if (!found.pre.includes(a)) found.pre.push(a);
    for (const a of r.post) if (!found.post.includes(a)) found.post.push(a);
  }
  return found;
}

/**
 * Combines endpoint lists (the built-in defaults first, then a config file's): one entry per
 * method and pattern (compared without the version placeholder), hooks in list order, and an
 * adapter named twice for the same endpoint runs once, at its first place.
 */
export function mergeEndpoints(...lists: HookedEndpoint[][]): HookedEndpoint[] {
  const byKey = new Map<string, HookedEndpoint>();
  for (const e of lists.flat()) {
    const method = e.method.toUpperCase();
    const pattern = `/${patternSegments(e.pattern).join('/')}`;
    const key = `${method} ${pattern}`;
    const have = byKey.get(key) ?? { method, pattern, pre: [], post: [] };
    byKey.set(key, have);
    for (const a of e.pre) if (!have.pre.includes(a)) have.pre.push(a);
    for (const a of e.post) if (!have.post.includes(a)) have.post.push(a);
  }
  return [...byKey.values()];
}
