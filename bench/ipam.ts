import '../common/polyfill.js';
// `node dist/bench/ipam.js [--local N] [--subnets N]`: IPAM allocation latency through a router's
// HTTP API in a 2-host lab. h2 starts alone and so owns the whole range; h1 joins with none, so the
// first allocation in each /24 needs a donation from h2, and the next ones in it are local.
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../lab/lab.js';
import { waitForMesh, weaveOk } from '../lab/weave.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const LOCAL = arg('--local', 2000);
const SUBNETS = arg('--subnets', 100);

// Runs inside h1: sequential requests over one keep-alive connection, latencies in ms.
const CLIENT = `
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const post = (path) => new Promise((resolve, reject) => {
  const t = process.hrtime.bigint();
  const req = http.request({ host: '127.0.0.1', port: 6784, method: 'POST', path, agent }, (res) => {
    let body = ''; res.on('data', (c) => body += c);
    res.on('end', () => res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t) / 1e6) : reject(new Error(path + ': ' + body)));
  });
  req.on('error', reject); req.end();
});
(async () => {
  const [local, subnets] = process.argv.slice(1).map(Number);
  const donation = [], localInSubnet = [], bulk = [];
  for (let s = 1; s <= subnets; s++) {
    donation.push(await post('/ip/d' + s + '?subnet=10.32.' + s + '.0/24'));
    localInSubnet.push(await post('/ip/l' + s + '?subnet=10.32.' + s + '.0/24'));
  }
  const t0 = Date.now();
  for (let i = 0; i < local; i++) bulk.push(await post('/ip/bulk' + i + '?subnet=10.40.0.0/16'));
  console.log(JSON.stringify({ donation, localInSubnet, bulk, seconds: (Date.now() - t0) / 1000 }));
})().catch((e) => { console.error(e.message); process.exit(1); });`;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const fmt = (xs: number[]) =>
  `p50 ${pct(xs, 50).toFixed(2)} ms, p99 ${pct(xs, 99).toFixed(2)} ms, max ${Math.max(...xs).toFixed(2)} ms (n=${xs.length})`;
/** Where in the run the slow ones fell: spread out (the machine, GC) or together (one stall). */
const slowAt = (xs: number[], ms: number) => xs.map((x, i) => (x > ms ? i : -1)).filter((i) => i >= 0);

/** What one durable append costs on the disk the data directories are on, measured in the same run. */
function fsyncBaseline(dir: string): number[] {
  const fd = openSync(join(dir, 'fsync-baseline'), 'a');
  const xs: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t = process.hrtime.bigint();
    writeSync(fd, `${'x'.repeat(120)}\n`);
    fdatasyncSync(fd);
    xs.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  closeSync(fd);
  return xs;
}

const lab = await Lab.create({ hosts: 2 });
try {
  await weaveOk(lab, 'h2', ['launch', '--nickname', 'h2']);
  const seed = await lab.addContainer('h2', 'seed');
  await weaveOk(lab, 'h2', ['attach', `netns:${seed.netns}`]); // h2 alone splits the range: all of it is h2's
  await weaveOk(lab, 'h1', ['launch', '--nickname', 'h1', lab.host('h2').addrs[0]]);
  await waitForMesh(lab);
  // The bulk subnet: one donation first, then h1 allocates from its own space.
  await lab.execOk('h1', [process.execPath, '-e', CLIENT.replace("'/ip/bulk' + i", "'/ip/warm' + i"), '0', '0']);
  const out = await lab.execOk('h1', [process.execPath, '-e', CLIENT, String(LOCAL), String(SUBNETS)], {
    timeoutMs: 600_000,
  });
  const r = JSON.parse(out) as { donation: number[]; localInSubnet: number[]; bulk: number[]; seconds: number };
  console.log(
    `IPAM allocation latency through the HTTP API of a lab router (sequential requests, one keep-alive connection)`,
  );
  console.log(`local space, bulk:          ${fmt(r.bulk.slice(1))}`);
  console.log(`local space, after donation: ${fmt(r.localInSubnet)}`);
  console.log(`needs a donation from h2:   ${fmt(r.donation)}`);
  const slow = slowAt(r.bulk, 5);
  console.log(
    `local space, bulk, over 5 ms: ${slow.length} of ${r.bulk.length}, at request ${slow.slice(0, 40).join(', ')}${slow.length > 40 ? ', ...' : ''}`,
  );
  console.log(
    `allocations per second (local, sequential): ${((r.bulk.length - 1) / (r.seconds - r.bulk[0] / 1000)).toFixed(0)}`,
  );
  console.log(
    `baseline, this disk: append + fdatasync ${fmt(fsyncBaseline(lab.root))} (every allocation is fdatasync'd before it is acknowledged)`,
  );
  console.log('goal: p99 < 5 ms with local space');
} finally {
  await lab.down();
}
