import http from 'node:http';
import { log } from '../common/log.js';
import { NotFound, statusOf } from '../common/errors.js';
import { intParam, type Method, type Route } from '../common/route.js';
import type { Subsystem } from '../common/subsystem.js';
import { VERSION } from '../contract/config.js';
import { checkBody, readJson } from './body.js';
import { ReportStream } from './events.js';
import { SubsystemMetrics } from './metrics.js';
import { type Asset, loadPageAssets } from './page-assets.js';
import { parseQuery } from './query.js';
import { RouteTable } from './route-table.js';
import { renderStatus } from './status.js';

export interface ApiOptions {
  subsystems: readonly Subsystem[];
  stop(): void;
  /** Calls back when something the status page shows changed (peers, connections), to push it at once. */
  onChange?(listener: () => void): void;
  /** How long a client may take to send its headers, and its whole request (ms). */
  timeouts?: { headers: number; request: number };
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendRaw(
  res: http.ServerResponse,
  type: string,
  body: string | Buffer,
  headers: http.OutgoingHttpHeaders = {},
  status = 200,
): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

// The page loads nothing from anywhere but this router: it must work with no internet access,
// and a policy this strict also keeps an injected peer nickname from running script.
const PAGE_HEADERS = {
  'cache-control': 'no-cache',
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
};

/**
 * A browser on this host can be made to send requests here by any web site it visits. Reading
 * is harmless (the same-origin policy hides the answer), but a state-changing POST is not:
 * refuse any that a browser marks as coming from another origin. The CLI sends no Origin.
 */
function crossOrigin(req: http.IncomingMessage): boolean {
  if (req.headers['sec-fetch-site'] === 'cross-site') return true;
  const origin = req.headers.origin;
  if (!origin) return false;
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}

/**
 * DNS rebinding: a web page can point a name of its own at 127.0.0.1 and then read and drive this
 * API from the user's browser, same-origin as far as the browser knows. Its requests still carry
 * that name as Host: answer only requests that name the address we listen on, or localhost.
 */
function hostAllowed(req: http.IncomingMessage, listenHost: string, port: () => number): boolean {
  const h = req.headers.host;
  if (h === undefined) return true; // not a browser (HTTP/1.0 tools): rebinding needs one
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(h.toLowerCase());
  if (!m || (m[2] !== undefined ? Number(m[2]) : 80) !== port()) return false;
  const name = m[1].replace(/^\[(.*)\]$/, '$1');
  return (
    name === 'localhost' ||
    name === '127.0.0.1' ||
    name === '::1' ||
    name === listenHost ||
    (listenHost === '0.0.0.0' && /^\d+\.\d+\.\d+\.\d+$/.test(name))
  );
}

/** A handler result that was already written to the response (pages, metrics, event streams). */
const WRITTEN = Symbol('written');
const TEXT = 'text/plain; charset=utf-8';
const withNewline = (t: string) => (t === '' || t.endsWith('\n') ? t : `${t}\n`);

/** Text for routes that have it, unless the client asks for JSON (Weave's own API answers text). */
const wantsText = (req: http.IncomingMessage, r?: Route) =>
  !!r?.text && !/application\/json/.test(req.headers.accept ?? '');

interface RawInput {
  params: Record<string, string>;
  query: Record<string, unknown>;
  req: http.IncomingMessage;
  res: http.ServerResponse;
}

/** The API's own routes see the request and response (pages, event streams); subsystems' never do. */
const raw = (
  method: Method,
  path: string,
  handle: (i: RawInput) => unknown,
  extra: Partial<Pick<Route, 'query' | 'text'>> = {},
): Route => ({ method, path, handle, ...extra }) as unknown as Route;

/** /report: every subsystem's fields merged, plus their `weave status` sections. */
function reportOf(subsystems: readonly Subsystem[]): () => Record<string, unknown> {
  return () =>
    Object.assign({}, ...subsystems.map((s) => s.report?.() ?? {}), {
      status: subsystems.flatMap((s) => s.status?.() ?? []),
    });
}

/** The HTTP API: the status page, /report, /events, /metrics, /status, /stop, and every subsystem's routes. */
export function startApi(addr: string, o: ApiOptions): Promise<http.Server> {
  const report = reportOf(o.subsystems);
  const metrics = new SubsystemMetrics(o.subsystems.flatMap((s) => s.metrics ?? []));
  const stream = new ReportStream(report);
  o.onChange?.(() => stream.changed());
  const views = Object.assign({}, ...o.subsystems.map((s) => s.views ?? {})) as Record<string, () => string>;
  let assets: Map<string, Asset> | undefined;
  let assetsError = '';
  try {
    assets = loadPageAssets();
  } catch (err) {
    assetsError = `the status page files are missing: ${(err as Error).message}`;
    log.warn(assetsError);
  }

  const table = new RouteTable();
  const own: Route[] = [
    ...['/', '/app.js', '/graph.js', '/style.css'].map((path) =>
      raw('GET', path, ({ res }) => {
        const a = assets?.get(path);
        if (!a) throw new Error(assetsError);
        sendRaw(res, a.type, a.body, PAGE_HEADERS);
        return WRITTEN;
      }),
    ),
    raw('GET', '/report', () => report()),
    raw(
      'GET',
      '/events',
      ({ query, req, res }) => {
        stream.open(req, res, (query.interval as number | undefined) ?? 1);
        return WRITTEN;
      },
      { query: { interval: intParam(1, 60) } },
    ),
    raw('GET', '/metrics', async ({ res }) => {
      sendRaw(res, metrics.contentType, await metrics.scrape(), { 'cache-control': 'no-store' });
      return WRITTEN;
    }),
    raw('GET', '/status', () => renderStatus(VERSION, o.subsystems), { text: (t: string) => t }),
    raw(
      'GET',
      '/status/:view',
      ({ params }) => {
        const v = Object.hasOwn(views, params.view) ? views[params.view] : undefined;
        if (!v)
          throw new NotFound(
            `unknown status section "${params.view.slice(0, 40)}": expected ${Object.keys(views).join(', ')}`,
          );
        return v();
      },
      { text: (t: string) => t },
    ),
    raw('POST', '/stop', () => {
      setImmediate(() => o.stop());
      return { stopping: true };
    }),
  ];
  for (const r of [...own, ...o.subsystems.flatMap((s) => s.routes ?? [])]) table.add(r);

  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, '$1'),
    port = Number(addr.slice(i + 1));
  const t = o.timeouts ?? { headers: 10_000, request: 30_000 };
  // A client that trickles its request in cannot hold a connection (and its buffers) for long.
  const server = http.createServer(
    {
      headersTimeout: t.headers,
      requestTimeout: t.request,
      connectionsCheckingInterval: Math.min(1000, t.headers / 2),
    },
    async (req, res) => {
      const url = req.url ?? '/';
      if (!hostAllowed(req, host, () => (server.address() as { port: number }).port)) {
        return send(res, 403, {
          error: `this API answers requests for ${host}:${port} or localhost, not for "${String(req.headers.host).slice(0, 80)}"`,
        });
      }
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const m = table.match(req.method ?? '', path);
      const route = m && 'route' in m ? m.route : undefined;
      const fail = (status: number, message: string, headers: http.OutgoingHttpHeaders = {}) =>
        wantsText(req, route)
          ? sendRaw(res, TEXT, `${message}\n`, headers, status)
          : send(res, status, { error: message }, headers);
      if (!m) return fail(404, `no such endpoint: ${req.method} ${path.slice(0, 100)}`);
      if (!route) {
        const allow = (m as { allowed: string[] }).allowed.join(', ');
        return fail(405, `${req.method} is not allowed on ${path.slice(0, 100)}: use ${allow}`, { allow });
      }
      if (req.method !== 'GET' && crossOrigin(req)) return fail(403, 'cross-origin requests may not change the router');
      try {
        const raw = (m as { raw: Record<string, string> }).raw;
        const params = Object.fromEntries(
          Object.entries(raw).map(([k, v]) => [k, route.params?.[k] ? route.params[k](v, k) : v]),
        );
        const query = parseQuery(q < 0 ? '' : url.slice(q + 1), route.query);
        const body = route.body ? checkBody(await readJson(req), route.body, path.slice(1)) : {};
        const result = await (route.handle as (i: object) => unknown)({ params, query, body, req, res });
        if (result === WRITTEN) return;
        if (wantsText(req, route)) sendRaw(res, TEXT, withNewline((route.text as (r: unknown) => string)(result)));
        else send(res, 200, result);
      } catch (err) {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        fail(statusOf(err), (err as Error).message);
      }
    },
  );
  // Event streams never end on their own: end them when the API closes, or close() waits forever.
  const close = server.close.bind(server);
  server.close = (cb?: (err?: Error) => void) => {
    stream.close();
    return close(cb);
  };
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          err.code === 'EADDRINUSE'
            ? `HTTP address ${addr} is already in use`
            : `cannot serve HTTP on ${addr}: ${err.message}`,
        ),
      ),
    );
    server.listen(port, host, () => resolve(server));
  });
}
