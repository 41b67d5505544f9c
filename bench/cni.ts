import '../common/polyfill.js';
// `node dist/bench/cni.js [--n N]`: CNI ADD and DEL latency, our plugins (the native one and the
// TypeScript one, both relays to the router) against Debian's bridge + host-local plugins, in one
// run on one lab host: each plugin is spawned as a runtime spawns it, N times each, into a fresh
// namespace.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHECKOUT } from '../common/checkout.js';
import { Lab } from '../lab/lab.js';
import { weaveOk } from '../lab/weave.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('--n', 40);
const PLUGIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'cni', 'weave-net.js');
const NATIVE = join(CHECKOUT, 'native', 'cni', 'build', 'weave-net');

// Runs inside the lab host: for each namespace (made beforehand, outside: one made under
// ip netns exec is not visible to the router), ADD timed, DEL timed.
const CLIENT = `
const { spawnSync } = require('node:child_process');
const [nsList, confText, ...argv] = process.argv.slice(1);
const add = [], del = [];
for (const ns of nsList.split(',')) {
  const env = { PATH: process.env.PATH, CNI_CONTAINERID: ns, CNI_NETNS: '/var/run/netns/' + ns, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
  for (const [cmd, into] of [['ADD', add], ['DEL', del]]) {
    const t = process.hrtime.bigint();
    const r = spawnSync(argv[0], argv.slice(1), { input: confText, env: { ...env, CNI_COMMAND: cmd } });
    into.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (r.status !== 0) { console.error(cmd + ' failed: ' + r.stdout + r.stderr); process.exit(1); }
  }
}
console.log(JSON.stringify({ add, del }));`;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(1)} ms  p95 ${pct(xs, 95).toFixed(1)} ms`;

const lab = await Lab.create({ hosts: 1 });
try {
  await weaveOk(lab, 'h1', ['launch', '--nickname', 'h1']);
  const bridge = JSON.stringify({
    cniVersion: '1.0.0',
    name: 'bench',
    type: 'bridge',
    bridge: 'cnibench0',
    isGateway: true,
    ipam: { type: 'host-local', subnet: '10.99.0.0/16', dataDir: join(lab.host('h1').dataDir, 'host-local') },
  });
  const weave = JSON.stringify({ cniVersion: '1.0.0', name: 'weave', type: 'weave-net' });
  const run = async (label: string, conf: string, argv: string[], n = N) => {
    const ns = await Promise.all(Array.from({ length: n }, (_, i) => lab.addContainer('h1', `${label}${i}`)));
    return {
      label,
      ...(JSON.parse(
        await lab.execOk('h1', [process.execPath, '-e', CLIENT, ns.map((c) => c.netns).join(','), conf, ...argv], {
          timeoutMs: 600_000,
        }),
      ) as { add: number[]; del: number[] }),
    };
  };
  await run('warm', weave, [process.execPath, PLUGIN], 3); // the first ADD exposes the bridge and splits the range
  const plugins = [
    { label: 'bridge', name: 'bridge + host-local (Go)', conf: bridge, argv: ['/usr/lib/cni/bridge'] },
    { label: 'native', name: 'weave-net native (C + router)', conf: weave, argv: [NATIVE] },
    { label: 'ts', name: 'weave-net TS (Node + router)', conf: weave, argv: [process.execPath, PLUGIN] },
  ];
  const results = [];
  for (const p of plugins) results.push({ ...p, ...(await run(p.label, p.conf, p.argv)) });
  console.log(`CNI ADD and DEL, ${N} namespaces each, the plugin spawned per call as a runtime does (one lab host)`);
  for (const r of results) console.log(`${r.name.padEnd(30)} ADD ${fmt(r.add)}   DEL ${fmt(r.del)}`);
  const node = JSON.parse(
    await lab.execOk('h1', [
      process.execPath,
      '-e',
      `const t=process.hrtime.bigint();require('node:child_process').spawnSync(process.execPath,['-e','0']);console.log(Number(process.hrtime.bigint()-t)/1e6)`,
    ]),
  );
  console.log(`floor: starting an empty Node process takes ${node.toFixed(1)} ms here`);
  const [b, ...ours] = results;
  for (const w of ours)
    console.log(
      `ratio ${w.label}/bridge: ADD ${(pct(w.add, 50) / pct(b.add, 50)).toFixed(2)} x, DEL ${(pct(w.del, 50) / pct(b.del, 50)).toFixed(2)} x (p50)`,
    );
} finally {
  await lab.down();
}
