// What both backends share: the pool's layout (vols/NAME writable, snaps/NAME@GEN snapshots,
// incoming/ for work in progress, so that everything appears by one rename or snapshot: all or
// nothing), receive's frame around each backend's own landing of a stream, and process helpers.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { runOk } from '../common/exec.js';
import { VOLUME_NAME, type HeldVolume, type SendStream } from './backend.js';

/** The pool's directories and what reads them the same way whatever the backend. */
export abstract class PoolDirs {
  constructor(readonly root: string) {}

  path(name: string): string {
    if (!VOLUME_NAME.test(name)) throw new Error(`bad volume name ${JSON.stringify(name)}`);
    return join(this.root, 'vols', name);
  }

  protected snap(name: string, gen: number): string {
    if (!VOLUME_NAME.test(name)) throw new Error(`bad volume name ${JSON.stringify(name)}`);
    if (!Number.isSafeInteger(gen) || gen < 0) throw new Error(`bad snapshot generation ${gen}`);
    return join(this.root, 'snaps', `${name}@${gen}`);
  }

  /** A fresh path under incoming/ (not created); whatever is left there is removed at open. */
  protected temp(label: string): string {
    return join(this.root, 'incoming', `${label}.${randomBytes(6).toString('hex')}`);
  }

  /** Makes the directories and removes what an interrupted run left in incoming/. */
  protected async prepare(): Promise<void> {
    for (const d of ['vols', 'snaps', 'incoming']) await mkdir(join(this.root, d), { recursive: true });
    for (const e of await readdir(join(this.root, 'incoming'))) await this.purge(join(this.root, 'incoming', e));
  }

  /** Removes a path of this pool, whatever it holds; nothing when it is not there. */
  protected abstract purge(path: string): Promise<void>;

  /**
   * Makes snapshot `target` from a stream, working in `tmp` (removed afterwards, whatever happens).
   * `base` is the parent snapshot's path when the stream is an increment.
   */
  protected abstract land(
    data: Readable,
    tmp: string,
    target: string,
    base: string | undefined,
    parent: number | undefined,
  ): Promise<void>;

  /** Snapshot `snap` as a stream (an increment on `base` when given), failures reported as `what: ...`. */
  protected abstract stream(
    what: string,
    snap: string,
    base: string | undefined,
    parent: number | undefined,
  ): SendStream;

  send(name: string, gen: number, parent?: number): SendStream {
    const what = `cannot send ${name}@${gen}`;
    const snap = this.snap(name, gen);
    const base = parent === undefined ? undefined : this.snap(name, parent);
    if (!existsSync(snap)) return failedSend(`${what}: it is not here`);
    if (base && !existsSync(base)) return failedSend(`${what}: its parent ${name}@${parent} is not here`);
    return this.stream(what, snap, base, parent);
  }

  async receive(name: string, gen: number, parent: number | undefined, data: Readable): Promise<void> {
    const target = this.snap(name, gen);
    const base = parent === undefined ? undefined : this.snap(name, parent);
    const tmp = this.temp(`${name}@${gen}`);
    try {
      if (await exists(target)) throw new Error(`${name}@${gen} is here already`);
      if (base && !(await exists(base))) throw new Error(`its parent ${name}@${parent} is not here`);
      await this.land(data, tmp, target, base, parent);
    } catch (e) {
      data.destroy(); // we read no more: the sender stops
      throw new Error(`cannot receive ${name}@${gen}: ${reason(e)}`);
    } finally {
      await this.purge(tmp);
    }
  }

  async list(): Promise<Map<string, HeldVolume>> {
    const out = new Map<string, HeldVolume>();
    const held = (name: string) => {
      let v = out.get(name);
      if (!v) out.set(name, (v = { live: false, snapshots: [] }));
      return v;
    };
    for (const name of await readdir(join(this.root, 'vols'))) if (VOLUME_NAME.test(name)) held(name).live = true;
    for (const entry of await readdir(join(this.root, 'snaps'))) {
      const m = /^(.+)@(\d+)$/.exec(entry);
      if (m && VOLUME_NAME.test(m[1])) held(m[1]).snapshots.push(Number(m[2]));
    }
    for (const v of out.values()) v.snapshots.sort((a, b) => a - b);
    return out;
  }

  async size(name: string): Promise<number> {
    const p = this.path(name);
    if (!(await exists(p))) return 0;
    return Number((await runOk(['du', '-sb', p])).split('\t')[0]);
  }

  async free(): Promise<number> {
    const s = await statfs(this.root);
    return s.bavail * s.bsize;
  }
}

export async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

/** The gist of a failed command's stderr, on one line. */
export function oneLine(stderr: string, fallback: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim().replace(/^ERROR:\s*/, ''))
    .filter((l) => l && !/Exiting with failure status/.test(l));
  return lines.slice(-2).join('; ') || fallback;
}

/** An error's message on one line (stream errors get words a user understands). */
export function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ERR_STREAM_PREMATURE_CLOSE') return 'the stream broke off';
  return String(err?.message ?? e).replace(/\s*\n\s*/g, '; ');
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** How a spawned child ended, with (the end of) its stderr. Never rejects. */
export function exited(child: ChildProcess): Promise<Exit> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    stderr = (stderr + s).slice(-8192);
  });
  return new Promise((resolve) => {
    child.once('error', (e) => resolve({ code: 127, signal: null, stderr: `${stderr}\n${e.message}` }));
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

export function running(child: ChildProcess | undefined): child is ChildProcess {
  return !!child && child.exitCode === null && child.signalCode === null;
}

/** A send that failed before producing anything. */
export function failedSend(message: string): SendStream {
  const done = Promise.reject(new Error(message));
  done.catch(() => {});
  return { data: Readable.from([], { objectMode: false }), done, cancel: () => {} };
}

/**
 * Feeds a stream to a child's stdin and waits for the child. The stream's own failure (a transfer
 * cut off) is thrown rather than what the child says of the short input; a child that ends badly
 * is one line.
 */
export async function feed(
  child: ChildProcess & { stdin: Writable },
  source: AsyncIterable<Buffer>,
  what: string,
): Promise<void> {
  const end = exited(child);
  let broken: Error | undefined;
  async function* watched(): AsyncGenerator<Buffer> {
    try {
      for await (const c of source) yield c;
    } catch (e) {
      throw (broken = e as Error);
    }
  }
  const fed = await pipeline(Readable.from(watched(), { objectMode: false }), child.stdin).then(
    () => undefined,
    (e: Error) => e,
  );
  if (fed) child.kill('SIGKILL');
  const r = await end;
  if (broken) throw broken;
  if (r.code === null) throw new Error(fed ? reason(fed) : `${what} was killed by ${r.signal}`);
  if (r.code !== 0) throw new Error(oneLine(r.stderr, `${what} ended with ${r.code}`));
}
