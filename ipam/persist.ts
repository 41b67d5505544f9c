import { closeSync, existsSync, fdatasyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { writeFileAtomic } from '../common/files.js';
import type { Subnet } from '../common/subnet.js';
import { type Allocation, type Entry, IpamState } from './state.js';

const COMPACT_AFTER = 2000; // log lines

interface Delta {
  entries: Entry[];
  allocations: Allocation[];
}

/**
 * The ring and every allocation on disk: a snapshot (written atomically: temp file, fsync,
 * rename) plus a log of changes since, one JSON line each, appended, and fdatasync'd before our
 * own change is acknowledged. A crash mid-append leaves a torn last line, which loading ignores.
 */
export class IpamStore {
  private readonly log: string;
  private fd: number;
  private lines = 0;

  constructor(
    private readonly file: string,
    private readonly range: Subnet,
  ) {
    this.log = `${file}.log`;
    this.fd = openSync(this.log, 'a');
  }

  /** Loads what an earlier run saved; a corrupt file or another range is an error, never a silent reset. */
  load(): IpamState {
    const s = new IpamState(this.range);
    if (existsSync(this.file)) {
      let saved: { version?: number; range?: string; entries?: unknown; allocations?: unknown };
      try {
        saved = JSON.parse(readFileSync(this.file, 'utf8'));
        if (saved.version !== 1 || !Array.isArray(saved.entries) || !Array.isArray(saved.allocations))
          throw new Error('unexpected content');
      } catch (err) {
        throw new Error(
          `${this.file} is corrupt (${(err as Error).message}): restore it, or remove it to start this peer's IPAM afresh`,
        );
      }
      if (saved.range !== this.range.text) {
        throw new Error(
          `${this.file} holds allocations from range ${saved.range}, but this router was launched with --ipalloc-range ${this.range.text}`,
        );
      }
      s.merge(saved.entries as Entry[], saved.allocations as Allocation[]);
    }
    const text = existsSync(this.log) ? readFileSync(this.log, 'utf8') : '';
    const lines = text.split('\n');
    lines.pop(); // after the last newline: empty, or a torn write
    for (const [i, line] of lines.entries()) {
      let d: Delta;
      try {
        d = JSON.parse(line) as Delta;
      } catch {
        throw new Error(
          `${this.log} is corrupt at line ${i + 1}: restore it, or remove it to lose the changes since the last snapshot`,
        );
      }
      s.merge(d.entries, d.allocations);
    }
    this.lines = lines.length;
    return s;
  }

  /** Appends a change; with `durable` (the default), on disk before this returns. */
  append(delta: Delta, state: IpamState, durable = true): void {
    if (delta.entries.length + delta.allocations.length === 0) return;
    writeSync(this.fd, `${JSON.stringify(delta)}\n`);
    if (durable) fdatasyncSync(this.fd);
    if (++this.lines >= COMPACT_AFTER) this.compact(state);
  }

  /** Folds the log into a new snapshot. */
  compact(s: IpamState): void {
    writeFileAtomic(
      this.file,
      `${JSON.stringify({ version: 1, range: s.range.text, entries: [...s.entries.values()], allocations: [...s.allocations.values()] })}\n`,
    );
    ftruncateSync(this.fd, 0);
    this.lines = 0;
  }

  close(): void {
    closeSync(this.fd);
  }
}
