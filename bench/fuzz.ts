import '../common/polyfill.js';
// `node dist/bench/fuzz.js [--n 1000000] [--live-n N] [--only decoders,datagrams,gossip,http]`: every door fuzzed long.
// The pure decoders
// in this process (n inputs each), then a live lab router: hostile datagrams, gossip from a rogue
// peer and HTTP requests (live-n each, default n). Prints inputs per second and crashes per door:
// for the live doors a crash is a router that died (another pid answers: its supervisor restarted it).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, waitFor } from '../lab/lab.js';
import { launchAll, pluginDir, report, waitForMesh, weaveOk } from '../lab/weave.js';
import { fuzzDecoders } from './fuzzers/decoders.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('--n', 1_000_000);
const LIVE_N = arg('--live-n', N);
const ONLY = (() => {
  const i = process.argv.indexOf('--only');
  return i > 0 ? process.argv[i + 1].split(',') : ['decoders', 'datagrams', 'gossip', 'http'];
})();
const FUZZ = join(dirname(fileURLToPath(import.meta.url)), 'fuzzers');
const row = (door: string, inputs: number, seconds: number, crashes: number, extra = '') =>
  console.log(
    `${door.padEnd(22)} ${String(inputs).padStart(9)} inputs  ${(inputs / seconds).toFixed(0).padStart(8)} /s  crashes ${crashes}${extra ? `  ${extra}` : ''}`,
  );

console.log(`fuzz: ${N} inputs per decoder, ${LIVE_N} per live door (goal: 0 crashes in 1 000 000 per door)`);
for (const r of ONLY.includes('decoders') ? fuzzDecoders(N, 1) : [])
  row(r.door, r.inputs, r.seconds, r.crashes, `${r.still ? '' : 'BROKEN AFTERWARDS '}${r.firstCrash ?? ''}`);
let t: number;

const lab = await Lab.create({ hosts: 2 });
try {
  await launchAll(lab, ['h1', 'h2']);
  await waitForMesh(lab);
  const before = await report(lab, 'h1');
  const alive = async () => (await report(lab, 'h1')).pid === before.pid;

  if (ONLY.includes('datagrams')) {
    t = Date.now();
    const sent = Number(
      (
        await lab.execOk(
          'h2',
          [
            process.execPath,
            join(FUZZ, 'datagrams.js'),
            lab.host('h1').addrs[0],
            String(before.udpPort),
            String(before.vni),
            String(before.mtu),
            String(LIVE_N),
            '1',
          ],
          { timeoutMs: 3_600_000 },
        )
      ).trim(),
    );
    const got = await waitFor(
      'datagrams counted',
      async () => {
        const r = await report(lab, 'h1');
        return r.counters.received.datagrams - before.counters.received.datagrams >= sent * 0.99 ? r : undefined;
      },
      60_000,
    ).catch(() => undefined);
    row(
      'datagrams (live)',
      sent,
      (Date.now() - t) / 1000,
      (await alive()) ? 0 : 1,
      `received ${got ? 'all but < 1%' : 'fewer than 99%: the kernel dropped some'}`,
    );
  }
  if (ONLY.includes('gossip')) {
    t = Date.now();
    const rogue = lab.spawn(
      'h2',
      [process.execPath, join(FUZZ, 'gossip.js'), lab.host('h1').addrs[0], String(LIVE_N), '2'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const count = await new Promise<number>((resolve) => {
      let out = '';
      rogue.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve(Number(out.trim()));
      });
      rogue.on('exit', () => resolve(Number(out.trim()) || 0));
    });
    const g = (await alive()) ? 0 : 1;
    rogue.kill();
    row('gossip (live)', count, (Date.now() - t) / 1000, g);
  }
  if (ONLY.includes('http')) {
    // The API, then the Docker network plugin's socket
    for (const [what, addr] of [
      ['HTTP (live)', '127.0.0.1:6784'],
      ['plugin socket (live)', `unix:${join(pluginDir(lab, 'h1'), 'weavemesh.sock')}`],
      ['managed plugin socket (live)', `unix:${join(lab.host('h1').dataDir, 'run', 'plugin.sock')}`],
    ]) {
      t = Date.now();
      const http = JSON.parse(
        await lab.execOk('h1', [process.execPath, join(FUZZ, 'http.js'), addr, String(LIVE_N), '3'], {
          timeoutMs: 3_600_000,
        }),
      ) as { statuses: Record<string, number>; fives: string[] };
      row(
        what,
        LIVE_N,
        (Date.now() - t) / 1000,
        (await alive()) ? 0 : 1,
        `5xx: ${http.fives.length ? http.fives.join('; ') : 'none'}  statuses ${JSON.stringify(http.statuses)}`,
      );
    }
  }
  await weaveOk(lab, 'h1', ['status']);
} finally {
  await lab.down();
}
