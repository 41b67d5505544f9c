import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { RouterConfig } from '../daemon/options.js';
import { DATA_FILES, entryPoint } from '../contract/files.js';
import { dataDirOwner, inUse } from '../common/data-dir-lock.js';
import { call, tryReport } from './client.js';
import type { Report } from '../contract/report.js';

const SUPERVISOR = entryPoint('supervisor');
const READY_TIMEOUT_MS = 20_000;

/** Refuses a second router here, before anything is spawned or written. */
async function refuseIfRunning(cfg: RouterConfig): Promise<void> {
  const running = await tryReport<Report>();
  if (running) throw new Error(`the weave router is already running here as ${running.name}(${running.nickname})`);
  // Another router (in another network namespace, or on another API address) has this data directory.
  // The daemon checks again, for a launch racing this one.
  const owner = dataDirOwner(cfg.dataDir);
  if (owner) throw new Error(inUse(cfg.dataDir, owner));
}

/** Starts the router detached, logging to the data directory, and returns once its API answers. */
export async function launch(cfg: RouterConfig): Promise<Report> {
  await refuseIfRunning(cfg);
  mkdirSync(cfg.dataDir, { recursive: true });
  const logFile = join(cfg.dataDir, DATA_FILES.log);
  const logStart = existsSync(logFile) ? statSync(logFile).size : 0;
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [SUPERVISOR, JSON.stringify(cfg)], {
    detached: true,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  let exited = false;
  child.on('exit', () => (exited = true));
  child.unref();
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const r = exited ? undefined : await tryReport<Report>();
    if (r && r.supervisorPid === child.pid) return r;
    if (exited) {
      const tail = readFileSync(logFile, 'utf8')
        .slice(logStart)
        .split('\n')
        .filter((l) => l.startsWith('fatal: '));
      throw new Error(tail.at(-1)?.slice(7) ?? `the router exited during start-up; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`the router did not answer within ${READY_TIMEOUT_MS / 1000}s; see ${logFile}`);
}

/**
 * `weave launch --foreground`, for a service manager (systemd): the supervisor runs as our child,
 * its log is our output (the journal), SIGTERM or SIGINT stops the router cleanly, and we exit
 * with the supervisor's code once it has stopped.
 */
export async function launchInForeground(cfg: RouterConfig): Promise<number> {
  await refuseIfRunning(cfg);
  const child = spawn(process.execPath, [SUPERVISOR, JSON.stringify(cfg)], { stdio: 'inherit' });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => child.kill(sig));
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
}

/** Asks the router to stop and waits until it has. */
export async function stop(): Promise<boolean> {
  const r = await tryReport<Report>();
  if (!r) return false;
  await call('POST', '/stop');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const alive = (pid?: number) => {
      try {
        return pid !== undefined && (process.kill(pid, 0), true);
      } catch {
        return false;
      }
    };
    if (!alive(r.pid) && !alive(r.supervisorPid)) return true;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`the router (pid ${r.pid}) did not stop within 10s`);
}
