import '../common/polyfill.js';
// `node dist/bench/scheduler.js [--replicas 100] [--hosts 3]`: the scheduler at scale. `weave deploy`
// of R busybox web servers over N lab hosts, each fetched by its own address from a namespace on h1;
// prints the time from the deploy to each replica's first answer (p50/max). Then the last host's
// power goes, and prints the time until each of its replicas answers again from another host at its
// same address (p50/max). Goal: max < 15 s after a host death. Speed is printed, never asserted.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, waitFor } from '../lab/lab.js';
import { percentile } from '../lab/seeds.js';
import { intArg } from './args.js';
import { keepLogs, killHost, launchAll, report, waitForMesh, weaveOk } from '../lab/weave.js';
import type { ReplicaView } from '../contract/report.js';

const USAGE = 'usage: node dist/bench/scheduler.js [--replicas R] [--hosts N]';
const GOAL_MS = 15_000;
// Web servers that say which replica they are and where they run (as in test/scheduler.test.ts).
const WEB = `sh -c 'echo "$WEAVE_REPLICA $WEAVE_HOST" > /www/index.html && exec httpd -f -p 80 -h /www'`;

function parseArgs(argv: string[]): { replicas: number; hosts: number } {
  const opts = { replicas: 100, hosts: 3 };
  const int = (flag: string, v: string | undefined, min: number) => intArg(flag, v, min, USAGE);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--replicas') opts.replicas = int(a, argv[++i], 1);
    else if (a === '--hosts')
      opts.hosts = int(a, argv[++i], 3); // a death needs a majority of the others to declare it
    else throw new Error(`unknown argument "${a}"\n${USAGE}`);
  }
  return opts;
}

type Row = ReplicaView;
interface Sched {
  hostTimeoutMs: number;
  dead: { nickname: string; at: number }[];
  replicas: Row[];
}

let args: { replicas: number; hosts: number };
try {
  args = parseArgs(process.argv.slice(2));
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
const { replicas: R, hosts: N } = args;
const names = Array.from({ length: N }, (_, i) => `h${i + 1}`);
const last = names.at(-1)!;
const sched = async (host: string) => (await report(lab, host)).scheduler as Sched;
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const stats = (ms: number[]) => `p50 ${s(percentile(ms, 50))}, max ${s(Math.max(...ms))}`;
const count = (rows: Row[]) =>
  [...new Set(rows.map((r) => r.nickname))]
    .sort()
    .map((h) => `${h} ${rows.filter((r) => r.nickname === h).length}`)
    .join(', ');

/** Fetches r's address from netns until `ok` accepts the answer (each try at most 1 s); the time since t0 then. */
async function firstAnswer(netns: string, r: Row, t0: number, ok: (body: string) => boolean): Promise<number> {
  await waitFor(
    `${r.replica} answering at ${r.address}`,
    async () =>
      ok((await lab.execIn(netns, ['timeout', '1', 'busybox', 'wget', '-qO-', `http://${r.address}/`])).stdout.trim()),
    120_000,
    100,
  );
  return Date.now() - t0;
}

const lab = await Lab.create({ hosts: N });
try {
  await Promise.all(names.map((h) => lab.startDockerd(h)));
  await launchAll(lab);
  await waitForMesh(lab);
  const client = await lab.addContainer('h1', 'client');
  await weaveOk(lab, 'h1', ['attach', 'net:default', `netns:${client.netns}`]);
  const file = join(lab.host('h1').dataDir, 'bench.yml');
  writeFileSync(file, `web:\n  image: busybox:latest\n  cmd: ${WEB}\n  replicas: ${R}\n`);

  const t0 = Date.now();
  await weaveOk(lab, 'h1', ['deploy', file]);
  const up = new Map<string, Promise<number>>(); // each replica fetched from the moment it is reported running
  const rows = await waitFor(
    `all ${R} replicas running`,
    async () => {
      const rs = (await sched('h1')).replicas.filter((r) => r.stack === 'bench');
      for (const r of rs.filter((x) => x.state === 'running' && x.address && !up.has(x.replica))) {
        const p = firstAnswer(client.netns, r, t0, (body) => body === `${r.replica} ${r.nickname}`);
        p.catch(() => {}); // awaited below
        up.set(r.replica, p);
      }
      return rs.length === R && up.size === R ? rs : undefined;
    },
    300_000,
    250,
  );
  const upMs = await Promise.all(up.values());
  const { hostTimeoutMs } = await sched('h1');
  console.log(`${R} replicas of web over ${N} hosts (${count(rows)}); host timeout ${s(hostTimeoutMs)}`);
  console.log(`weave deploy to each answering at its address: ${stats(upMs)}; all in ${s(Math.max(...upMs))}`);

  const victims = rows.filter((r) => r.nickname === last);
  await killHost(lab, last);
  const t1 = Date.now();
  const dead = waitFor(
    `${last} declared dead`,
    async () => (await sched('h1')).dead.find((d) => d.nickname === last)?.at,
    120_000,
    100,
  );
  dead.catch(() => {}); // awaited below
  const backMs = await Promise.all(
    victims.map((v) =>
      firstAnswer(client.netns, v, t1, (body) => body.startsWith(`${v.replica} `) && !body.endsWith(` ${last}`)),
    ),
  );
  const deadAfter = (await dead) - t1;
  const after = (await sched('h1')).replicas.filter((r) => victims.some((v) => v.replica === r.replica));
  const max = Math.max(...backMs);
  console.log(
    `${last} killed: declared dead after ${s(deadAfter)}; ${victims.length} replicas moved (${count(after)}), same addresses`,
  );
  console.log(
    `host death to each answering again: ${stats(backMs)}; goal max < ${s(GOAL_MS)}: ${max < GOAL_MS ? 'met' : 'NOT met'}`,
  );
} finally {
  await keepLogs(lab);
  await lab.down();
}
