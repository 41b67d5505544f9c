import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startApi } from '../../api/http.js';
import type { MetricsReport } from '../../api/metrics.js';
import { parseMetrics } from '../fixtures/prometheus.js';

/** A report with the shape the router gives, small enough to read. */
function fakeReport(): MetricsReport {
  return {
    version: '0.1.0', name: 'peer-a', nickname: 'a', pid: 1, uptimeSeconds: 5, datapath: 'sleeve-pcap', encryption: false,
    peerDiscovery: true, vni: 6784, mtu: 1450, port: 6783, udpPort: 6784, connLimit: 100, targets: [],
    connections: [
      { direction: 'outbound', address: '198.18.0.2:6783', state: 'established', info: 'encrypted (noise)', name: 'peer-b', nickname: 'b', traffic: { tx: { frames: 1, bytes: 2 }, rx: { frames: 3, bytes: 4 } } },
      { direction: 'outbound', address: '198.18.0.9:6783', state: 'failed', info: 'refused', traffic: undefined },
    ],
    peers: [
      { name: 'peer-a', nickname: 'a', self: true, reachable: true, nextHop: undefined, version: 1, connections: [] },
      { name: 'peer-b', nickname: 'b', self: false, reachable: true, nextHop: 'peer-b', version: 1, connections: [] },
      { name: 'peer-c', nickname: 'c', self: false, reachable: false, nextHop: undefined, version: 1, connections: [] },
    ],
    vxlanEndpoints: [],
    macs: [{ mac: '02:00:00:00:00:01', peer: 'peer-a', local: true, ageSeconds: 1, nickname: 'a' }],
    counters: {
      captured: { frames: 10, bytes: 1000 }, injected: { frames: 20, bytes: 2000 }, sent: { datagrams: 30, bytes: 3000 },
      received: { datagrams: 40, bytes: 4000 }, relayed: 0, flooded: 5, dropped: { truncated: 2 }, gossipRejected: 0,
    },
    gossip: { topology: { messagesIn: 7, bytesIn: 70, messagesOut: 8, bytesOut: 80, dropped: 0, syncs: 1 } },
  } as unknown as MetricsReport;
}

interface Answer { status: number; type: string; body: string; headers: http.IncomingHttpHeaders }

function request(port: number, method: string, path: string, headers: http.OutgoingHttpHeaders = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: text, headers: res.headers }));
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
          const block = buf.slice(0, i); buf = buf.slice(i + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (!block.includes('event: report') || !data) continue;
          got.push(JSON.parse(data.slice(6)));
          if (got.length === 1) onFirst?.();
          if (got.length === n) { req.destroy(); resolve(got); }
        }
      });
    });
    req.on('error', (e) => { if (got.length < n) reject(e); });
    setTimeout(() => { req.destroy(); reject(new Error(`only ${got.length} of ${n} events`)); }, 5000);
  });
}

describe('HTTP API: status page, report, events, metrics, bad input', () => {
  let server: http.Server;
  let port: number;
  let report = fakeReport();
  let stopped = 0;
  let changed: (() => void) | undefined;

  before(async () => {
    server = await startApi('127.0.0.1:0', {
      report: () => report,
      attach: async () => ({}), detach: async () => ({}), connect: async () => ({}), forget: async () => ({}),
      stop: () => { stopped++; },
      onChange: (l) => { changed = l; },
    });
    port = (server.address() as AddressInfo).port;
  });
  after(() => { server?.close(); });

  it('serves the status page and its scripts and styles from the router, nothing from elsewhere', async () => {
    const page = await request(port, 'GET', '/');
    assert.equal(page.status, 200);
    assert.match(page.type, /^text\/html/);
    assert.match(page.body, /<script type="module" src="app.js">/);
    assert.doesNotMatch(page.body, /https?:\/\//, 'no external URL in the page');
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
    for (const [path, type] of [['/app.js', /javascript/], ['/graph.js', /javascript/], ['/style.css', /text\/css/]] as const) {
      const a = await request(port, 'GET', path);
      assert.equal(a.status, 200, path);
      assert.match(a.type, type);
      assert.doesNotMatch(a.body, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, `${path} loads nothing from the internet`);
    }
  });

  it('answers GET /report with the report', async () => {
    const r = await request(port, 'GET', '/report');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).name, 'peer-a');
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
      ['POST', '/attach', 400, /not a JSON object/],
    ];
    for (const [method, path, status, error] of cases) {
      const r = await request(port, method, path, { 'content-type': 'application/json' }, method === 'POST' ? '{bad json' : undefined);
      assert.equal(r.status, status, `${method} ${path}: ${r.body}`);
      assert.match(r.type, /application\/json/);
      assert.match(JSON.parse(r.body).error, error);
    }
    assert.equal((await request(port, 'GET', '/report')).status, 200, 'still serving');
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
      report = { ...fakeReport(), nickname: 'renamed' };
      changed!();
    });
    assert.deepEqual(events.map((e) => (e as { nickname: string }).nickname), ['a', 'renamed']);
    report = fakeReport();
  });

  it('serves Prometheus metrics that a text-format parser reads, and they follow the counters', async () => {
    const scrape = async () => {
      const r = await request(port, 'GET', '/metrics');
      assert.equal(r.status, 200);
      assert.match(r.type, /^text\/plain; version=0\.0\.4/);
      return parseMetrics(r.body);
    };
    const m = await scrape();
    assert.equal(m.type('weave_frames_total'), 'counter');
    assert.equal(m.value('weave_connections', { state: 'established' }), 1);
    assert.equal(m.value('weave_connections', { state: 'failed' }), 1);
    assert.equal(m.value('weave_connections', { state: 'connecting' }), 0);
    assert.equal(m.value('weave_peers', { state: 'reachable' }), 2);
    assert.equal(m.value('weave_peers', { state: 'unreachable' }), 1);
    assert.equal(m.value('weave_frames_total', { datapath: 'sleeve-pcap', direction: 'out' }), 10);
    assert.equal(m.value('weave_frames_total', { datapath: 'sleeve-pcap', direction: 'in' }), 20);
    assert.equal(m.value('weave_frame_bytes_total', { direction: 'in' }), 2000);
    assert.equal(m.value('weave_datagrams_total', { direction: 'out' }), 30);
    assert.equal(m.value('weave_dropped_frames_total', { reason: 'truncated' }), 2);
    assert.equal(m.value('weave_mac_table_entries'), 1);
    assert.equal(m.value('weave_gossip_messages_total', { channel: 'topology', direction: 'in' }), 7);
    assert.equal(m.value('weave_gossip_messages_total', { channel: 'topology', direction: 'out' }), 8);
    assert.deepEqual(m.samples('weave_ipam_addresses'), [], 'no IPAM figures while IPAM is not running');

    report.counters.captured.frames += 5;
    (report as { ipam?: unknown }).ipam = { range: '10.32.0.0/12', inUse: 3, free: 1_048_573 };
    const m2 = await scrape();
    assert.equal(m2.value('weave_frames_total', { direction: 'out' }), 15);
    assert.equal(m2.value('weave_ipam_addresses', { state: 'in_use' }), 3);
    assert.equal(m2.value('weave_ipam_addresses', { state: 'free' }), 1_048_573);
  });
});
