import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const LOCK = 'weave.lock';

const daemonPid = (pid: number): boolean => {
  try { return /router\/daemon\.js/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8')); } catch { return false; }
};

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
      return () => { try { if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file); } catch { /* gone */ } };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (pid && pid !== process.pid && daemonPid(pid)) throw new Error(`the data directory ${dir} is in use by another router (pid ${pid}): give this one its own with --data-dir`);
      rmSync(file, { force: true }); // stale
    }
  }
  throw new Error(`cannot lock the data directory ${dir}`);
}
