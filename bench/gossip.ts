import '../common/polyfill.js';
// Control-plane scale bench: N routers' control planes on loopback, one process each (forked
// bench/gossip-peer.js, driven over IPC), peer i dialling D earlier peers. Measures the time to a
// full topology everywhere, the time for a new MAC to reach every peer, RSS per router, and the
// gossip traffic at rest. Every worker is stopped and the data directories removed, whatever happens.
// --one-process runs every control plane in this process instead (RSS and CPU then divided by N).
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChannelCounters } from '../gossip/gossip.js';
import { Peer, type Command, type PeerState, type Reply } from './gossip-peer.js';
import { intArg } from './args.js';

const USAGE =
  'usage: node dist/bench/gossip.js [--peers N] [--degree D] [--rest-seconds S] [--one-process] ' +
  '[--sequential] [--json]';
const BASE_PORT = 21000;
const MAC = 0x02aabbccdd01;
const PHASE_DEADLINE_MS = 120_000;
const POLL_MS = 100;
const POLL_REPLY_MS = 10_000; // one poll round waits this long for a busy worker
const STOP_DEADLINE_MS = 15_000;
/** Workers loading modules and making keys at once: more only thrash a small machine. */
const SPAWN_CONCURRENCY = Math.max(2, availableParallelism() * 2);
const SEED = 0x5eed;

interface Options {
  peers: number;
  degree: number;
  restSeconds: number;
  json: boolean;
  oneProcess: boolean;
  sequential: boolean;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { peers: 100, degree: 3, restSeconds: 10, json: false, oneProcess: false, sequential: false };
  const int = (flag: string, v: string | undefined, min: number) => intArg(flag, v, min, USAGE);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') opts.json = true;
    else if (a === '--one-process') opts.oneProcess = true;
    else if (a === '--sequential') opts.sequential = true;
    else if (a === '--peers') opts.peers = int(a, argv[++i], 2);
    else if (a === '--degree') opts.degree = int(a, argv[++i], 1);
    else if (a === '--rest-seconds') opts.restSeconds = int(a, argv[++i], 1);
    else throw new Error(`unknown argument "${a}"\n${USAGE}`);
  }
  if (BASE_PORT + opts.peers > 65535) throw new Error(`--peers ${opts.peers}: ports would run past 65535`);
  return opts;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** mulberry32: a small PRNG, so every run builds the same graph. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** For each peer, the earlier peers it dials: i-1 and up to D-1 others at random. Connected by construction. */
function graph(n: number, d: number): number[][] {
  const rand = prng(SEED);
  const out: number[][] = [[]];
  for (let i = 1; i < n; i++) {
    const set = new Set([i - 1]);
    while (set.size < Math.min(d, i)) set.add(Math.floor(rand() * i));
    out.push([...set].sort((a, b) => a - b));
  }
  return out;
}

class TimeoutError extends Error {}

interface Waiter {
  match: (r: Reply) => boolean;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** One forked control plane and the messages it sends us. */
class Worker {
  readonly proc: ChildProcess;
  name = '';
  exited = false;
  exitInfo = '';
  output = '';
  /** Length of `output` when we asked it to stop: what follows came from shutting down. */
  stopMark?: number;
  macAt?: number;
  errors: string[] = [];
  private waiters: Waiter[] = [];

  private readonly local?: Peer;

  constructor(
    readonly i: number,
    script: string,
    oneProcess: boolean,
  ) {
    if (oneProcess) {
      // No process: the same Peer, driven by direct calls; replies go the same way as over IPC.
      this.local = new Peer((r) => setImmediate(() => this.onMessage(r)), false);
      this.proc = undefined as unknown as ChildProcess;
      setImmediate(() => this.onMessage({ type: 'ready', t: Date.now() }));
      return;
    }
    this.proc = fork(script, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const keep = (b: Buffer) => {
      if (this.output.length < 64 << 10) this.output += b.toString();
    };
    this.proc.stdout!.on('data', keep);
    this.proc.stderr!.on('data', keep);
    this.proc.on('message', (r: Reply) => this.onMessage(r));
    this.proc.on('exit', (code, signal) => {
      this.exited = true;
      this.exitInfo = signal ? `killed by ${signal}` : `exit code ${code}`;
      this.failAll(
        new Error(
          `peer ${this.i} exited (${this.exitInfo})${this.output ? `:\n${this.output.trim().slice(-2000)}` : ''}`,
        ),
      );
    });
    this.proc.on('error', (err) => this.failAll(err));
  }

  send(cmd: Command): void {
    if (this.local) {
      this.local
        .handle(cmd)
        .catch((err: Error) => this.onMessage({ type: 'error', during: cmd.type, message: err?.stack ?? String(err) }));
      return;
    }
    if (this.exited || !this.proc.connected)
      throw new Error(`peer ${this.i} is gone (${this.exitInfo || 'IPC closed'})`);
    this.proc.send(cmd);
  }

  /** The next reply matching `match`, or an error after timeoutMs, or when the worker fails. */
  next<T extends Reply['type']>(
    type: T,
    timeoutMs: number,
    match: (r: Extract<Reply, { type: T }>) => boolean = () => true,
  ): Promise<Extract<Reply, { type: T }>> {
    if (this.exited) return Promise.reject(new Error(`peer ${this.i} is gone (${this.exitInfo})`));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        match: (r) => r.type === type && match(r as Extract<Reply, { type: T }>),
        resolve: (r) => resolve(r as Extract<Reply, { type: T }>),
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new TimeoutError(`peer ${this.i}: no "${type}" within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  async request<T extends Reply['type']>(
    cmd: Command,
    type: T,
    timeoutMs: number,
    match?: (r: Extract<Reply, { type: T }>) => boolean,
  ): Promise<Extract<Reply, { type: T }>> {
    const p = this.next(type, timeoutMs, match);
    this.send(cmd);
    return p;
  }

  kill(): void {
    if (!this.local && !this.exited)
      try {
        this.proc.kill('SIGKILL');
      } catch {
        /* gone already */
      }
  }

  private onMessage(r: Reply): void {
    if (r.type === 'mac') this.macAt ??= r.t;
    if (r.type === 'error') {
      this.errors.push(`${r.during}: ${r.message}`);
      this.failAll(new Error(`peer ${this.i} failed during ${r.during}: ${r.message}`));
      return;
    }
    const w = this.waiters.find((x) => x.match(r));
    if (!w) return;
    clearTimeout(w.timer);
    this.waiters = this.waiters.filter((x) => x !== w);
    w.resolve(r);
  }

  private failAll(err: Error): void {
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiters = [];
  }
}

interface Snapshot {
  t: number;
  state: PeerState;
}

let pollId = 0;
/** One poll of every worker; undefined for one that did not answer in time. Failures of a worker are thrown. */
async function pollAll(workers: Worker[], detail: boolean): Promise<(Snapshot | undefined)[]> {
  const id = ++pollId;
  return Promise.all(
    workers.map(async (w) => {
      try {
        const r = await w.request({ type: 'poll', id, detail }, 'state', POLL_REPLY_MS, (x) => x.id === id);
        return { t: r.t, state: r.state };
      } catch (err) {
        if (err instanceof TimeoutError) return undefined;
        throw err;
      }
    }),
  );
}

const sumCounters = (g: Record<string, ChannelCounters> | undefined) => {
  const s = { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0, dropped: 0, syncs: 0 };
  for (const c of Object.values(g ?? {})) {
    s.messagesIn += c.messagesIn;
    s.bytesIn += c.bytesIn;
    s.messagesOut += c.messagesOut;
    s.bytesOut += c.bytesOut;
    s.dropped += c.dropped;
    s.syncs += c.syncs;
  }
  return s;
};

const fmtS = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const MiB = (b: number) => b / (1 << 20);

interface Result {
  peers: number;
  degree: number;
  restSeconds: number;
  cores: number;
  spawn: { seconds: number; concurrency: number };
  converge: {
    seconds?: number;
    secondsFromFirstFork?: number;
    polledSeconds?: number;
    sameViewSeconds?: number;
    timeout?: boolean;
    detail?: string;
  };
  mac: { seconds?: number; medianSeconds?: number; timeout?: boolean; reached?: number; detail?: string };
  macAtRest?: Result['mac'];
  rssMiB?: { min: number; median: number; max: number };
  deadPeer?: { seconds?: number; timeout?: boolean };
  repair?: { seconds?: number; medianSeconds?: number; timeout?: boolean };
  rest?: {
    seconds: number;
    stable: boolean;
    messagesInPerS: { median: number; max: number };
    bytesInPerS: { median: number; max: number };
    messagesOutPerS: { median: number; max: number };
    bytesOutPerS: { median: number; max: number };
    droppedDelta: number;
    /** Summed over peers during the window: topology changes seen, full states received, connections at the end. */
    topologyChanges: number;
    syncsIn: number;
    connections: { min: number; median: number; max: number };
    /** CPU per router process during the window, % of one core. */
    cpuPercent: { median: number; max: number; sum: number };
  };
  workerOutput: { workers: number; sample: string[]; whileStopping?: number; stoppingSample?: string[] };
  goals: { convergeSeconds: number; macSeconds: number; rssMiB: number };
  ok: boolean;
  error?: string;
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const script = join(dirname(fileURLToPath(import.meta.url)), 'gossip-peer.js');
  const dir = mkdtempSync(join(tmpdir(), 'weave-gossip-bench-'));
  const workers: Worker[] = [];
  // Whatever way we leave (an exception, a signal), no worker and no data directory survives us.
  const cleanup = () => {
    for (const w of workers) w.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => process.exit(130));

  const log = (s: string) => {
    if (!o.json) console.log(s);
    else console.error(s);
  };
  const line = (s: string) => console.log(s);
  const cores = availableParallelism();
  const res: Result = {
    peers: o.peers,
    degree: o.degree,
    restSeconds: o.restSeconds,
    cores,
    spawn: { seconds: 0, concurrency: SPAWN_CONCURRENCY },
    converge: {},
    mac: {},
    workerOutput: { workers: 0, sample: [] },
    goals: { convergeSeconds: 10, macSeconds: 1, rssMiB: 150 },
    ok: false,
  };
  line(
    `gossip bench: ${o.peers} control planes on 127.0.0.1 (TCP ${BASE_PORT}-${BASE_PORT + o.peers - 1}), ${o.oneProcess ? 'all in this one process' : 'one process each'}, degree ${o.degree}, started ${o.sequential ? 'one after another' : 'all at once'}, ${cores} cores, node ${process.version}`,
  );
  line(`goals: converge < 10 s, MAC at all < 1 s, dead peer routed around < 5 s, RSS < 150 MiB`);
  const dials = graph(o.peers, o.degree);
  const share = o.oneProcess ? o.peers : 1; // in one process, RSS and CPU are the process's: divide among the peers

  try {
    // 1. Processes: fork, load the modules, make the key and the libp2p node; not started yet.
    const tFork = Date.now();
    const spawnDeadline = Date.now() + Math.max(PHASE_DEADLINE_MS, o.peers * 2000);
    let next = 0;
    const spawnOne = async (): Promise<void> => {
      while (next < o.peers) {
        const i = next++;
        const w = new Worker(i, script, o.oneProcess);
        workers[i] = w;
        const left = () => Math.max(1, spawnDeadline - Date.now());
        await w.next('ready', left());
        const c = await w.request(
          {
            type: 'create',
            total: o.peers,
            opts: {
              dataDir: join(dir, `p${i}`),
              nickname: `p${i}`,
              port: BASE_PORT + i,
              udpPort: 6784,
              connLimit: 100,
              discovery: false,
            },
          },
          'created',
          left(),
        );
        w.name = c.name;
      }
    };
    await Promise.all(Array.from({ length: Math.min(SPAWN_CONCURRENCY, o.peers) }, spawnOne));
    res.spawn.seconds = (Date.now() - tFork) / 1000;
    line(
      `spawn: ${o.peers} ${o.oneProcess ? 'peers' : 'worker processes forked and their'} nodes created in ${fmtS(Date.now() - tFork)} (${SPAWN_CONCURRENCY} at a time; not counted below)`,
    );

    // 2. Start: all at once, as hosts booted together do (a dial may find no listener yet, and is
    // retried); or, with --sequential, in index order, each once the previous one listens.
    const tStart = Date.now();
    const start = (w: Worker) =>
      w.request({ type: 'start', peers: dials[w.i].map((j) => `127.0.0.1:${BASE_PORT + j}`) }, 'started', 60_000);
    if (o.sequential) for (const w of workers) await start(w);
    else await Promise.all(workers.map(start));
    const startedIn = Date.now() - tStart;

    // 3. Convergence: every peer reaches all N over links both ends report.
    const convDeadline = Date.now() + PHASE_DEADLINE_MS;
    let last: (Snapshot | undefined)[] = [];
    for (;;) {
      last = await pollAll(workers, false);
      if (last.every((s) => s?.state.reachable === o.peers)) {
        const tPoll = Date.now();
        // All have been full without a break since the latest of their fullSince: that is when they agreed.
        const localMax = Math.max(...last.map((s) => s!.state.fullSince ?? tPoll));
        res.converge = {
          seconds: (localMax - tStart) / 1000,
          polledSeconds: (tPoll - tStart) / 1000,
          secondsFromFirstFork: (localMax - tFork) / 1000,
        };
        line(
          `converge: ${fmtS(localMax - tStart)} until all ${o.peers} peers reach all ${o.peers} (goal < 10 s) [from the first control plane start; all started within ${fmtS(startedIn)}; seen by polling at ${fmtS(tPoll - tStart)}; ${fmtS(localMax - tFork)} from the first fork]`,
        );
        break;
      }
      if (Date.now() > convDeadline) {
        const r = last.map((s) => s?.state.reachable ?? 0);
        const detail = `${r.filter((x) => x === o.peers).length}/${o.peers} peers reach all; reachable min ${Math.min(...r)} median ${median(r)}; known median ${median(last.map((s) => s?.state.known ?? 0))}; ${last.filter((s) => !s).length} did not answer a poll`;
        res.converge = { timeout: true, detail };
        line(`converge: TIMEOUT after ${PHASE_DEADLINE_MS / 1000} s: ${detail} (goal < 10 s)`);
        break;
      }
      await sleep(POLL_MS);
    }

    // 4. A new MAC at peer 0, announced as soon as all reach all (the last records are still
    // spreading), and again once every peer's view is the same: every other peer reports locally
    // when it learns the owner.
    const owner = workers[0].name;
    const spreadMac = async (mac: number, when: string): Promise<Result['mac']> => {
      for (const w of workers) w.macAt = undefined;
      await Promise.all(workers.slice(1).map((w) => w.request({ type: 'watch', mac, owner }, 'watching', 30_000)));
      const tAnn = (await workers[0].request({ type: 'announce', mac }, 'announced', 30_000)).t;
      workers[0].macAt = tAnn;
      const macDeadline = Date.now() + PHASE_DEADLINE_MS;
      while (workers.some((w) => w.macAt === undefined) && Date.now() < macDeadline) {
        for (const w of workers)
          if (w.exited) throw new Error(`peer ${w.i} exited (${w.exitInfo}) while the MAC spread`);
        await sleep(20);
      }
      const arrivals = workers.filter((w) => w.macAt !== undefined).map((w) => w.macAt! - tAnn);
      if (arrivals.length === o.peers) {
        line(
          `mac ${when}: ${Math.max(...arrivals)} ms until peer 0's new MAC is known at all ${o.peers} peers (median peer ${median(arrivals)} ms) (goal < 1 s)`,
        );
        return { seconds: Math.max(...arrivals) / 1000, medianSeconds: median(arrivals) / 1000, reached: o.peers };
      }
      const missing = workers.filter((w) => w.macAt === undefined).map((w) => w.i);
      const detail = `${arrivals.length}/${o.peers} peers learned it; missing: ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ', ...' : ''}`;
      line(`mac ${when}: TIMEOUT after ${PHASE_DEADLINE_MS / 1000} s: ${detail} (goal < 1 s)`);
      return { timeout: true, reached: arrivals.length, detail };
    };
    res.mac = await spreadMac(MAC, 'while the last records spread');

    // 4a. Every peer's view the same (every peer's newest record everywhere): when the last one changed.
    const viewDeadline = Date.now() + PHASE_DEADLINE_MS;
    for (;;) {
      const s = await pollAll(workers, false);
      if (s.every((x) => x && x.state.view === s[0]!.state.view)) {
        const at = Math.max(...s.map((x) => x!.state.viewChangedAt));
        res.converge.sameViewSeconds = (at - tStart) / 1000;
        line(
          `same view: ${fmtS(at - tStart)} until every peer holds every peer's newest record (from the first control plane start)`,
        );
        break;
      }
      if (Date.now() > viewDeadline) {
        line(`same view: TIMEOUT after ${PHASE_DEADLINE_MS / 1000} s`);
        break;
      }
      await sleep(POLL_MS);
    }
    res.macAtRest = await spreadMac(MAC + 2, 'once every view is the same');

    // 4b. A delta lost on the way to everyone: peer 0 records a MAC and tells nobody; anti-entropy alone spreads it.
    const LOST = MAC + 1;
    for (const w of workers) w.macAt = undefined;
    await Promise.all(workers.slice(1).map((w) => w.request({ type: 'watch', mac: LOST, owner }, 'watching', 30_000)));
    const tLost = (await workers[0].request({ type: 'sneak', mac: LOST }, 'announced', 30_000)).t;
    workers[0].macAt = tLost;
    const lostDeadline = Date.now() + PHASE_DEADLINE_MS;
    while (workers.some((w) => w.macAt === undefined) && Date.now() < lostDeadline) await sleep(20);
    const repaired = workers.filter((w) => w.macAt !== undefined).map((w) => w.macAt! - tLost);
    res.repair =
      repaired.length === o.peers
        ? { seconds: Math.max(...repaired) / 1000, medianSeconds: median(repaired) / 1000 }
        : { timeout: true };
    line(
      repaired.length === o.peers
        ? `repair: ${Math.max(...repaired)} ms until a delta lost on the way to everyone is known at all ${o.peers} peers by anti-entropy alone (median peer ${median(repaired)} ms)`
        : `repair: TIMEOUT: ${repaired.length}/${o.peers} peers learned the lost delta`,
    );

    // 5. Memory, then traffic at rest over the window.
    const a = await pollAll(workers, true);
    // one process: its RSS shared by all
    const rss = a.filter((s): s is Snapshot => !!s).map((s) => MiB(s.state.rss!) / share);
    res.rssMiB = { min: Math.min(...rss), median: median(rss), max: Math.max(...rss) };
    line(
      `rss: min ${res.rssMiB.min.toFixed(1)} / median ${res.rssMiB.median.toFixed(1)} / max ${res.rssMiB.max.toFixed(1)} MiB per router (${rss.length} answered) (goal < 150 MiB)`,
    );

    await sleep(o.restSeconds * 1000); // the measurement window itself, not a readiness wait
    const b = await pollAll(workers, true);
    const rates = {
      mi: [] as number[],
      bi: [] as number[],
      mo: [] as number[],
      bo: [] as number[],
      digest: [] as number[],
    };
    let dropped = 0,
      changes = 0,
      syncs = 0;
    const conns: number[] = [],
      cpu: number[] = [];
    for (let i = 0; i < o.peers; i++) {
      const x = a[i],
        y = b[i];
      if (!x || !y) continue;
      const dt = (y.t - x.t) / 1000;
      const cx = sumCounters(x.state.gossip),
        cy = sumCounters(y.state.gossip);
      rates.mi.push((cy.messagesIn - cx.messagesIn) / dt);
      rates.bi.push((cy.bytesIn - cx.bytesIn) / dt);
      rates.mo.push((cy.messagesOut - cx.messagesOut) / dt);
      rates.bo.push((cy.bytesOut - cx.bytesOut) / dt);
      rates.digest.push(((y.state.digestBytes ?? 0) - (x.state.digestBytes ?? 0)) / dt);
      dropped += cy.dropped - cx.dropped;
      syncs += cy.syncs - cx.syncs;
      changes += y.state.topologyChanges - x.state.topologyChanges;
      conns.push(y.state.connections!);
      cpu.push((y.state.cpuMicros! - x.state.cpuMicros!) / 1e4 / dt / share); // % of one core
    }
    const mm = (xs: number[]) => ({ median: median(xs), max: Math.max(...xs) });
    const stable = b.every((s) => s?.state.reachable === o.peers);
    res.rest = {
      seconds: o.restSeconds,
      stable,
      messagesInPerS: mm(rates.mi),
      bytesInPerS: mm(rates.bi),
      messagesOutPerS: mm(rates.mo),
      bytesOutPerS: mm(rates.bo),
      droppedDelta: dropped,
      topologyChanges: changes,
      syncsIn: syncs,
      connections: { min: Math.min(...conns), median: median(conns), max: Math.max(...conns) },
      cpuPercent: { ...mm(cpu), sum: cpu.reduce((x, y) => x + y, 0) },
    };
    const r = res.rest;
    line(
      `at rest (${o.restSeconds} s, per peer, median/max): in ${r.messagesInPerS.median.toFixed(2)}/${r.messagesInPerS.max.toFixed(2)} msg/s ${r.bytesInPerS.median.toFixed(0)}/${r.bytesInPerS.max.toFixed(0)} B/s, out ${r.messagesOutPerS.median.toFixed(2)}/${r.messagesOutPerS.max.toFixed(2)} msg/s ${r.bytesOutPerS.median.toFixed(0)}/${r.bytesOutPerS.max.toFixed(0)} B/s [channel payloads]; anti-entropy digests ${median(rates.digest).toFixed(0)}/${Math.max(...rates.digest).toFixed(0)} B/s [libp2p's own traffic (gossipsub control and heartbeats, ping, identify, noise/yamux framing) is not counted]; in the window, all peers: ${changes} topology changes, ${syncs} full states received; connections per peer ${r.connections.min}-${r.connections.max}; CPU per router ${r.cpuPercent.median.toFixed(1)}/${r.cpuPercent.max.toFixed(1)}% of a core (all: ${r.cpuPercent.sum.toFixed(0)}% of ${cores * 100}%)${stable ? '' : '; topology NOT stable: some peer no longer reaches all'}${dropped ? `; ${dropped} dropped` : ''}`,
    );
    // 6. A peer dies (SIGKILL; in one process, its connections end): how long until all others route around it.
    const victim = workers[o.peers - 1];
    const others = workers.filter((w) => w !== victim);
    const tKill = Date.now();
    if (o.oneProcess) await victim.request({ type: 'crash' }, 'stopped', 30_000);
    else victim.kill();
    const killDeadline = Date.now() + PHASE_DEADLINE_MS;
    for (;;) {
      const s = await pollAll(others, false);
      if (s.every((x) => x?.state.reachable === o.peers - 1)) {
        const at = Math.max(...s.map((x) => x!.state.reachableChangedAt));
        res.deadPeer = { seconds: (at - tKill) / 1000 };
        line(`dead peer: ${fmtS(at - tKill)} until all ${o.peers - 1} others route around a killed peer (goal < 5 s)`);
        break;
      }
      if (Date.now() > killDeadline) {
        res.deadPeer = { timeout: true };
        line(
          `dead peer: TIMEOUT after ${PHASE_DEADLINE_MS / 1000} s: ${s.filter((x) => x?.state.reachable === o.peers - 1).length}/${o.peers - 1} route around it`,
        );
        break;
      }
      await sleep(POLL_MS);
    }

    const failing = new Map<string, number>();
    for (const x of b)
      for (const [why, n] of Object.entries(x?.state.failing ?? {})) failing.set(why, (failing.get(why) ?? 0) + n);
    if (failing.size)
      line(`targets not connected at the end: ${[...failing].map(([why, n]) => `${n}x ${why}`).join('; ')}`);
    res.ok = !res.converge.timeout && !res.mac.timeout && !res.macAtRest?.timeout && stable && !res.deadPeer?.timeout;
  } catch (err) {
    res.error = (err as Error).message;
    line(`error: ${res.error}`);
  } finally {
    // Stop: ask each worker, then SIGKILL whoever is still there after the deadline.
    for (const w of workers) if (w) w.stopMark = w.output.length;
    const alive = workers.filter((w) => w && !w.exited);
    await Promise.all(
      alive.map(async (w) => {
        try {
          await w.request({ type: 'stop' }, 'stopped', STOP_DEADLINE_MS);
          if (o.oneProcess) w.exited = true; // no process to wait for
        } catch {
          /* killed below */
        }
      }),
    );
    const stopDeadline = Date.now() + 3000;
    while (workers.some((w) => w && !w.exited) && Date.now() < stopDeadline) await sleep(50);
    const killed = workers.filter((w) => w && !w.exited);
    for (const w of killed) w.kill();
    if (killed.length) log(`stop: ${killed.length} workers did not exit after stop and were killed`);
    rmSync(dir, { recursive: true, force: true });

    const running = workers.filter((w) => w && (w.output.slice(0, w.stopMark).trim() || w.errors.length));
    const stopping = workers.filter((w) => w?.output.slice(w.stopMark ?? 0).trim());
    const first = (w: Worker, text: string) =>
      `p${w.i}: ${(w.errors.join('\n') + text).trim().split('\n').slice(0, 3).join(' | ').slice(0, 400)}`;
    const stoppingSample = stopping.slice(0, 1).map((w) => first(w, w.output.slice(w.stopMark ?? 0)));
    res.workerOutput = {
      workers: running.length,
      sample: running.slice(0, 3).map((w) => first(w, w.output.slice(0, w.stopMark))),
      whileStopping: stopping.length,
      stoppingSample,
    };
    line(
      `worker output while running: ${running.length} of ${workers.length} workers wrote to stdout/stderr or reported errors${running.length ? '; first:' : ''}`,
    );
    for (const x of res.workerOutput.sample) line(`  ${x}`);
    if (stopping.length) line(`worker output while stopping: ${stopping.length} workers; first: ${stoppingSample[0]}`);
  }
  if (o.json) console.log(JSON.stringify(res));
  return res.ok ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    console.error(`gossip bench failed: ${err.message}`);
    process.exitCode = 1;
  },
);
