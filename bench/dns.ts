import '../common/polyfill.js';
// `node dist/bench/dns.js [--seconds N] [--concurrency N]`: DNS queries per second and latency for a
// cluster name answered by our router, against dnsmasq answering the same name on the same bridge
// address (another port), in one run on one lab host.
import { join } from 'node:path';
import { Lab } from '../lab/lab.js';
import { weaveOk } from '../lab/weave.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('--seconds', 5);
const CONCURRENCY = arg('--concurrency', 16);
const DNSMASQ_PORT = 5353;

// Runs inside the lab host: `concurrency` queries in flight, each answered before the next is sent.
const CLIENT = `
const dgram = require('node:dgram');
const [server, port, seconds, concurrency] = process.argv.slice(1);
const q = Buffer.from('0000010000010000000000000377656205776561766505' + '6c6f63616c0000010001', 'hex');
const lat = []; let errors = 0; const end = Date.now() + Number(seconds) * 1000;
const worker = (id) => new Promise((resolve) => {
  const s = dgram.createSocket('udp4'); let t = 0n; let timer; const mine = Buffer.from(q); mine.writeUInt16BE(id, 0);
  const send = () => { if (Date.now() > end) { s.close(); return resolve(); } t = process.hrtime.bigint(); s.send(mine, Number(port), server); timer = setTimeout(() => { errors++; send(); }, 1000); };
  s.on('message', (m) => { clearTimeout(timer); if (m.readUInt16BE(0) === id && (m[3] & 15) === 0 && m.readUInt16BE(6) > 0) lat.push(Number(process.hrtime.bigint() - t) / 1e6); else errors++; send(); });
  s.bind(0, server, send);
});
Promise.all(Array.from({ length: Number(concurrency) }, (_, i) => worker(i + 1))).then(() => console.log(JSON.stringify({ lat, errors })));`;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

const lab = await Lab.create({ hosts: 1 });
try {
  await weaveOk(lab, 'h1', ['launch', '--nickname', 'h1']);
  const ip = (await weaveOk(lab, 'h1', ['expose'])).trim();
  const addrs = ['10.32.100.1', '10.32.100.2', '10.32.100.3'];
  await weaveOk(lab, 'h1', ['dns-add', ...addrs, '-h', 'web']);
  lab.spawn('h1', [
    'dnsmasq',
    '--no-daemon',
    '--no-resolv',
    '--no-hosts',
    '--bind-interfaces',
    `--listen-address=${ip}`,
    `--port=${DNSMASQ_PORT}`,
    ...addrs.map((a) => `--host-record=web.weave.local,${a}`),
    '--local-ttl=1',
    `--pid-file=${join(lab.host('h1').dataDir, 'dnsmasq.pid')}`,
  ]);
  const run = async (port: number) =>
    JSON.parse(
      await lab.execOk('h1', [process.execPath, '-e', CLIENT, ip, String(port), String(SECONDS), String(CONCURRENCY)], {
        timeoutMs: (SECONDS + 30) * 1000,
      }),
    ) as { lat: number[]; errors: number };
  await run(53); // warm up both: the first queries pay for JIT and caches
  const results: { name: string; lat: number[]; errors: number }[] = [];
  for (const [name, port] of [
    ['dnsmasq', DNSMASQ_PORT],
    ['weave', 53],
    ['dnsmasq', DNSMASQ_PORT],
    ['weave', 53],
  ] as const)
    results.push({ name, ...(await run(port)) });
  console.log(
    `DNS: A web.weave.local (3 addresses), ${CONCURRENCY} queries in flight for ${SECONDS} s each, from the lab host to the bridge address; two rounds each`,
  );
  const row = (name: string) => {
    const rs = results.filter((r) => r.name === name);
    const lat = rs.flatMap((r) => r.lat);
    const qps = lat.length / (SECONDS * rs.length);
    console.log(
      `${name.padEnd(8)} ${qps.toFixed(0).padStart(7)} queries/s  p50 ${pct(lat, 50).toFixed(3)} ms  p99 ${pct(lat, 99).toFixed(3)} ms  errors ${rs.reduce((n, r) => n + r.errors, 0)}`,
    );
    return { qps, p99: pct(lat, 99) };
  };
  const base = row('dnsmasq'),
    ours = row('weave');
  console.log(
    `ratio weave/dnsmasq: ${(ours.qps / base.qps).toFixed(2)} x queries/s, ${(ours.p99 / base.p99).toFixed(2)} x p99 latency`,
  );
} finally {
  await lab.down();
}
