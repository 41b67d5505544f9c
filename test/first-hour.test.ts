import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../common/exec.js';
import { Lab, waitFor } from '../lab/lab.js';
import { launchAll, report, WEAVE, weave, weaveOk } from '../lab/weave.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const LAB_CLI = join(ROOT, 'bin', 'lab');

describe("a new user's first hour", function () {
  this.timeout(180_000);
  let lab: Lab;
  after(async () => { await lab?.down(); });
  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    await launchAll(lab, ['h1', 'h2']);
  });

  it('weave --help, weave help and weave CMD --help print usage and exit 0; a mistake exits 1', async () => {
    for (const args of [['--help'], ['help'], ['status', '--help'], ['launch', '--help'], ['run', '--help'], ['dns-add', '--help']]) {
      const r = await run([WEAVE, ...args]);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /^Usage: weave/m, args.join(' '));
    }
    assert.equal((await run([WEAVE, 'frobnicate'])).code, 1);
  });

  it('refuses a second router on a data directory a live router uses, with one line, and leaves the first alone', async () => {
    const first = await report(lab, 'h1');
    const r = await lab.exec('h1', [WEAVE, 'launch', '--port', '7783', '--udp-port', '7784', '--http-addr', '127.0.0.1:7785'], { env: { WEAVE_DATA_DIR: lab.host('h1').dataDir } });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`^weave: the data directory ${lab.host('h1').dataDir.replace(/[/.]/g, '\\$&')} is in use by another router \\(pid ${first.pid}\\): give this one its own with --data-dir\\n$`));
    const now = await report(lab, 'h1');
    assert.deepEqual([now.pid, now.name], [first.pid, first.name]);
  });

  it('says so when told to connect to itself', async () => {
    await weaveOk(lab, 'h1', ['connect', lab.host('h1').addrs[0]]);
    const s = await waitFor('the connection fails', async () => {
      const t = await weaveOk(lab, 'h1', ['status', 'connections']);
      return /this router itself/.test(t) ? t : undefined;
    });
    assert.match(s, new RegExp(`^-> ${lab.host('h1').addrs[0].replace(/\./g, '\\.')}:6783\\s+failed\\s+that address is this router itself`, 'm'));
    await weaveOk(lab, 'h1', ['forget', lab.host('h1').addrs[0]]);
  });

  it('says what is encrypted, keeps libpcap\'s noise out of the log, and weave stop removes its pid file', async () => {
    assert.match(await weaveOk(lab, 'h2', ['status']), /^\s+Encryption: control plane: noise; data plane: none$/m);
    const logFile = join(lab.host('h2').dataDir, 'weave.log');
    assert.match(readFileSync(logFile, 'utf8'), /router \S+\(h2\) up/);
    assert.doesNotMatch(readFileSync(logFile, 'utf8'), /no IPv4 address assigned/);
    const pidFile = join(lab.host('h2').dataDir, 'weave.pid');
    assert.ok(existsSync(pidFile));
    await weaveOk(lab, 'h2', ['stop']);
    assert.ok(!existsSync(pidFile), 'weave stop removed weave.pid');
    assert.notEqual((await weave(lab, 'h2', ['status'])).code, 0);
  });

  it('lab down removes the labs this checkout left behind, never a lab a run is still using', async () => {
    const up = await run([LAB_CLI, 'up', '1', '--id', `k${process.pid % 100000}`]);
    assert.equal(up.code, 0, up.stderr);
    const down = await run([LAB_CLI, 'down']);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, new RegExp(`^lab k${process.pid % 100000} down$`, 'm'));
    assert.doesNotMatch(down.stdout, new RegExp(`lab ${lab.id} down`), 'the lab of this run (its creator is alive) stays');
    assert.equal((await report(lab, 'h1')).nickname, 'h1', 'and its router still answers');
  });

  it('prints the demo with no colour codes when its output is not a terminal', async function () {
    this.timeout(120_000);
    const r = await run([process.execPath, join(ROOT, 'dist', 'lab', 'demo.js')], { timeoutMs: 110_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^### every container pings every other, across hosts$/m);
    assert.doesNotMatch(r.stdout, /\x1b\[/);
  });
});
