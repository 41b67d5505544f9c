import http from 'node:http';

/** What the HTTP API serves; the daemon's composition root provides it. */
export interface ApiHandlers {
  report(): unknown;
  attach(body: { target?: unknown; cidrs?: unknown; mac?: unknown }): Promise<unknown>;
  detach(body: { target?: unknown }): Promise<unknown>;
  connect(body: { peers?: unknown; replace?: unknown }): Promise<unknown>;
  forget(body: { peers?: unknown }): Promise<unknown>;
  stop(): void;
}

/** A request error the client caused: answered with 400 and a one-line message. */
export class BadRequest extends Error {}

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

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function startApi(addr: string, h: ApiHandlers): Promise<http.Server> {
  const routes: Record<string, (req: http.IncomingMessage) => Promise<unknown> | unknown> = {
    'GET /report': () => h.report(),
    'POST /attach': async (req) => h.attach(await readJson(req)),
    'POST /detach': async (req) => h.detach(await readJson(req)),
    'POST /connect': async (req) => h.connect(await readJson(req)),
    'POST /forget': async (req) => h.forget(await readJson(req)),
    'POST /stop': () => { setImmediate(() => h.stop()); return { stopping: true }; },
  };
  const server = http.createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const route = routes[`${req.method} ${path}`];
    if (!route) return send(res, 404, { error: `no such endpoint: ${req.method} ${path}` });
    try {
      send(res, 200, await route(req));
    } catch (err) {
      const bad = err instanceof BadRequest;
      send(res, bad ? 400 : 500, { error: (err as Error).message });
    }
  });
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i), port = Number(addr.slice(i + 1));
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code === 'EADDRINUSE'
      ? `HTTP address ${addr} is already in use` : `cannot serve HTTP on ${addr}: ${err.message}`)));
    server.listen(port, host, () => resolve(server));
  });
}
