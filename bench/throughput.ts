import '../common/polyfill.js';
// `make bench`: TCP throughput (iperf3), ping RTT and CPU cost between two lab hosts over every
// path: the underlay itself, the Linux kernel vxlan driver, and our router with each datapath
// (fastdp, the native sleeve, then sleeve-pcap, a restart between each). One lab, always torn down.
import { readFileSync } from 'node:fs';
import { Lab, waitFor } from '../lab/lab.js';
import { iperf } from '../lab/iperf.js';
import { launchAll, report, waitForMesh, waitForPing, weaveOk } from '../lab/weave.js';

const USAGE = 'usage: node dist/bench/throughput.js [--seconds N] [--json]';
const USER_HZ = 100; // /proc/stat counts in USER_HZ ticks, 100 on every Linux architecture we run on

interface Options { seconds: number; json: boolean }
interface Row { path: string; gbps: number; rttP50Ms: number; cpuSecondsPerGb: number; retransmits: number }

function parseArgs(argv: string[]): Options {
  const opts: Options = { seconds: 5, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') opts.json = true;
    else if (a === '--seconds') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--seconds needs a positive integer, got "${argv[i] ?? ''}"\n${USAGE}`);
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
  const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + (steal || 0)) / USER_HZ;
}

/**
 * RTT p50 (ms), TCP throughput (Gbit/s) and CPU seconds per GB from the client namespace to
 * serverIp in the server namespace. The CPU is the whole machine's during the iperf3 run, so it
 * includes iperf3's own (both ends) and the kernel's besides the router's: the same for every
 * row, so rows compare, but it is not the datapath's alone.
 */
async function measure(lab: Lab, path: string, clientNs: string, serverNs: string, serverIp: string, seconds: number): Promise<Row> {
  await waitForPing(lab, clientNs, serverIp); // ARP and MAC learning done before anything is timed
  const ping = await lab.execIn(clientNs, ['ping', '-n', '-c', '50', '-i', '0.02', '-W', '1', serverIp], { timeoutMs: 30_000 });
  const times = [...ping.stdout.matchAll(/time=([\d.]+)/g)].map((m) => Number(m[1]));
  if (times.length === 0) throw new Error(`${path}: no ping replies from ${serverIp}\n${ping.stdout}${ping.stderr}`);

  let cpuSeconds = 0;
  const end = await iperf(lab, clientNs, serverNs, serverIp, { seconds, wrap: async (run) => {
    const before = busyCpuSeconds();
    try { return await run(); } finally { cpuSeconds = busyCpuSeconds() - before; } // the last run is the one measured
  } });
  const rx = end.sum_received;
  return { path, gbps: rx.bits_per_second / 1e9, rttP50Ms: median(times), cpuSecondsPerGb: cpuSeconds / (rx.bytes / 1e9), retransmits: end.sum_sent.retransmits };
}

/** A namespace on each host, bridged to a kernel vxlan device (VNI 77, UDP 4789) pointing at the other host. */
async function kernelVxlan(lab: Lab): Promise<string[]> {
  const namespaces: string[] = [];
  for (const [i, [self, other]] of [['h1', 'h2'], ['h2', 'h1']].entries()) {
    const k = await lab.addContainer(self, 'kvx');
    for (const argv of [
      ['ip', 'link', 'add', 'vxk77', 'type', 'vxlan', 'id', '77', 'dstport', '4789',
        'remote', lab.host(other).addrs[0], 'local', lab.host(self).addrs[0], 'dev', 'eth0'],
      ['ip', 'link', 'add', 'brk77', 'type', 'bridge'],
      ['ip', 'link', 'set', 'vxk77', 'master', 'brk77', 'up'],
      ['ip', 'link', 'add', 'vethk77', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', '1450', 'netns', k.netns],
      ['ip', 'link', 'set', 'vethk77', 'master', 'brk77', 'up'],
      ['ip', 'link', 'set', 'brk77', 'up'],
    ]) await lab.execOk(self, argv);
    await lab.execOkIn(k.netns, ['ip', 'addr', 'add', `10.99.0.${i + 1}/24`, 'dev', 'eth0']);
    await lab.execOkIn(k.netns, ['ip', 'link', 'set', 'eth0', 'up']);
    namespaces.push(k.netns);
  }
  return namespaces;
}

const HOSTS = ['h1', 'h2'];

/** Our routers on both hosts with the datapath asked for (checked in their reports), meshed. */
async function launchOurs(lab: Lab, datapath: string): Promise<void> {
  await launchAll(lab, HOSTS, ['--datapath', datapath]);
  await waitForMesh(lab);
  for (const h of HOSTS) {
    const r = await report(lab, h);
    if (r.datapath !== datapath) throw new Error(`${h}: asked for datapath ${datapath}, the router runs ${r.datapath}`);
  }
}

/** One container on each host, attached once: a restarted router takes its attachments back. */
async function attachContainers(lab: Lab): Promise<string[]> {
  const namespaces: string[] = [];
  for (const [i, h] of HOSTS.entries()) {
    const c = await lab.addContainer(h, 'c1');
    await weaveOk(lab, h, ['attach', `10.32.0.${i + 1}/12`, `netns:${c.netns}`]);
    namespaces.push(c.netns);
  }
  return namespaces;
}

/** Until every router sends to its peers the way asked (fastdp waits for the data-path heartbeat). */
async function waitForPaths(lab: Lab, mode: 'fastdp' | 'sleeve'): Promise<void> {
  for (const h of HOSTS) {
    await waitFor(`${h}: every path ${mode}`, async () => {
      const paths = Object.values((await report(lab, h)).paths);
      return paths.length === HOSTS.length - 1 && paths.every((p) => p.mode === mode);
    }, 15_000);
  }
}

async function stopOurs(lab: Lab): Promise<void> {
  for (const h of HOSTS) await weaveOk(lab, h, ['stop']);
}

const droppedCounters = async (lab: Lab): Promise<Record<string, Record<string, number>>> =>
  Object.fromEntries(await Promise.all(HOSTS.map(async (h) => [h, (await report(lab, h)).counters.dropped] as const)));

function print(lab: Lab, opts: Options, rows: Row[], ratios: Record<string, number>, dropped: Record<string, unknown>): void {
  console.log(`lab ${lab.id}: 2 hosts, iperf3 -t ${opts.seconds}, ping -c 50 -i 0.02; CPU: whole machine during iperf3 (iperf3 included)`);
  console.log(`${'path'.padEnd(14)}${'Gbit/s'.padStart(10)}${'RTT p50 ms'.padStart(12)}${'CPU s/GB'.padStart(10)}${'TCP retr'.padStart(10)}`);
  for (const r of rows) {
    console.log(`${r.path.padEnd(14)}${r.gbps.toFixed(3).padStart(10)}${r.rttP50Ms.toFixed(3).padStart(12)}${r.cpuSecondsPerGb.toFixed(2).padStart(10)}${String(r.retransmits).padStart(10)}`);
  }
  for (const [name, v] of Object.entries(ratios)) console.log(`ratio ${name}: ${v.toFixed(3)}`);
  for (const [path, byHost] of Object.entries(dropped)) console.log(`${path} counters.dropped: ${JSON.stringify(byHost)}`);
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

    // Each datapath in turn, the same containers: a restart keeps their attachments.
    let containers: string[] = [];
    for (const datapath of ['fastdp', 'sleeve', 'sleeve-pcap'] as const) {
      if (containers.length) await stopOurs(lab);
      await launchOurs(lab, datapath);
      if (!containers.length) containers = await attachContainers(lab);
      await waitForPaths(lab, datapath === 'fastdp' ? 'fastdp' : 'sleeve');
      rows.push(await measure(lab, datapath, containers[0], containers[1], '10.32.0.2', opts.seconds));
      dropped[datapath] = await droppedCounters(lab);
    }

    const [underlay, kernel, ...ours] = rows;
    const ratios: Record<string, number> = {};
    for (const r of ours) ratios[`${r.path}/kernel-vxlan throughput`] = r.gbps / kernel.gbps;
    for (const r of ours) ratios[`${r.path}/kernel-vxlan CPU per GB`] = r.cpuSecondsPerGb / kernel.cpuSecondsPerGb;
    ratios['kernel-vxlan/underlay throughput'] = kernel.gbps / underlay.gbps;
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
