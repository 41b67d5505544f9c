import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { Lab, waitFor, withLab } from '../lab/lab.js';
import { plan } from '../lab/topology.js';

const netnsList = (): string[] =>
  execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter(Boolean);
const rootLinks = (): string[] =>
  execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':')[1].trim())
    .sort();
/** Running (not gone, not a zombie waiting for a reaper). */
const alive = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};
const labNs = (id: string): string[] => netnsList().filter((n) => n.startsWith(`wl${id}-`));

/** Runs a script in a separate Node process that creates lab `id`, then reports "ready". */
function labProcess(id: string, tail: string) {
  const script = `import { Lab } from './lab/lab.ts';
    const lab = await Lab.create({ hosts: 2 }, { id: '${id}' });
    lab.spawn('h1', ['sleep', '1000']);
    console.log('ready');
    ${tail}`;
  const child = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      if (String(d).includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`lab process exited early (${code}): ${err}`)));
  });
  const exit = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('exit', (c, s) => r([c, s])));
  return { child, ready, exit, stderr: () => err };
}

describe('lab', function () {
  this.timeout(60_000);
  const labs: Lab[] = [];
  const track = (lab: Lab): Lab => {
    labs.push(lab);
    return lab;
  };
  afterEach(async () => {
    for (const l of labs.splice(0)) await l.down();
  });

  describe('topology plan', () => {
    it('line: h2 sits on two segments with eth0/eth1', () => {
      const p = plan({ hosts: 3, topology: 'line' });
      assert.deepEqual(
        p.segments.map((s) => s.ports.map((x) => `${x.host}:${x.ifname}:${x.addr}`)),
        [
          ['h1:eth0:198.18.0.1', 'h2:eth0:198.18.0.2'],
          ['h2:eth1:198.18.1.2', 'h3:eth0:198.18.1.3'],
        ],
      );
    });
    it('rejects bad specs', () => {
      assert.throws(() => plan({ hosts: 0 }), /hosts must be/);
      assert.throws(() => plan({ hosts: 255 }), /hosts must be/);
      assert.throws(() => plan({ hosts: 1, topology: 'line' }), /at least 2/);
    });
  });

  describe('flat, 3 hosts', () => {
    let lab: Lab;
    let linksBefore: string[];
    before(async () => {
      linksBefore = rootLinks();
      lab = await Lab.create({ hosts: 3 });
    });
    after(async () => {
      await lab?.down();
    });

    it('creates nothing in the root namespace', () => {
      assert.deepEqual(rootLinks(), linksBefore);
    });

    it('gives hosts their addresses, data dirs and 1500 MTU', async () => {
      assert.deepEqual(
        lab.hosts.map((h) => [h.name, h.netns, h.addrs]),
        [1, 2, 3].map((n) => [`h${n}`, `wl${lab.id}-h${n}`, [`198.18.0.${n}`]]),
      );
      for (const h of lab.hosts) {
        assert.ok(existsSync(h.dataDir), h.dataDir);
        const link = await lab.execOk(h.name, ['ip', '-o', 'link', 'show', 'dev', 'eth0']);
        assert.match(link, /mtu 1500 /);
        assert.match(await lab.execOk(h.name, ['ip', '-o', 'link', 'show', 'dev', 'lo']), /UP/);
      }
    });

    it('every host pings every other over the underlay', async () => {
      for (const a of lab.hosts) {
        for (const b of lab.hosts) {
          if (a === b) continue;
          await waitFor(
            `${a.name} -> ${b.name}`,
            async () => (await lab.exec(a.name, ['ping', '-c1', '-W1', b.addrs[0]])).code === 0,
            5000,
          );
        }
      }
    });

    it('exec reports exit codes, execOk throws with the command and stderr', async () => {
      const r = await lab.exec('h1', ['sh', '-c', 'echo out; echo err >&2; exit 3']);
      assert.deepEqual(r, { code: 3, stdout: 'out\n', stderr: 'err\n' });
      assert.equal(await lab.execOk('h2', ['cat'], { input: 'hello' }), 'hello');
      assert.equal(await lab.execOk('h2', ['sh', '-c', 'echo $LABVAR'], { env: { LABVAR: 'x1' } }), 'x1\n');
      await assert.rejects(lab.execOk('h1', ['ls', '/nonexistent-path']), /ls \/nonexistent-path[\s\S]*No such file/);
      assert.equal((await lab.exec('h1', ['sleep', '5'], { timeoutMs: 200 })).code, 124);
    });

    it('host() names the known hosts when asked for an unknown one', () => {
      assert.throws(() => lab.host('h9'), /unknown host "h9".*h1, h2, h3/);
    });

    it('addContainer gives a bare namespace that exists', async () => {
      const c = await lab.addContainer('h1', 'c1');
      assert.deepEqual(c, { name: 'c1', host: 'h1', netns: `wl${lab.id}-h1-c1` });
      assert.ok(netnsList().includes(c.netns));
      const links = await lab.execIn(c.netns, ['ip', '-o', 'link', 'show']);
      assert.equal(links.stdout.trim().split('\n').length, 1, 'only lo');
      assert.match(links.stdout, /lo: <LOOPBACK,UP/);
      await assert.rejects(lab.addContainer('h1', 'c1'), /already exists/);
      assert.deepEqual((await Lab.load(lab.id)).containers, [c]);
    });

    it('refuses namespaces of other labs', () => {
      assert.throws(() => lab.execIn('wlother-h1', ['true']), /does not belong/);
    });
  });

  describe('line, 3 hosts', () => {
    let lab: Lab;
    before(async () => {
      lab = await Lab.create({ hosts: 3, topology: 'line' });
    });
    after(async () => {
      await lab?.down();
    });

    it('has h2 on two segments', () => {
      assert.deepEqual(
        lab.hosts.map((h) => h.addrs),
        [['198.18.0.1'], ['198.18.0.2', '198.18.1.2'], ['198.18.1.3']],
      );
    });

    it('neighbours ping each other', async () => {
      const ping = (from: string, to: string) =>
        waitFor(`${from} -> ${to}`, async () => (await lab.exec(from, ['ping', '-c1', '-W1', to])).code === 0, 5000);
      await ping('h1', '198.18.0.2');
      await ping('h2', '198.18.0.1');
      await ping('h2', '198.18.1.3');
      await ping('h3', '198.18.1.2');
    });

    it('h1 and h3 cannot reach each other', async () => {
      assert.notEqual((await lab.exec('h1', ['ping', '-c1', '-W1', '198.18.1.3'])).code, 0);
      assert.notEqual((await lab.exec('h3', ['ping', '-c1', '-W1', '198.18.0.1'])).code, 0);
      assert.equal((await lab.execOk('h2', ['sysctl', '-n', 'net.ipv4.ip_forward'])).trim(), '0');
    });
  });

  describe('teardown', () => {
    it('down() removes every namespace, process and the root dir, and is idempotent', async () => {
      const lab = track(await Lab.create({ hosts: 2 }));
      await lab.addContainer('h2', 'web');
      const child = lab.spawn('h1', ['sleep', '1000']);
      const pid = child.pid!;
      // A process started behind the lab's back (like one the router would start) is found too.
      const bg = lab.spawn('h2', ['sh', '-c', 'sleep 1000 & echo $!; wait']);
      const grandchild = await new Promise<number>((r) => bg.stdout!.once('data', (d) => r(Number(String(d).trim()))));
      await waitFor('sleep to be in h1', async () => alive(pid) && alive(grandchild));
      const exited = new Promise((r) => child.once('exit', r));
      await lab.down();
      await lab.down();
      await exited;
      assert.equal(alive(pid), false);
      assert.notEqual(bg.exitCode ?? bg.signalCode, null);
      await waitFor('background grandchild to die', async () => !alive(grandchild), 2000);
      assert.deepEqual(labNs(lab.id), []);
      assert.equal(existsSync(lab.root), false);
      assert.ok(!(await Lab.list()).includes(lab.id));
    });

    it('Lab.load(id).down() from "another process" kills recorded processes', async () => {
      const lab = track(await Lab.create({ hosts: 1 }, { id: `t${process.pid % 100000}` }));
      const child = lab.spawn('h1', ['sleep', '1000']);
      assert.ok((await Lab.list()).includes(lab.id));
      const other = await Lab.load(lab.id);
      assert.deepEqual(other.hosts, lab.hosts);
      await other.down();
      await waitFor('child to exit', async () => child.exitCode !== null || child.signalCode !== null);
      assert.deepEqual(
        netnsList().filter((n) => n.startsWith(`wl${lab.id}-`)),
        [],
      );
      await assert.rejects(Lab.load(lab.id), /no such lab/);
    });

    it('a process killed by SIGTERM leaves no namespaces or processes behind', async () => {
      const id = `s${process.pid % 100000}`;
      const p = labProcess(id, 'setInterval(() => {}, 1000);');
      try {
        await p.ready;
        assert.equal(labNs(id).length, 3);
        const [sleeper] = (JSON.parse(readFileSync(`/tmp/weave-lab/${id}/state.json`, 'utf8')) as { pids: number[] })
          .pids;
        assert.ok(alive(sleeper));
        p.child.kill('SIGTERM');
        assert.deepEqual(await p.exit, [null, 'SIGTERM']);
        assert.deepEqual(labNs(id), []);
        await waitFor('sleeper to die', async () => !alive(sleeper), 2000);
        assert.equal(existsSync(`/tmp/weave-lab/${id}`), false);
      } finally {
        p.child.kill('SIGKILL');
        await Lab.destroy(id);
      }
    });

    it('a crash (uncaught exception) leaves no namespaces behind', async () => {
      const id = `c${process.pid % 100000}`;
      const p = labProcess(id, "setTimeout(() => { throw new Error('crash'); }, 10);");
      try {
        const [code] = await p.exit;
        assert.equal(code, 1);
        assert.match(p.stderr(), /crash/);
        assert.deepEqual(labNs(id), []);
      } finally {
        await Lab.destroy(id);
      }
    });

    it('withLab tears down when fn throws', async () => {
      let id = '';
      await assert.rejects(
        withLab({ hosts: 1 }, async (lab) => {
          id = lab.id;
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.ok(id);
      assert.deepEqual(
        netnsList().filter((n) => n.startsWith(`wl${id}-`)),
        [],
      );
    });

    it('refuses a duplicate id', async () => {
      const lab = track(await Lab.create({ hosts: 1 }));
      await assert.rejects(Lab.create({ hosts: 1 }, { id: lab.id }), /already exists/);
      assert.deepEqual(
        netnsList()
          .filter((n) => n.startsWith(`wl${lab.id}-`))
          .sort(),
        [`wl${lab.id}-h1`, `wl${lab.id}-sw0`],
      );
    });
  });

  describe('waitFor', () => {
    it('returns the first truthy value', async () => {
      let n = 0;
      assert.equal(await waitFor('n to reach 3', async () => (++n >= 3 ? n : undefined), 1000, 1), 3);
    });
    it('times out naming what it waited for and the last error', async () => {
      await assert.rejects(
        waitFor(
          'the moon',
          async () => {
            throw new Error('not yet');
          },
          50,
          10,
        ),
        /timed out waiting for the moon.*not yet/,
      );
    });
  });
});
