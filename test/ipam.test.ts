import assert from 'node:assert/strict';
import { Lab, waitFor } from '../lab/lab.js';
import { launchAll, report, waitForMesh, waitForPing, weave, weaveOk } from '../lab/weave.js';
import { labHttp } from './fixtures/lab-http.js';

const API = 'http://127.0.0.1:6784';

describe('IPAM in the lab: three hosts', function () {
  this.timeout(120_000);
  let lab: Lab;
  const ips = new Map<string, string>();
  const ns = new Map<string, string>();
  after(async () => {
    await lab?.down();
  });

  before(async () => {
    lab = await Lab.create({ hosts: 3 });
    await launchAll(lab);
    await waitForMesh(lab);
  });

  /** A container that vanishes without a detach, as when its host dies: its address stays allocated. */
  const vanish = (n: string) => lab.execIn(n, ['ip', 'link', 'del', 'ethwe']);

  it('gives containers on three hosts distinct addresses from the default range, reachable from each other', async () => {
    for (const h of ['h1', 'h2', 'h3']) {
      const c = await lab.addContainer(h, 'c');
      ns.set(h, c.netns);
      ips.set(h, (await weaveOk(lab, h, ['attach', `netns:${c.netns}`])).trim());
    }
    assert.equal(new Set(ips.values()).size, 3, [...ips.values()].join(' '));
    for (const ip of ips.values()) assert.match(ip, /^10\.(3[2-9]|4[0-7])\.\d+\.\d+$/);
    await waitForPing(lab, ns.get('h1')!, ips.get('h3')!);
    const status = await weaveOk(lab, 'h1', ['status', 'ipam']);
    assert.equal(status.trim().split('\n').length, 3, status);
    assert.match(status, /\(h2\)\s+\d+ IPs \([\d.]+% of total\)/);
    assert.match(
      await weaveOk(lab, 'h1', ['status']),
      /^\s+Service: ipam\n\s+Status: ready\n\s+Range: 10\.32\.0\.0\/12\n\s+DefaultSubnet: 10\.32\.0\.0\/12$/m,
    );
  });

  it("answers Weave's HTTP API in text: allocate is idempotent, lookup, claim, release; JSON when asked", async () => {
    const a = await labHttp(lab, 'h2', `${API}/ip/api-test`, 'POST');
    assert.equal(a.status, 200, a.body);
    assert.match(a.type, /^text\/plain/);
    assert.match(a.body, /^10\.(3[2-9]|4[0-7])\.\d+\.\d+\/12\n$/);
    const b = await labHttp(lab, 'h2', `${API}/ip/api-test`, 'POST');
    assert.equal(b.body, a.body);
    const got = await labHttp(lab, 'h2', `${API}/ip/api-test`);
    assert.equal(got.body, a.body);
    const json = await labHttp(lab, 'h2', `${API}/ip/api-test`, 'GET', { accept: 'application/json' });
    assert.equal(`${JSON.parse(json.body)[0].cidr}\n`, a.body);
    assert.equal((await labHttp(lab, 'h2', `${API}/ip/api-test`, 'DELETE')).status, 200);
    assert.equal((await labHttp(lab, 'h2', `${API}/ip/api-test`)).status, 404, 'released: unknown, as Weave says');
  });

  it('refuses bad requests with a clear error and changes nothing', async () => {
    const before = JSON.stringify((await report(lab, 'h1')).ipam.allocations);
    // Weave's statuses: 404 for an unknown identity, 409 for an address someone else holds, 400 for bad input.
    const cases: [string, string, number, RegExp][] = [
      ['PUT', '/ip/x/10.99.0.1/24', 400, /outside the allocation range/],
      ['PUT', `/ip/thief/${ips.get('h1')}/12`, 409, /held by another identity/],
      ['GET', '/ip/nobody', 404, /unknown identity/],
      ['DELETE', '/ip/nobody', 404, /unknown identity/],
      ['PUT', '/ip/x/10.32.0.300/12', 400, /invalid address/],
      ['PUT', '/ip/x/10.32.0.9/99', 400, /invalid prefix length/],
      ['POST', '/ip/x?subnet=%00', 400, /invalid subnet/], // found by bench/fuzz: was a 500
      ['POST', '/ip/%E0%A4%A', 400, /malformed identity/],
    ];
    for (const [method, path, status, re] of cases) {
      const r = await labHttp(lab, 'h1', `${API}${path}`, method);
      assert.equal(r.status, status, `${method} ${path}: ${r.body}`);
      assert.match(r.body, re);
    }
    const patch = await labHttp(lab, 'h1', `${API}/ip/x`, 'PATCH');
    assert.equal(patch.status, 405);
    assert.match(JSON.parse(patch.body).error, /PATCH is not allowed on \/ip\/x: use POST, DELETE, GET/);
    assert.equal(JSON.stringify((await report(lab, 'h1')).ipam.allocations), before);
    const r = await weave(lab, 'h2', [
      'attach',
      `${ips.get('h1')}/12`,
      `netns:${(await lab.addContainer('h2', 'thief')).netns}`,
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^weave: .*held by another identity/);
  });

  it('keeps allocations through kill -9 and a restart', async () => {
    const r = await report(lab, 'h2');
    const before = r.ipam.allocations;
    // supervisor and router: nothing restarts it
    for (const pid of [r.supervisorPid!, r.pid]) process.kill(pid, 'SIGKILL');
    await weaveOk(lab, 'h2', ['launch', '--nickname', 'h2', lab.host('h1').addrs[0]]);
    assert.deepEqual((await report(lab, 'h2')).ipam.allocations, before);
    await waitForMesh(lab);
    assert.equal(
      (await weaveOk(lab, 'h2', ['attach', `netns:${ns.get('h2')}`])).trim(),
      ips.get('h2'),
      'attaching again gives the same address',
    );
  });

  it('moves an address with its container from a live host, and it is reachable at its new host', async () => {
    const c = await lab.addContainer('h1', 'mover');
    const ip = (await weaveOk(lab, 'h1', ['attach', `netns:${c.netns}`])).trim();
    await vanish(c.netns); // the container leaves h1 without a detach...
    assert.equal(
      (await weaveOk(lab, 'h2', ['attach', `netns:${c.netns}`])).trim(),
      ip,
      '...and comes up on h2 with its address',
    );
    await waitForPing(lab, ns.get('h3')!, ip);
    const h1 = await report(lab, 'h1');
    assert.ok(!h1.ipam.allocations.some((a) => a.address === ip), 'h1 handed it over');
  });

  it('moves an address from a dead host after weave rmpeer', async () => {
    const c = await lab.addContainer('h3', 'survivor');
    const ip = (await weaveOk(lab, 'h3', ['attach', `netns:${c.netns}`])).trim();
    const h3 = await report(lab, 'h3');
    for (const pid of [h3.supervisorPid!, h3.pid]) process.kill(pid, 'SIGKILL'); // the host's router is gone for good
    await vanish(c.netns);
    await waitFor(
      'h1 sees h3 gone',
      async () => !(await report(lab, 'h1')).connections.some((x) => x.name === h3.name && x.state === 'established'),
    );
    const refused = await weave(lab, 'h1', ['attach', `netns:${c.netns}`]);
    assert.match(refused.stderr, /unreachable.*rmpeer/, 'no takeover without rmpeer');
    assert.match(await weaveOk(lab, 'h1', ['rmpeer', 'h3']), /^\d+ IPs taken over from \S+\n$/);
    assert.equal((await weaveOk(lab, 'h1', ['attach', `netns:${c.netns}`])).trim(), ip);
    await waitForPing(lab, ns.get('h2')!, ip);
  });
});

describe('IPAM: weave reset', function () {
  this.timeout(60_000);
  let lab: Lab;
  after(async () => {
    await lab?.down();
  });

  it("hands this peer's space to another before it leaves, and forgets its state", async () => {
    lab = await Lab.create({ hosts: 2 });
    await launchAll(lab);
    await waitForMesh(lab);
    const c = await lab.addContainer('h2', 'c');
    await weaveOk(lab, 'h2', ['attach', `netns:${c.netns}`]);
    const h1 = (await report(lab, 'h1')).name;
    assert.match(await weaveOk(lab, 'h2', ['reset']), new RegExp(`^handed the address space to ${h1}\n$`));
    assert.notEqual((await weave(lab, 'h2', ['status'])).code, 0, 'the router stopped');
    const shares = await waitFor('h1 owns the whole range', async () => {
      const p = (await report(lab, 'h1')).ipam.peers;
      return p.length === 1 && p[0].name === h1 ? p : undefined;
    });
    assert.equal(shares[0].owned, 2 ** 20);
  });
});

describe('IPAM: a peer with a different range', function () {
  this.timeout(60_000);
  let lab: Lab;
  after(async () => {
    await lab?.down();
  });

  it('never merges its state, and status says why', async () => {
    lab = await Lab.create({ hosts: 2 });
    await weaveOk(lab, 'h1', ['launch', '--nickname', 'h1']);
    await weaveOk(lab, 'h2', [
      'launch',
      '--nickname',
      'h2',
      '--ipalloc-range',
      '10.40.0.0/16',
      lab.host('h1').addrs[0],
    ]);
    await waitForMesh(lab);
    const c = await lab.addContainer('h1', 'c');
    await weaveOk(lab, 'h1', ['attach', `netns:${c.netns}`]);
    const s = await waitFor('h2 reports the mismatch', async () => {
      const out = await weaveOk(lab, 'h2', ['status']);
      return /Refused: \S+\(h1\) has range 10\.32\.0\.0\/12/.test(out) ? out : undefined;
    });
    assert.ok(s);
    assert.equal((await report(lab, 'h2')).ipam.peers.length, 0);
    const bad = await weave(lab, 'h1', ['launch', '--ipalloc-range', '10.32.0.0/33']);
    assert.match(bad.stderr, /^weave: invalid --ipalloc-range value "10\.32\.0\.0\/33"/);
  });
});
