import '../common/polyfill.js';
// `node dist/bench/policy.js [--rules 1000] [--seconds 5] [--runs 3] [--json]`: what NetworkPolicy costs
// fastdp. Two lab hosts, a namespace on each attached to the overlay (namespace `default`, no labels);
// iperf3 from h1's to h2's, first with no policy (the policy section's base chain only: conntrack and
// `ct state established,related accept`, br_netfilter on), then with one policy selecting every pod whose
// ingress has RULES rules (each its own interval set and port), the one that lets iperf3 in being the last:
// a new flow walks every rule, an established one is accepted by the first. Prints Gbit/s of each, the
// compile-and-load time of the rules (h2's report) and the ms from `weave policy apply` on h1 to the rule
// in h2's kernel. Without and with alternate, RUNS pairs, so that both see the same load on a shared machine.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { intArg } from './args.js';
import { Lab, waitFor } from '../lab/lab.js';
import { iperf } from '../lab/iperf.js';
import { attachEach, keepLogs, launchAll, report, waitForMesh, waitForPing, weaveOk } from '../lab/weave.js';

const USAGE = 'usage: node dist/bench/policy.js [--rules N] [--seconds S] [--runs N] [--json]';

function parseArgs(argv: string[]) {
  const o = { rules: 1000, seconds: 5, runs: 3, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') o.json = true;
    else if (a === '--rules') o.rules = intArg(a, argv[++i], 1, USAGE);
    else if (a === '--seconds') o.seconds = intArg(a, argv[++i], 1, USAGE);
    else if (a === '--runs') o.runs = intArg(a, argv[++i], 1, USAGE);
    else throw new Error(`unknown argument "${a}"\n${USAGE}`);
  }
  return o;
}

/** One policy of `n` ingress rules: n − 1 that match nothing here (TEST-NET addresses, other ports), then iperf3's. */
function policyOf(n: number): string {
  const rules = Array.from(
    { length: n - 1 },
    (_, i) =>
      `  - {from: [{ipBlock: {cidr: 192.0.2.${i % 256}/32}}, {ipBlock: {cidr: 198.51.${Math.floor(i / 256)}.0/24}}], ports: [{port: ${10000 + i}}]}\n`,
  );
  return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bench}
spec:
  podSelector: {}
  ingress:
${rules.join('')}  - from:
    - podSelector: {}
    ports:
    - {port: 5201}
`;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const lab = await Lab.create({ hosts: 2 });
  try {
    await launchAll(lab, ['h1', 'h2'], ['--datapath', 'fastdp']);
    await waitForMesh(lab);
    const [c1, c2] = await attachEach(lab, ['h1', 'h2']);
    await waitForPing(lab, c1.netns, '10.32.0.2');
    const gbits = async () =>
      (await iperf(lab, c1.netns, c2.netns, '10.32.0.2', { seconds: o.seconds })).sum_received.bits_per_second / 1e9;
    const file = join(mkdtempSync(join(tmpdir(), 'weave-bench-policy-')), 'bench.yaml');
    writeFileSync(file, policyOf(o.rules));
    const last = `"default/bench ingress[${o.rules - 1}]"`;
    const inH2 = async (present: boolean) =>
      waitFor(
        `the rules ${present ? 'in' : 'gone from'} h2's kernel`,
        async () =>
          // the chain alone (not the sets' elements): a cheaper look
          (await lab.exec('h2', ['/usr/sbin/nft', 'list', 'chain', 'inet', 'weave', 'policy_ingress'])).stdout.includes(
            last,
          ) === present,
        30_000,
        20,
      );
    // Interleaved (without, with, without, with, …) so that both see the same load on a shared machine.
    const without: number[] = [],
      within: number[] = [],
      ratios: number[] = [],
      propagate: number[] = [],
      load: number[] = [];
    let kernelRules = 0;
    for (let i = 0; i < o.runs; i++) {
      const a = await gbits();
      const t0 = Date.now();
      await weaveOk(lab, 'h1', ['policy', 'apply', file]);
      await inH2(true);
      propagate.push(Date.now() - t0);
      const r = (await report(lab, 'h2')) as unknown as { policy: { rules: number; compileMs: number } };
      kernelRules = r.policy.rules;
      load.push(r.policy.compileMs);
      const b = await gbits();
      await weaveOk(lab, 'h1', ['policy', 'rm', 'bench']);
      await inH2(false);
      without.push(a);
      within.push(b);
      ratios.push(b / a);
    }
    const out = {
      rules: o.rules,
      kernelRules,
      gbitsNoPolicy: +median(without).toFixed(2),
      gbitsWithPolicy: +median(within).toFixed(2),
      costPercent: +(100 * (1 - median(ratios))).toFixed(1),
      pairs: without.map((w, i) => [+w.toFixed(2), +within[i].toFixed(2)]),
      compileAndLoadMs: median(load),
      applyToH2KernelMs: median(propagate),
    };
    if (o.json) process.stdout.write(`${JSON.stringify(out)}\n`);
    else
      process.stdout.write(
        `fastdp, iperf3 h1 → h2 (medians of ${o.runs} interleaved pairs × ${o.seconds} s): ${out.gbitsNoPolicy} Gbit/s with no policy, ` +
          `${out.gbitsWithPolicy} Gbit/s with ${o.rules} rules (${out.kernelRules} in the kernel); cost (median of the pairs' ratios) ` +
          `${out.costPercent}%; pairs ${out.pairs.map(([a, b]) => `${a}/${b}`).join(' ')}\n` +
          `compile and load on h2: ${out.compileAndLoadMs} ms; weave policy apply on h1 to h2's kernel: ${out.applyToH2KernelMs} ms\n`,
      );
  } finally {
    await keepLogs(lab); // WEAVE_LAB_LOGS=DIR keeps the routers' logs
    await lab.down();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
