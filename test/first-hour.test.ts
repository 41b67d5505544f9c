import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../common/exec.js';
import { Lab, waitFor } from '../lab/lab.js';
import { launchAll, report, WEAVE, weave, weaveOk } from '../lab/weave.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const LAB_CLI = join(ROOT, 'bin', 'lab');
const DAEMON = join(ROOT, 'dist', 'daemon', 'main.js');
const re = (s: string) => s.replace(/[/.()\\[\]?*+^$|{}]/g, '\\$&');
const netnsList = async () => (await run(['ip', 'netns', 'list'])).stdout;

describe("a new user's first hour", function () {
  this.timeout(180_000);
  let lab: Lab;
  after(async () => {
    await lab?.down();
  });
  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    await launchAll(lab, ['h1', 'h2']);
  });

  it('make runs on a Node the README names, and with neither node nor npm stops at once saying what to install', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    assert.match(readme, /\*\*Node\.js:\*\* 20\.19 or later \(22 and 24 work too\)/);
    assert.equal(
      JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).engines.node,
      '>=20.19 <25',
      'package.json says the same',
    );
    assert.equal((await run([join(ROOT, 'bin', 'ensure-node')])).code, 0, 'the Node these tests run on is one of them');
    // A machine with no Node and no npm: only sh and dirname on PATH, and a checkout with no .tools/node yet.
    const bare = mkdtempSync('/tmp/weave-bare-');
    try {
      for (const c of ['sh', 'dirname'])
        symlinkSync((await run(['sh', '-c', `command -v ${c}`])).stdout.trim(), join(bare, c));
      cpSync(join(ROOT, 'bin', 'ensure-node'), join(bare, 'checkout', 'bin', 'ensure-node'), { recursive: true });
      const r = await run([join(bare, 'sh'), join(bare, 'checkout', 'bin', 'ensure-node')], { env: { PATH: bare } });
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.match(
        r.stderr,
        /^weave-ts needs Node\.js 20\.19 or later \(22 or 24 also work\), or npm to fetch one: on Debian, apt-get install -y npm, then make again\n$/,
      );
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });

  it('npm ci on this Node warns of no engine: p-retry is pinned to a version for Node 20 (without the pin it would warn)', async () => {
    const dir = mkdtempSync('/tmp/weave-engines-');
    try {
      for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(ROOT, f), join(dir, f));
      const ci = () =>
        run(['npm', '--prefix', dir, 'ci', '--dry-run', '--ignore-scripts', '--no-audit', '--no-fund'], {
          timeoutMs: 120_000,
        }).then((r) => `${r.code} ${r.stdout}${r.stderr}`);
      const pinned = await ci();
      assert.match(pinned, /^0 /);
      assert.doesNotMatch(pinned, /EBADENGINE/);
      // The same check without the override: it must see p-retry@8's engine, or it proves nothing.
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      delete pkg.overrides;
      writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg));
      const lock = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8'));
      const pinned7 = Object.entries(lock.packages as Record<string, { version: string }>).filter(
        ([k, v]) => k.endsWith('node_modules/p-retry') && v.version === '7.1.1',
      );
      assert.ok(pinned7.length > 0, 'the lock has the pinned p-retry');
      for (const [, v] of pinned7) Object.assign(v, { version: '8.0.1', engines: { node: '>=22' } });
      writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lock));
      const [major] = process.versions.node.split('.').map(Number);
      if (major < 22) assert.match(await ci(), /EBADENGINE[\s\S]*p-retry@8\.0\.1/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('weave --help, weave help, weave help CMD and weave CMD --help print usage and exit 0; a mistake exits 1', async () => {
    for (const args of [
      ['--help'],
      ['help'],
      ['help', 'status'],
      ['status', '--help'],
      ['launch', '--help'],
      ['run', '--help'],
      ['dns-add', '--help'],
    ]) {
      const r = await run([WEAVE, ...args]);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /^Usage: weave/m, args.join(' '));
    }
    const bad = await run([WEAVE, 'frobnicate']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /unknown command 'frobnicate'/);
  });

  it("says every mistake on one line that begins 'weave:', naming the flag or file and what to do", async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /^weave: unknown command 'frobnicate' \(see weave --help\)$/],
      [['stack'], /^weave: stack needs a command: ls, ps, rm \(see weave stack --help\)$/],
      [['launch', '--nope'], /^weave: unknown option '--nope' \(see weave launch --help\)$/],
      [['launch', '--ipalloc-range'], /^weave: option '--ipalloc-range <cidr>' argument missing/],
      [['launch', '--ipalloc-range', 'bogus'], /^weave: invalid --ipalloc-range value "bogus"/],
      [['dns-add', '10.32.0.9'], /^weave: required option '-h, --hostname <name>' not specified/],
      [
        ['deploy', '/nonexistent/web.yaml'],
        /^weave: cannot read the manifest \/nonexistent\/web.yaml: no such file \(/,
      ],
    ];
    for (const [args, re] of cases) {
      const r = await run([WEAVE, ...args]);
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.stdout, '', args.join(' '));
      assert.match(r.stderr, /^[^\n]*\n$/, `one line: ${r.stderr}`);
      assert.match(r.stderr.trim(), re);
    }
  });

  it('refuses a second router on a data directory a live router uses (the CLI before it starts anything, the daemon too), with one line', async () => {
    const dir = lab.host('h1').dataDir;
    const first = await report(lab, 'h1');
    const files = readdirSync(dir).sort();
    const logSize = readFileSync(join(dir, 'weave.log')).length;
    const refused = `the data directory ${dir} is in use by another router (pid ${first.pid}): give this one its own with --data-dir\n`;
    // From another host (its own API address is free), as two lab hosts sharing /var/lib/weave would.
    const r = await lab.exec(
      'h2',
      [WEAVE, 'launch', '--port', '7783', '--udp-port', '7784', '--http-addr', '127.0.0.1:7785'],
      { env: { WEAVE_DATA_DIR: dir } },
    );
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `weave: ${refused}`);
    assert.equal(r.stdout, '');
    // The daemon itself refuses as well (a launch racing another gets past the CLI's look).
    const d = await lab.exec('h2', [process.execPath, DAEMON, JSON.stringify({ dataDir: dir, vxlanPeers: [] })]);
    assert.equal(d.code, 1);
    assert.equal(d.stderr, `fatal: ${refused}`);
    assert.deepEqual(readdirSync(dir).sort(), files, 'nothing was added to the data directory');
    // the live router may have logged meanwhile
    const added = readFileSync(join(dir, 'weave.log'), 'utf8').slice(logSize);
    assert.doesNotMatch(added, /fatal|in use|up: datapath/, 'the refused router wrote nothing to its log');
    const now = await report(lab, 'h1');
    assert.deepEqual([now.pid, now.name], [first.pid, first.name]);
    // The lock does not outlive its router: killed with -9, the supervisor's new router takes it over.
    process.kill(first.pid, 'SIGKILL');
    const again = await waitFor(
      'the router back after kill -9',
      async () => {
        const r2 = await weave(lab, 'h1', ['report']);
        const rep = r2.code === 0 ? (JSON.parse(r2.stdout) as typeof first) : undefined;
        return rep && rep.pid !== first.pid ? rep : undefined;
      },
      20_000,
    );
    assert.equal(again.name, first.name);
    assert.equal(readFileSync(join(dir, 'weave.lock'), 'utf8').trim(), String(again.pid));
  });

  it('says so when told to connect to itself', async () => {
    const self = lab.host('h1').addrs[0];
    await weaveOk(lab, 'h1', ['connect', self]);
    const s = await waitFor(
      'the connection to ourselves fails',
      async () => {
        const t = await weaveOk(lab, 'h1', ['status', 'connections']);
        return new RegExp(`^-> ${re(self)}:6783 .*failed`, 'm').test(t) ? t : undefined;
      },
      20_000,
    );
    assert.match(
      s,
      new RegExp(`^-> ${re(self)}:6783\\s+failed\\s+this is ourselves: the address is this router's own`, 'm'),
    );
    await weaveOk(lab, 'h1', ['forget', self]);
  });

  it("says what is encrypted, keeps libpcap's noise out of the log, and weave stop removes its pid file", async () => {
    assert.match(await weaveOk(lab, 'h2', ['status']), /^\s+Encryption: control plane: noise; data plane: none$/m);
    assert.match(await weaveOk(lab, 'h2', ['status', 'connections']), /established .*encrypted \(noise\)/);
    const logFile = join(lab.host('h2').dataDir, 'weave.log');
    assert.match(readFileSync(logFile, 'utf8'), /router \S+\(h2\) up/);
    // The daemon prints "Warning: vethwe-pcap: no IPv4 address assigned - This may not actually work" (libpcap, from
    // C).
    assert.doesNotMatch(readFileSync(logFile, 'utf8'), /no IPv4 address assigned/);
    const pidFile = join(lab.host('h2').dataDir, 'weave.pid');
    assert.ok(existsSync(pidFile));
    await weaveOk(lab, 'h2', ['stop']);
    assert.ok(!existsSync(pidFile), 'weave stop removed weave.pid');
    assert.ok(!existsSync(join(lab.host('h2').dataDir, 'weave.lock')), 'and its lock');
    assert.notEqual((await weave(lab, 'h2', ['status'])).code, 0);
  });

  it("lab down removes only its own checkout's labs that no run uses: never another checkout's, never a run in progress", async () => {
    // A second checkout of the same code, as a user with two clones has.
    const other = mkdtempSync('/tmp/weave-checkout-');
    const tag = String(process.pid % 100000);
    const [mine, theirs, running] = [`m${tag}`, `o${tag}`, `r${tag}`];
    let runner: ReturnType<typeof spawn> | undefined;
    try {
      for (const d of ['dist', 'bin']) cpSync(join(ROOT, d), join(other, d), { recursive: true });
      copyFileSync(join(ROOT, 'package.json'), join(other, 'package.json'));
      symlinkSync(join(ROOT, 'node_modules'), join(other, 'node_modules'));
      const otherLab = join(other, 'bin', 'lab');
      for (const [cli, id] of [
        [LAB_CLI, mine],
        [otherLab, theirs],
      ]) {
        const up = await run([cli, 'up', '1', '--id', id]);
        assert.equal(up.code, 0, up.stderr);
      }
      // A run in progress in the other checkout: its creator is alive.
      runner = spawn(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const { Lab } = await import(${JSON.stringify(join(other, 'dist', 'lab', 'lab.js'))}); await Lab.create({ hosts: 1 }, { id: '${running}' }); console.log('up'); setInterval(() => {}, 1000);`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let said = '';
      runner.stdout!.on('data', (b: Buffer) => (said += b));
      await waitFor('the run in progress has its lab', async () => said.includes('up'), 30_000);

      const down = await run([otherLab, 'down']);
      assert.equal(down.code, 0, down.stderr);
      assert.match(down.stdout, new RegExp(`^lab ${theirs} down$`, 'm'));
      assert.doesNotMatch(down.stdout, new RegExp(`^lab (${mine}|${running}|${lab.id}) down$`, 'm'));
      const left = down.stdout.split('\n').find((l) => l.startsWith('left alone: '));
      assert.ok(left, down.stdout);
      assert.match(left, new RegExp(`lab ${mine} \\(made by another checkout, ${re(ROOT)}\\)`));
      assert.match(left, new RegExp(`lab ${running} \\(in use by a run in progress, pid ${runner.pid}\\)`));
      assert.match(left, new RegExp(`lab ${lab.id} \\(made by another checkout, ${re(ROOT)}\\)`));
      assert.match(left, /; lab down --all removes every lab$/);
      const ns = await netnsList();
      assert.doesNotMatch(ns, new RegExp(`^wl${theirs}-`, 'm'));
      for (const id of [mine, running, lab.id])
        assert.match(ns, new RegExp(`^wl${id}-h1\\b`, 'm'), `lab ${id} still has its namespaces`);
      assert.equal((await report(lab, 'h1')).nickname, 'h1', "this run's routers still answer");
      assert.match((await run([LAB_CLI, 'down', '--help'])).stdout, /--all\s+every lab on this machine/);
    } finally {
      if (runner && runner.exitCode === null) {
        const gone = new Promise((res) => runner!.once('exit', res));
        runner.kill('SIGTERM'); // its lab tears itself down on the way out
        await Promise.race([gone, new Promise((res) => setTimeout(res, 15_000))]);
      }
      for (const id of [mine, theirs, running]) await run([LAB_CLI, 'down', '--id', id]);
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('prints the demo with no colour codes when its output is not a terminal', async function () {
    this.timeout(120_000);
    const r = await run([process.execPath, join(ROOT, 'dist', 'lab', 'demo.js')], { timeoutMs: 110_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^### every container pings every other, across hosts/m);
    assert.match(
      r.stdout,
      /^ {2}ubuntu \(h1, h2\): 4 replicas .*\n {2}centos \(h3, h4\): 4 replicas/m,
      'the stack half on ubuntu, half on centos',
    );
    assert.match(
      r.stdout,
      /^ {2}10\.\d+\.\d+\.\d+: shop\/web\/\d+ moved h4 -> h\d, answering again after [\d.]+ s$/m,
      "h4's replicas answer again elsewhere",
    );
    // biome-ignore lint/suspicious/noControlCharactersInRegex: what is looked for is a terminal's escape sequence
    assert.doesNotMatch(r.stdout, /\x1b\[/);
  });
});
