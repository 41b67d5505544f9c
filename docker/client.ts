import { UserError } from '../common/errors.js';
import type { ContainerEngine, ContainerInfo, ContainerSummary, DockerEvent } from './engine.js';
import http from 'node:http';

// A small typed client for the Docker Engine API, over the engine's unix socket or TCP (DOCKER_HOST),
// with no dependency: only the handful of calls weave needs.

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

/** An engine's refusal; `status` is the engine's, and what it could not find we cannot either (404). */
export class DockerError extends UserError {
  override readonly httpStatus: number;
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.httpStatus = status === 404 ? 404 : 400;
  }
}

/** No engine answers at DOCKER_HOST: everything container-related is impossible, say so plainly. */
export class NoDockerEngine extends DockerError {}

type Endpoint = { socketPath: string } | { host: string; port: number };

/** Where DOCKER_HOST points: unix:///path or tcp://host:port (plain HTTP; TLS is not supported). */
export function parseDockerHost(text: string): Endpoint {
  if (text.startsWith('unix://')) return { socketPath: text.slice(7) };
  const m = /^tcp:\/\/([^:/]+):(\d+)\/?$/.exec(text);
  if (m) return { host: m[1], port: Number(m[2]) };
  throw new DockerError(`invalid DOCKER_HOST "${text}": expected unix:///path/to/docker.sock or tcp://HOST:PORT`);
}

export class DockerClient implements ContainerEngine {
  private readonly endpoint: Endpoint;

  constructor(readonly host: string = process.env.DOCKER_HOST || DEFAULT_DOCKER_HOST) {
    this.endpoint = parseDockerHost(host);
  }

  ping(): Promise<unknown> {
    return this.request('GET', '/_ping', undefined, 5000);
  }

  /** A container by id, id prefix or name; "unknown container" when there is none. */
  async inspect(ref: string): Promise<ContainerInfo> {
    if (!/^[\w][\w.-]*$/.test(ref)) throw new DockerError(`unknown container "${ref}"`, 404);
    try {
      return await this.request<ContainerInfo>('GET', `/containers/${encodeURIComponent(ref)}/json`);
    } catch (err) {
      if (err instanceof DockerError && err.status === 404) throw new DockerError(`unknown container "${ref}"`, 404);
      throw err;
    }
  }

  /** Containers (running ones unless all), only those carrying `label` when given. */
  list(all = false, label?: string): Promise<ContainerSummary[]> {
    const q = [
      ...(all ? ['all=1'] : []),
      ...(label ? [`filters=${encodeURIComponent(JSON.stringify({ label: [label] }))}`] : []),
    ];
    return this.request('GET', `/containers/json${q.length ? `?${q.join('&')}` : ''}`);
  }

  /** Running containers that mount a volume. */
  usersOf(volume: string): Promise<ContainerSummary[]> {
    return this.request('GET', `/containers/json?filters=${encodeURIComponent(JSON.stringify({ volume: [volume] }))}`);
  }

  /** Stops a container: SIGTERM, then SIGKILL after `graceS` seconds. */
  async stop(id: string, graceS = 10): Promise<void> {
    await this.request(
      'POST',
      `/containers/${encodeURIComponent(id)}/stop?t=${graceS}`,
      undefined,
      (graceS + 30) * 1000,
    );
  }

  async create(body: object, name?: string): Promise<string> {
    const q = name ? `?name=${encodeURIComponent(name)}` : '';
    try {
      return (await this.request<{ Id: string }>('POST', `/containers/create${q}`, body)).Id;
    } catch (err) {
      // The engine says "No such image: busybox:latest"; nothing is pulled here, so say what to do.
      if (err instanceof DockerError && err.status === 404)
        throw new DockerError(`${err.message} (pull it first: docker pull ...)`, 404);
      throw err;
    }
  }

  async start(id: string): Promise<void> {
    await this.request('POST', `/containers/${encodeURIComponent(id)}/start`);
  }

  async remove(id: string, force = true): Promise<void> {
    await this.request('DELETE', `/containers/${encodeURIComponent(id)}?force=${force ? 1 : 0}`);
  }

  /**
   * Follows the engine's event stream (newline-separated JSON) until close() or the engine goes
   * away; onEnd is called once either way, with the reason when it was not close().
   */
  events(
    filters: Record<string, string[]>,
    onEvent: (e: DockerEvent) => void,
    onEnd: (err?: Error) => void,
  ): { close(): void } {
    let closed = false;
    let ended = false;
    const end = (err?: Error) => {
      if (!ended) {
        ended = true;
        onEnd(closed ? undefined : (err ?? new DockerError('the Docker event stream ended')));
      }
    };
    const req = http.request(
      { ...this.endpoint, method: 'GET', path: `/events?filters=${encodeURIComponent(JSON.stringify(filters))}` },
      (res) => {
        if ((res.statusCode ?? 500) >= 300) {
          res.resume();
          return end(new DockerError(`events: HTTP ${res.statusCode}`, res.statusCode));
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let i: number;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (line) {
              try {
                onEvent(JSON.parse(line) as DockerEvent);
              } catch {
                /* a malformed line is not worth the stream */
              }
            }
          }
        });
        res.on('end', () => end());
        res.on('error', (err) => end(err));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => end(this.translate(err)));
    req.end();
    return {
      close: () => {
        closed = true;
        req.destroy();
      },
    };
  }

  /** One request; rejects with the engine's own message on a non-2xx answer. */
  request<T = unknown>(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    const data = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          ...this.endpoint,
          method,
          path,
          timeout: timeoutMs,
          headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            const status = res.statusCode ?? 500;
            let v: unknown = text;
            try {
              v = text ? JSON.parse(text) : undefined;
            } catch {
              /* plain text (e.g. /_ping answers OK) */
            }
            if (status >= 300) {
              const msg = (v as { message?: string } | undefined)?.message ?? (text.trim() || `HTTP ${status}`);
              return reject(new DockerError(msg.split('\n')[0], status));
            }
            resolve(v as T);
          });
        },
      );
      req.on('timeout', () =>
        req.destroy(new DockerError(`the Docker engine at ${this.host} did not answer ${method} ${path} in time`)),
      );
      req.on('error', (err: NodeJS.ErrnoException) => reject(this.translate(err)));
      req.end(data);
    });
  }

  private translate(err: NodeJS.ErrnoException): Error {
    if (err instanceof DockerError) return err;
    if (['ENOENT', 'ECONNREFUSED', 'EACCES', 'ENOTSOCK', 'EHOSTUNREACH', 'ECONNRESET'].includes(err.code ?? '')) {
      return new NoDockerEngine(
        `no Docker engine answers at ${this.host} (${err.code}): is dockerd running? (set DOCKER_HOST to point elsewhere)`,
      );
    }
    return err;
  }
}
