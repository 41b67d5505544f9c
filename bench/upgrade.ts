import '../common/polyfill.js';
// `node dist/bench/upgrade.js [--datapath fastdp|sleeve|both] [--runs N] [--settle S] [--json]`: what a
// package upgrade costs the containers. On each of two lab hosts the router runs as weave.service runs
// it (`weave launch --foreground`, here the checkout's bin/weave: the package's /usr/bin/weave runs the
// same code), a container on each; while h1's container sends h2's a numbered UDP datagram every 10 ms
// (echoed back: ping -i 0.01 slows down while nothing comes back, so its losses undercount) and a TCP
// connection between them echoes 64 bytes every 10 ms, the router is restarted as postinst's `deb-systemd-invoke
// restart` does it: SIGTERM to the foreground weave, wait until it exits, start the same command, wait
// until it is connected again. Per restart: the longest gap in echoed datagrams and how many were lost, the
// TCP connection's longest stall and whether it survived, whether both containers kept their addresses,
// and which of the host's overlay devices were made anew. N restarts of h1 (the pinging end) and one of
// h2 (the far end) per datapath, each datapath in a lab of its own.
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Report } from '../contract/report.js';
import { intArg } from './args.js';
import { Lab, type LabContainer, waitFor } from '../lab/lab.js';
import { percentile } from '../lab/seeds.js';
import { hostVars, WEAVE, waitForPing, weaveOk } from '../lab/weave.js';

const USAGE = 'usage: node dist/bench/upgrade.js [--datapath fastdp|sleeve|both] [--runs N] [--settle S] [--json]';
const DATAPATHS = ['fastdp', 'sleeve'] as const;
type Datapath = (typeof DATAPATHS)[number];
const PORT = 7000;
const ADDRS = { h1: '10.32.0.1', h2: '10.32.0.2' } as const;
/** A pause in replies at least this long counts as a gap (the probe and the trickle send every 10 ms). */
const GAP_MS = 50;

interface Options {
  datapaths: Datapath[];
  runs: number;
  settleS: number;
  json: boolean;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { datapaths: [...DATAPATHS], runs: 3, settleS: 8, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') opts.json = true;
    else if (a === '--runs') opts.runs = intArg(a, argv[++i], 1, USAGE);
    else if (a === '--settle') opts.settleS = intArg(a, argv[++i], 1, USAGE);
    else if (a === '--datapath') {
      const v = argv[++i];
      if (v === 'both') opts.datapaths = [...DATAPATHS];
      else if ((DATAPATHS as readonly string[]).includes(v)) opts.datapaths = [v as Datapath];
      else throw new Error(`--datapath needs fastdp, sleeve or both, got "${v ?? ''}"\n${USAGE}`);
    } else throw new Error(`unknown argument "${a}"\n${USAGE}`);
  }
  return opts;
}

interface Restart {
  datapath: Datapath;
  restarted: 'h1' | 'h2';
  run: number;
  /** SIGTERM to the foreground weave's exit, and its exit code. */
  stopMs: number;
  exitCode: number | null;
  /** The new command's start to its API answering, connected to the other host. */
  startMs: number;
  /** The longest pause in the probe's echoes, and every pause of GAP_MS or more, in order. */
  outageMs: number;
  gapsMs: number[];
  lost: number;
  sent: number;
  /**
   * The probe's own longest pause between two sends (its timer starved of CPU while a router starts on this 2-core
   * machine): a gap in echoes this long, with nothing lost, is the sender's, not the network's.
   */
  sendPauseMs: number;
  /** The trickle's longest pause in echoes, whether it kept flowing after, and its error if it broke. */
  tcpStallMs: number;
  tcpSurvived: boolean;
  tcpError?: string;
  addressesKept: boolean;
  /** Overlay devices of the restarted host that have another ifindex after the restart. */
  devicesMadeAnew: string[];
  /** Kernel FDB entries on the vxlan device just after the stop, against before it. */
  vxlanFdb?: { before: number; stopped: number };
}

// Inside c2: echoes whatever it is sent, over TCP and UDP.
const ECHO_SERVER = `
const u = require('node:dgram').createSocket('udp4');
u.on('message', (m, r) => u.send(m, r.port, r.address));
u.bind(${PORT}, () => require('node:net').createServer((s) => { s.on('error', () => {}); s.pipe(s); })
  .listen(${PORT}, () => console.log('listening')));`;

// Inside c1: datagram n (a 4-byte number) every 10 ms; on SIGINT, when each was sent, the numbers echoed and when
// each came back.
const PROBE = `
const u = require('node:dgram').createSocket('udp4');
const sentAt = [], seqs = [], at = [];
let n = 0;
u.on('message', (m) => { seqs.push(m.readUInt32BE(0)); at.push(performance.timeOrigin + performance.now()); });
u.on('error', () => {}); // sends while the path is down may fail: counted as lost
const b = Buffer.alloc(4);
const timer = setInterval(() => {
  b.writeUInt32BE(n++);
  sentAt.push(performance.timeOrigin + performance.now());
  u.send(b, ${PORT}, process.argv[1]);
}, 10);
process.on('SIGINT', () => { clearInterval(timer); console.log(JSON.stringify({ sentAt, seqs, at })); process.exit(0); });`;

// Inside c1: 64 bytes every 10 ms, one JSON line per event: the bytes echoed so far (every 50 ms),
// a pause in echoes, an error, the close.
const TRICKLE = `
const s = require('node:net').connect(${PORT}, process.argv[1]);
const say = (o) => console.log(JSON.stringify(o));
let echoed = 0, last = 0;
s.setNoDelay(true);
s.on('connect', () => {
  last = Date.now();
  setInterval(() => s.write(Buffer.alloc(64)), 10);
  setInterval(() => say({ echoed }), 50);
});
s.on('data', (d) => { const now = Date.now(); if (now - last >= ${GAP_MS}) say({ gapMs: now - last }); last = now; echoed += d.length; });
s.on('error', (e) => say({ error: e.code || e.message }));
s.on('close', () => { say({ closed: true }); process.exit(1); });`;

/** A TCP connection from c1 to c2 carrying a trickle; what it has seen so far. */
class Trickle {
  echoed = 0;
  stalls: number[] = [];
  error?: string;
  private readonly child: ChildProcess;
  constructor(lab: Lab, from: LabContainer, to: string) {
    this.child = lab.spawnIn(from.netns, [process.execPath, '-e', TRICKLE, to]);
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const m = JSON.parse(line) as { echoed?: number; gapMs?: number; error?: string; closed?: boolean };
      if (m.echoed !== undefined) this.echoed = m.echoed;
      if (m.gapMs !== undefined) this.stalls.push(m.gapMs);
      if (m.error) this.error ??= m.error;
      if (m.closed) this.error ??= 'closed';
    });
  }
  /** Resolves once more than `bytes` have been echoed, throws once the connection broke. */
  async flowsPast(bytes: number, timeoutMs: number): Promise<void> {
    await waitFor(
      `TCP echoes past ${bytes} bytes`,
      async () => {
        if (this.error) throw new Error(`the TCP connection broke: ${this.error}`);
        return this.echoed > bytes;
      },
      timeoutMs,
      20,
    );
  }
  stop(): void {
    this.child.kill('SIGKILL');
  }
}

/** Numbered datagrams every 10 ms, echoed by c2, from start until stop(); which came back and when. */
class Probe {
  private out = '';
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  constructor(lab: Lab, from: LabContainer, to: string) {
    this.child = lab.spawnIn(from.netns, [process.execPath, '-e', PROBE, to]);
    this.child.stdout!.on('data', (d) => (this.out += d));
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }
  async stop(): Promise<{ outageMs: number; gapsMs: number[]; lost: number; sent: number; sendPauseMs: number }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGINT');
    await this.exited;
    const { sentAt, seqs, at } = JSON.parse(this.out) as { sentAt: number[]; seqs: number[]; at: number[] };
    if (seqs.length < 2) throw new Error(`the probe had fewer than 2 echoes: ${this.out}`);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    // Lost: the numbers up to the last echo that got none (what was in flight at the end is not counted).
    const sent = Math.max(...seqs) + 1;
    return {
      outageMs: Math.round(Math.max(...gaps)),
      gapsMs: gaps.filter((g) => g >= GAP_MS).map(Math.round),
      lost: sent - new Set(seqs).size,
      sent,
      sendPauseMs: Math.round(Math.max(...sentAt.slice(1).map((t, i) => t - sentAt[i]))),
    };
  }
}

/** The router as weave.service runs it, its output appended to foreground.log in the host's data directory. */
function startRouter(lab: Lab, host: string, argv: string[]): ChildProcess {
  const log = openSync(join(lab.host(host).dataDir, 'foreground.log'), 'a');
  const child = lab.spawn(host, [WEAVE, 'launch', '--foreground', ...argv], {
    env: hostVars(lab, host),
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  return child;
}

/** What systemctl stop does to it (KillMode=mixed: SIGTERM to the main process), until it has exited. */
const stopRouter = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });

/** The router's report through curl (light: a CLI per poll would load the two cores we measure on). */
async function reportOf(lab: Lab, host: string): Promise<Report | undefined> {
  const r = await lab.exec(host, ['curl', '-sf', '--max-time', '1', 'http://127.0.0.1:6784/report']);
  return r.code === 0 ? (JSON.parse(r.stdout) as Report) : undefined;
}

/** Until the router on host answers and its connection to the other host is established over datapath. */
const connected = (lab: Lab, host: string, other: string, datapath?: Datapath, timeoutMs = 30_000) =>
  waitFor(
    `${host}'s router connected to ${other}${datapath ? ` over ${datapath}` : ''}`,
    async () =>
      (await reportOf(lab, host))?.connections.some(
        (c) => c.nickname === other && c.state === 'established' && (!datapath || c.datapath === datapath),
      ),
    timeoutMs,
    20,
  );

/** name → ifindex of the host's overlay devices: the bridge, its ports, the vxlan device, the sleeve's TAP. */
async function overlayDevices(lab: Lab, host: string): Promise<Map<string, number>> {
  const links = JSON.parse(await lab.execOk(host, ['ip', '-j', 'link', 'show'])) as {
    ifname: string;
    ifindex: number;
  }[];
  return new Map(links.filter((l) => /^(weave|vethwe|vxlan-)/.test(l.ifname)).map((l) => [l.ifname, l.ifindex]));
}

const vxlanFdbCount = async (lab: Lab, host: string) =>
  (await lab.execOk(host, ['bridge', 'fdb', 'show', 'dev', 'vxlan-6784'])).split('\n').filter(Boolean).length;

const addresses = async (lab: Lab) =>
  (await Promise.all(['h1', 'h2'].map((h) => weaveOk(lab, h, ['ps'])))).map((o) => o.trim()).join('\n');

async function benchDatapath(datapath: Datapath, opts: Options, rows: Restart[]): Promise<void> {
  const lab = await Lab.create({ hosts: 2 });
  try {
    const argvOf = (host: 'h1' | 'h2') => [
      '--nickname',
      host,
      '--datapath',
      datapath,
      lab.host(host === 'h1' ? 'h2' : 'h1').addrs[0],
    ];
    const routers = { h1: startRouter(lab, 'h1', argvOf('h1')), h2: startRouter(lab, 'h2', argvOf('h2')) };
    await connected(lab, 'h1', 'h2', datapath);
    await connected(lab, 'h2', 'h1', datapath);
    const c1 = await lab.addContainer('h1', 'c1');
    const c2 = await lab.addContainer('h2', 'c2');
    await weaveOk(lab, 'h1', ['attach', `${ADDRS.h1}/12`, `netns:${c1.netns}`]);
    await weaveOk(lab, 'h2', ['attach', `${ADDRS.h2}/12`, `netns:${c2.netns}`]);
    await waitForPing(lab, c1.netns, ADDRS.h2);
    const server = lab.spawnIn(c2.netns, [process.execPath, '-e', ECHO_SERVER]);
    await new Promise((resolve) => createInterface({ input: server.stdout! }).once('line', resolve));

    const plan: ('h1' | 'h2')[] = [...Array.from({ length: opts.runs }, () => 'h1' as const), 'h2'];
    for (const [i, host] of plan.entries()) {
      const other = host === 'h1' ? 'h2' : 'h1';
      const before = await addresses(lab);
      const devices = await overlayDevices(lab, host);
      const fdbBefore = datapath === 'fastdp' ? await vxlanFdbCount(lab, host) : 0;
      const trickle = new Trickle(lab, c1, ADDRS.h2);
      const probe = new Probe(lab, c1, ADDRS.h2);
      try {
        await trickle.flowsPast(64 * 50, 10_000); // half a second of steady traffic before the restart

        const t0 = performance.now();
        const exitCode = await stopRouter(routers[host]);
        const stopMs = performance.now() - t0;
        const t1 = performance.now();
        routers[host] = startRouter(lab, host, argvOf(host));
        // Read while the new router is still starting (Node takes longer than these).
        const fdbStopped = datapath === 'fastdp' ? await vxlanFdbCount(lab, host) : 0;
        await connected(lab, host, other);
        const startMs = performance.now() - t1;

        await trickle.flowsPast(trickle.echoed, 30_000);
        // Settle: what comes after ready (a path that changes back, stale entries cleaned) counts too.
        await new Promise((r) => setTimeout(r, opts.settleS * 1000));
        const after = await overlayDevices(lab, host);
        const p = await probe.stop();
        rows.push({
          datapath,
          restarted: host,
          run: i + 1,
          stopMs: Math.round(stopMs),
          exitCode,
          startMs: Math.round(startMs),
          outageMs: p.outageMs,
          gapsMs: p.gapsMs,
          lost: p.lost,
          sent: p.sent,
          sendPauseMs: p.sendPauseMs,
          tcpStallMs: Math.max(0, ...trickle.stalls),
          tcpSurvived: !trickle.error,
          tcpError: trickle.error,
          addressesKept: (await addresses(lab)) === before,
          devicesMadeAnew: [...devices].filter(([name, index]) => after.get(name) !== index).map(([name]) => name),
          ...(datapath === 'fastdp' ? { vxlanFdb: { before: fdbBefore, stopped: fdbStopped } } : {}),
        });
        if (!opts.json) printRow(rows.at(-1)!);
      } finally {
        trickle.stop();
        await probe.stop().catch(() => undefined); // a run that failed half-way leaves no probe behind
      }
    }
  } finally {
    await lab.down();
  }
}

function printRow(r: Restart): void {
  console.log(
    `${r.datapath.padEnd(6)} ${r.restarted} #${r.run}: outage ${r.outageMs} ms (gaps ${r.gapsMs.join(', ') || 'none'}), ` +
      `${r.lost}/${r.sent} datagrams lost (sender's longest pause ${r.sendPauseMs} ms); TCP ${r.tcpSurvived ? 'survived' : `BROKE (${r.tcpError})`}, ` +
      `longest stall ${r.tcpStallMs} ms; addresses ${r.addressesKept ? 'kept' : 'CHANGED'}; ` +
      `stop ${r.stopMs} ms (exit ${r.exitCode}), start to connected ${r.startMs} ms; ` +
      `made anew: ${r.devicesMadeAnew.join(' ') || 'nothing'}` +
      (r.vxlanFdb ? `; vxlan FDB ${r.vxlanFdb.before} entries, ${r.vxlanFdb.stopped} while stopped` : ''),
  );
}

function printSummary(rows: Restart[]): void {
  for (const d of DATAPATHS) {
    const near = rows.filter((r) => r.datapath === d && r.restarted === 'h1');
    if (!near.length) continue;
    const fig = (xs: number[]) => `p50 ${percentile(xs, 50)}, max ${Math.max(...xs)}`;
    console.log(
      `${d}: h1 restarted ${near.length} times: outage ms ${fig(near.map((r) => r.outageMs))}; datagrams lost ${fig(near.map((r) => r.lost))}; ` +
        `TCP stall ms ${fig(near.map((r) => r.tcpStallMs))}; TCP survived ${near.filter((r) => r.tcpSurvived).length}/${near.length}; ` +
        `addresses kept ${near.filter((r) => r.addressesKept).length}/${near.length}`,
    );
  }
}

let opts: Options;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(`upgrade: ${(e as Error).message}`);
  process.exit(2);
}
const rows: Restart[] = [];
for (const d of opts.datapaths) await benchDatapath(d, opts, rows);
if (opts.json) console.log(JSON.stringify(rows, null, 2));
else printSummary(rows);
