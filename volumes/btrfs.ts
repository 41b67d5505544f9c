// Volumes as btrfs subvolumes: vols/NAME writable, snaps/NAME@GEN read-only snapshots, and streams
// are `btrfs send` / `btrfs receive`. An increment's parent is found on the receiving side by uuid
// or received_uuid, so snapshots can go back and forth between hosts.
import { spawn } from 'node:child_process';
import { lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { runOk } from '../common/exec.js';
import type { SendStream, VolumeBackend } from './backend.js';
import { exists, exited, feed, oneLine, PoolDirs, reason, running } from './pool-dirs.js';

/** Inode number of every subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID). */
const SUBVOLUME_ROOT = 256;

export class BtrfsBackend extends PoolDirs implements VolumeBackend {
  readonly kind = 'btrfs' as const;

  private constructor(
    root: string,
    readonly describe: string,
    private release?: () => Promise<void>,
  ) {
    super(root);
  }

  /** The pool at `root` (a directory on btrfs); `release` runs at close (the loop pool's unmount). */
  static async open(root: string, describe: string, release?: () => Promise<void>): Promise<BtrfsBackend> {
    const b = new BtrfsBackend(root, describe, release);
    await b.prepare();
    return b;
  }

  protected async purge(p: string): Promise<void> {
    const st = await lstat(p).catch(() => undefined);
    if (!st) return;
    if (st.isDirectory() && st.ino === SUBVOLUME_ROOT) {
      await runOk(['btrfs', 'subvolume', 'delete', p]); // works on read-only ones too, unlike rm
      return;
    }
    if (st.isDirectory()) for (const e of await readdir(p)) await this.purge(join(p, e));
    await rm(p, { recursive: true, force: true });
  }

  async create(name: string): Promise<void> {
    const live = this.path(name);
    if (await exists(live)) throw new Error(`volume ${name} exists here`);
    await runOk(['btrfs', 'subvolume', 'create', live]).catch((e) => {
      throw new Error(`cannot create volume ${name}: ${reason(e)}`);
    });
  }

  async snapshot(name: string, gen: number): Promise<void> {
    const live = this.path(name),
      target = this.snap(name, gen);
    try {
      if (!(await exists(live))) throw new Error(`no volume ${name} here`);
      if (await exists(target)) throw new Error(`${name}@${gen} exists here`);
      await runOk(['btrfs', 'subvolume', 'snapshot', '-r', live, target]);
    } catch (e) {
      throw new Error(`cannot snapshot ${name}@${gen}: ${reason(e)}`);
    }
  }

  async promote(name: string, gen: number): Promise<void> {
    const live = this.path(name),
      src = this.snap(name, gen),
      tmp = this.temp(name);
    try {
      if (!(await exists(src))) throw new Error(`${name}@${gen} is not here`);
      // The new copy is made aside first, so that a failure leaves the old one in place.
      await runOk(['btrfs', 'subvolume', 'snapshot', src, tmp]);
      await this.purge(live);
      await rename(tmp, live);
    } catch (e) {
      await this.purge(tmp);
      throw new Error(`cannot promote ${name}@${gen}: ${reason(e)}`);
    }
  }

  async dropLive(name: string): Promise<void> {
    await this.purge(this.path(name));
  }

  async dropSnapshot(name: string, gen: number): Promise<void> {
    await this.purge(this.snap(name, gen));
  }

  async close(): Promise<void> {
    await this.release?.();
    this.release = undefined; // once; a failed unmount may be retried
  }

  protected stream(what: string, snap: string, base: string | undefined): SendStream {
    const child = spawn('btrfs', ['send', '-q', ...(base ? ['-p', base] : []), snap], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let cancelled = false;
    const done = exited(child).then((r) => {
      if (cancelled) throw new Error(`${what}: cancelled`);
      if (r.code !== 0 && child.stdout!.destroyed && !child.stdout!.readableEnded)
        throw new Error(`${what}: the receiver stopped reading`);
      if (r.code !== 0) throw new Error(`${what}: ${oneLine(r.stderr, `btrfs send ended with ${r.code ?? r.signal}`)}`);
    });
    done.catch(() => {});
    const cancel = () => {
      if (!running(child)) return;
      cancelled = true;
      child.kill('SIGKILL');
    };
    return { data: child.stdout!, done, cancel };
  }

  protected async land(data: Readable, tmp: string, target: string): Promise<void> {
    // The stream names its parent (by uuid): btrfs receive finds it, or fails.
    await mkdir(tmp);
    await feed(
      spawn('btrfs', ['receive', '-q', tmp], { stdio: ['pipe', 'ignore', 'pipe'] }),
      data as AsyncIterable<Buffer>,
      'btrfs receive',
    );
    const got = await readdir(tmp);
    if (got.length !== 1) throw new Error(`the stream held ${got.length} subvolumes`);
    // A received (read-only) subvolume cannot be moved to another directory (EROFS: its '..'
    // would change), but a read-only snapshot of it can be made anywhere, at once, and keeps
    // its received_uuid, which the next increment's parent is looked up by.
    if (await exists(target)) throw new Error(`${target} is here already`);
    await runOk(['btrfs', 'subvolume', 'snapshot', '-r', join(tmp, got[0]), target]);
  }
}
