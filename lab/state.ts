// On-disk record of a lab (<root>/state.json) so another process (the CLI, a later run) can find
// and tear down everything a lab made. Writes are synchronous and atomic (write + rename) so the
// exit handler and concurrent readers never see a half-written file.
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabSpec } from './topology.js';
import type { LabDockerd } from './dockerd.js';

export const LAB_BASE = '/tmp/weave-lab';

export interface LabHost {
  name: string;
  netns: string;
  addrs: string[];
  dataDir: string;
}
export interface LabContainer {
  name: string;
  host: string;
  netns: string;
}

export interface LabState {
  version: 1;
  id: string;
  spec: Required<LabSpec>;
  createdAt: string;
  creatorPid: number;
  /** The checkout whose code made the lab: `lab down` without --id removes only its own. */
  checkout?: string;
  hosts: LabHost[];
  containers: LabContainer[];
  /** Every namespace we created or are about to create (recorded before creation). */
  namespaces: string[];
  /** PIDs started by spawn(); only killed if still inside one of our namespaces. */
  pids: number[];
  /** Docker engines started in lab hosts (removed, unmounted and cleaned up at down). */
  dockerds?: LabDockerd[];
}

/** Lab ids become part of namespace names; no '-' so `wl<id>-` can never be a prefix of another lab's. */
export const ID_RE = /^[a-z0-9]{1,12}$/;

export function checkId(id: string): void {
  if (!ID_RE.test(id)) throw new Error(`invalid lab id "${id}" (1-12 chars of a-z, 0-9)`);
}

export const labRoot = (id: string): string => join(LAB_BASE, id);
export const statePath = (id: string): string => join(labRoot(id), 'state.json');
/** Prefix of every namespace belonging to lab `id`. */
export const nsPrefix = (id: string): string => `wl${id}-`;

export function readState(id: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(id), 'utf8')) as LabState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${statePath(id)}: ${(e as Error).message}`);
  }
}

export function writeState(s: LabState): void {
  mkdirSync(labRoot(s.id), { recursive: true });
  const tmp = `${statePath(s.id)}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`);
  renameSync(tmp, statePath(s.id));
}

/** Re-read, modify, write: keeps changes made by other processes (e.g. `lab container`). */
export function updateState(id: string, fallback: LabState, fn: (s: LabState) => void): LabState {
  const s = readState(id) ?? fallback;
  fn(s);
  writeState(s);
  return s;
}

export function listIds(): string[] {
  let names: string[];
  try {
    names = readdirSync(LAB_BASE);
  } catch {
    return [];
  }
  return names.filter((n) => ID_RE.test(n) && readState(n) !== undefined).sort();
}
