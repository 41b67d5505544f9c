import type { Method, Route } from '../common/route.js';

interface Compiled {
  route: Route;
  segments: { name?: string; literal?: string; optional: boolean }[];
}

export type Match = { route: Route; raw: Record<string, string> } | { allowed: Method[] } | undefined;

/** Every registered route, matched by path segments; `:name` segments capture, `:name?` may be absent. */
export class RouteTable {
  private readonly routes: Compiled[] = [];

  add(route: Route): void {
    const key = `${route.method} ${route.path}`;
    if (this.routes.some((c) => `${c.route.method} ${c.route.path}` === key))
      throw new Error(`route ${key} is registered twice`);
    const segments = route.path
      .split('/')
      .slice(1)
      .map((s) =>
        s.startsWith(':')
          ? { name: s.slice(1).replace(/\?$/, ''), optional: s.endsWith('?') }
          : { literal: s, optional: false },
      );
    this.routes.push({ route, segments });
  }

  /** The route for a method and path; or the methods the path allows; or undefined for a path nobody serves. */
  match(method: string, path: string): Match {
    const parts = path.split('/').slice(1);
    const allowed: Method[] = [];
    for (const c of this.routes) {
      const raw = capture(c, parts);
      if (!raw) continue;
      if (c.route.method === method) return { route: c.route, raw };
      allowed.push(c.route.method);
    }
    return allowed.length ? { allowed: [...new Set(allowed)] } : undefined;
  }
}

function capture(c: Compiled, parts: string[]): Record<string, string> | undefined {
  if (parts.length > c.segments.length || parts.length < c.segments.filter((s) => !s.optional).length) return undefined;
  const raw: Record<string, string> = {};
  for (const [i, s] of c.segments.entries()) {
    const p = parts[i];
    if (p === undefined) continue; // an optional tail segment
    if (s.literal !== undefined) {
      if (p !== s.literal) return undefined;
    } else if (p === '') return undefined;
    else raw[s.name!] = p;
  }
  return raw;
}
