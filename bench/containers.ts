import '../common/polyfill.js';
// `node dist/bench/containers.js [--n 100]`: the seeds' demo at scale. N busybox web servers on
// one lab host, all on port 80, each fetched by its own address from a container on another host;
// prints the time from `weave run` to the first successful fetch (p50/p95). Goal: p50 < 1.5 s.
import { Lab } from '../lab/lab.js';
import { percentile, runWebServers } from '../lab/seeds.js';
import { launchAll, waitForMesh, weaveOk } from '../lab/weave.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('--n', 100);

const lab = await Lab.create({ hosts: 2 });
try {
  await Promise.all(['h1', 'h2'].map((h) => lab.startDockerd(h)));
  await launchAll(lab);
  await waitForMesh(lab);
  await weaveOk(lab, 'h2', ['run', '--name', 'client', 'busybox', 'sleep', '3600']);
  const t0 = performance.now();
  const servers = await runWebServers(lab, { server: 'h1', client: 'h2', from: 'client', n: N });
  const ms = servers.map((s) => s.ms);
  console.log(`${N} web servers on port 80, each on its own address, fetched from another host`);
  console.log(
    `weave run to first successful fetch: p50 ${percentile(ms, 50).toFixed(0)} ms, p95 ${percentile(ms, 95).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms`,
  );
  console.log(
    `all ${N} in ${((performance.now() - t0) / 1000).toFixed(1)} s; goal p50 < 1500 ms: ${percentile(ms, 50) < 1500 ? 'met' : 'NOT met'}`,
  );
} finally {
  await lab.down();
}
