// The volumes as this host knows them, shared by every part of the manager: the channel's records
// (saved across restarts), this host's pool (opened when first needed) and what it holds of each
// volume, and the rule of one operation at a time per volume here.
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../common/files.js';
import { NotFound, UserError } from '../common/errors.js';
import { KeyedSerial } from '../common/keyed-serial.js';
import { score } from '../common/rendezvous.js';
import { GossipChannel } from '../gossip/typed-channel.js';
import type { weave } from '../proto/gen/weave.js';
import { VOLUME_NAME, type VolumeBackend } from './backend.js';
import type { VolumeNet } from './requests.js';
import { VOLUMES, VolumesState, type VolumeRecord } from './state.js';

/** What this host did with volumes, for the report and the metrics. */
export interface VolumeCounters {
  movesIn: number;
  movesOut: number;
  replications: number;
  bytesIn: number;
  bytesOut: number;
  promotions: number;
}

export class VolumeRecords {
  readonly state: VolumesState;
  readonly channel: GossipChannel<weave.IVolumesState>;
  readonly counters: VolumeCounters = {
    movesIn: 0,
    movesOut: 0,
    replications: 0,
    bytesIn: 0,
    bytesOut: 0,
    promotions: 0,
  };
  /** One operation at a time per volume here (a mount, a move, a replication, a removal). */
  readonly busy = new KeyedSerial();
  private backendP?: Promise<VolumeBackend>;
  private openBackend?: VolumeBackend;

  /** `file` keeps the records across restarts; `open` opens this host's pool, once, when a volume is first needed. */
  constructor(
    readonly net: VolumeNet,
    private readonly file: string,
    private readonly open: () => Promise<VolumeBackend>,
  ) {
    this.state = new VolumesState(net.name, Date.now, (names) => this.changed(names));
    this.channel = new GossipChannel(VOLUMES, () => this.state);
    if (existsSync(file)) {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as { volumes: VolumeRecord[] };
      this.state.merge({ volumes: saved.volumes }, undefined);
    }
  }

  backend(): Promise<VolumeBackend> {
    if (!this.backendP) {
      this.backendP = this.open();
      // A pool that failed may be made later.
      this.backendP.then(
        (b) => {
          this.openBackend = b;
        },
        () => {
          this.backendP = undefined;
        },
      );
    }
    return this.backendP;
  }

  /** Whether the pool was asked for (it may still be opening). */
  get backendAsked(): boolean {
    return !!this.backendP;
  }

  /** The pool, once it is open. */
  get opened(): VolumeBackend | undefined {
    return this.openBackend;
  }

  pathIfOpen(name: string): string | undefined {
    return this.openBackend?.path(name);
  }

  async close(): Promise<void> {
    if (this.backendP) await (await this.backendP.catch(() => undefined))?.close();
  }

  /** Runs one operation on a volume at a time, here. */
  serial<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.busy.run(name, fn);
  }

  record(name: string): VolumeRecord {
    checkName(name);
    const r = this.state.live(name);
    if (!r) throw new NotFound(`no volume ${name}`);
    return r;
  }

  /** The record of a volume this host owns; an error for the asking host when another does. */
  owned(name: string): VolumeRecord {
    const r = this.record(name);
    if (r.owner !== this.net.name) throw new Error(`volume ${name} is not here (${this.net.nickname(r.owner)} has it)`);
    return r;
  }

  publish(delta: weave.IVolumesState): void {
    this.save();
    this.channel.publish(delta);
  }

  save(): void {
    writeFileAtomic(this.file, JSON.stringify({ volumes: [...this.state.volumes.values()] }));
  }

  /** Tells every host which snapshots we hold (the newest of each volume). */
  async publishHeld(): Promise<void> {
    const b = await this.backend();
    this.openBackend = b;
    const held = new Map<string, number>();
    for (const [name, h] of await b.list()) if (h.snapshots.length) held.set(name, h.snapshots.at(-1)!);
    const d = this.state.putHeld(held);
    if (d) this.channel.publish(d);
  }

  /** Drops everything this host holds of a volume. */
  async dropAll(name: string): Promise<void> {
    const b = await this.backend();
    const held = (await b.list()).get(name);
    if (!held) return;
    await b.dropLive(name);
    for (const g of held.snapshots) await b.dropSnapshot(name, g);
    await this.publishHeld();
  }

  /** The hosts that keep copies of a volume besides its owner: rendezvous over the live hosts. */
  replicaHosts(r: VolumeRecord): string[] {
    return this.net.membership
      .members()
      .filter((h) => h !== r.owner)
      .sort((a, b) => score(r.name, b) - score(r.name, a) || (a < b ? -1 : 1))
      .slice(0, r.replicas - 1);
  }

  private changed(names: string[]): void {
    // A removal or a record from a restart: other hosts' copies of a removed volume go.
    for (const n of names) {
      if (!this.state.volumes.get(n)?.deleted || !this.backendP) continue;
      void this.serial(n, () => this.dropAll(n)).catch(() => {});
    }
  }
}

/** A volume name as a user gave it (API, CLI, Docker): returned when valid, else a one-line refusal. */
export function checkName(name: string): string {
  if (!VOLUME_NAME.test(name)) {
    throw new UserError(
      `invalid volume name "${name.slice(0, 70)}": letters, digits, _ . -, ` +
        'at most 128, starting with a letter or digit',
    );
  }
  return name;
}
