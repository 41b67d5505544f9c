import '../common/polyfill.js';
// `make bench`: TCP throughput (iperf3), ping RTT and CPU cost between two lab hosts over every
// path: the underlay itself, the Linux kernel vxlan driver, userspace WireGuard (Debian's
// wireguard-go), and our router with each datapath (fastdp, the native sleeve, the sleeve with a
// password, then sleeve-pcap, a restart between each). One lab, always torn down.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, waitFor } from '../lab/lab.js';
import { iperf } from '../lab/iperf.js';
import { attachEach, launchAll, report, waitForMesh, waitForPing, weaveOk } from '../lab/weave.js';

const USAGE = 'usage: node dist/bench/throughput.js [--seconds N] [--json]';
const USER_HZ = 100; // /proc/stat counts in USER_HZ ticks, 100 on every Linux architecture we run on

interface Options {
  seconds: number;
  json: boolean;
}
interface Row {
  path: string;
  gbps: number;
  rttP50Ms: number;
  cpuSecondsPerGb: number;
  retransmits: number;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { seconds: 5, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') opts.json = true;
    else if (a === '--seconds') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1)
        throw new Error(`--seconds needs a positive integer, got "${argv[i] ?? ''}"\n${USAGE}`);
      opts.seconds = n;
    } else throw new Error(`unknown argument "${a}"\n${USAGE}`);
  }
  return opts;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** CPU seconds the whole machine (all CPUs) has spent busy: user+nice+system+irq+softirq+steal. */
function busyCpuSeconds(): number {
  const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return (user + nice + system + irq + softirq + (steal || 0)) / USER_HZ;
}

/**
 * RTT p50 (ms), TCP throughput (Gbit/s) and CPU seconds per GB from the client namespace to
 * serverIp in the server namespace. The CPU is the whole machine's during the iperf3 run, so it
 * includes iperf3's own (both ends) and the kernel's besides the router's: the same for every
 * row, so rows compare, but it is not the datapath's alone.
 */
async function measure(
  lab: Lab,
  path: string,
  clientNs: string,
  serverNs: string,
  serverIp: string,
  seconds: number,
): Promise<Row> {
  await waitForPing(lab, clientNs, serverIp); // ARP and MAC learning done before anything is timed
  const ping = await lab.execIn(clientNs, ['ping', '-n', '-c', '50', '-i', '0.02', '-W', '1', serverIp], {
    timeoutMs: 30_000,
  });
  const times = [...ping.stdout.matchAll(/time=([\d.]+)/g)].map((m) => Number(m[1]));
  if (times.length === 0) throw new Error(`${path}: no ping replies from ${serverIp}\n${ping.stdout}${ping.stderr}`);

  let cpuSeconds = 0;
  const end = await iperf(lab, clientNs, serverNs, serverIp, {
    seconds,
    wrap: async (run) => {
      const before = busyCpuSeconds();
      try {
        return await run();
      } finally {
        cpuSeconds = busyCpuSeconds() - before;
      } // the last run is the one measured
    },
  });
  const rx = end.sum_received;
  return {
    path,
    gbps: rx.bits_per_second / 1e9,
    rttP50Ms: median(times),
    cpuSecondsPerGb: cpuSeconds / (rx.bytes / 1e9),
    retransmits: end.sum_sent.retransmits,
  };
}

/** A namespace on each host, bridged to a kernel vxlan device (VNI 77, UDP 4789) pointing at the other host. */
async function kernelVxlan(lab: Lab): Promise<string[]> {
  const namespaces: string[] = [];
  for (const [i, [self, other]] of [
    ['h1', 'h2'],
    ['h2', 'h1'],
  ].entries()) {
    const k = await lab.addContainer(self, 'kvx');
    for (const argv of [
      [
        'ip',
        'link',
        'add',
        'vxk77',
        'type',
        'vxlan',
        'id',
        '77',
        'dstport',
        '4789',
        'remote',
        lab.host(other).addrs[0],
        'local',
        lab.host(self).addrs[0],
        'dev',
        'eth0',
      ],
      ['ip', 'link', 'add', 'brk77', 'type', 'bridge'],
      ['ip', 'link', 'set', 'vxk77', 'master', 'brk77', 'up'],
      [
        'ip',
        'link',
        'add',
        'vethk77',
        'mtu',
        '1450',
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'mtu',
        '1450',
        'netns',
        k.netns,
      ],
      ['ip', 'link', 'set', 'vethk77', 'master', 'brk77', 'up'],
      ['ip', 'link', 'set', 'brk77', 'up'],
    ])
      await lab.execOk(self, argv);
    await lab.execOkIn(k.netns, ['ip', 'addr', 'add', `10.99.0.${i + 1}/24`, 'dev', 'eth0']);
    await lab.execOkIn(k.netns, ['ip', 'link', 'set', 'eth0', 'up']);
    namespaces.push(k.netns);
  }
  return namespaces;
}

const WG_PORT = 51820;

/**
 * wireguard-go on each host (in its namespace, in the foreground: its PID is the child's), a TUN
 * named after the lab (its UAPI socket, /var/run/wireguard/<name>.sock, is shared by every
 * namespace), 10.98.0.<n>/24, the other host's underlay address as its peer's endpoint. Returns
 * the teardown, which stops the processes by PID (their TUNs go with them).
 */
async function wireguardGo(lab: Lab): Promise<() => Promise<void>> {
  const pairs = [
    ['h1', 'h2'],
    ['h2', 'h1'],
  ] as const;
  const ifname = (h: string) => `wg${lab.id}${h.slice(1)}`; // at most 15 characters: ids are at most 12
  const procs: { host: string; child: ChildProcess; log: () => string }[] = [];
  const teardown = async (): Promise<void> => {
    for (const p of procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        const exited = new Promise<void>((r) => p.child.once('exit', () => r()));
        p.child.kill('SIGTERM');
        const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 3000).unref());
        if ((await Promise.race([exited, timeout])) === 'timeout') {
          p.child.kill('SIGKILL');
          await exited;
        }
      }
      // The TUN is not persistent: it goes with the process. Only a leftover is deleted.
      const name = ifname(p.host);
      if ((await lab.exec(p.host, ['ip', 'link', 'show', 'dev', name])).code === 0)
        await lab.execOk(p.host, ['ip', 'link', 'del', 'dev', name]);
    }
  };
  try {
    const keys = new Map<string, { priv: string; pub: string }>();
    for (const [self] of pairs) {
      const priv = (await lab.execOk(self, ['wg', 'genkey'])).trim();
      keys.set(self, { priv, pub: (await lab.execOk(self, ['wg', 'pubkey'], { input: `${priv}\n` })).trim() });
    }
    for (const [self] of pairs) {
      let out = '';
      const child = lab.spawn(self, ['wireguard-go', '-f', ifname(self)]);
      for (const s of [child.stdout, child.stderr])
        s?.on('data', (d: Buffer) => {
          out = (out + d.toString()).slice(-4000);
        });
      procs.push({ host: self, child, log: () => out });
    }
    for (const [i, [self, other]] of pairs.entries()) {
      const name = ifname(self);
      const p = procs[i];
      await waitFor(
        `wireguard-go ${name} on ${self}`,
        async () => {
          if (p.child.exitCode !== null || p.child.signalCode !== null)
            throw new Error(`wireguard-go exited: ${p.log().trim()}`);
          return (await lab.exec(self, ['wg', 'show', name])).code === 0;
        },
        10_000,
      );
      // wg reads a key from a file only (stdin is a socket here)
      const keyFile = join(lab.host(self).dataDir, 'wireguard-go.key');
      writeFileSync(keyFile, `${keys.get(self)!.priv}\n`, { mode: 0o600 });
      await lab.execOk(self, [
        'wg',
        'set',
        name,
        'listen-port',
        String(WG_PORT),
        'private-key',
        keyFile,
        'peer',
        keys.get(other)!.pub,
        'endpoint',
        `${lab.host(other).addrs[0]}:${WG_PORT}`,
        'allowed-ips',
        '10.98.0.0/24',
      ]);
      await lab.execOk(self, ['ip', 'addr', 'add', `10.98.0.${i + 1}/24`, 'dev', name]);
      await lab.execOk(self, ['ip', 'link', 'set', name, 'up']);
    }
  } catch (e) {
    await teardown().catch(() => {});
    throw e;
  }
  return teardown;
}

const HOSTS = ['h1', 'h2'];

/**
 * Our routers on both hosts with the datapath asked for (checked in their reports), meshed; env: e.g. WEAVE_PASSWORD.
 */
async function launchOurs(lab: Lab, datapath: string, env?: NodeJS.ProcessEnv): Promise<void> {
  await launchAll(lab, HOSTS, ['--datapath', datapath], env);
  await waitForMesh(lab);
  for (const h of HOSTS) {
    const r = await report(lab, h);
    if (r.datapath !== datapath) throw new Error(`${h}: asked for datapath ${datapath}, the router runs ${r.datapath}`);
    const password = /password/.test(r.encryption.controlPlane);
    if (password !== !!env?.WEAVE_PASSWORD)
      throw new Error(
        `${h}: ${env?.WEAVE_PASSWORD ? 'launched with' : 'launched without'} a password, the router reports encryption ${JSON.stringify(r.encryption)}`,
      );
  }
}

/** One container on each host, attached once: a restarted router takes its attachments back. */
/** Until every router sends to its peers the way asked (fastdp waits for the data-path heartbeat). */
async function waitForPaths(lab: Lab, mode: 'fastdp' | 'sleeve'): Promise<void> {
  for (const h of HOSTS) {
    await waitFor(
      `${h}: every path ${mode}`,
      async () => {
        const paths = Object.values((await report(lab, h)).paths);
        return paths.length === HOSTS.length - 1 && paths.every((p) => p.mode === mode);
      },
      15_000,
    );
  }
}

async function stopOurs(lab: Lab): Promise<void> {
  for (const h of HOSTS) await weaveOk(lab, h, ['stop']);
}

const droppedCounters = async (lab: Lab): Promise<Record<string, Record<string, number>>> =>
  Object.fromEntries(await Promise.all(HOSTS.map(async (h) => [h, (await report(lab, h)).counters.dropped] as const)));

function print(
  lab: Lab,
  opts: Options,
  rows: Row[],
  ratios: Record<string, number>,
  dropped: Record<string, unknown>,
): void {
  console.log(
    `lab ${lab.id}: 2 hosts, iperf3 -t ${opts.seconds}, ping -c 50 -i 0.02; CPU: whole machine during iperf3 (iperf3 included)`,
  );
  const w = Math.max(14, ...rows.map((r) => r.path.length + 1)); // 14 unless a path name needs more
  console.log(
    `${'path'.padEnd(w)}${'Gbit/s'.padStart(10)}${'RTT p50 ms'.padStart(12)}${'CPU s/GB'.padStart(10)}${'TCP retr'.padStart(10)}`,
  );
  for (const r of rows) {
    console.log(
      `${r.path.padEnd(w)}${r.gbps.toFixed(3).padStart(10)}${r.rttP50Ms.toFixed(3).padStart(12)}${r.cpuSecondsPerGb.toFixed(2).padStart(10)}${String(r.retransmits).padStart(10)}`,
    );
  }
  for (const [name, v] of Object.entries(ratios)) console.log(`ratio ${name}: ${v.toFixed(3)}`);
  for (const [path, byHost] of Object.entries(dropped))
    console.log(`${path} counters.dropped: ${JSON.stringify(byHost)}`);
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const lab = await Lab.create({ hosts: 2 });
  try {
    const [h1, h2] = [lab.host('h1'), lab.host('h2')];
    const rows: Row[] = [];
    const dropped: Record<string, unknown> = {};
    rows.push(await measure(lab, 'underlay', h1.netns, h2.netns, h2.addrs[0], opts.seconds));
    const [k1, k2] = await kernelVxlan(lab);
    rows.push(await measure(lab, 'kernel-vxlan', k1, k2, '10.99.0.2', opts.seconds));
    // Stopped before our routers start, so it takes no CPU from them.
    const wgDown = await wireguardGo(lab);
    try {
      rows.push(await measure(lab, 'wireguard-go', h1.netns, h2.netns, '10.98.0.2', opts.seconds));
    } finally {
      await wgDown();
    }

    // Each datapath in turn, the same containers: a restart keeps their attachments.
    const runs: { path: string; datapath: 'fastdp' | 'sleeve' | 'sleeve-pcap'; env?: NodeJS.ProcessEnv }[] = [
      { path: 'fastdp', datapath: 'fastdp' },
      { path: 'sleeve', datapath: 'sleeve' },
      { path: 'sleeve+password', datapath: 'sleeve', env: { WEAVE_PASSWORD: randomBytes(16).toString('hex') } },
      { path: 'sleeve-pcap', datapath: 'sleeve-pcap' },
    ];
    let containers: string[] = [];
    for (const { path, datapath, env } of runs) {
      if (containers.length) await stopOurs(lab);
      await launchOurs(lab, datapath, env);
      if (!containers.length) containers = (await attachEach(lab, HOSTS)).map((c) => c.netns);
      await waitForPaths(lab, datapath === 'fastdp' ? 'fastdp' : 'sleeve');
      rows.push(await measure(lab, path, containers[0], containers[1], '10.32.0.2', opts.seconds));
      dropped[path] = await droppedCounters(lab);
    }

    const [underlay, kernel, ...rest] = rows; // wireguard-go, then ours
    const row = (path: string): Row => rows.find((r) => r.path === path)!;
    const ratios: Record<string, number> = {};
    for (const r of rest) ratios[`${r.path}/kernel-vxlan throughput`] = r.gbps / kernel.gbps;
    for (const r of rest) ratios[`${r.path}/kernel-vxlan CPU per GB`] = r.cpuSecondsPerGb / kernel.cpuSecondsPerGb;
    ratios['kernel-vxlan/underlay throughput'] = kernel.gbps / underlay.gbps;
    ratios['sleeve+password/wireguard-go throughput'] = row('sleeve+password').gbps / row('wireguard-go').gbps;
    print(lab, opts, rows, ratios, dropped);
    if (opts.json) console.log(JSON.stringify({ seconds: opts.seconds, rows, ratios, dropped }));
  } finally {
    await lab.down();
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
