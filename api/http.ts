import http from 'node:http';
import { log } from '../common/log.js';
import { BadRequest, NotFound } from './errors.js';
import { IpamHandlers, ipamRoute } from './ipam.js';
import { ReportStream } from './events.js';
import { MetricsReport, RouterMetrics } from './metrics.js';
import { Asset, loadPageAssets } from './page-assets.js';
import { intParam, parseQuery, QuerySpec } from './query.js';

export { BadRequest };

/** What the HTTP API serves; the daemon's composition root provides it. */
export interface ApiHandlers {
  report(): MetricsReport;
  attach(body: { target?: unknown; cidrs?: unknown; mac?: unknown }): Promise<unknown>;
  detach(body: { target?: unknown }): Promise<unknown>;
  /** `weave ps`: attachments, optionally only the given targets. */
  ps?(body: { targets?: unknown }): Promise<unknown>;
  expose?(body: { cidrs?: unknown }): Promise<unknown>;
  hide?(): Promise<unknown>;
  connect(body: { peers?: unknown; replace?: unknown }): Promise<unknown>;
  forget(body: { peers?: unknown }): Promise<unknown>;
  stop(): void;
  /** The IPAM endpoints (/ip/..., /ipam/...). */
  ipam?: IpamHandlers;
  /** Calls back when something the status page shows changed (peers, connections), to push it at once. */
  onChange?(listener: () => void): void;
}

const MAX_BODY = 64 * 1024;

function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > MAX_BODY) { reject(new BadRequest('request body too large')); req.destroy(); }
    });
    req.on('end', () => {
      try {
        const v = body ? JSON.parse(body) : {};
        if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error();
        resolve(v as Record<string, unknown>);
      } catch { reject(new BadRequest('request body is not a JSON object')); }
    });
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendRaw(res: http.ServerResponse, type: string, body: string | Buffer, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

// The page loads nothing from anywhere but this router: it must work with no internet access,
// and a policy this strict also keeps an injected peer nickname from running script.
const PAGE_HEADERS = {
  'cache-control': 'no-cache',
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
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
  try { return new URL(origin).host !== req.headers.host; } catch { return true; }
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, query: Record<string, unknown>) => Promise<unknown> | unknown;
interface Route { query?: QuerySpec; handle: Handler }

/** A handler result that was already written to the response (pages, metrics, event streams). */
const WRITTEN = Symbol('written');

/** The IPAM endpoints live under path patterns (/ip/<ident>/...), not fixed paths. */
const IPAM_PATH = /^\/(ip|ipam)\//;
const IPAM_QUERY: QuerySpec = { subnet: (raw) => raw, peer: (raw) => raw };

function needs<F>(f: F | undefined, what: string): F {
  if (!f) throw new Error(`${what} is not available in this router`);
  return f;
}

export function startApi(addr: string, h: ApiHandlers): Promise<http.Server> {
  const metrics = new RouterMetrics(() => h.report());
  const stream = new ReportStream(() => h.report());
  h.onChange?.(() => stream.changed());
  let assets: Map<string, Asset> | undefined;
  let assetsError = '';
  try { assets = loadPageAssets(); } catch (err) {
    assetsError = `the status page files are missing: ${(err as Error).message}`;
    log.warn(assetsError);
  }
  const page = (path: string): Handler => (_req, res) => {
    const a = assets?.get(path);
    if (!a) throw new Error(assetsError);
    sendRaw(res, a.type, a.body, PAGE_HEADERS);
    return WRITTEN;
  };

  const routes: Record<string, Record<string, Route>> = {
    '/': { GET: { handle: page('/') } },
    '/app.js': { GET: { handle: page('/app.js') } },
    '/graph.js': { GET: { handle: page('/graph.js') } },
    '/style.css': { GET: { handle: page('/style.css') } },
    '/report': { GET: { handle: () => h.report() } },
    '/events': { GET: { query: { interval: intParam(1, 60) }, handle: (req, res, q) => {
      stream.open(req, res, (q.interval as number | undefined) ?? 1);
      return WRITTEN;
    } } },
    '/metrics': { GET: { handle: async (_req, res) => {
      sendRaw(res, metrics.contentType, await metrics.scrape(), { 'cache-control': 'no-store' });
      return WRITTEN;
    } } },
    '/attach': { POST: { handle: async (req) => h.attach(await readJson(req)) } },
    '/detach': { POST: { handle: async (req) => h.detach(await readJson(req)) } },
    '/ps': { POST: { handle: async (req) => needs(h.ps, 'ps')(await readJson(req)) } },
    '/expose': { POST: { handle: async (req) => needs(h.expose, 'expose')(await readJson(req)) } },
    '/hide': { POST: { handle: () => needs(h.hide, 'hide')() } },
    '/connect': { POST: { handle: async (req) => h.connect(await readJson(req)) } },
    '/forget': { POST: { handle: async (req) => h.forget(await readJson(req)) } },
    '/stop': { POST: { handle: () => { setImmediate(() => h.stop()); return { stopping: true }; } } },
  };

  const server = http.createServer(async (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const methods = Object.hasOwn(routes, path) ? routes[path] : undefined;
    const ipam = !methods && IPAM_PATH.test(path) ? h.ipam : undefined;
    const notFound = `no such endpoint: ${req.method} ${path.slice(0, 100)}`;
    if (!methods && !ipam) return send(res, 404, { error: notFound });
    const route: Route | undefined = ipam
      ? { query: IPAM_QUERY, handle: (_req, _res, query) => {
        const fn = ipamRoute(ipam, req.method ?? '', path, query);
        if (!fn) throw new NotFound(notFound);
        return fn();
      } }
      : Object.hasOwn(methods!, req.method ?? '') ? methods![req.method!] : undefined;
    if (!route) return send(res, 405, { error: `${req.method} is not allowed on ${path}: use ${Object.keys(methods!).join(', ')}` }, { allow: Object.keys(methods!).join(', ') });
    if (req.method !== 'GET' && crossOrigin(req)) return send(res, 403, { error: 'cross-origin requests may not change the router' });
    try {
      const query = parseQuery(q < 0 ? '' : url.slice(q + 1), route.query);
      const result = await route.handle(req, res, query);
      if (result !== WRITTEN) send(res, 200, result);
    } catch (err) {
      if (res.headersSent) { res.destroy(); return; }
      send(res, err instanceof BadRequest ? 400 : err instanceof NotFound ? 404 : 500, { error: (err as Error).message });
    }
  });
  // Event streams never end on their own: end them when the API closes, or close() waits forever.
  const close = server.close.bind(server);
  server.close = (cb?: (err?: Error) => void) => { stream.close(); return close(cb); };
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port = Number(addr.slice(i + 1));
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code === 'EADDRINUSE'
      ? `HTTP address ${addr} is already in use` : `cannot serve HTTP on ${addr}: ${err.message}`)));
    server.listen(port, host, () => resolve(server));
  });
}
