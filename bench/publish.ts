import '../common/polyfill.js';
// `node dist/bench/publish.js [--seconds N]`: TCP throughput (iperf3) into a container on h1 three
// ways, from h2: the underlay itself (h2 to h1's own namespace, the baseline), a published port
// (h2's underlay namespace to h1:5201, kernel DNAT, `weave run -p`), and the same flow on the
// overlay (a namespace on h2 attached to the overlay, to the container's overlay address, fastdp).
// One lab, always torn down.
import { intArg } from './args.js';
import { Lab, waitFor } from '../lab/lab.js';
import type { IperfEnd } from '../lab/iperf.js';
import { dockerOk, launchAll, waitForMesh, weaveOk } from '../lab/weave.js';

const USAGE = 'usage: node dist/bench/publish.js [--seconds N]';
const PORT = 5201;

function parseArgs(argv: string[]): { seconds: number } {
  const o = { seconds: 5 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--seconds') o.seconds = intArg('--seconds', argv[++i], 1, USAGE);
    else throw new Error(`unknown argument "${argv[i]}"\n${USAGE}`);
  }
  return o;
}

/** iperf3 from a lab namespace to ip:port, retried while its server is not listening yet. */
async function stream(lab: Lab, clientNs: string, ip: string, port: number, seconds: number): Promise<number> {
  const r = await waitFor(
    `iperf3 to ${ip}:${port}`,
    async () => {
      const res = await lab.execIn(clientNs, ['iperf3', '-c', ip, '-p', String(port), '-t', String(seconds), '-J'], {
        timeoutMs: (seconds + 30) * 1000,
      });
      return /unable to connect|connection refused|server is busy/i.test(res.stdout + res.stderr) ? undefined : res;
    },
    20_000,
  );
  if (r.code !== 0)
    throw new Error(`iperf3 to ${ip}:${port} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.slice(0, 300)}`);
  return (JSON.parse(r.stdout) as { end: IperfEnd }).end.sum_received.bits_per_second / 1e9;
}

async function main(): Promise<void> {
  const { seconds } = parseArgs(process.argv.slice(2));
  const lab = await Lab.create({ hosts: 2 });
  try {
    await lab.startDockerd('h1');
    await launchAll(lab, ['h1', 'h2'], ['--datapath', 'fastdp']);
    await waitForMesh(lab);
    await weaveOk(lab, 'h1', ['run', '--name', 'srv', '-p', `${PORT}:${PORT}`, 'busybox', 'sleep', '3600']);
    const pid = (await dockerOk(lab, 'h1', ['inspect', '-f', '{{.State.Pid}}', 'srv'])).trim();
    const overlayIp = (await weaveOk(lab, 'h1', ['ps', 'srv'])).split(' ')[2].split('/')[0];
    // The host's iperf3 in the container's namespace: the busybox image has none.
    lab.spawn('h1', ['nsenter', `--net=/proc/${pid}/ns/net`, 'iperf3', '-s', '-p', String(PORT)], { stdio: 'ignore' });
    const c = await lab.addContainer('h2', 'client');
    await weaveOk(lab, 'h2', ['attach', `netns:${c.netns}`]);

    const h1 = lab.host('h1').addrs[0];
    const h2ns = lab.host('h2').netns;
    // The baseline on another port (5201 is DNATed to the container), one test and it exits.
    lab.spawn('h1', ['iperf3', '-s', '-1', '-p', String(PORT + 1), '-B', h1], { stdio: 'ignore' });
    const rows = [
      { path: 'underlay (h2 → h1)', gbps: await stream(lab, h2ns, h1, PORT + 1, seconds) },
      { path: `published port (h2 → h1:${PORT}, DNAT)`, gbps: await stream(lab, h2ns, h1, PORT, seconds) },
      { path: 'overlay (h2 ns → container, fastdp)', gbps: await stream(lab, c.netns, overlayIp, PORT, seconds) },
    ];
    for (const r of rows) console.log(`${r.path.padEnd(40)} ${r.gbps.toFixed(2)} Gbit/s`);
    console.log(`ratio published/overlay throughput: ${(rows[1].gbps / rows[2].gbps).toFixed(3)}`);
    console.log(`ratio published/underlay throughput: ${(rows[1].gbps / rows[0].gbps).toFixed(3)}`);
  } finally {
    await lab.down();
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
