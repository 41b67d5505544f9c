import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ENTRY_POINTS } from '../contract/files.js';

const LOCK = 'weave.lock';

/** A live weave router daemon: a pid reused by some other process after a kill -9 does not count. */
const ROUTER = ENTRY_POINTS.router.replace(/\.js$/, ''); // compiled (.js) or run from source (.ts)
const isDaemon = (pid: number): boolean => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .some((a) => a.endsWith(`${ROUTER}.js`) || a.endsWith(`${ROUTER}.ts`));
  } catch {
    return false;
  }
};

const lockPid = (file: string): number => {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
};

export const inUse = (dir: string, pid: number) =>
  `the data directory ${dir} is in use by another router (pid ${pid}): give this one its own with --data-dir`;

/** The pid of the live router that holds `dir`, if any: `weave launch` refuses before it starts anything. */
export function dataDirOwner(dir: string): number | undefined {
  const pid = lockPid(join(dir, LOCK));
  return pid && pid !== process.pid && isDaemon(pid) ? pid : undefined;
}

/**
 * One router per data directory: two that share one would share a peer identity and IPAM state.
 * The lock names the router's pid; one left by a router that died (kill -9) names a process that
 * is gone, or is no router, and is taken over.
 */
export function lockDataDir(dir: string): () => void {
  const file = join(dir, LOCK);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        if (lockPid(file) === process.pid) rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = dataDirOwner(dir);
      if (owner) throw new Error(inUse(dir, owner));
      rmSync(file, { force: true }); // stale
    }
  }
  throw new Error(`cannot lock the data directory ${dir}`);
}
