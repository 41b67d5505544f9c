import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { FdbEntry, FdbOp, Netlink } from '../../native/netlink.js';
import type { Reply } from '../fixtures/netlink-child.js';

// The addon acts on its process's network namespace, so the calls run in a child started inside a
// namespace this test makes (a bridge, a veth port, a nolearning vxlan device), and `bridge -j fdb
// show` there says what the kernel holds. Nothing here touches the root namespace's links.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NS = `wtnl-${randomBytes(4).toString('hex')}`;

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
const inNs = (...args: string[]) => sh('ip', 'netns', 'exec', NS, ...args);

interface Shown {
  mac: string;
  dst?: string;
  flags: string[];
  master?: string;
  state: string;
  vlan?: number;
}
const shown = (dev: string): Shown[] => JSON.parse(inNs('bridge', '-j', 'fdb', 'show', 'dev', dev) || '[]');
const of = (dev: string, mac: string) => shown(dev).filter((e) => e.mac === mac);

/** The addon in a child process inside NS: one JSON line each way per call. */
class Child {
  private proc: ChildProcess;
  private waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];

  constructor() {
    this.proc = spawn(
      'ip',
      ['netns', 'exec', NS, process.execPath, '--import', 'tsx', 'test/fixtures/netlink-child.ts'],
      {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    createInterface({ input: this.proc.stdout! }).on('line', (line) => this.waiting.shift()?.resolve(JSON.parse(line)));
    this.proc.on('exit', (code, signal) => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`netlink child exited (${signal ?? code})`));
    });
  }

  send<F extends keyof Netlink>(fn: F, ...args: Parameters<Netlink[F]>): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.proc.stdin!.write(`${JSON.stringify({ fn, args })}\n`);
    });
  }

  /** The call's result; a thrown error fails the test. */
  async call<F extends keyof Netlink>(fn: F, ...args: Parameters<Netlink[F]>): Promise<ReturnType<Netlink[F]>> {
    const r = await this.send(fn, ...args);
    if ('error' in r) throw new Error(r.error);
    return r.result as ReturnType<Netlink[F]>;
  }

  /** The one-line error the call threw. */
  async thrown<F extends keyof Netlink>(fn: F, ...args: Parameters<Netlink[F]>): Promise<string> {
    const r = await this.send(fn, ...args);
    assert.ok('error' in r, `${fn} should have thrown, returned ${JSON.stringify(r)}`);
    return r.error;
  }

  stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.proc.once('exit', () => resolve());
      this.proc.kill();
    });
  }
}

describe('native netlink: the kernel FDB over rtnetlink (in a network namespace)', () => {
  let child: Child;
  let vx: number;
  let port: number;

  before(async function () {
    if (process.getuid?.() !== 0) this.skip(); // namespaces and links need root
    sh('ip', 'netns', 'add', NS);
    // No IPv6: no router solicitations or MLD, so no learned entry appears between two reads.
    inNs('sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
    const ip = (...args: string[]) => sh('ip', '-n', NS, ...args);
    ip('link', 'add', 'br0', 'type', 'bridge');
    ip('link', 'add', 'port0', 'type', 'veth', 'peer', 'name', 'port1');
    ip('link', 'add', 'vx0', 'type', 'vxlan', 'id', '42', 'dstport', '6784', 'nolearning');
    ip('link', 'set', 'port0', 'master', 'br0');
    ip('link', 'set', 'vx0', 'master', 'br0');
    for (const dev of ['br0', 'port0', 'port1', 'vx0']) ip('link', 'set', dev, 'up');
    child = new Child();
    vx = await child.call('ifindex', 'vx0');
    port = await child.call('ifindex', 'port0');
  });

  after(async () => {
    await child?.stop();
    try {
      sh('ip', 'netns', 'del', NS);
    } catch {
      // it was never made
    }
  });

  it('replace puts a unicast MAC at a dst as a permanent self entry; a second replace moves it', async () => {
    const mac = 'aa:bb:cc:00:00:01';
    assert.deepEqual(await child.call('fdbApply', [{ op: 'replace', ifindex: vx, mac, dst: '198.18.0.2' }]), [null]);
    assert.deepEqual(
      of('vx0', mac).map(({ dst, flags, state }) => ({ dst, flags, state })),
      [{ dst: '198.18.0.2', flags: ['self'], state: 'permanent' }],
    );
    assert.deepEqual(await child.call('fdbApply', [{ op: 'replace', ifindex: vx, mac, dst: '198.18.0.3' }]), [null]);
    assert.deepEqual(
      of('vx0', mac).map((e) => e.dst),
      ['198.18.0.3'],
    );
  });

  it('append keeps one all-zero flooding entry per dst; del with a dst removes only that one', async () => {
    const zero = '00:00:00:00:00:00';
    const ops: FdbOp[] = ['198.18.0.2', '198.18.0.3'].map((dst) => ({ op: 'append', ifindex: vx, mac: zero, dst }));
    assert.deepEqual(await child.call('fdbApply', ops), [null, null]);
    assert.deepEqual(
      of('vx0', zero)
        .map((e) => e.dst)
        .sort(),
      ['198.18.0.2', '198.18.0.3'],
    );
    assert.deepEqual(await child.call('fdbApply', [{ op: 'del', ifindex: vx, mac: zero, dst: '198.18.0.2' }]), [null]);
    assert.deepEqual(
      of('vx0', zero).map((e) => e.dst),
      ['198.18.0.3'],
    );
  });

  it('a master entry points a MAC at a bridge port as `master br0 static`', async () => {
    const mac = 'aa:bb:cc:00:00:02';
    assert.deepEqual(await child.call('fdbApply', [{ op: 'replace', ifindex: port, mac, master: true }]), [null]);
    assert.deepEqual(
      of('port0', mac).map(({ flags, master, state }) => ({ flags, master, state })),
      [{ flags: [], master: 'br0', state: 'static' }],
    );
  });

  it('fdbList returns what `bridge -j fdb show dev` shows, self and master entries alike', async () => {
    const norm = (es: Array<Omit<FdbEntry, 'ifindex'>>) =>
      es
        .map(({ mac, dst, master, permanent, static: isStatic, vlan }) =>
          JSON.stringify({ mac, dst, master, permanent, isStatic, vlan }),
        )
        .sort();
    for (const [dev, ifindex] of [
      ['vx0', vx],
      ['port0', port],
    ] as const) {
      const listed = await child.call('fdbList', ifindex);
      assert.ok(listed.every((e) => e.ifindex === ifindex));
      const kernel = shown(dev).map((e) => ({
        mac: e.mac,
        dst: e.dst,
        master: e.master !== undefined,
        permanent: e.state === 'permanent',
        static: e.state === 'static',
        vlan: e.vlan,
      }));
      assert.deepEqual(norm(listed), norm(kernel), dev);
      assert.ok(listed.length >= 2, `${dev}: what the earlier tests programmed is there`);
    }
  });

  it('a failing op is a one-line error string in its slot, and the others of the batch still land', async () => {
    const results = await child.call('fdbApply', [
      { op: 'replace', ifindex: vx, mac: 'aa:bb:cc:00:00:10', dst: '198.18.0.4' },
      { op: 'replace', ifindex: 999999, mac: 'aa:bb:cc:00:00:11', dst: '198.18.0.4' },
      { op: 'del', ifindex: vx, mac: 'aa:bb:cc:00:00:12', dst: '198.18.0.4' },
      { op: 'replace', ifindex: vx, mac: 'aa:bb:cc:00:00:13', dst: '198.18.0.4' },
    ]);
    assert.equal(results[0], null);
    assert.match(results[1]!, /^replace aa:bb:cc:00:00:11 dev 999999 dst 198\.18\.0\.4: .*\(ENODEV\)[^\n]*$/);
    assert.match(results[2]!, /^del aa:bb:cc:00:00:12 dev \d+ dst 198\.18\.0\.4: .*\(ENOENT\)[^\n]*$/);
    assert.equal(results[3], null);
    assert.equal(of('vx0', 'aa:bb:cc:00:00:13').length, 1);
  });

  it('a malformed op throws a one-line error and sends nothing of its batch', async () => {
    const good: FdbOp = { op: 'replace', ifindex: vx, mac: 'aa:bb:cc:00:00:20', dst: '198.18.0.5' };
    const bad: Array<[FdbOp, RegExp]> = [
      [
        { op: 'replace', ifindex: vx, mac: 'zz:bb:cc:00:00:21\nsecond line', dst: '198.18.0.5' },
        /ops\[1\]\.mac: bad MAC/,
      ],
      [{ op: 'replace', ifindex: vx, mac: 'aa:bb:cc:00:00:21', dst: '198.18.0.300' }, /ops\[1\]\.dst: bad IPv4/],
      [{ op: 'replace', ifindex: vx, mac: 'aa:bb:cc:00:00:21', dst: '::1' }, /ops\[1\]\.dst: bad IPv4/],
      [{ op: 'replace', ifindex: -1, mac: 'aa:bb:cc:00:00:21' }, /ops\[1\]\.ifindex/],
      [{ op: 'flush' as FdbOp['op'], ifindex: vx, mac: 'aa:bb:cc:00:00:21' }, /ops\[1\]\.op/],
    ];
    for (const [op, why] of bad) {
      const error = await child.thrown('fdbApply', [good, op]);
      assert.match(error, /^TypeError: fdbApply: /);
      assert.match(error, why);
      assert.ok(!error.includes('\n'), error);
    }
    assert.deepEqual(of('vx0', good.mac), []);
    assert.match(await child.thrown('ifindex', 'nosuchdev0'), /^Error: ifindex: no interface "nosuchdev0"[^\n]*$/);
  });

  it('a batch of 5000 replaces lands completely (and 5000 dels take it away)', async () => {
    const macs = Array.from(
      { length: 5000 },
      (_, i) => `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
    );
    const ops: FdbOp[] = macs.map((mac, i) => ({ op: 'replace', ifindex: vx, mac, dst: `198.18.${1 + (i % 200)}.1` }));
    const applied = await child.send('fdbApply', ops);
    assert.ok('result' in applied, JSON.stringify(applied));
    assert.deepEqual(
      applied.result,
      ops.map(() => null),
    );
    const ours = new Set(macs);
    assert.equal(shown('vx0').filter((e) => ours.has(e.mac)).length, 5000);
    const listed = await child.send('fdbList', vx);
    assert.ok('result' in listed);
    assert.equal((listed.result as FdbEntry[]).filter((e) => ours.has(e.mac)).length, 5000);
    const removed = await child.send(
      'fdbApply',
      ops.map((o) => ({ ...o, op: 'del' as const })),
    );
    assert.ok('result' in removed);
    assert.equal(shown('vx0').filter((e) => ours.has(e.mac)).length, 0);
    console.log(
      `      5000 replaces: ${applied.ms.toFixed(1)} ms; 5000 dels: ${removed.ms.toFixed(1)} ms; fdbList of ${(listed.result as FdbEntry[]).length}: ${listed.ms.toFixed(1)} ms`,
    );
  });
});
