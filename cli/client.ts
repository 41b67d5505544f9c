import http from 'node:http';
import { DEFAULT_HTTP_ADDR } from '../api/options.js';

export const httpAddr = (): string => process.env.WEAVE_HTTP_ADDR || DEFAULT_HTTP_ADDR;

export class NotRunning extends Error {
  constructor() {
    super(`the weave router is not running here (nothing answers on ${httpAddr()}): start it with "weave launch"`);
  }
}

/** Calls the local router's HTTP API; rejects with the router's one-line error on a non-2xx answer. */
export async function call<T = unknown>(method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
  const text = await request(method, path, 'application/json', body, timeoutMs);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`bad answer from the router: ${text.slice(0, 80)}`);
  }
}

/** A text answer (`weave status`, rendered by the router as Weave's is). */
export const callText = (path: string, method = 'GET', body?: unknown, timeoutMs?: number): Promise<string> =>
  request(method, path, 'text/plain', body, timeoutMs);

function request(method: string, path: string, accept: string, body?: unknown, timeoutMs = 60_000): Promise<string> {
  const addr = httpAddr();
  const i = addr.lastIndexOf(':');
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: addr.slice(0, i),
        port: Number(addr.slice(i + 1)),
        method,
        path,
        timeout: timeoutMs,
        headers: {
          accept,
          ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          if ((res.statusCode ?? 500) < 300) return resolve(text);
          let message = text.trim();
          try {
            message = (JSON.parse(text) as { error?: string }).error ?? message;
          } catch {
            /* a text answer */
          }
          reject(new Error(message || `HTTP ${res.statusCode}`));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`the router at ${addr} did not answer in time`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ECONNREFUSED' ? new NotRunning() : err));
    req.end(data);
  });
}

/** The report, or undefined when no router answers. */
export async function tryReport<T>(): Promise<T | undefined> {
  try {
    return await call<T>('GET', '/report', undefined, 2000);
  } catch (err) {
    if (err instanceof NotRunning) return undefined;
    throw err;
  }
}
