// Volumes as plain directories, for hosts without btrfs. The layout is btrfs.ts's: vols/NAME is the
// writable copy, snaps/NAME@GEN a snapshot (a full copy, reflinked where the filesystem can), and
// incoming/ holds work in progress, so that everything appears by one rename: all or nothing.
import { spawn, type ChildProcess } from 'node:child_process';
import { lstat, mkdir, readdir, readlink, rename, rm } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import { Readable } from 'node:stream';
import { runOk } from '../common/exec.js';
import type { SendStream, VolumeBackend } from './backend.js';
import { exists, exited, feed, oneLine, PoolDirs, reason, running } from './pool-dirs.js';

// The dir stream: frames of a 4-byte big-endian length and that many bytes. The first holds the
// JSON header, the next ones the tar, and an empty frame ends it: tar alone cannot tell a stream cut
// at a member boundary from a whole one, and an increment applied short would be silently wrong.
const FORMAT = 'weave-dir-1';
const MAX_FRAME = 64 << 20;
const END = Buffer.alloc(4);

interface Header {
  format: string;
  parent: number | null;
  deleted: string[];
}

function frame(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

async function* unframe(data: Readable): AsyncGenerator<Buffer> {
  const chunks: Buffer[] = [];
  let have = 0;
  const take = (n: number): Buffer => {
    have -= n;
    if (chunks.length && chunks[0].length >= n) {
      const b = chunks[0].subarray(0, n);
      if (chunks[0].length === n) chunks.shift();
      else chunks[0] = chunks[0].subarray(n);
      return b;
    }
    const out = Buffer.allocUnsafe(n);
    for (let off = 0; off < n; ) {
      const c = chunks[0],
        k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) chunks.shift();
      else chunks[0] = c.subarray(k);
    }
    return out;
  };
  let need = -1; // the current frame's length, once read
  for await (const c of data as AsyncIterable<Buffer>) {
    chunks.push(c);
    have += c.length;
    for (;;) {
      if (need < 0) {
        if (have < 4) break;
        need = take(4).readUInt32BE(0);
        if (need > MAX_FRAME) throw new Error('this is not a dir pool stream');
      }
      if (have < need) break;
      yield take(need);
      need = -1;
    }
  }
  if (have || need >= 0) throw new Error('the stream broke off');
}

interface Meta {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: bigint;
  mtime: bigint;
  rdev: bigint;
  target?: string;
}

/** Every entry of a tree by tar member name ('.', './a', './a/b'), parents before children. */
async function scan(root: string): Promise<Map<string, Meta>> {
  const out = new Map<string, Meta>();
  const visit = async (rel: string): Promise<void> => {
    const abs = join(root, rel);
    const st = await lstat(abs, { bigint: true });
    const type = st.isDirectory() ? 'd' : st.isFile() ? 'f' : st.isSymbolicLink() ? 'l' : 'o';
    out.set(rel, {
      type,
      mode: Number(st.mode),
      uid: Number(st.uid),
      gid: Number(st.gid),
      rdev: st.rdev,
      size: type === 'd' ? 0n : st.size,
      mtime: st.mtimeNs,
      target: type === 'l' ? await readlink(abs) : undefined,
    });
    if (type === 'd') for (const e of (await readdir(abs)).sort()) await visit(`${rel}/${e}`);
  };
  await visit('.');
  return out;
}

const same = (a: Meta, b: Meta) =>
  a.type === b.type &&
  a.mode === b.mode &&
  a.uid === b.uid &&
  a.gid === b.gid &&
  a.size === b.size &&
  a.mtime === b.mtime &&
  a.rdev === b.rdev &&
  a.target === b.target;

/** What turns tree `from` into tree `to`: paths to delete first (topmost only), then entries to copy. */
async function increment(from: string, to: string): Promise<{ deleted: string[]; changed: string[] }> {
  const [a, b] = await Promise.all([scan(from), scan(to)]);
  const gone = new Set<string>();
  const under = (p: string) => {
    for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) if (gone.has(p.slice(0, i))) return true;
    return false;
  };
  for (const [p, m] of a) if (b.get(p)?.type !== m.type && !under(p)) gone.add(p); // a type change is delete + add
  const changed = [...b]
    .filter(([p, m]) => {
      const o = a.get(p);
      return !o || !same(o, m);
    })
    .map(([p]) => p);
  return { deleted: [...gone], changed };
}

// posix format: nanosecond mtimes and long names; atime/ctime would only make streams differ;
// --sparse: a sparse file (a database's) must not arrive as all its zeros.
const TAR_CREATE = ['--format=posix', '--pax-option=delete=atime,delete=ctime', '--numeric-owner', '--sparse'];

export class DirBackend extends PoolDirs implements VolumeBackend {
  readonly kind = 'dir' as const;
  readonly describe: string;

  private constructor(root: string) {
    super(root);
    this.describe = root;
  }

  static async open(root: string): Promise<DirBackend> {
    const b = new DirBackend(root);
    await b.prepare();
    return b;
  }

  protected async purge(p: string): Promise<void> {
    await rm(p, { recursive: true, force: true });
  }

  async create(name: string): Promise<void> {
    await mkdir(this.path(name)).catch((e: NodeJS.ErrnoException) => {
      throw new Error(
        e.code === 'EEXIST' ? `volume ${name} exists here` : `cannot create volume ${name}: ${reason(e)}`,
      );
    });
  }

  async snapshot(name: string, gen: number): Promise<void> {
    const target = this.snap(name, gen);
    // before copying it all
    if (await exists(target)) throw new Error(`cannot snapshot ${name}@${gen}: ${name}@${gen} exists here`);
    await this.copyInto(`cannot snapshot ${name}@${gen}`, this.path(name), `no volume ${name} here`, async (tmp) => {
      if (await exists(target)) throw new Error(`${name}@${gen} exists here`);
      await rename(tmp, target);
    });
  }

  async promote(name: string, gen: number): Promise<void> {
    const live = this.path(name);
    await this.copyInto(
      `cannot promote ${name}@${gen}`,
      this.snap(name, gen),
      `${name}@${gen} is not here`,
      async (tmp) => {
        const old = this.temp(name);
        await rename(live, old).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOENT') throw e;
        });
        await rename(tmp, live);
        await this.purge(old);
      },
    );
  }

  async dropLive(name: string): Promise<void> {
    await this.drop(this.path(name));
  }

  async dropSnapshot(name: string, gen: number): Promise<void> {
    await this.drop(this.snap(name, gen));
  }

  async close(): Promise<void> {}

  /** Out of sight by one rename first, so that a crash half-way leaves nothing half-deleted in view. */
  private async drop(p: string): Promise<void> {
    const tmp = this.temp('drop');
    try {
      await rename(p, tmp);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    await this.purge(tmp);
  }

  /** Copies `src` to a temp dir, then lets `place` move it where it belongs; leaves nothing on failure. */
  private async copyInto(
    what: string,
    src: string,
    missing: string,
    place: (tmp: string) => Promise<void>,
  ): Promise<void> {
    const tmp = this.temp('copy');
    try {
      if (!(await exists(src))) throw new Error(missing);
      await runOk(['cp', '-a', '--reflink=auto', src, tmp]);
      await place(tmp);
    } catch (e) {
      throw new Error(`${what}: ${reason(e)}`);
    } finally {
      await this.purge(tmp);
    }
  }

  protected stream(what: string, snap: string, base: string | undefined, parent: number | undefined): SendStream {
    let settle!: (e?: Error) => void;
    const done = new Promise<void>((resolve, reject) => {
      settle = (e) => (e ? reject(e) : resolve());
    });
    done.catch(() => {});
    let tar: ChildProcess | undefined;
    let cancelled = false;
    async function* produce(): AsyncGenerator<Buffer> {
      try {
        const inc = base ? await increment(base, snap) : undefined;
        if (cancelled) return;
        const header: Header = { format: FORMAT, parent: parent ?? null, deleted: inc?.deleted ?? [] };
        yield frame(Buffer.from(JSON.stringify(header)));
        const names = inc ? ['--no-recursion', '--null', '--verbatim-files-from', '--no-unquote', '-T', '-'] : ['.'];
        tar = spawn('tar', ['-C', snap, '-cf', '-', ...TAR_CREATE, ...names], {
          stdio: [inc ? 'pipe' : 'ignore', 'pipe', 'pipe'],
        });
        const end = exited(tar);
        if (inc) {
          tar.stdin!.on('error', () => {}); // tar failing early shows in its exit status
          tar.stdin!.end(inc.changed.map((p) => `${p}\0`).join(''));
        }
        for await (const chunk of tar.stdout! as AsyncIterable<Buffer>) yield frame(chunk);
        const r = await end;
        if (cancelled) return;
        if (r.code !== 0)
          return settle(new Error(`${what}: ${oneLine(r.stderr, `tar ended with ${r.code ?? r.signal}`)}`));
        settle();
        yield END;
      } catch (e) {
        settle(new Error(`${what}: ${reason(e)}`));
      } finally {
        if (running(tar)) tar.kill('SIGKILL');
      }
    }
    const data = Readable.from(produce(), { objectMode: false });
    // Destroyed by the consumer, maybe before the first read (when produce() never runs at all).
    data.once('close', () => {
      settle(new Error(`${what}: the receiver stopped reading`)); // no-op when settled already
      if (running(tar)) tar.kill('SIGKILL');
    });
    const cancel = () => {
      cancelled = true;
      settle(new Error(`${what}: cancelled`));
      if (running(tar)) tar.kill('SIGKILL');
    };
    return { data, done, cancel };
  }

  protected async land(
    data: Readable,
    tmp: string,
    target: string,
    base: string | undefined,
    parent: number | undefined,
  ): Promise<void> {
    const frames = unframe(data)[Symbol.asyncIterator]();
    const first = await frames.next();
    if (first.done) throw new Error('the stream is empty');
    const header = parseHeader(first.value);
    if (header.parent !== (parent ?? null))
      throw new Error(`the stream was made for parent ${header.parent ?? 'none'}, not ${parent ?? 'none'}`);
    if (base) {
      await runOk(['cp', '-a', '--reflink=auto', base, tmp]);
      for (const p of header.deleted) await rm(join(tmp, p), { recursive: true, force: true });
    } else {
      await mkdir(tmp);
    }
    async function* body(): AsyncGenerator<Buffer> {
      for (let f = await frames.next(); ; f = await frames.next()) {
        if (f.done) throw new Error('the stream broke off');
        if (f.value.length === 0) break;
        yield f.value;
      }
      if (!(await frames.next()).done) throw new Error('data after the end of the stream');
    }
    await feed(
      spawn('tar', ['-C', tmp, '-xf', '-', '--numeric-owner'], { stdio: ['pipe', 'ignore', 'pipe'] }),
      body(),
      'tar',
    );
    if (await exists(target)) throw new Error(`${target} is here already`);
    await rename(tmp, target);
  }
}

function parseHeader(b: Buffer): Header {
  let h: Header;
  try {
    h = JSON.parse(b.toString('utf8')) as Header;
  } catch {
    throw new Error('this is not a dir pool stream');
  }
  if (h?.format !== FORMAT || !Array.isArray(h.deleted)) throw new Error('this is not a dir pool stream');
  for (const p of h.deleted) {
    const n = typeof p === 'string' ? normalize(p) : '..';
    if (isAbsolute(n) || n === '.' || n.split('/').includes('..'))
      throw new Error(`bad path in the stream: ${JSON.stringify(p)}`);
  }
  return h;
}
