import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, waitFor } from '../lab/lab.js';
import { launchAll, report, waitForMesh, waitForPing, weave, weaveOk } from '../lab/weave.js';
import { LabBrowser } from './fixtures/lab-browser.js';
import { labHttp } from './fixtures/lab-http.js';
import { parseMetrics } from './fixtures/prometheus.js';
import type { PageView } from './fixtures/browse.js';

const API = 'http://127.0.0.1:6784';
const SCREENSHOT = join('test-output', 'status-page.png');

describe('observability: status page, /report and /metrics on a live cluster', function () {
  this.timeout(180_000);
  let lab: Lab;
  let browser: LabBrowser | undefined;
  let c1: string;
  const metrics = async (host: string) => {
    const r = await labHttp(lab, host, `${API}/metrics`);
    assert.equal(r.status, 200);
    return parseMetrics(r.body);
  };

  before(async () => {
    lab = await Lab.create({ hosts: 4 });
    await launchAll(lab, ['h1', 'h2', 'h3']);
    await waitForMesh(lab, ['h1', 'h2', 'h3']);
    c1 = (await lab.addContainer('h1', 'c1')).netns;
    const c2 = (await lab.addContainer('h2', 'c2')).netns;
    await weaveOk(lab, 'h1', ['attach', '10.32.0.1/12', `netns:${c1}`]);
    await weaveOk(lab, 'h2', ['attach', '10.32.0.2/12', `netns:${c2}`]);
    await waitForPing(lab, c1, '10.32.0.2');
  });
  after(async () => {
    await browser?.close();
    await lab?.down();
  });

  it('refuses a bad --http-addr with one line, and serves the API on loopback only by default', async () => {
    for (const bad of ['nonsense', '127.0.0.1', '127.0.0.1:70000', '300.1.1.1:6784', ':6784']) {
      const r = await weave(lab, 'h4', ['launch', '--http-addr', bad]);
      assert.notEqual(r.code, 0, bad);
      assert.equal(r.stderr, `weave: invalid HTTP address "${bad}": expected IPv4:PORT, like 127.0.0.1:6784\n`);
    }
    await assert.rejects(
      labHttp(lab, 'h2', `http://${lab.host('h1').addrs[0]}:6784/report`),
      /ECONNREFUSED/,
      'not on the underlay address',
    );
    assert.equal((await labHttp(lab, 'h1', `${API}/report`)).status, 200);
  });

  it('GET /report holds what weave status shows', async () => {
    const r = await report(lab, 'h1');
    assert.equal(r.nickname, 'h1');
    assert.equal(r.datapath, 'fastdp', 'auto picks fastdp where the kernel can');
    assert.equal(typeof r.uptimeSeconds, 'number');
    assert.deepEqual(r.peers.map((p) => p.nickname).sort(), ['h1', 'h2', 'h3']);
    assert.ok(
      r.connections.every((c) => c.traffic),
      'per-connection traffic counters',
    );
    const status = await weaveOk(lab, 'h1', ['status']);
    assert.match(status, new RegExp(`^\\s+Peers: ${r.peers.length} `, 'm'));
    assert.match(status, new RegExp(`^\\s+Name: ${r.name}\\(h1\\)$`, 'm'));
  });

  it('GET /metrics parses as Prometheus text, and its counters move when traffic flows', async () => {
    const before1 = await metrics('h1');
    const before2 = await metrics('h2');
    assert.equal(before1.value('weave_connections', { state: 'established' }), 2);
    assert.equal(before1.value('weave_peers', { state: 'reachable' }), 3);
    assert.ok(before1.value('weave_mac_table_entries')! >= 2);
    assert.ok(before1.value('weave_gossip_messages_total', { channel: 'topology', direction: 'in' })! > 0);
    assert.ok(before1.value('weave_gossip_messages_total', { channel: 'macs', direction: 'out' })! > 0);
    const inUse = before1.value('weave_ipam_addresses', { state: 'in_use' })!,
      free = before1.value('weave_ipam_addresses', { state: 'free' })!;
    assert.ok(
      inUse >= 1 && free > 0 && inUse + free <= 2 ** 20,
      `IPAM addresses: ${inUse} in use, ${free} free in 10.32.0.0/12`,
    );

    await lab.execOkIn(c1, ['ping', '-c', '10', '-i', '0.05', '-W', '1', '10.32.0.2']);
    const after1 = await metrics('h1');
    const after2 = await metrics('h2');
    const grew = (b: typeof before1, a: typeof before1, name: string, labels: Record<string, string>) =>
      a.value(name, labels)! - b.value(name, labels)!;
    const out = { datapath: 'fastdp', direction: 'out' },
      inn = { datapath: 'fastdp', direction: 'in' };
    assert.ok(grew(before1, after1, 'weave_frames_total', out) >= 10, 'h1 sent the 10 echo requests');
    assert.ok(grew(before1, after1, 'weave_frame_bytes_total', out) >= 10 * 98);
    assert.ok(grew(before1, after1, 'weave_datagrams_total', out) >= 10);
    assert.ok(grew(before1, after1, 'weave_frames_total', inn) >= 10, 'h1 received the 10 echo replies');
    assert.ok(grew(before2, after2, 'weave_frames_total', inn) >= 10, 'h2 received the 10 echo requests');
  });

  it('answers unknown paths with 404 and malformed query parameters with 400, and keeps running', async () => {
    const cases: [string, number][] = [
      ['/nope', 404],
      ['/report/x', 404],
      ['/report?x=1', 400],
      ['/events?interval=-1', 400],
      ['/metrics?%E0%A4%A', 400],
    ];
    for (const [path, status] of cases) {
      const r = await labHttp(lab, 'h1', `${API}${path}`);
      assert.equal(r.status, status, path);
      assert.match(JSON.parse(r.body).error, /\S/);
    }
    assert.equal((await labHttp(lab, 'h1', `${API}/report`, 'POST')).status, 405);
    assert.equal((await report(lab, 'h1')).nickname, 'h1', 'the router still answers');
  });

  it('the status page lists every peer, shows one joining without a reload, and marks one that stops', async () => {
    browser = new LabBrowser(lab, 'h1');
    await browser.open(`${API}/`);
    const peers = (v: PageView) => new Map(v.peers.map((p) => [p.nickname, p]));
    const first = await waitFor('the page lists h1, h2 and h3', async () => {
      const v = await browser!.read();
      return ['h1', 'h2', 'h3'].every((h) => peers(v).has(h)) ? v : undefined;
    });
    assert.equal(peers(first).get('h1')!.status, 'self');
    assert.equal(peers(first).get('h2')!.statusText, 'connected');
    assert.equal(first.summary.Nickname, 'h1');
    assert.equal(first.summary.Datapath, 'fastdp');
    assert.equal(first.summary.Encryption, 'control: noise; data: none');
    assert.match(first.summary.Uptime, /\d+s$/);
    assert.deepEqual(first.graph.map((n) => n.label).sort(), ['h1', 'h2', 'h3'], 'the topology graph draws every peer');
    assert.match(first.ipam, /Range10\.32\.0\.0\/12/, 'the IPAM section shows the range');
    assert.match(first.ipam, /10\.32\.0\.1\/12/, 'and the allocation on this host');
    assert.deepEqual(
      Object.keys(first.services),
      ['router', 'firewall', 'ipam', 'policy', 'proxy', 'dns', 'scheduler', 'volumes'],
      'a section for every subsystem that has one, in order',
    );
    assert.equal(first.services.volumes.Pool, 'not opened (no volume here yet)');
    assert.equal(first.services.ipam.Range, '10.32.0.0/12');
    assert.equal(first.services.router.Datapath, 'fastdp');
    assert.equal(first.connections, 2);
    assert.ok(first.macs >= 2, 'the MAC table shows the containers');

    await weaveOk(lab, 'h4', ['launch', '--nickname', 'h4', lab.host('h1').addrs[0]]);
    const joined = await waitFor(
      'the page shows h4',
      async () => {
        const v = await browser!.read();
        return peers(v).get('h4')?.status === 'reachable' ? v : undefined;
      },
      20_000,
    );
    assert.ok(joined.graph.some((n) => n.label === 'h4' && n.status === 'reachable'));
    assert.equal(joined.navigations, 1, 'no reload');

    await weaveOk(lab, 'h3', ['stop']);
    const marked = await waitFor(
      'the page marks h3 as down',
      async () => {
        const v = await browser!.read();
        return ['unreachable', 'gone'].includes(peers(v).get('h3')?.status ?? '') ? v : undefined;
      },
      20_000,
    );
    assert.match(peers(marked).get('h3')!.statusText, /unreachable|gone/);
    assert.match(marked.graph.find((n) => n.label === 'h3')!.mark, /UNREACHABLE|GONE/);
    assert.equal(peers(marked).get('h4')!.status, 'reachable');
    assert.equal(marked.navigations, 1, 'no reload');
    assert.equal(marked.live, 'live');
    assert.deepEqual(marked.errors, [], 'no script errors on the page');

    await browser.screenshot(SCREENSHOT);
    assert.ok(statSync(SCREENSHOT).size > 10_000, `a screenshot in ${SCREENSHOT}`);
  });
});
