import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../common/files.js';
import { Subnet } from './address.js';
import { IpamState } from './state.js';

/** The ring and every allocation, written atomically (temp file, fsync, rename) after each change. */
export function saveIpam(file: string, s: IpamState): void {
  writeFileAtomic(file, JSON.stringify({ version: 1, range: s.range.text, entries: [...s.entries.values()], allocations: [...s.allocations.values()] }) + '\n');
}

/** Loads what an earlier run saved; a corrupt file or another range is an error, never a silent reset. */
export function loadIpam(file: string, range: Subnet): IpamState {
  const s = new IpamState(range);
  if (!existsSync(file)) return s;
  let saved: { version?: number; range?: string; entries?: unknown; allocations?: unknown };
  try {
    saved = JSON.parse(readFileSync(file, 'utf8'));
    if (saved.version !== 1 || !Array.isArray(saved.entries) || !Array.isArray(saved.allocations)) throw new Error('unexpected content');
  } catch (err) {
    throw new Error(`${file} is corrupt (${(err as Error).message}): restore it, or remove it to start this peer's IPAM afresh`);
  }
  if (saved.range !== range.text) {
    throw new Error(`${file} holds allocations from range ${saved.range}, but this router was launched with --ipalloc-range ${range.text}`);
  }
  const d = IpamState.decode({ range: saved.range, entries: saved.entries as never, allocations: saved.allocations as never });
  s.merge(d.entries, d.allocations);
  return s;
}
