import '../common/polyfill.js';
// `make bench`: TCP throughput (iperf3) and ping RTT between two lab hosts over three paths:
// the underlay itself, the Linux kernel vxlan driver, and our router. One lab, always torn down.
import { Lab, waitFor } from '../lab/lab.js';
import { launchAll, report, waitForMesh, waitForPing, weaveOk } from '../lab/weave.js';

const USAGE = 'usage: node dist/bench/throughput.js [--seconds N] [--json]';

interface Options { seconds: number; json: boolean }
interface Row { path: string; gbps: number; rttP50Ms: number }

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

/** RTT p50 (ms) and TCP throughput (Gbit/s) from the client namespace to serverIp in the server namespace. */
async function measure(lab: Lab, path: string, clientNs: string, serverNs: string, serverIp: string, seconds: number): Promise<Row> {
  await waitForPing(lab, clientNs, serverIp); // ARP and MAC learning done before anything is timed
  const ping = await lab.execIn(clientNs, ['ping', '-n', '-c', '50', '-i', '0.02', '-W', '1', serverIp], { timeoutMs: 30_000 });
  const times = [...ping.stdout.matchAll(/time=([\d.]+)/g)].map((m) => Number(m[1]));
  if (times.length === 0) throw new Error(`${path}: no ping replies from ${serverIp}\n${ping.stdout}${ping.stderr}`);

  const server = lab.spawnIn(serverNs, ['iperf3', '-s', '-1'], { stdio: 'ignore' });
  try {
    // Readiness: retry the client while the server is not listening yet; any other outcome ends the wait.
    const r = await waitFor(`iperf3 server at ${serverIp} (${path})`, async () => {
      const res = await lab.execIn(clientNs, ['iperf3', '-c', serverIp, '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 });
      return /unable to connect|connection refused/i.test(res.stdout + res.stderr) ? undefined : res;
    }, 15_000, 100);
    if (r.code !== 0) throw new Error(`${path}: iperf3 failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim().slice(0, 500)}`);
    const bps = (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
    return { path, gbps: bps / 1e9, rttP50Ms: median(times) };
  } finally {
    server.kill();
  }
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

/** Our router on both hosts, one attached container on each. */
async function ours(lab: Lab): Promise<string[]> {
  await launchAll(lab);
  await waitForMesh(lab);
  const namespaces: string[] = [];
  for (const [i, h] of ['h1', 'h2'].entries()) {
    const c = await lab.addContainer(h, 'c1');
    await weaveOk(lab, h, ['attach', `10.32.0.${i + 1}/12`, `netns:${c.netns}`]);
    namespaces.push(c.netns);
  }
  return namespaces;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const lab = await Lab.create({ hosts: 2 });
  try {
    const [h1, h2] = [lab.host('h1'), lab.host('h2')];
    const rows: Row[] = [];
    rows.push(await measure(lab, 'underlay', h1.netns, h2.netns, h2.addrs[0], opts.seconds));
    const [k1, k2] = await kernelVxlan(lab);
    rows.push(await measure(lab, 'kernel-vxlan', k1, k2, '10.99.0.2', opts.seconds));
    const [c1, c2] = await ours(lab);
    rows.push(await measure(lab, 'ours', c1, c2, '10.32.0.2', opts.seconds));
    const dropped = { h1: (await report(lab, 'h1')).counters.dropped, h2: (await report(lab, 'h2')).counters.dropped };

    const [underlay, kernel, mine] = rows;
    const ratios = { oursPerKernelVxlan: mine.gbps / kernel.gbps, kernelVxlanPerUnderlay: kernel.gbps / underlay.gbps };
    console.log(`lab ${lab.id}: 2 hosts, iperf3 -t ${opts.seconds}, ping -c 50 -i 0.02`);
    console.log(`${'path'.padEnd(14)}${'Gbit/s'.padStart(10)}${'RTT p50 ms'.padStart(12)}`);
    for (const r of rows) console.log(`${r.path.padEnd(14)}${r.gbps.toFixed(3).padStart(10)}${r.rttP50Ms.toFixed(3).padStart(12)}`);
    console.log(`ratio ours/kernel-vxlan throughput: ${ratios.oursPerKernelVxlan.toFixed(3)}`);
    console.log(`ratio kernel-vxlan/underlay throughput: ${ratios.kernelVxlanPerUnderlay.toFixed(3)}`);
    for (const [h, d] of Object.entries(dropped)) console.log(`router ${h} counters.dropped: ${JSON.stringify(d)}`);
    if (opts.json) console.log(JSON.stringify({ seconds: opts.seconds, rows, ratios, dropped }));
  } finally {
    await lab.down();
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
