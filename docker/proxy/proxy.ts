// The Docker API proxy: the docker CLI talks to it as to the engine (`eval $(weave env)`).
//
// Everything passes through untouched and unbuffered: requests are piped to the engine with their
// method, raw path and headers; responses stream back as they come (logs -f, events, wait); the
// connections that stop being HTTP (attach, exec start, docker run -it) become plain byte pipes.
// Only requests matching a hooked endpoint are buffered (JSON bodies, bounded) and go through the
// adapters: pre hooks before the engine sees the request, post hooks before the client sees the
// answer. A failing hook answers in the engine's own error shape, so the CLI prints it.
import { chmodSync, chownSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { UserError } from '../../common/errors.js';
import { parseDockerHost } from '../client.js';
import { ClientConnection } from './connection.js';
import { HookError, type Adapter, type ClientRequest, type HookedEndpoint, type ServerResponse } from './hooks.js';
import { compileRoutes, hooksFor, requestVersion, type Hooks, type Route } from './match.js';

export interface DockerProxyOptions {
  /** The engine, in DOCKER_HOST form: unix:///path or tcp://host:port. */
  engine: string;
  /** A unix socket path to listen on (a stale one is replaced). */
  socket?: string;
  /** host:port (or :port, meaning loopback) to listen on as well. */
  tcp?: string;
  endpoints: HookedEndpoint[];
  /** Bound on a hooked request's (and its response's) body; default 4 MiB. */
  maxBodyBytes?: number;
}

export interface ProxyCounters {
  requests: number;
  /** Requests that went through adapters. */
  hooked: number;
  /** Connections upgraded with Connection: Upgrade (attach, exec start). */
  upgrades: number;
  /** Connections the engine hijacked without an upgrade (older clients' attach). */
  hijacks: number;
  /** Answers the proxy made itself: hook failures, unreachable engine, too large bodies. */
  errors: number;
  /** Requests per API version prefix (/v1.41/...). */
  versions: Record<string, number>;
}

const MAX_BODY = 4 << 20;
/** About one hop, not the message: node frames each side itself (Expect is answered by node too). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect']);
const STREAM_TYPE = /^application\/vnd\.docker\.(raw|multiplexed)-stream/i;
const REFRAMED = new Set(['content-length', 'transfer-encoding']);

/** A flat raw header list (names as sent, duplicates kept) without hop-by-hop headers and `drop`. */
function headerList(raw: string[], drop?: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    if (!HOP_BY_HOP.has(k) && !drop?.has(k)) out.push(raw[i], raw[i + 1]);
  }
  return out;
}

const headLines = (raw: string[]): string => {
  let s = '';
  for (let i = 0; i < raw.length; i += 2) s += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return s;
};

/**
 * The engine hijacked the connection: a stream type with no framing, so the body runs until close and stdin may follow.
 */
const isHijack = (r: http.IncomingMessage): boolean =>
  STREAM_TYPE.test(r.headers['content-type'] ?? '') &&
  r.headers['content-length'] === undefined &&
  r.headers['transfer-encoding'] === undefined;

/** Every request arrives on a ClientConnection (see accept()). */
const connOf = (req: http.IncomingMessage) => req.socket as unknown as ClientConnection;

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();

function sendError(res: http.ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ message: oneLine(message) });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** A whole body, refusing (HookError `status`) past `max` bytes. */
function readBody(from: http.IncomingMessage, max: number, what: string, status: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    from.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= max) chunks.push(c);
    });
    from.on('end', () =>
      size > max
        ? reject(new HookError(`${what} larger than ${max} bytes: too large for the proxy's adapters`, status))
        : resolve(Buffer.concat(chunks)),
    );
    from.on('error', reject);
  });
}

/** Runs one hook; anything but a HookError becomes one naming the adapter. */
async function runHook<T>(
  a: Adapter,
  kind: 'pre' | 'post',
  fn: () => Promise<T>,
  valid: (v: T) => boolean,
): Promise<T> {
  let v: T;
  try {
    v = await fn();
  } catch (err) {
    throw err instanceof HookError
      ? err
      : new HookError(`adapter "${a.name}" failed in its ${kind} hook: ${(err as Error).message}`);
  }
  if (!valid(v))
    throw new HookError(
      `adapter "${a.name}" returned an invalid ${kind === 'pre' ? 'request' : 'response'} from its ${kind} hook`,
    );
  return v;
}
const validRequest = (r: ClientRequest) =>
  typeof r?.Method === 'string' &&
  typeof r.Request === 'string' &&
  r.Request.startsWith('/') &&
  typeof r.Body === 'string';
const validResponse = (r: ServerResponse) =>
  Number.isInteger(r?.Code) &&
  r.Code >= 100 &&
  r.Code <= 599 &&
  typeof r.Body === 'string' &&
  typeof r.ContentType === 'string';

/** Nothing answers on a leftover socket file: it may go. A live one, or anything not a socket, stays. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new UserError(`${path} exists and is not a socket; not replacing it`);
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (alive) throw new UserError(`something already answers on ${path} (another proxy?)`);
  unlinkSync(path);
}

/** The docker group's id, so its members can use the proxy's socket as they use the engine's. */
function dockerGid(): number | undefined {
  try {
    const line = readFileSync('/etc/group', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('docker:'));
    const gid = Number(line?.split(':')[2]);
    return Number.isInteger(gid) ? gid : undefined;
  } catch {
    return undefined;
  }
}

function parseListen(spec: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(spec);
  if (!m || Number(m[3]) > 65535) throw new UserError(`invalid proxy address "${spec}": expected HOST:PORT`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port: Number(m[3]) };
}

/**
 * Takes the proxy's addresses for a moment and gives them back: a launch whose proxy could not
 * listen fails before anything is made (the proxy itself listens once the router is up).
 */
export async function probeListen(o: { socket?: string; tcp?: string }): Promise<void> {
  if (o.socket) await removeStaleSocket(o.socket);
  if (!o.tcp) return;
  const { host, port } = parseListen(o.tcp);
  const l = net.createServer();
  await new Promise<void>((resolve, reject) => {
    l.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new UserError(
          err.code === 'EADDRINUSE'
            ? `the Docker API proxy cannot listen on ${o.tcp}: the address is in use`
            : `the Docker API proxy cannot listen on ${o.tcp}: ${err.message}`,
        ),
      ),
    );
    l.listen({ host, port }, () => l.close(() => resolve()));
  });
}

export class DockerProxy {
  readonly counters: ProxyCounters = { requests: 0, hooked: 0, upgrades: 0, hijacks: 0, errors: 0, versions: {} };
  /** The unix socket and the TCP address (host:port, the port as bound) listened on. */
  socket?: string;
  tcpAddress?: string;

  private readonly server: http.Server;
  private readonly listeners: net.Server[] = [];
  /** Client sockets and raw engine connections, destroyed at close(). */
  private readonly sockets = new Set<net.Socket>();
  private readonly agent = new http.Agent({ keepAlive: true });
  private readonly target: ReturnType<typeof parseDockerHost>;
  private readonly routes: Route[];
  private readonly maxBody: number;

  private constructor(
    readonly engine: string,
    endpoints: HookedEndpoint[],
    maxBody = MAX_BODY,
  ) {
    this.target = parseDockerHost(engine);
    this.routes = compileRoutes(endpoints);
    this.maxBody = maxBody;
    // No request timeout: build contexts and attach streams take as long as they take.
    this.server = http.createServer({ requestTimeout: 0 });
    this.server.on('request', (req, res) => this.onRequest(req, res));
    this.server.on('upgrade', (req: http.IncomingMessage, conn: ClientConnection, head: Buffer) =>
      this.onUpgrade(req, conn, head),
    );
  }

  static async listen(o: DockerProxyOptions): Promise<DockerProxy> {
    if (!o.socket && !o.tcp) throw new Error('DockerProxy.listen: give a socket path and/or a TCP address');
    const p = new DockerProxy(o.engine, o.endpoints, o.maxBodyBytes);
    try {
      if (o.socket) {
        await removeStaleSocket(o.socket);
        await p.listenOn(o.socket);
        chmodSync(o.socket, 0o660);
        const gid = dockerGid();
        if (gid !== undefined) {
          try {
            chownSync(o.socket, process.getuid?.() ?? 0, gid);
          } catch {
            /* not ours to give */
          }
        }
        p.socket = o.socket;
      }
      if (o.tcp) {
        const { host, port } = parseListen(o.tcp);
        const l = await p.listenOn({ host, port });
        const a = l.address() as net.AddressInfo;
        p.tcpAddress = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
      }
    } catch (err) {
      await p.close();
      throw err;
    }
    return p;
  }

  async close(): Promise<void> {
    const closed = this.listeners.map((l) => new Promise<void>((r) => l.close(() => r())));
    for (const s of this.sockets) s.destroy();
    this.server.close();
    this.agent.destroy();
    await Promise.all(closed);
  }

  private async listenOn(where: string | net.ListenOptions): Promise<net.Server> {
    const l = net.createServer({ allowHalfOpen: true }, (s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      l.once('error', reject);
      l.listen(where, () => {
        l.off('error', reject);
        resolve();
      });
    });
    this.listeners.push(l);
    return l;
  }

  private accept(s: net.Socket): void {
    this.track(s);
    if (s.remoteAddress) s.setNoDelay(true);
    this.server.emit('connection', new ClientConnection(s));
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
  }

  private count(req: http.IncomingMessage): void {
    this.counters.requests++;
    const v = requestVersion(req.url ?? '');
    if (v) this.counters.versions[v] = (this.counters.versions[v] ?? 0) + 1;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.count(req);
    const hooks = hooksFor(this.routes, req.method ?? 'GET', req.url ?? '/');
    if (!hooks) {
      const up = this.engineRequest(req.method ?? 'GET', req.url ?? '/', headerList(req.rawHeaders));
      this.relay(req, res, up);
      req.pipe(up);
      return;
    }
    this.counters.hooked++;
    this.hooked(req, res, hooks).catch((err: Error) => this.fail(req, res, err));
  }

  private engineRequest(method: string, path: string, headers: string[]): http.ClientRequest {
    return http.request({ ...this.target, agent: this.agent, method, path, headers, setHost: false });
  }

  private unreachable(err: NodeJS.ErrnoException): HookError {
    return new HookError(
      `cannot reach the Docker engine at ${this.engine} (${err.code ?? err.message}): is dockerd running?`,
      502,
    );
  }

  private fail(req: http.IncomingMessage, res: http.ServerResponse, err: Error): void {
    const conn = connOf(req);
    // hijacked, or the client is gone (and we dropped the engine request for it)
    if (conn.raw || conn.destroyed) return;
    this.counters.errors++;
    const e = err instanceof HookError ? err : this.unreachable(err);
    sendError(res, e.status, e.message);
  }

  /** Streams the engine's answer to `up` back as it comes: headers at once, each chunk as it arrives. */
  private relay(req: http.IncomingMessage, res: http.ServerResponse, up: http.ClientRequest): void {
    const conn = connOf(req);
    up.on('response', (ur) => {
      if (isHijack(ur)) return this.hijack(conn, up, ur);
      res.writeHead(ur.statusCode ?? 502, ur.statusMessage, headerList(ur.rawHeaders));
      res.flushHeaders();
      ur.pipe(res);
      ur.on('close', () => {
        if (!ur.complete) res.destroy();
      }); // the engine went away mid-stream: so does the client's answer
    });
    up.on('error', (err) => this.fail(req, res, err));
    // The client went away (Ctrl-C on logs -f): stop the engine's side too.
    res.on('close', () => {
      if (!res.writableFinished && !conn.raw) up.destroy();
    });
  }

  /**
   * An older client's attach: the engine answered with a raw stream and no framing, and from now
   * on both sides write raw bytes. The client connection leaves the HTTP server for a byte pipe to
   * the engine connection that carried the request.
   */
  private hijack(conn: ClientConnection, up: http.ClientRequest, ur: http.IncomingMessage): void {
    this.counters.hijacks++;
    const { socket: client, pending } = conn.takeOver();
    const engine = ur.socket;
    const kill = () => {
      client.destroy();
      up.destroy();
    };
    client.on('error', kill);
    up.on('error', kill);
    client.on('close', () => up.destroy());
    ur.on('close', () => {
      if (!ur.complete) client.destroy();
    });
    client.write(`HTTP/1.1 ${ur.statusCode} ${ur.statusMessage}\r\n${headLines(ur.rawHeaders)}\r\n`);
    for (const b of pending) engine.write(b);
    ur.pipe(client);
    client.pipe(engine);
  }

  /**
   * Connection: Upgrade (the docker CLI's attach and exec start): a raw connection to the engine
   * gets the request head and whatever followed it, and then the two sockets are piped both ways,
   * the engine's 101 UPGRADED included. Hooks do not apply to upgraded requests.
   */
  private onUpgrade(req: http.IncomingMessage, conn: ClientConnection, head: Buffer): void {
    this.count(req);
    this.counters.upgrades++;
    const { socket: client, pending } = conn.takeOver();
    const engine = net.connect(
      'socketPath' in this.target
        ? { path: this.target.socketPath, allowHalfOpen: true }
        : { ...this.target, allowHalfOpen: true },
    );
    this.track(engine);
    let connected = false;
    engine.write(`${req.method} ${req.url} HTTP/1.1\r\n${headLines(req.rawHeaders)}\r\n`);
    for (const b of [head, ...pending]) if (b.length) engine.write(b);
    engine.once('connect', () => {
      connected = true;
      if ('host' in this.target) engine.setNoDelay(true);
      client.pipe(engine);
      engine.pipe(client);
    });
    engine.on('error', (err: NodeJS.ErrnoException) => {
      if (connected) return client.destroy();
      this.counters.errors++;
      const body = JSON.stringify({ message: this.unreachable(err).message });
      client.end(
        `HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
    engine.on('close', () => {
      if (connected && !engine.readableEnded) client.destroy();
    });
    client.on('error', () => engine.destroy());
    client.on('close', () => engine.destroy());
  }

  /** A hooked endpoint: body in, pre hooks, engine, (post hooks on the whole answer), out. */
  private async hooked(req: http.IncomingMessage, res: http.ServerResponse, hooks: Hooks): Promise<void> {
    const body = await readBody(req, this.maxBody, 'request body', 413);
    const text = body.toString('utf8');
    let creq: ClientRequest = { Method: req.method ?? 'POST', Request: req.url ?? '/', Body: text };
    for (const a of hooks.pre) {
      const r = creq;
      if (a.pre) creq = await runHook(a, 'pre', () => a.pre!(r), validRequest);
    }
    // The body as the client sent it unless a hook changed it (it may not have been UTF-8).
    const out = creq.Body === text ? body : Buffer.from(creq.Body, 'utf8');
    const headers = headerList(req.rawHeaders, REFRAMED);
    if (out.length || req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined)
      headers.push('Content-Length', String(out.length));
    if (out.length && req.headers['content-type'] === undefined) headers.push('Content-Type', 'application/json');
    const up = this.engineRequest(creq.Method, creq.Request, headers);
    if (!hooks.post.length) {
      this.relay(req, res, up);
      up.end(out);
      return;
    }
    const ur = await new Promise<http.IncomingMessage>((resolve, reject) => {
      up.on('response', resolve);
      up.on('error', reject);
      up.end(out);
    });
    if (isHijack(ur)) return this.hijack(connOf(req), up, ur);
    const answer = await readBody(ur, this.maxBody, "the engine's answer", 502);
    const answerText = answer.toString('utf8');
    let sres: ServerResponse = {
      ContentType: ur.headers['content-type'] ?? '',
      Body: answerText,
      Code: ur.statusCode ?? 502,
    };
    for (const a of hooks.post) {
      const [q, r] = [creq, sres];
      if (a.post) sres = await runHook(a, 'post', () => a.post!(q, r), validResponse);
    }
    const payload = sres.Body === answerText ? answer : Buffer.from(sres.Body, 'utf8');
    const outHeaders = headerList(ur.rawHeaders, new Set([...REFRAMED, 'content-type']));
    if (sres.ContentType) outHeaders.push('Content-Type', sres.ContentType);
    const bodiless = sres.Code === 204 || sres.Code === 304 || sres.Code < 200 || req.method === 'HEAD';
    if (!bodiless) outHeaders.push('Content-Length', String(payload.length));
    res.writeHead(sres.Code, outHeaders);
    res.end(bodiless ? undefined : payload);
  }
}
