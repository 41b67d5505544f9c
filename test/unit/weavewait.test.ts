import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// weavewait (native/wait/weavewait.c) is run inside a network namespace this test makes, where the
// test adds, raises and addresses `ethwe` (a veth: this kernel has no dummy driver) step by step.
// "Still waiting" is shown without sleeps: the process is still weavewait (not yet exec'd into the
// command, /proc/PID/comm), has printed nothing, and has gone to sleep several more times
// (voluntary_ctxt_switches) since the last change, so it has polled and seen that change.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SRC = join(ROOT, 'native/wait/weavewait.c');
const BIN = join(ROOT, 'native/wait/build/weavewait');
const NS = `wtww-${randomBytes(4).toString('hex')}`;

const sh = (cmd: string, ...args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const ipn = (...args: string[]) => sh('ip', '-n', NS, ...args);

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}
interface Run {
  pid: number;
  stdout: () => string;
  stderr: () => string;
  exit: Exit | null;
  exited: Promise<Exit>;
}

const running: Run[] = [];

/** `ip netns exec NS [prefix...] weavewait args...`: ip execs, so pid is the wrapper's (or prefix's). */
function run(args: string[], env: Record<string, string> = {}, prefix: string[] = [BIN]): Run {
  const child = spawn('ip', ['netns', 'exec', NS, ...prefix, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const r: Run = {
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    exit: null,
    // 'close', not 'exit': both pipes drained, so stdout/stderr are complete.
    exited: new Promise((resolve) => child.on('close', (code, signal) => resolve((r.exit = { code, signal })))),
  };
  running.push(r);
  return r;
}

async function until<T>(what: string, probe: () => T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 5));
  }
}

async function exitOf(r: Run, ms = 10_000): Promise<Exit> {
  return until('the process to exit', () => r.exit ?? undefined, ms);
}

const proc = (pid: number, file: string): string | undefined => {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined; // gone
  }
};
const sleeps = (pid: number) => Number(/voluntary_ctxt_switches:\s*(\d+)/.exec(proc(pid, 'status') ?? '')?.[1] ?? NaN);

/** The wrapper (pid, r's by default) is still waiting, and has polled `polls` times since this call. */
async function stillWaiting(r: Run, why: string, polls = 5, pid = r.pid): Promise<void> {
  const isWrapper = () => proc(pid, 'comm') === 'weavewait\n';
  await until(`${why}: ip to exec weavewait`, () => (isWrapper() || r.exit ? true : undefined));
  const from = sleeps(pid);
  await until(`${why}: ${polls} more polls`, () =>
    r.exit || !isWrapper() || sleeps(pid) >= from + polls ? true : undefined,
  );
  assert.equal(r.exit, null, `${why}: exited early (stderr: ${r.stderr()})`);
  assert.ok(isWrapper(), `${why}: no longer weavewait (the command runs)`);
  assert.equal(r.stdout(), '', `${why}: the command ran`);
  assert.equal(r.stderr(), '', `${why}: printed while waiting`);
}

const noEthwe = () => {
  try {
    ipn('link', 'del', 'ethwe'); // takes its peer along
  } catch {
    /* not there */
  }
};
const ethweReady = () => {
  noEthwe();
  ipn('link', 'add', 'ethwe', 'type', 'veth', 'peer', 'name', 'ethwe-p');
  ipn('addr', 'add', '10.32.0.9/12', 'dev', 'ethwe');
  ipn('link', 'set', 'ethwe', 'up');
};

describe('weavewait (container entrypoint wrapper)', () => {
  before(() => {
    if (!existsSync(BIN) || statSync(BIN).mtimeMs < statSync(SRC).mtimeMs) sh('npm', 'run', '--silent', 'build:wait');
    sh('ip', 'netns', 'add', NS);
  });

  afterEach(async () => {
    for (const r of running.splice(0)) {
      if (r.exit) continue;
      try {
        process.kill(r.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await r.exited;
    }
    noEthwe();
  });

  after(() => {
    try {
      sh('ip', 'netns', 'del', NS);
    } catch {
      /* never made */
    }
  });

  it('waits while ethwe is missing, down, or up without IPv4, then runs the command', async () => {
    noEthwe();
    const r = run(['sh', '-c', 'echo started; exit 7']);
    await stillWaiting(r, 'no ethwe');
    ipn('link', 'add', 'ethwe', 'type', 'veth', 'peer', 'name', 'ethwe-p');
    await stillWaiting(r, 'ethwe down');
    ipn('link', 'set', 'ethwe', 'up'); // up, perhaps with an IPv6 link-local address, but no IPv4
    await stillWaiting(r, 'ethwe up without IPv4');
    ipn('addr', 'add', '10.32.0.9/12', 'dev', 'ethwe');
    assert.deepEqual(await exitOf(r), { code: 7, signal: null });
    assert.equal(r.stdout(), 'started\n');
    assert.equal(r.stderr(), '');
  });

  it('an IPv4 address on a down ethwe is not enough; arguments pass through unchanged', async () => {
    noEthwe();
    ipn('link', 'add', 'ethwe', 'type', 'veth', 'peer', 'name', 'ethwe-p');
    ipn('addr', 'add', '10.32.0.9/12', 'dev', 'ethwe');
    const r = run(['printf', '%s|', 'a b', 'c', '', '$HOME "q"']);
    await stillWaiting(r, 'ethwe addressed but down');
    ipn('link', 'set', 'ethwe', 'up');
    assert.deepEqual(await exitOf(r), { code: 0, signal: null });
    assert.equal(r.stdout(), 'a b|c||$HOME "q"|');
    assert.equal(r.stderr(), '');
  });

  it('gives up after WEAVE_WAIT_TIMEOUT seconds with one line and exit 1, not running the command', async () => {
    noEthwe();
    const t0 = Date.now();
    const r = run(['sh', '-c', 'echo ran'], { WEAVE_WAIT_TIMEOUT: '1' });
    assert.deepEqual(await exitOf(r), { code: 1, signal: null });
    assert.ok(Date.now() - t0 >= 950, `gave up after ${Date.now() - t0} ms`);
    assert.equal(r.stdout(), '');
    assert.equal(r.stderr(), 'weavewait: ethwe did not come up within 1s\n');
  });

  it('WEAVE_WAIT_IFACE names another interface', async () => {
    noEthwe();
    ipn('link', 'add', 'wv0', 'type', 'veth', 'peer', 'name', 'wv0-p');
    try {
      ipn('addr', 'add', '10.40.0.1/16', 'dev', 'wv0');
      ipn('link', 'set', 'wv0', 'up');
      const r = run(['sh', '-c', 'echo ok'], { WEAVE_WAIT_IFACE: 'wv0', WEAVE_WAIT_TIMEOUT: '5' });
      assert.deepEqual(await exitOf(r), { code: 0, signal: null });
      assert.equal(r.stdout(), 'ok\n');
      assert.equal(r.stderr(), '');
    } finally {
      ipn('link', 'del', 'wv0');
    }
  });

  it('without a command prints usage and exits 2', async () => {
    const r = run([]);
    assert.deepEqual(await exitOf(r), { code: 2, signal: null });
    assert.equal(r.stdout(), '');
    assert.match(r.stderr(), /^usage: weavewait COMMAND \[ARG\.\.\.\][^\n]*\n$/);
  });

  it('a command that cannot be found exits 127 with one line', async () => {
    ethweReady();
    for (const cmd of ['/no/such/cmd', 'no-such-command-wtww']) {
      const r = run([cmd, 'arg']);
      assert.deepEqual(await exitOf(r), { code: 127, signal: null });
      assert.equal(r.stdout(), '');
      assert.equal(r.stderr(), `weavewait: cannot run ${cmd}: No such file or directory\n`);
    }
  });

  it('SIGTERM and SIGINT end the wait (143, 130)', async () => {
    noEthwe();
    for (const [sig, code] of [
      ['SIGTERM', 143],
      ['SIGINT', 130],
    ] as const) {
      const r = run(['sh', '-c', 'echo ran']);
      await stillWaiting(r, `before ${sig}`, 2);
      process.kill(r.pid, sig);
      assert.deepEqual(await exitOf(r), { code, signal: null });
      assert.equal(r.stdout(), '');
    }
  });

  it('as PID 1 of a PID namespace (where default SIGTERM is dropped), SIGTERM still ends the wait', async () => {
    noEthwe();
    // unshare forks; its child execs weavewait as PID 1 of the new namespace. We signal that child
    // from here, an ancestor namespace, as `docker stop` does.
    const u = run(['sh', '-c', 'echo ran'], {}, ['unshare', '--pid', '--fork', BIN]);
    const pid = await until('unshare to fork weavewait', () => {
      const kid = Number((proc(u.pid, `task/${u.pid}/children`) ?? '').trim().split(/\s+/)[0]);
      return kid > 0 && proc(kid, 'comm') === 'weavewait\n' ? kid : undefined;
    });
    try {
      assert.match(proc(pid, 'status') ?? '', /^NSpid:\s+\d+\s+1$/m, 'weavewait is PID 1 inside');
      await stillWaiting(u, 'PID 1', 2, pid);
      process.kill(pid, 'SIGTERM');
      assert.deepEqual(await exitOf(u), { code: 143, signal: null }); // unshare passes the status on
      assert.equal(u.stdout(), '');
    } finally {
      if (!u.exit) process.kill(pid, 'SIGKILL'); // SIGKILL reaches a namespace's init from outside
    }
  });

  it('runs from an empty root: static, no loader, no /proc or /sys', async () => {
    ethweReady();
    const root = mkdtempSync(join(tmpdir(), 'wtww-root-'));
    try {
      mkdirSync(join(root, 'w'));
      copyFileSync(BIN, join(root, 'w', 'w'));
      // The inner /w/w has no command: its usage line shows the outer one waited, then exec'd it.
      const r = run(['/w/w', '/w/w'], {}, ['chroot', root]);
      assert.deepEqual(await exitOf(r), { code: 2, signal: null });
      assert.match(r.stderr(), /^usage: weavewait /);
      noEthwe();
      const t = run(['/w/w', '/w/w'], { WEAVE_WAIT_TIMEOUT: '0.2' }, ['chroot', root]);
      assert.deepEqual(await exitOf(t), { code: 1, signal: null });
      assert.equal(t.stderr(), 'weavewait: ethwe did not come up within 0.2s\n');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
