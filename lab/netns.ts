// Namespace and process primitives used to build and tear down labs. Every function that touches
// a namespace takes its name explicitly and refuses names outside the lab naming scheme, so a bug
// can never turn into an `ip` command against the root namespace or someone else's namespace.
import { execFileSync } from 'node:child_process';
import { run, runOk } from '../common/exec.js';

const LAB_NS_RE = /^wl[a-z0-9]{1,12}-[A-Za-z0-9_.-]+$/;

export function assertLabNs(ns: string): void {
  if (!LAB_NS_RE.test(ns)) throw new Error(`refusing to touch namespace "${ns}": not a lab namespace`);
}

/** `ip -n <ns> ...`: ip fails (instead of falling back to root) if the namespace is missing. */
export async function ipn(ns: string, ...args: string[]): Promise<void> {
  assertLabNs(ns);
  await runOk(['ip', '-n', ns, ...args]);
}

export async function addNs(ns: string): Promise<void> {
  assertLabNs(ns);
  await runOk(['ip', 'netns', 'add', ns]);
  await ipn(ns, 'link', 'set', 'lo', 'up');
}

function parseNsList(out: string): string[] {
  // Lines look like "wlab12-h1 (id: 3)" or just "wlab12-h1".
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n): n is string => !!n);
}
function parsePids(out: string): number[] {
  return out
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((p) => Number.isInteger(p) && p > 1 && p !== process.pid);
}

export async function listNs(): Promise<string[]> {
  return parseNsList((await run(['ip', 'netns', 'list'])).stdout);
}
export function listNsSync(): string[] {
  try {
    return parseNsList(
      execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    );
  } catch {
    return [];
  }
}

/** PIDs currently inside `ns` (zombies have no namespace and are not listed). */
export async function nsPids(ns: string): Promise<number[]> {
  assertLabNs(ns);
  return parsePids((await run(['ip', 'netns', 'pids', ns])).stdout);
}
export function nsPidsSync(ns: string): number[] {
  assertLabNs(ns);
  try {
    return parsePids(
      execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    );
  } catch {
    return [];
  }
}

/** Names of the namespaces `pid` is in; empty if it is gone. Guards against killing a reused PID. */
export async function pidNs(pid: number): Promise<string[]> {
  const r = await run(['ip', 'netns', 'identify', String(pid)]);
  return r.code === 0 ? parseNsList(r.stdout) : [];
}
export function pidNsSync(pid: number): string[] {
  try {
    return parseNsList(
      execFileSync('ip', ['netns', 'identify', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    );
  } catch {
    return [];
  }
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // ESRCH: already gone.
  }
}

export async function delNs(ns: string): Promise<void> {
  assertLabNs(ns);
  const r = await run(['ip', 'netns', 'del', ns]);
  if (r.code !== 0 && !/No such file/i.test(r.stderr)) throw new Error(`ip netns del ${ns} failed: ${r.stderr.trim()}`);
}
export function delNsSync(ns: string): void {
  assertLabNs(ns);
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // Already gone, or nothing more we can do while exiting.
  }
}
