import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startApi } from '../../api/http.js';
import { toySubsystem } from '../fixtures/toy-subsystem.js';
import { parseMetrics } from '../fixtures/prometheus.js';

interface Answer {
  status: number;
  type: string;
  body: string;
  headers: http.IncomingHttpHeaders;
}

function request(
  port: number,
  method: string,
  path: string,
  headers: http.OutgoingHttpHeaders = {},
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers['content-type']),
          body: text,
          headers: res.headers,
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Reads server-sent events until n report events arrived; returns their data. */
function readEvents(port: number, path: string, n: number, onFirst?: () => void): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const got: unknown[] = [];
    const req = http.get({ host: '127.0.0.1', port, path }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (!block.includes('event: report') || !data) continue;
          got.push(JSON.parse(data.slice(6)));
          if (got.length === 1) onFirst?.();
          if (got.length === n) {
            req.destroy();
            resolve(got);
          }
        }
      });
    });
    req.on('error', (e) => {
      if (got.length < n) reject(e);
    });
    setTimeout(() => {
      req.destroy();
      reject(new Error(`only ${got.length} of ${n} events`));
    }, 5000);
  });
}

describe('HTTP API: status page, report, events, metrics, bad input', () => {
  let server: http.Server;
  let port: number;
  const { subsystem, state: toy } = toySubsystem();
  let stopped = 0;
  let changed: (() => void) | undefined;

  before(async () => {
    server = await startApi('127.0.0.1:0', {
      subsystems: [subsystem],
      stop: () => {
        stopped++;
      },
      onChange: (l) => {
        changed = l;
      },
      timeouts: { headers: 300, request: 600 },
    });
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server?.close();
  });

  it('serves the status page and its scripts and styles from the router, nothing from elsewhere', async () => {
    const page = await request(port, 'GET', '/');
    assert.equal(page.status, 200);
    assert.match(page.type, /^text\/html/);
    assert.match(page.body, /<script type="module" src="app.js">/);
    assert.doesNotMatch(page.body, /https?:\/\//, 'no external URL in the page');
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
    for (const [path, type] of [
      ['/app.js', /javascript/],
      ['/graph.js', /javascript/],
      ['/style.css', /text\/css/],
    ] as const) {
      const a = await request(port, 'GET', path);
      assert.equal(a.status, 200, path);
      assert.match(a.type, type);
      assert.doesNotMatch(a.body, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, `${path} loads nothing from the internet`);
    }
  });

  it('builds /report, /status and the routes from the registered subsystems', async () => {
    const greet = await request(
      port,
      'POST',
      '/toy/greet',
      { 'content-type': 'application/json' },
      '{"who":"world","loud":true}',
    );
    assert.equal(greet.status, 200, greet.body);
    assert.equal(JSON.parse(greet.body).said, 'hello world!');
    const r = JSON.parse((await request(port, 'GET', '/report')).body);
    assert.deepEqual(r.toy, { greetings: 1, known: ['world'] });
    assert.deepEqual(r.status, [{ service: 'toy', rows: [['Greetings', '1']] }]);
    const status = await request(port, 'GET', '/status', { accept: 'text/plain' });
    assert.match(status.type, /^text\/plain/);
    assert.match(status.body, /^\s+Version: 0\.1\.0\n\n\s+Service: toy\n\s+Greetings: 1\n/);
    assert.equal((await request(port, 'GET', '/status/toy')).body, 'greeted 1 times\n');
    const unknown = await request(port, 'GET', '/status/nope');
    assert.equal(unknown.status, 404);
    assert.match(unknown.body, /unknown status section "nope": expected toy/);
  });

  it('answers text where a route has it, JSON when asked, and errors in the same form', async () => {
    const text = await request(port, 'GET', '/toy/item/3');
    assert.deepEqual([text.status, text.type, text.body], [200, 'text/plain; charset=utf-8', 'item 3\n']);
    const json = await request(port, 'GET', '/toy/item/3', { accept: 'application/json' });
    assert.deepEqual(JSON.parse(json.body), { id: 3 });
    const refused = await request(port, 'GET', '/toy/item/9');
    assert.deepEqual([refused.status, refused.body], [400, 'item 9 is not for you\n']);
    const refusedJson = await request(port, 'GET', '/toy/item/9', { accept: 'application/json' });
    assert.deepEqual([refusedJson.status, JSON.parse(refusedJson.body).error], [400, 'item 9 is not for you']);
    assert.match((await request(port, 'GET', '/toy/item/10')).body, /invalid id="10": expected an integer 1\.\.9/);
  });

  it('answers unknown paths with 404, wrong methods with 405, bad query parameters with 400, and keeps serving', async () => {
    const cases: [string, string, number, RegExp][] = [
      ['GET', '/nope', 404, /no such endpoint: GET \/nope/],
      ['GET', '/../../etc/passwd', 404, /no such endpoint/],
      ['GET', '/app.js/x', 404, /no such endpoint/],
      ['GET', '/constructor', 404, /no such endpoint/],
      ['POST', '/report', 405, /POST is not allowed on \/report: use GET/],
      ['DELETE', '/stop', 405, /use POST/],
      ['GET', '/report?verbose=1', 400, /unknown query parameter "verbose" \(this endpoint takes none\)/],
      ['GET', '/metrics?%zz', 400, /bad percent-encoding/],
      ['GET', '/events?interval=abc', 400, /invalid query parameter interval="abc": expected an integer 1\.\.60/],
      ['GET', '/events?interval=0', 400, /expected an integer 1\.\.60/],
      ['GET', '/events?interval=1&interval=2', 400, /given twice/],
      ['GET', '/events?toString=1', 400, /unknown query parameter "toString" \(accepted: interval\)/],
      ['POST', '/toy/greet', 400, /not a JSON object/],
      ['GET', '/toy/greet', 405, /GET is not allowed on \/toy\/greet: use POST/],
      ['GET', '/toy/item', 404, /no such endpoint/],
    ];
    for (const [method, path, status, error] of cases) {
      const r = await request(
        port,
        method,
        path,
        { 'content-type': 'application/json', accept: 'application/json' },
        method === 'POST' ? '{bad json' : undefined,
      );
      assert.equal(r.status, status, `${method} ${path}: ${r.body}`);
      assert.match(r.type, /application\/json/);
      assert.match(JSON.parse(r.body).error, error);
    }
    assert.equal((await request(port, 'GET', '/report')).status, 200, 'still serving');
  });

  it('checks request bodies against what the route declares, and calls nothing when they are wrong', async () => {
    const before = toy.greetings;
    const cases: [string, RegExp][] = [
      ['{}', /toy\/greet needs who \(a string\)/],
      ['{"who":7}', /who must be a string/],
      ['{"who":"x","loud":"yes"}', /loud must be a boolean/],
      ['{"who":"x","volume":11}', /unknown field "volume" \(accepted: who, loud\)/],
      ['[1]', /not a JSON object/],
    ];
    for (const [body, error] of cases) {
      const r = await request(port, 'POST', '/toy/greet', { 'content-type': 'application/json' }, body);
      assert.equal(r.status, 400, body);
      assert.match(JSON.parse(r.body).error, error);
    }
    assert.equal(toy.greetings, before);
  });

  it('answers only requests that name its own address or localhost (DNS rebinding)', async () => {
    for (const host of ['evil.example', `evil.example:${port}`, '127.0.0.1:1', `10.0.0.1:${port}`]) {
      const r = await request(port, 'GET', '/report', { host });
      assert.equal(r.status, 403, host);
      assert.match(JSON.parse(r.body).error, /answers requests for 127\.0\.0\.1:0 or localhost/);
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`])
      assert.equal((await request(port, 'GET', '/report', { host })).status, 200, host);
  });

  it('hangs up on a client that trickles its request in', async () => {
    const net = await import('node:net');
    const sock = net.connect(port, '127.0.0.1');
    const answer = await new Promise<string>((resolve) => {
      let got = '';
      sock.on('data', (d) => {
        got += d;
      });
      sock.on('close', () => resolve(got));
      sock.write('GET /report HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      const drip = setInterval(() => {
        if (!sock.destroyed) sock.write('X-Slow: 1\r\n');
      }, 100);
      sock.on('close', () => clearInterval(drip));
    });
    assert.match(answer, /^HTTP\/1\.1 408/);
  });

  it('refuses a state-changing request that a browser sends from another web site', async () => {
    const r = await request(port, 'POST', '/stop', { origin: 'http://evil.example' });
    assert.equal(r.status, 403);
    assert.equal(stopped, 0);
    const own = await request(port, 'POST', '/stop', { origin: `http://127.0.0.1:${port}` });
    assert.equal(own.status, 200, 'the page itself may');
    await new Promise((r) => setImmediate(r));
    assert.equal(stopped, 1);
  });

  it('streams the report as server-sent events, again at once when the topology changes', async () => {
    const events = await readEvents(port, '/events?interval=60', 2, () => {
      toy.name = 'renamed';
      changed!();
    });
    assert.deepEqual(
      events.map((e) => (e as { name: string }).name),
      ['a', 'renamed'],
    );
  });

  it('serves Prometheus metrics that a text-format parser reads, and they follow the counters', async () => {
    const scrape = async () => {
      const r = await request(port, 'GET', '/metrics');
      assert.equal(r.status, 200);
      assert.match(r.type, /^text\/plain; version=0\.0\.4/);
      return parseMetrics(r.body);
    };
    const m = await scrape();
    assert.equal(m.type('weave_toy_greetings_total'), 'counter');
    const n = m.value('weave_toy_greetings_total');
    await request(port, 'POST', '/toy/greet', { 'content-type': 'application/json' }, '{"who":"again"}');
    assert.equal((await scrape()).value('weave_toy_greetings_total'), n! + 1);
  });
});
