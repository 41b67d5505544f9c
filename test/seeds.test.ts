import assert from 'node:assert/strict';
import { Lab } from '../lab/lab.js';
import { fetchFrom, percentile, runWebServers } from '../lab/seeds.js';
import { launchAll, waitForMesh, weaveOk } from '../lab/weave.js';

const N = 20;

describe("The seeds' demo: web servers that all want port 80, side by side on one host", function () {
  this.timeout(180_000);
  let lab: Lab;
  after(async () => {
    await lab?.down();
  });

  it(`runs ${N} busybox httpd containers on h1, each fetched on port 80 by its own address from a container on h2`, async () => {
    lab = await Lab.create({ hosts: 2 });
    await Promise.all(['h1', 'h2'].map((h) => lab.startDockerd(h)));
    await launchAll(lab);
    await waitForMesh(lab);
    await weaveOk(lab, 'h2', ['run', '--name', 'client', 'busybox', 'sleep', '3600']);
    const servers = await runWebServers(lab, { server: 'h1', client: 'h2', from: 'client', n: N });
    assert.equal(new Set(servers.map((s) => s.ip)).size, N, 'every server has its own address');
    for (const s of servers) assert.equal(await fetchFrom(lab, 'h2', 'client', s.ip), `hello from ${s.name}\n`);
    const ms = servers.map((s) => s.ms);
    process.stdout.write(
      `      weave run to first fetch: p50 ${percentile(ms, 50).toFixed(0)} ms, p95 ${percentile(ms, 95).toFixed(0)} ms\n`,
    );
  });
});
