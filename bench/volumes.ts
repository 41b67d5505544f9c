import '../common/polyfill.js';
// `node dist/bench/volumes.js [--size-mib 1024] [--changed-percent 1] [--backend btrfs|dir]`: what a
// volume move costs, in one lab run of two hosts (h1, h2) with a dockerd each. A volume of SIZE MiB
// of random data is written on h1 through a container, then:
//  - full copy: `weave volume move` to h2, which holds nothing of it yet;
//  - it moves back to h1 (h1 kept its last snapshot: an increment of nothing), CHANGED% of it is
//    overwritten on h1, a container using it runs there, and it moves to h2 again: the move time, and
//    the container's downtime from its stop on h1 (docker's State.FinishedAt) to the start of a new
//    one on h2 (State.StartedAt), launched as soon as the move returns. Goal: downtime < 2 s at 1%;
//  - the floor, on the same data between the same two pools with no router in between: `btrfs send |
//    btrfs receive` (and a sync: the router's receive ends with a snapshot, which writes the data
//    out) of a same-size snapshot, and `btrfs send -p` of one with CHANGED% changed (with the dir
//    backend, `tar c | tar x` of the whole volume, and no incremental floor).
// The routers run with a long --replicate-interval: a host that is not one of a volume's copies drops
// its leftover snapshot at its next replication round, and the moves back and forth are meant to find
// theirs as a base. Speed is printed, never asserted.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOk } from '../common/exec.js';
import { Lab, waitFor } from '../lab/lab.js';
import { intArg } from './args.js';
import { dockerHost, keepLogs, pluginDir, report, waitForMesh, WEAVE, weaveOk } from '../lab/weave.js';

const USAGE =
  'usage: node dist/bench/volumes.js [--size-mib MiB] [--changed-percent P] [--backend btrfs|dir] ' +
  '[--replicate-interval S]';
const GOAL_MS = 2000;
const HOSTS = ['h1', 'h2'];
const VOL = 'benchvol';
const LONG_MS = 30 * 60_000; // a slow disk's 1 GiB is minutes, not the 60 s of weaveOk
const MiB = 2 ** 20;

interface Args {
  sizeMib: number;
  changedPercent: number;
  backend: 'btrfs' | 'dir';
  replicateInterval: number;
}

function parseArgs(argv: string[]): Args {
  const opts: Args = { sizeMib: 1024, changedPercent: 1, backend: 'btrfs', replicateInterval: 3600 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--size-mib') opts.sizeMib = intArg(a, argv[++i], 1, USAGE);
    else if (a === '--replicate-interval') opts.replicateInterval = intArg(a, argv[++i], 1, USAGE);
    else if (a === '--changed-percent') {
      const v = argv[++i],
        n = Number(v);
      if (!v || !Number.isFinite(n) || n <= 0 || n > 100)
        throw new Error(`--changed-percent needs a number in (0, 100], got "${v ?? ''}"\n${USAGE}`);
      opts.changedPercent = n;
    } else if (a === '--backend') {
      const v = argv[++i];
      if (v !== 'btrfs' && v !== 'dir') throw new Error(`--backend needs btrfs or dir, got "${v ?? ''}"\n${USAGE}`);
      opts.backend = v;
    } else throw new Error(`unknown argument "${a}"\n${USAGE}`);
  }
  return opts;
}

let args: Args;
try {
  args = parseArgs(process.argv.slice(2));
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
const { sizeMib, changedPercent, backend, replicateInterval } = args;
// The change is written in 64 KiB blocks, in the middle of the file.
const BLOCK = 64 * 1024;
const totalBlocks = (sizeMib * MiB) / BLOCK;
const changedBlocks = Math.max(1, Math.round((totalBlocks * changedPercent) / 100));
const changedSeek = Math.floor((totalBlocks - changedBlocks) / 2);
const poolGiB = Math.max(4, Math.ceil((4 * sizeMib) / 1024));

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const size = (bytes: number) =>
  bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / MiB).toFixed(1)} MiB`;
const rate = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;
const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(1)}x` : '-');

const lab = await Lab.create({ hosts: HOSTS.length });
const env = (h: string) => ({
  WEAVE_DATA_DIR: lab.host(h).dataDir,
  DOCKER_HOST: dockerHost(lab, h),
  WEAVE_PLUGIN_DIR: pluginDir(lab, h),
});
const weaveLong = (h: string, a: string[]) => lab.execOk(h, [WEAVE, ...a], { env: env(h), timeoutMs: LONG_MS });
const docker = (h: string, a: string[], timeoutMs = 120_000) =>
  lab.execOk(h, ['docker', ...a], { env: env(h), timeoutMs });
/** The pool's root as the machine sees it (a loop pool is mounted in our mount namespace: WEAVE_MOUNT_NS). */
const pool = (h: string) => join(lab.host(h).dataDir, 'volumes');
const RUN = ['run', '--volume-driver', 'weave', '-v', `${VOL}:/data`];
/** A container that uses the volume until it is stopped. */
const USER = [...RUN, '-d', '--name', 'user', 'busybox', 'sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done'];
const bytesIn = async (h: string) =>
  ((await report(lab, h)).volumes as { counters: { bytesIn: number } }).counters.bytesIn;
/** Docker's RFC 3339 nanosecond time, in ms since the epoch (with the sub-ms part). */
const dockerTime = (t: string) => {
  const m = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?Z$/.exec(t.trim());
  if (!m) throw new Error(`unexpected docker time "${t.trim()}"`);
  return Date.parse(`${m[1]}Z`) + Number(`0${m[2] ?? ''}`) * 1000;
};
const md5 = async (file: string) => (await runOk(['md5sum', file], { timeoutMs: LONG_MS })).split(' ')[0];

/** The router's own account of the last move of VOL to `to`: its two phases, in ms. */
function logSplit(to: string, from: string): { first: number; last: number } | undefined {
  const text = readFileSync(join(lab.host(to).dataDir, 'weave.log'), 'utf8');
  const re = new RegExp(
    `volume ${VOL} moved here from ${from}: snapshot \\d+ in (\\d+) ms, last increment and hand-over in (\\d+) ms`,
    'g',
  );
  const m = [...text.matchAll(re)].at(-1);
  return m && { first: Number(m[1]), last: Number(m[2]) };
}

interface Move<T> {
  ms: number;
  returned: number;
  bytes: number;
  split?: { first: number; last: number };
  out: string;
  after: T;
}
/**
 * `weave volume move VOL to`, run on the destination (which does the work), timed around the CLI;
 * `then` runs the moment it returns (before the bookkeeping, which asks the router for its counters).
 */
async function move<T = undefined>(
  from: string,
  to: string,
  then: () => Promise<T> = async () => undefined as T,
): Promise<Move<T>> {
  const before = await bytesIn(to);
  const t0 = performance.now();
  const out = (await weaveLong(to, ['volume', 'move', VOL, to])).trim();
  const ms = performance.now() - t0,
    returned = Date.now();
  const after = await then();
  return { ms, returned, bytes: (await bytesIn(to)) - before, split: logSplit(to, from), out, after };
}
const splitText = (m: Move<unknown>) =>
  m.split
    ? `router: snapshot ${s(m.split.first)}, last increment and hand-over ${s(m.split.last)}`
    : 'router: no log line';

/** A child's end: 'exit' and its stderr read ('close' would wait for a stdout handed to another process). */
async function exitOf(child: ChildProcess, what: string): Promise<void> {
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-4096);
  });
  const [[code, signal]] = await Promise.all([
    new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c, sig) => resolve([c, sig]));
    }),
    new Promise((resolve) => child.stderr!.once('close', resolve)),
  ]);
  if (code !== 0) throw new Error(`${what}: ${stderr.trim().split('\n').at(-1) || `exit ${code ?? signal}`}`);
}

interface Floor {
  pipe: number;
  flush: number;
  ms: number;
}
/**
 * `a | b` with a kernel pipe between them (no shell, no copy through us), then, with `flush`, a sync
 * of that filesystem: the router's btrfs receive ends with a snapshot of what it received, which
 * writes it out, so the floor does too. Whatever was dirty before is written out first, untimed.
 */
async function timedPipe(a: string[], b: string[], flush?: string): Promise<Floor> {
  await runOk(['sync'], { timeoutMs: LONG_MS });
  const t0 = performance.now();
  const src = spawn(a[0], a.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const dst = spawn(b[0], b.slice(1), { stdio: [src.stdout!, 'ignore', 'pipe'] });
  src.stdout!.destroy(); // our end of the pipe: only dst reads it
  await Promise.all([exitOf(src, a.slice(0, 2).join(' ')), exitOf(dst, b.slice(0, 2).join(' '))]);
  const t1 = performance.now();
  if (flush) await runOk(['sync', '-f', flush], { timeoutMs: LONG_MS });
  const t2 = performance.now();
  return { pipe: t1 - t0, flush: t2 - t1, ms: t2 - t0 };
}

try {
  console.log(
    `volume bench: ${sizeMib} MiB of random data, ${changedPercent}% changed (${size(changedBlocks * BLOCK)}), ${backend} backend, ` +
      `lab hosts ${HOSTS.join(', ')} with a dockerd each (lab ${lab.id})`,
  );
  console.log('(one run on a small shared VM, 2 cores, one disk: the figures move from run to run)');
  await Promise.all(HOSTS.map((h) => lab.startDockerd(h)));
  const first = lab.host('h1').addrs[0];
  for (const h of HOSTS) {
    await weaveOk(lab, h, [
      'launch',
      '--nickname',
      h,
      '--volume-backend',
      backend,
      ...(backend === 'btrfs' ? ['--volume-pool', `${pool(h)}.img:${poolGiB}G`] : []),
      '--replicate-interval',
      String(replicateInterval),
      ...(h === 'h1' ? [] : [first]),
    ]);
  }
  await waitForMesh(lab);
  // h2's pool is made now, not during the first move (mkfs and mount are not the copy's time).
  await weaveOk(lab, 'h2', ['volume', 'create', 'warmup']);
  await weaveOk(lab, 'h2', ['volume', 'rm', 'warmup']);

  await weaveOk(lab, 'h1', ['volume', 'create', VOL]);
  /** A shell script in a container on h1 that uses the volume, gone when it ends. */
  const inContainer = (script: string) => docker('h1', [...RUN, '--rm', 'busybox', 'sh', '-c', script], LONG_MS);
  let t = performance.now();
  await inContainer(`dd if=/dev/urandom of=/data/blob bs=1M count=${sizeMib} 2>/dev/null && sync`);
  const written = performance.now() - t;
  const volBytes = Number((await runOk(['du', '-sb', join(pool('h1'), 'vols', VOL)])).split('\t')[0]);
  console.log(`  ${size(volBytes)} written on h1 in ${s(written)} (dd from /dev/urandom in a container, then sync)`);

  // 1. Full copy: h2 holds nothing of the volume.
  const full = await move('h1', 'h2');
  console.log(`  full copy h1 -> h2: ${full.out}: ${s(full.ms)}, ${size(full.bytes)} received; ${splitText(full)}`);

  // 2. Back to h1, which kept its last snapshot: the base of an increment.
  const back = await move('h2', 'h1');
  console.log(
    `  back h2 -> h1 (nothing changed): ${back.out}: ${s(back.ms)}, ${size(back.bytes)} received; ${splitText(back)}`,
  );

  // 3. CHANGED% overwritten on h1, a container using the volume there, and the move to h2 (which kept its last
  // snapshot).
  t = performance.now();
  await inContainer(
    `dd if=/dev/urandom of=/data/blob bs=${BLOCK} count=${changedBlocks} seek=${changedSeek} conv=notrunc 2>/dev/null && sync`,
  );
  console.log(
    `  ${size(changedBlocks * BLOCK)} overwritten in the middle of the volume on h1 in ${s(performance.now() - t)}`,
  );
  const sum = await md5(join(pool('h1'), 'vols', VOL, 'blob'));
  await docker('h1', USER);
  await waitFor(
    'the container on h1 running',
    async () => (await docker('h1', ['inspect', '-f', '{{.State.Running}}', 'user'])).trim() === 'true',
    30_000,
  );
  const wall0 = Date.now();
  const changed = await move('h1', 'h2', async () => (await docker('h2', USER)).trim());
  const id = changed.after;
  const [finished, state] = (await docker('h1', ['inspect', '-f', '{{.State.FinishedAt}} {{.State.Running}}', 'user']))
    .trim()
    .split(' ');
  const started = (await docker('h2', ['inspect', '-f', '{{.State.StartedAt}}', id])).trim();
  const stoppedAt = dockerTime(finished),
    startedAt = dockerTime(started);
  const downtime = startedAt - stoppedAt;
  console.log(
    `  ${changedPercent}% changed, container running on h1: ${changed.out}: ${s(changed.ms)}, ${size(changed.bytes)} received; ${splitText(changed)}`,
  );
  console.log(
    `  the container on h1 ${state === 'false' ? 'stopped' : 'was STILL RUNNING'} ${s(stoppedAt - wall0)} after the move began, which returned ` +
      `${s(changed.returned - stoppedAt)} later; the new one on h2 started ${s(startedAt - changed.returned)} after that (docker run -d): downtime ${s(downtime)}`,
  );
  const sumThere = await md5(join(pool('h2'), 'vols', VOL, 'blob'));
  console.log(
    `  md5 of /data/blob on h1 before the move ${sum === sumThere ? 'equals' : 'DIFFERS FROM'} the one on h2 after it`,
  );
  await docker('h2', ['rm', '-f', id]);

  // 4. The floor: the same bytes between the same two pools, with nothing in between.
  const snaps = readdirSync(join(pool('h1'), 'snaps'))
    .filter((e) => e.startsWith(`${VOL}@`))
    .sort((a, b) => Number(a.split('@')[1]) - Number(b.split('@')[1]));
  const snap = join(pool('h1'), 'snaps', snaps.at(-1)!); // h1's last snapshot of the volume: what it sent h2
  const src = join(pool('h1'), 'bench-floor'),
    dst = join(pool('h2'), 'bench-floor');
  let floorFull: Floor, floorInc: Floor | undefined;
  await runOk(['mkdir', '-p', src, dst]);
  try {
    if (backend === 'btrfs') {
      await runOk(['btrfs', 'subvolume', 'snapshot', '-r', snap, join(src, 'base')]);
      floorFull = await timedPipe(['btrfs', 'send', '-q', join(src, 'base')], ['btrfs', 'receive', '-q', dst], dst);
      await runOk(['btrfs', 'subvolume', 'snapshot', join(src, 'base'), join(src, 'work')]);
      await runOk(
        [
          'dd',
          'if=/dev/urandom',
          `of=${join(src, 'work', 'blob')}`,
          `bs=${BLOCK}`,
          `count=${changedBlocks}`,
          `seek=${changedSeek}`,
          'conv=notrunc',
          'status=none',
        ],
        { timeoutMs: LONG_MS },
      );
      await runOk(['btrfs', 'subvolume', 'snapshot', '-r', join(src, 'work'), join(src, 'changed')]);
      floorInc = await timedPipe(
        ['btrfs', 'send', '-q', '-p', join(src, 'base'), join(src, 'changed')],
        ['btrfs', 'receive', '-q', dst],
        dst,
      );
    } else {
      await runOk(['mkdir', join(dst, 'base')]);
      floorFull = await timedPipe(['tar', '-C', snap, '-cf', '-', '.'], ['tar', '-C', join(dst, 'base'), '-xf', '-']);
    }
  } finally {
    if (backend === 'btrfs') {
      for (const d of [src, dst])
        for (const e of readdirSync(d)) await runOk(['btrfs', 'subvolume', 'delete', join(d, e)]).catch(() => {});
    }
    await runOk(['rm', '-rf', src, dst]).catch(() => {});
  }

  const floorName = backend === 'btrfs' ? 'btrfs send | receive + sync' : 'tar c | tar x';
  const floorText = (f: Floor) => (backend === 'btrfs' ? `(${s(f.pipe)} + sync ${s(f.flush)})` : '');
  const rows: [string, string, string][] = [
    [
      `full copy over weave, h1 -> h2 (${size(full.bytes)} sent)`,
      s(full.ms),
      `${rate(volBytes, full.ms)}; ${ratio(full.ms, floorFull.ms)} the floor`,
    ],
    [
      `  floor: local ${floorName}, pool to pool`,
      s(floorFull.ms),
      `${rate(volBytes, floorFull.ms)} ${floorText(floorFull)}`.trim(),
    ],
    [`move back h2 -> h1, nothing changed (${size(back.bytes)} sent)`, s(back.ms), ''],
    [
      `${changedPercent}% changed, container running: move (${size(changed.bytes)} sent)`,
      s(changed.ms),
      floorInc === undefined ? '' : `${ratio(changed.ms, floorInc.ms)} the floor`,
    ],
    [
      `  of which, by the router's log`,
      '',
      changed.split
        ? `${s(changed.split.first)} copying while it ran, ${s(changed.split.last)} stop, last increment, hand-over`
        : '-',
    ],
    [
      `  floor: local ${backend === 'btrfs' ? 'btrfs send -p | receive + sync' : 'increment'} of ${changedPercent}%`,
      floorInc === undefined ? 'n/a' : s(floorInc.ms),
      floorInc === undefined ? '(tar has no increments)' : floorText(floorInc),
    ],
    [
      `container downtime, stopped on h1 -> started on h2`,
      s(downtime),
      `goal < ${s(GOAL_MS)}: ${downtime < GOAL_MS ? 'met' : 'NOT met'} ` +
        `(${s(changed.returned - stoppedAt)} until the move returned, ${s(startedAt - changed.returned)} docker run on h2)`,
    ],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length)),
    w1 = Math.max(...rows.map((r) => r[1].length));
  console.log(
    `\n${sizeMib} MiB volume (${size(volBytes)} on disk), ${changedPercent}% = ${size(changedBlocks * BLOCK)} changed, ${backend} backend:`,
  );
  for (const [a, b, c] of rows) console.log(`  ${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`.trimEnd());
} finally {
  await keepLogs(lab);
  await lab.down();
}
