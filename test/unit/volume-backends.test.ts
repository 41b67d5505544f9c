import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  realpath,
  rename,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { run, runOk } from '../../common/exec.js';
import type { SendStream, VolumeBackend } from '../../volumes/backend.js';
import { openPool } from '../../volumes/pool.js';

/** Every entry under `root`, one line each: path, type, mode, owner, size, mtime, content hash or link target. */
async function tree(root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (rel: string) => {
    const p = join(root, rel);
    const st = await lstat(p, { bigint: true });
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'link' : 'file';
    const what =
      type === 'file'
        ? createHash('sha256')
            .update(await readFile(p))
            .digest('hex')
            .slice(0, 16)
        : type === 'link'
          ? `-> ${await readlink(p)}`
          : '';
    out.push(
      `${rel} ${type} ${(st.mode & 0o7777n).toString(8)} ${st.uid}:${st.gid} ${type === 'file' ? st.size : ''} ${type === 'link' ? '' : st.mtimeNs} ${what}`,
    );
    if (type === 'dir') for (const e of (await readdir(p)).sort()) await visit(`${rel}/${e}`);
  };
  await visit('.');
  return out;
}

/** A bit of everything a volume holds. */
async function fill(dir: string): Promise<void> {
  await mkdir(join(dir, 'a/b/c'), { recursive: true });
  await writeFile(join(dir, 'a/b/c/deep.txt'), 'deep\n');
  await writeFile(join(dir, 'big.bin'), randomBytes(1 << 20));
  await writeFile(join(dir, 'same-size.txt'), 'aaaa');
  await writeFile(join(dir, 'empty'), '');
  await writeFile(join(dir, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
  await writeFile(join(dir, 'owned'), 'by someone else');
  await chown(join(dir, 'owned'), 1234, 5678);
  await symlink('a/b/c/deep.txt', join(dir, 'link'));
  await mkdir(join(dir, 'gone/sub'), { recursive: true });
  await writeFile(join(dir, 'gone/sub/x'), 'x');
  await writeFile(join(dir, 'becomes-dir'), 'a file');
  await mkdir(join(dir, 'becomes-file'));
  await writeFile(join(dir, 'becomes-file/inside'), 'in');
  await writeFile(join(dir, 'old-name'), 'renamed\n');
  await writeFile(join(dir, 'odd \\n näme'), 'odd');
}

/** Deletions, a rename, type changes, a same-size rewrite, mode, owner and link changes, new things. */
async function change(dir: string): Promise<void> {
  await rm(join(dir, 'gone'), { recursive: true });
  await rename(join(dir, 'old-name'), join(dir, 'a/new-name'));
  await writeFile(join(dir, 'same-size.txt'), 'bbbb');
  const later = new Date(Date.now() + 10_000);
  await utimes(join(dir, 'same-size.txt'), later, later);
  await chmod(join(dir, 'run.sh'), 0o700);
  await chown(join(dir, 'owned'), 4321, 8765);
  await rm(join(dir, 'becomes-dir'));
  await mkdir(join(dir, 'becomes-dir'));
  await writeFile(join(dir, 'becomes-dir/now'), 'inside');
  await rm(join(dir, 'becomes-file'), { recursive: true });
  await writeFile(join(dir, 'becomes-file'), 'a file now');
  await rm(join(dir, 'link'));
  await symlink('run.sh', join(dir, 'link'));
  await mkdir(join(dir, 'new/deeper'), { recursive: true });
  await writeFile(join(dir, 'new/deeper/file'), 'new');
  await rm(join(dir, 'odd \\n näme'));
}

async function drain(s: SendStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s.data) chunks.push(c as Buffer);
  await s.done;
  return Buffer.concat(chunks);
}

/** Snapshot `gen` from one pool into the other, streamed as between two hosts; the bytes it took. */
async function transfer(
  from: VolumeBackend,
  to: VolumeBackend,
  name: string,
  gen: number,
  parent?: number,
): Promise<number> {
  const s = from.send(name, gen, parent);
  let bytes = 0;
  const counted = new Transform({
    transform(c: Buffer, _e, cb) {
      bytes += c.length;
      cb(null, c);
    },
  });
  s.data.on('error', (e) => counted.destroy(e)).pipe(counted);
  await Promise.all([to.receive(name, gen, parent, counted), s.done]);
  return bytes;
}

const oneLine = (re: RegExp) => (e: Error) => {
  assert.match(e.message, re);
  assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
  return true;
};

/** Mount points at or under `dir`, deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  const real = await realpath(dir).catch(() => dir);
  return (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m && (m === real || m.startsWith(`${real}/`)))
    .sort()
    .reverse();
}

/** Closes what a suite opened and removes its directory, whatever state a failed test left. */
async function teardown(base: string | undefined, pools: VolumeBackend[]): Promise<void> {
  for (const p of pools) await p.close().catch(() => {});
  if (!base) return;
  for (const m of await mountsUnder(base)) await run(['umount', m]);
  await rm(base, { recursive: true, force: true });
}

async function incoming(dataDir: string): Promise<string[]> {
  return readdir(join(dataDir, 'volumes', 'incoming'));
}

for (const kind of ['btrfs', 'dir'] as const) {
  describe(`volume backend: ${kind}`, () => {
    let base: string | undefined;
    const opened: VolumeBackend[] = [];
    let A: VolumeBackend, B: VolumeBackend; // two hosts
    const dataDir = (host: string) => join(base!, host);
    const open = async (host: string, spec = kind === 'btrfs' ? ':512M' : undefined) => {
      const p = await openPool({ dataDir: dataDir(host), spec, backend: kind });
      opened.push(p);
      return p;
    };

    before(async () => {
      base = await mkdtemp(join(tmpdir(), `volume-backends-${kind}-`));
      A = await open('a');
      B = await open('b');
    });
    after(() => teardown(base, opened));

    it('creates a volume that lists as live, refuses a second of the same name, and measures it', async () => {
      assert.equal(A.kind, kind);
      await A.create('v1');
      assert.deepEqual((await A.list()).get('v1'), { live: true, snapshots: [] });
      assert.equal(A.path('v1'), join(dataDir('a'), 'volumes', 'vols', 'v1'));
      const free = await A.free();
      await writeFile(join(A.path('v1'), 'data'), randomBytes(100_000));
      assert.ok((await A.size('v1')) >= 100_000);
      assert.ok(free > 0);
      assert.equal(await A.size('nothing'), 0);
      await assert.rejects(A.create('v1'), oneLine(/^volume v1 exists here$/));
      assert.throws(() => A.path('../escape'), /bad volume name/);
    });

    it('sends a snapshot whole, then only what changed, and the other host gets the same files', async () => {
      await A.create('inc');
      await fill(A.path('inc'));
      await A.snapshot('inc', 1);
      const first = await tree(A.path('inc'));
      const whole = await transfer(A, B, 'inc', 1);
      assert.ok(whole > 1 << 20, `the whole stream holds the 1 MiB file (${whole})`);
      assert.deepEqual((await B.list()).get('inc'), { live: false, snapshots: [1] });
      await B.promote('inc', 1);
      assert.deepEqual(await tree(B.path('inc')), first);

      await change(A.path('inc'));
      await A.snapshot('inc', 2);
      const second = await tree(A.path('inc'));
      const increment = await transfer(A, B, 'inc', 2, 1);
      assert.ok(increment < 256 << 10, `the increment leaves the unchanged 1 MiB file out (${increment})`);
      assert.deepEqual((await B.list()).get('inc'), { live: true, snapshots: [1, 2] });
      await B.promote('inc', 2);
      assert.deepEqual(await tree(B.path('inc')), second);
      assert.deepEqual(await incoming(dataDir('b')), []);
    });

    it('ping-pong: back and forth, each increment against the snapshot both hosts hold', async () => {
      await A.create('pp');
      await fill(A.path('pp'));
      await A.snapshot('pp', 1);
      await transfer(A, B, 'pp', 1);
      await B.promote('pp', 1); // the volume moves to B

      await change(B.path('pp'));
      await B.snapshot('pp', 2);
      const onB = await tree(B.path('pp'));
      await transfer(B, A, 'pp', 2, 1); // A's own pp@1 is the parent of what B made from its copy
      await A.promote('pp', 2); // and back to A
      assert.deepEqual(await tree(A.path('pp')), onB);

      await writeFile(join(A.path('pp'), 'third'), 'three');
      await A.snapshot('pp', 3);
      const onA = await tree(A.path('pp'));
      await transfer(A, B, 'pp', 3, 2); // parent: a snapshot A received
      await B.promote('pp', 3);
      assert.deepEqual(await tree(B.path('pp')), onA);
      assert.deepEqual((await A.list()).get('pp'), { live: true, snapshots: [1, 2, 3] });
      assert.deepEqual((await B.list()).get('pp'), { live: true, snapshots: [1, 2, 3] });
    });

    it('a receive whose stream breaks off or ends short leaves no snapshot, and a retry succeeds', async () => {
      await A.create('cut');
      await writeFile(join(A.path('cut'), 'big'), randomBytes(4 << 20));
      await writeFile(join(A.path('cut'), 'small'), 'small');
      await A.snapshot('cut', 1);
      const full = await drain(A.send('cut', 1));
      const half = full.subarray(0, full.length >> 1);

      const failing = () =>
        Readable.from(
          (async function* () {
            yield half;
            throw new Error('connection reset by peer');
          })(),
          { objectMode: false },
        );
      const destroyed = () => {
        let sent = false;
        return new Readable({
          read() {
            if (sent) this.destroy();
            else {
              sent = true;
              this.push(half);
            }
          },
        });
      };
      const short = (n: number) => () => Readable.from([full.subarray(0, full.length - n)], { objectMode: false });
      const cases: [string, () => Readable, RegExp][] = [
        ['errors', failing, /^cannot receive cut@1: connection reset by peer$/],
        ['is destroyed', destroyed, /^cannot receive cut@1: the stream broke off$/],
        ['lacks 1 byte', short(1), /^cannot receive cut@1: \S/],
        ['lacks 4 bytes', short(4), /^cannot receive cut@1: \S/],
        ['lacks 10 bytes', short(10), /^cannot receive cut@1: \S/],
      ];
      for (const [what, stream, why] of cases) {
        await assert.rejects(B.receive('cut', 1, undefined, stream()), oneLine(why), `a stream that ${what}`);
        assert.equal((await B.list()).get('cut'), undefined, `nothing of cut after a stream that ${what}`);
        assert.deepEqual(await incoming(dataDir('b')), []);
      }

      await B.receive('cut', 1, undefined, Readable.from([full], { objectMode: false }));
      await B.promote('cut', 1);
      assert.deepEqual(await tree(B.path('cut')), await tree(A.path('cut')));
      await assert.rejects(
        B.receive('cut', 1, undefined, Readable.from([full], { objectMode: false })),
        oneLine(/^cannot receive cut@1: cut@1 is here already$/),
      );
    });

    it('says on one line why it cannot send or receive what is not here', async () => {
      const nothing = A.send('nosuch', 3);
      await assert.rejects(nothing.done, oneLine(/^cannot send nosuch@3: it is not here$/));
      assert.equal((await drain({ ...nothing, done: Promise.resolve() })).length, 0);
      await A.create('lonely');
      await A.snapshot('lonely', 1);
      await A.snapshot('lonely', 2);
      await assert.rejects(
        A.send('lonely', 2, 7).done,
        oneLine(/^cannot send lonely@2: its parent lonely@7 is not here$/),
      );
      const s = A.send('lonely', 2, 1); // B has no lonely@1
      await assert.rejects(
        B.receive('lonely', 2, 1, s.data),
        oneLine(/^cannot receive lonely@2: its parent lonely@1 is not here$/),
      );
      await s.done.catch(() => {});
      assert.equal((await B.list()).get('lonely'), undefined);
      const junk = Readable.from([Buffer.alloc(4 << 20, 7)], { objectMode: false }); // more than a pipe holds
      await assert.rejects(
        B.receive('junk', 1, undefined, junk),
        oneLine(/^cannot receive junk@1: (unexpected header|this is not a dir pool stream)$/),
      );
      assert.equal((await B.list()).get('junk'), undefined);
      assert.deepEqual(await incoming(dataDir('b')), []);
      await assert.rejects(A.snapshot('nosuch', 1), oneLine(/^cannot snapshot nosuch@1: no volume nosuch here$/));
      await assert.rejects(A.snapshot('lonely', 2), oneLine(/^cannot snapshot lonely@2: lonely@2 exists here$/));
      await assert.rejects(A.promote('lonely', 9), oneLine(/^cannot promote lonely@9: lonely@9 is not here$/));
    });

    it('a cancelled send ends its data and rejects done', async () => {
      await A.create('cancel');
      await writeFile(join(A.path('cancel'), 'big'), randomBytes(8 << 20));
      await A.snapshot('cancel', 1);
      const s = A.send('cancel', 1);
      let got = 0;
      for await (const c of s.data) {
        got += (c as Buffer).length;
        s.cancel(); // after the first bytes; the rest never comes
      }
      await assert.rejects(s.done, oneLine(/^cannot send cancel@1: cancelled$/));
      assert.ok(got < 8 << 20, `stopped early (${got} bytes)`);
    });

    it('promote replaces the writable copy; drops leave the rest and can be repeated', async () => {
      await A.create('d');
      await writeFile(join(A.path('d'), 'f'), 'one');
      await A.snapshot('d', 1);
      await writeFile(join(A.path('d'), 'f'), 'two');
      await writeFile(join(A.path('d'), 'extra'), 'x');
      await A.promote('d', 1);
      assert.deepEqual(await readdir(A.path('d')), ['f']);
      assert.equal(await readFile(join(A.path('d'), 'f'), 'utf8'), 'one');
      await A.dropLive('d');
      await A.dropLive('d');
      assert.deepEqual((await A.list()).get('d'), { live: false, snapshots: [1] });
      assert.equal(await A.size('d'), 0);
      await A.dropSnapshot('d', 1);
      await A.dropSnapshot('d', 1);
      assert.equal((await A.list()).get('d'), undefined);
      assert.deepEqual(await incoming(dataDir('a')), []);
    });

    it('restart: openPool on the same data dir finds the pool, its volumes, and clears unfinished receives', async () => {
      await A.create('kept');
      await writeFile(join(A.path('kept'), 'f'), 'kept');
      // What a router killed in the middle of a receive leaves.
      const dead = join(dataDir('a'), 'volumes', 'incoming', 'kept@9.dead');
      await mkdir(dead);
      if (kind === 'btrfs') await runOk(['btrfs', 'subvolume', 'create', join(dead, 'kept@9')]);
      else await writeFile(join(dead, 'part'), 'half');

      const afterCrash = await open('a'); // the old process never closed its pool
      assert.deepEqual((await afterCrash.list()).get('kept'), { live: true, snapshots: [] });
      assert.equal(await readFile(join(afterCrash.path('kept'), 'f'), 'utf8'), 'kept');
      assert.deepEqual(await incoming(dataDir('a')), []);
      await afterCrash.close(); // it did not mount the pool: it leaves it mounted
      assert.deepEqual((await A.list()).get('kept'), { live: true, snapshots: [] });

      await A.close();
      assert.deepEqual(await mountsUnder(dataDir('a')), []);
      if (kind === 'btrfs') assert.equal(await runOk(['losetup', '-j', join(dataDir('a'), 'volumes.img')]), '');
      A = await open('a');
      assert.equal(await readFile(join(A.path('kept'), 'f'), 'utf8'), 'kept');
      assert.deepEqual((await A.list()).get('inc')?.snapshots, [1, 2]);
    });

    it('openPool says on one line why it cannot make a pool, and leaves nothing behind', async () => {
      const d = join(base!, 'bad');
      await mkdir(d);
      await assert.rejects(
        openPool({ dataDir: d, backend: kind, spec: `${d}/x.img:10Q` }),
        oneLine(new RegExp(`^cannot create the volume pool at ${d}/x.img: bad size "10Q"`)),
      );
      await assert.rejects(openPool({ dataDir: d, backend: kind, spec: ':lots' }), oneLine(/: bad size "lots"/));
      await writeFile(join(d, 'file'), '');
      await assert.rejects(
        openPool({ dataDir: d, backend: kind, spec: `${d}/file/sub/pool` }),
        oneLine(new RegExp(`^cannot create the volume pool at ${d}/file/sub/pool: .*not a directory`)),
      );
      if (kind === 'btrfs') {
        await assert.rejects(
          openPool({ dataDir: d, backend: kind, spec: ':16M' }),
          oneLine(new RegExp(`^cannot create the volume pool at ${d}/volumes.img: mkfs.btrfs: .*too small`)),
        );
      }
      assert.deepEqual(await readdir(d), ['file']);
      assert.deepEqual(await mountsUnder(d), []);
    });
  });
}

describe('volume pool: choosing the backend', () => {
  let base: string | undefined;
  const opened: VolumeBackend[] = [];
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'volume-pool-'));
  });
  after(() => teardown(base, opened));

  it('auto: btrfs on this host (a loop pool), a directory on btrfs as it is, dir on another filesystem', async () => {
    const loop = await openPool({ dataDir: join(base!, 'h'), spec: ':256M' });
    opened.push(loop);
    assert.equal(loop.kind, 'btrfs');
    assert.equal(loop.describe, `${join(base!, 'h', 'volumes')} (${join(base!, 'h', 'volumes.img')})`);

    const onBtrfs = join(base!, 'h', 'volumes', 'elsewhere');
    await mkdir(onBtrfs);
    for (const backend of ['auto', 'btrfs'] as const) {
      const inside = await openPool({ dataDir: join(base!, 'i'), spec: onBtrfs, backend });
      opened.push(inside);
      assert.equal(inside.kind, 'btrfs');
      assert.equal(inside.describe, onBtrfs);
      await inside.close();
    }

    const plain = join(base!, 'plain');
    await mkdir(plain);
    const dir = await openPool({ dataDir: join(base!, 'j'), spec: plain });
    assert.equal(dir.kind, 'dir');
    assert.equal(dir.path('x'), join(plain, 'vols', 'x'));
    await assert.rejects(
      openPool({ dataDir: join(base!, 'j'), spec: plain, backend: 'btrfs' }),
      oneLine(
        new RegExp(`^cannot create the volume pool at ${plain}: it is a directory, but not on a btrfs filesystem$`),
      ),
    );
  });
});
