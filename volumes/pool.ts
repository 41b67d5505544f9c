// Opens this host's volume pool from `--volume-pool PATH[:SIZE]` and `--volume-backend`. A btrfs
// pool is a directory on btrfs, or else a loop file (made on first use) mounted at <data>/volumes.
import { constants } from 'node:fs';
import {
  access,
  mkdir,
  readdir,
  readFile,
  realpath,
  rm,
  rmdir,
  stat,
  statfs,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { delimiter, dirname, join, resolve } from 'node:path';
import { run } from '../common/exec.js';
import { DATA_FILES } from '../contract/files.js';
import type { VolumeBackend } from './backend.js';
import { BtrfsBackend } from './btrfs.js';
import { DirBackend } from './dir.js';
import { exists, oneLine, reason } from './pool-dirs.js';

export interface PoolOptions {
  dataDir: string;
  /** PATH[:SIZE] as the user gave it. */
  spec?: string;
  backend?: 'auto' | 'btrfs' | 'dir';
  /** Mount a loop pool in this mount namespace (a path like /proc/1/ns/mnt), not the router's own. */
  mountNs?: string;
}

const BTRFS_MAGIC = 0x9123683e;
const DEFAULT_SIZE = 10 * 2 ** 30;
const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

export async function openPool(o: PoolOptions): Promise<VolumeBackend> {
  const m = /^(.*?)(?::([^:/]*))?$/.exec(o.spec ?? '')!;
  const path = m[1] ? resolve(m[1]) : undefined;
  let kind = o.backend ?? 'auto';
  if (kind === 'auto') kind = await chooseKind(path);
  const where = path ?? join(o.dataDir, kind === 'dir' ? 'volumes' : DATA_FILES.volumePool);
  try {
    const size = parseSize(m[2]);
    if (kind === 'dir') return await DirBackend.open(where);
    if (path && (await isDir(path))) {
      if (!(await onBtrfs(path))) throw new Error('it is a directory, but not on a btrfs filesystem');
      return await BtrfsBackend.open(path, path);
    }
    return await openLoop(
      where,
      join(o.dataDir, 'volumes'),
      size,
      o.mountNs ? ['nsenter', `--mount=${o.mountNs}`, '--'] : [],
    );
  } catch (e) {
    throw new Error(`cannot create the volume pool at ${where}: ${reason(e)}`);
  }
}

/** Bytes from 10G, 512M, 1T, 4096 (binary units, like truncate). */
function parseSize(s: string | undefined): number {
  if (s === undefined) return DEFAULT_SIZE;
  const m = /^(\d+)([KMGT]?)$/i.exec(s);
  if (!m || Number(m[1]) === 0) throw new Error(`bad size ${JSON.stringify(s)} (examples: 10G, 512M)`);
  return Number(m[1]) * UNITS[m[2].toUpperCase()];
}

/** An existing directory decides by its filesystem; otherwise btrfs when this host has it. */
async function chooseKind(path: string | undefined): Promise<'btrfs' | 'dir'> {
  if (path && (await isDir(path))) return (await onBtrfs(path)) ? 'btrfs' : 'dir';
  return (await btrfsAvailable()) ? 'btrfs' : 'dir';
}

async function btrfsAvailable(): Promise<boolean> {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  const mkfs = await Promise.all(
    dirs.map((d) =>
      access(join(d, 'mkfs.btrfs'), constants.X_OK).then(
        () => true,
        () => false,
      ),
    ),
  );
  if (!mkfs.includes(true)) return false;
  const listed = async () => /\sbtrfs$/m.test(await readFile('/proc/filesystems', 'utf8').catch(() => ''));
  if (await listed()) return true;
  await run(['modprobe', 'btrfs']);
  return listed();
}

const isDir = (p: string) =>
  stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
const onBtrfs = (p: string) =>
  statfs(p).then(
    (s) => s.type === BTRFS_MAGIC,
    () => false,
  );

/** The loop pool: `img` (made when absent) mounted at `mnt`, or found mounted there already. */
async function openLoop(img: string, mnt: string, size: number, inNs: string[]): Promise<BtrfsBackend> {
  const describe = `${mnt} (${img})`;
  const mounted = await mountAt(await realpath(mnt).catch(() => mnt));
  if (mounted) {
    // A router restarted after a crash: its pool is still mounted, and stays so.
    if (mounted.fstype !== 'btrfs') throw new Error(`${mnt} has a ${mounted.fstype} filesystem mounted`);
    const file = await backingFile(mounted.source);
    if (file && file !== (await realpath(img).catch(() => img))) throw new Error(`${mnt} has ${file} mounted`);
    return BtrfsBackend.open(mnt, describe);
  }
  const madeImg = !(await exists(img));
  let madeMnt: string | undefined;
  const undo = async () => {
    if (madeImg) await rm(img, { force: true }).catch(() => {});
    if (madeMnt) await rmdir(mnt).catch(() => {});
  };
  try {
    if (madeImg) {
      await mkdir(dirname(img), { recursive: true });
      await writeFile(img, '', { flag: 'wx' });
      await truncate(img, size); // sparse
      await must(['mkfs.btrfs', '-q', img]);
    } else {
      const user = await loopOf(await realpath(img));
      if (user) throw new Error(`it is in use by ${user}`); // mounting it twice would corrupt it
    }
    madeMnt = await mkdir(mnt, { recursive: true });
    if ((await readdir(mnt)).length) throw new Error(`${mnt} is not empty (a dir pool's?) and would be hidden`);
    await must([...inNs, 'mount', '-o', 'loop', img, mnt]);
  } catch (e) {
    await undo();
    throw e;
  }
  const file = await realpath(img);
  const unmount = async () => {
    await must([...inNs, 'umount', mnt]);
    await detached(file);
  };
  try {
    return await BtrfsBackend.open(mnt, describe, unmount);
  } catch (e) {
    await unmount().catch(() => {});
    await undo();
    throw e;
  }
}

/**
 * Waits for the kernel to detach the loop device `mount -o loop` made for `file` (autoclear, done
 * asynchronously after the unmount), so that the file is free when close() returns.
 */
async function detached(file: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; await loopOf(file); ) {
    if (Date.now() > deadline) throw new Error(`${file} stays attached to ${await loopOf(file)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Runs a command; a failure's error is its stderr's gist. */
async function must(argv: string[]): Promise<void> {
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`${argv[0]}: ${oneLine(r.stderr, `exit ${r.code}`)}`);
}

/** What /proc/self/mountinfo says is mounted at `dir` (the last, visible mount). */
async function mountAt(dir: string): Promise<{ fstype: string; source: string } | undefined> {
  const unoctal = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  let found: { fstype: string; source: string } | undefined;
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash > 0 && unoctal(f[4]) === dir) found = { fstype: f[dash + 1], source: unoctal(f[dash + 2]) };
  }
  return found;
}

/** The file behind a loop device (/dev/loopN), if it is one. */
async function backingFile(dev: string): Promise<string | undefined> {
  const m = /^\/dev\/(loop\d+)$/.exec(dev);
  if (!m) return undefined;
  return (await readFile(`/sys/block/${m[1]}/loop/backing_file`, 'utf8').catch(() => '')).trim() || undefined;
}

/** The loop device that has `file` attached, if any. */
async function loopOf(file: string): Promise<string | undefined> {
  for (const dev of await readdir('/sys/block').catch(() => [] as string[])) {
    if (dev.startsWith('loop') && (await backingFile(`/dev/${dev}`)) === file) return `/dev/${dev}`;
  }
  return undefined;
}
