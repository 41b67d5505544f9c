import { lookup } from 'node:dns/promises';
import { existsSync, readFileSync } from 'node:fs';
import { multiaddr } from '@multiformats/multiaddr';
import type { Connection } from '@libp2p/interface';
import { isIPv4 } from '../common/cidr.js';
import { parsePeerAddress } from '../common/address.js';
import { writeFileAtomic } from '../common/files.js';
import { DIAL_TIMEOUT_MS, type Node } from './node.js';
import { patientTimeout } from './patient-timeout.js';

const BACKOFF_START_MS = 2000;
const BACKOFF_CAP_MS = 6 * 60_000;
const RECONNECT_MS = 500;
const STABLE_MS = 60_000;

export type TargetState = 'connecting' | 'established' | 'failed';

interface Target {
  address: string; // host:port
  discovered: boolean;
  state: TargetState;
  attempts: number;
  peer?: string;
  lastError?: string;
  retryAt?: number;
  timer?: NodeJS.Timeout;
  since?: number;
}

export interface TargetView {
  address: string;
  discovered: boolean;
  state: TargetState;
  peer?: string;
  error?: string;
  retryInSeconds?: number;
}

/** Normalises HOST or HOST:PORT to HOST:PORT. */
export function targetAddress(text: string, defaultPort: number): string {
  const { host, port } = parsePeerAddress(text);
  return `${host}:${port ?? defaultPort}`;
}

/** libp2p's "Can not dial self" / "Tried to dial self": the address is our own (found out after the handshake). */
const DIAL_SELF = /dial self/i;

/** Why a dial failed, in words an operator can act on. */
function explain(err: Error, password: boolean): string {
  const m = err.message.split('\n')[0];
  if (/ECONNREFUSED/.test(m)) return 'connection refused (no router listening there)';
  if (/EHOSTUNREACH|ENETUNREACH/.test(m)) return 'no route to host';
  if (DIAL_SELF.test(m)) return "this is ourselves: the address is this router's own";
  // Past TCP, a private-network mismatch shows up as whatever the garbled handshake produces.
  return password
    ? `handshake failed (${m}): the peer has a different password, or none`
    : `handshake failed (${m}): the peer may require a password`;
}

/**
 * Keeps us connected to our targets (given by the user, persisted; or discovered from peers):
 * failed dials are retried with exponential backoff and jitter, reset once a connection has lived
 * a minute.
 */
export class ConnectionMaker {
  private readonly targets = new Map<string, Target>();
  private stopped = false;

  constructor(
    private readonly node: Node,
    private readonly o: { port: number; connLimit: number; file: string; password: boolean; self: string },
  ) {
    node.addEventListener('connection:close', (evt) => this.onClose(evt.detail));
  }

  /** Targets saved by an earlier run. A corrupt file is an error, never a silent reset. */
  loadSaved(): string[] {
    if (!existsSync(this.o.file)) return [];
    try {
      const v = JSON.parse(readFileSync(this.o.file, 'utf8')) as unknown;
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error('not a list of addresses');
      return v;
    } catch (err) {
      throw new Error(`${this.o.file} is corrupt: ${(err as Error).message}`);
    }
  }

  connect(addresses: string[], replace = false): void {
    const list = addresses.map((a) => targetAddress(a, this.o.port));
    if (replace)
      for (const t of [...this.targets.values()]) if (!t.discovered && !list.includes(t.address)) this.drop(t);
    for (const address of list) {
      const t = this.targets.get(address);
      if (t) {
        t.discovered = false;
        continue;
      }
      this.add(address, false);
    }
    this.save();
  }

  forget(addresses: string[]): void {
    for (const a of addresses.map((x) => targetAddress(x, this.o.port))) {
      const t = this.targets.get(a);
      if (t && !t.discovered) this.drop(t);
    }
    this.save();
  }

  /** Replaces the set of discovered targets (addresses of peers our peers know). */
  discover(addresses: string[]): void {
    const want = new Set(addresses);
    // A target still connecting stays until it fails: one remembered from before a restart is dialled at once.
    for (const t of [...this.targets.values()])
      if (t.discovered && !want.has(t.address) && t.state === 'failed') this.drop(t);
    for (const a of want)
      if (!this.targets.has(a) && this.node.getConnections().length < this.o.connLimit) this.add(a, true);
  }

  view(): TargetView[] {
    return [...this.targets.values()].map((t) => ({
      address: t.address,
      discovered: t.discovered,
      state: t.state,
      peer: t.peer,
      error: t.lastError,
      retryInSeconds:
        t.retryAt && t.state === 'failed' ? Math.max(0, Math.round((t.retryAt - Date.now()) / 1000)) : undefined,
    }));
  }

  userTargets(): string[] {
    return [...this.targets.values()].filter((t) => !t.discovered).map((t) => t.address);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.targets.values()) clearTimeout(t.timer);
  }

  private add(address: string, discovered: boolean): void {
    const t: Target = { address, discovered, state: 'connecting', attempts: 0 };
    this.targets.set(address, t);
    void this.dial(t);
  }

  private drop(t: Target): void {
    clearTimeout(t.timer);
    this.targets.delete(t.address);
  }

  private save(): void {
    writeFileAtomic(this.o.file, `${JSON.stringify(this.userTargets())}\n`);
  }

  private async dial(t: Target): Promise<void> {
    t.timer = undefined;
    if (this.stopped || this.targets.get(t.address) !== t) return;
    t.state = 'connecting';
    try {
      const [host, port] = [
        t.address.slice(0, t.address.lastIndexOf(':')),
        t.address.slice(t.address.lastIndexOf(':') + 1),
      ];
      const ip = isIPv4(host) ? host : (await lookup(host, { family: 4 })).address;
      const deadline = patientTimeout(DIAL_TIMEOUT_MS);
      const conn = await this.node
        .dial(multiaddr(`/ip4/${ip}/tcp/${port}`), { signal: deadline.signal })
        .finally(deadline.clear);
      if (this.targets.get(t.address) !== t) return;
      t.state = 'established';
      t.peer = conn.remotePeer.toString();
      t.lastError = undefined;
      t.since = Date.now();
    } catch (err) {
      if (this.targets.get(t.address) !== t) return;
      if (DIAL_SELF.test((err as Error).message) && t.discovered) return this.drop(t);
      this.fail(t, explain(err as Error, this.o.password));
    }
  }

  private onClose(conn: Connection): void {
    const peer = conn.remotePeer.toString();
    if (this.node.getConnections(conn.remotePeer).length > 0) return;
    for (const t of this.targets.values()) {
      if (t.peer !== peer || t.state !== 'established') continue;
      if (t.since && Date.now() - t.since > STABLE_MS) t.attempts = 0;
      this.fail(t, 'connection closed', RECONNECT_MS); // a restarted peer is back within a second or two: try soon
    }
  }

  private fail(t: Target, why: string, first?: number): void {
    if (this.stopped) return;
    t.state = 'failed';
    t.lastError = why;
    const base = first ?? Math.min(BACKOFF_CAP_MS, BACKOFF_START_MS * 2 ** t.attempts++);
    // jitter keeps restarted peers from dialling in lockstep
    const delay = Math.round(base * (0.75 + Math.random() / 2));
    t.retryAt = Date.now() + delay;
    t.timer = setTimeout(() => void this.dial(t), delay);
  }
}
