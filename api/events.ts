import type http from 'node:http';

interface Client {
  res: http.ServerResponse;
  last: string;
  timer: NodeJS.Timeout;
  blocked: boolean;
}

const CHANGE_DEBOUNCE_MS = 100;

/**
 * GET /events: the report as server-sent events, so the status page updates without a reload.
 * Each client gets the report at once, then every `interval` seconds and right after a topology
 * change; an unchanged report is not sent again, and a client that cannot keep up skips ticks
 * instead of piling up buffers in the router.
 */
export class ReportStream {
  private readonly clients = new Set<Client>();
  private pending?: NodeJS.Timeout;
  private cached?: { at: number; json: string };

  constructor(private readonly report: () => unknown) {}

  open(req: http.IncomingMessage, res: http.ServerResponse, intervalSeconds: number): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 1000\n\n'); // reconnect quickly when the router comes back
    const client: Client = {
      res,
      last: '',
      blocked: false,
      timer: setInterval(() => this.send(client), intervalSeconds * 1000),
    };
    this.clients.add(client);
    res.on('drain', () => {
      client.blocked = false;
    });
    const done = () => {
      clearInterval(client.timer);
      this.clients.delete(client);
    };
    req.on('close', done);
    res.on('close', done);
    this.send(client);
  }

  /** Something the page shows changed (a peer joined or left): push it now, coalescing bursts. */
  changed(): void {
    if (this.pending || this.clients.size === 0) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.cached = undefined;
      for (const c of this.clients) this.send(c);
    }, CHANGE_DEBOUNCE_MS);
  }

  close(): void {
    clearTimeout(this.pending);
    for (const c of this.clients) {
      clearInterval(c.timer);
      c.res.end();
    }
    this.clients.clear();
  }

  private send(c: Client): void {
    if (c.blocked) return;
    const json = this.json();
    if (json === c.last) return;
    c.last = json;
    if (!c.res.write(`event: report\ndata: ${json}\n\n`)) c.blocked = true;
  }

  /** Many clients on the same tick share one report. */
  private json(): string {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > 200) this.cached = { at: now, json: JSON.stringify(this.report()) };
    return this.cached.json;
  }
}
