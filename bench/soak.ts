import '../common/polyfill.js';
// `node dist/bench/soak.js [--minutes 30]`: traffic, churn and fuzz on a 3-host lab for a long
// while; prints each long-lived router's RSS and open file descriptors at the start and the end.
// Churn: a container attached and detached every 2 s on h1; h3's router stopped and launched again
// every minute. Traffic: pings between containers every 10 ms. Fuzz: 1000 hostile datagrams every 10 s.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../lab/lab.js';
import { launchAll, report, waitForMesh, weaveOk } from '../lab/weave.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MINUTES = arg('--minutes', 30);
const FUZZ = join(dirname(fileURLToPath(import.meta.url)), 'fuzzers', 'datagrams.js');

const usage = (pid: number) => ({
  rssMiB: Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024,
  fds: readdirSync(`/proc/${pid}/fd`).length,
});

// The V8 heap in use, from the router's own /metrics: RSS alone cannot tell a leak from a heap V8 keeps.
const HEAP = `fetch('http://127.0.0.1:6784/metrics').then(async (r) => console.log(/^nodejs_heap_size_used_bytes (\\S+)/m.exec(await r.text())[1]))`;

const lab = await Lab.create({ hosts: 3 });
try {
  await launchAll(lab);
  await waitForMesh(lab);
  const cs = [];
  for (const [i, h] of ['h1', 'h2', 'h3'].entries()) {
    const c = await lab.addContainer(h, 'c');
    await weaveOk(lab, h, ['attach', `10.32.9.${i + 1}/12`, `netns:${c.netns}`]);
    cs.push(c);
  }
  const pingers = [
    lab.spawnIn(cs[0].netns, ['ping', '-q', '-i', '0.01', '10.32.9.2']),
    lab.spawnIn(cs[1].netns, ['ping', '-q', '-i', '0.01', '10.32.9.1']),
  ];
  const churn = await lab.addContainer('h1', 'churn');
  const pids = { h1: (await report(lab, 'h1')).pid, h2: (await report(lab, 'h2')).pid };
  // Warm up before the first sample: libp2p and V8 settle in the first minute.
  const end = Date.now() + MINUTES * 60_000;
  const warm = Date.now() + Math.min(60_000, MINUTES * 6_000);
  let start: Record<string, ReturnType<typeof usage>> | undefined;
  const series: Record<string, string[]> = { h1: [], h2: [] };
  let nextSample = Date.now();
  let attaches = 0,
    restarts = 0,
    fuzzed = 0,
    errors = 0;
  let nextChurn = Date.now(),
    nextRestart = Date.now() + 60_000,
    nextFuzz = Date.now();
  const r1 = await report(lab, 'h1');
  while (Date.now() < end) {
    if (!start && Date.now() > warm) start = { h1: usage(pids.h1), h2: usage(pids.h2) };
    if (Date.now() >= nextSample) {
      nextSample += 60_000;
      for (const h of ['h1', 'h2'] as const) {
        const heap = Number(await lab.execOk(h, [process.execPath, '-e', HEAP]).catch(() => 'NaN')) / 2 ** 20;
        series[h].push(`${usage(pids[h]).rssMiB.toFixed(0)}/${heap.toFixed(0)}`);
      }
    }
    try {
      if (Date.now() >= nextChurn) {
        nextChurn += 2000;
        await weaveOk(lab, 'h1', ['attach', `netns:${churn.netns}`]);
        await weaveOk(lab, 'h1', ['detach', `netns:${churn.netns}`]);
        attaches++;
      }
      if (Date.now() >= nextRestart) {
        nextRestart += 60_000;
        await weaveOk(lab, 'h3', ['stop']);
        await weaveOk(lab, 'h3', ['launch', '--nickname', 'h3', lab.host('h1').addrs[0]]);
        restarts++;
      }
      if (Date.now() >= nextFuzz) {
        nextFuzz += 10_000;
        fuzzed += Number(
          (
            await lab.execOk('h2', [
              process.execPath,
              FUZZ,
              lab.host('h1').addrs[0],
              String(r1.udpPort),
              String(r1.vni),
              String(r1.mtu),
              '1000',
              String(fuzzed + 1),
            ])
          ).trim(),
        );
      }
    } catch (err) {
      errors++;
      console.error(`soak: ${(err as Error).message.split('\n')[0]}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const p of pingers) p.kill('SIGINT');
  const final = { h1: usage(pids.h1), h2: usage(pids.h2) };
  const same = (await report(lab, 'h1')).pid === pids.h1 && (await report(lab, 'h2')).pid === pids.h2;
  console.log(
    `soak: ${MINUTES} min on 3 hosts: ${attaches} attach/detach cycles, ${restarts} restarts of h3's router, ${fuzzed} hostile datagrams, pings every 10 ms both ways; ${errors} errors; h1 and h2 never restarted: ${same}`,
  );
  for (const h of ['h1', 'h2'] as const) {
    const a = start ?? final,
      b = final[h];
    console.log(
      `${h}: RSS ${a[h].rssMiB.toFixed(1)} -> ${b.rssMiB.toFixed(1)} MiB (${(((b.rssMiB - a[h].rssMiB) / a[h].rssMiB) * 100).toFixed(1)}%), fds ${a[h].fds} -> ${b.fds}`,
    );
  }
  for (const h of ['h1', 'h2']) console.log(`${h} each minute, RSS/heap used MiB: ${series[h].join(' ')}`);
  console.log('goal: growth < 10%');
} finally {
  await lab.down();
}
