// Replicas: every few seconds each host that keeps a copy of a volume (by rendezvous over the live
// hosts, replicaHosts) pulls an increment from its owner; copies nobody needs any more go, and so do
// snapshots no host needs as the base of its next increment.
import { log } from '../common/log.js';
import type { HeldVolume, VolumeBackend } from './backend.js';
import type { Mounts } from './mounts.js';
import type { Moves } from './moves.js';
import type { VolumeRecords } from './records.js';
import type { Transfers } from './transfers.js';

export class Replication {
  private replicating = false;
  private lastReplication = 0;

  constructor(
    private readonly records: VolumeRecords,
    private readonly moves: Pick<Moves, 'fetch'>,
    private readonly transfers: Pick<Transfers, 'sending'>,
    private readonly mounts: Pick<Mounts, 'has'>,
    private readonly intervalMs: number,
  ) {}

  /** A round of replication, when one is due and none is running. */
  async tick(now: number): Promise<void> {
    if (this.replicating || now - this.lastReplication < this.intervalMs) return;
    const { state, net } = this.records;
    // A host with nothing of volumes leaves its pool unmade until it keeps a copy of one.
    const keepsOne = () =>
      [...state.volumes.values()].some(
        (r) => !r.deleted && r.owner !== net.name && this.records.replicaHosts(r).includes(net.name),
      );
    if (!this.records.backendAsked && !keepsOne()) return;
    this.replicating = true;
    this.lastReplication = now;
    try {
      await this.replicate();
    } catch (err) {
      log.warn(`volumes: ${(err as Error).message}`);
    } finally {
      this.replicating = false;
    }
  }

  /** Pulls an increment of every volume this host keeps a copy of; drops copies nobody needs. */
  private async replicate(): Promise<void> {
    const { state, net, busy } = this.records;
    const b = await this.records.backend();
    const local = await b.list();
    for (const r of state.volumes.values()) {
      if (r.deleted || r.owner === net.name || busy.busy(r.name)) continue;
      const mine = this.records.replicaHosts(r).includes(net.name);
      if (mine && net.reachable(r.owner) && !net.membership.isDead(r.owner)) {
        await this.records
          .serial(r.name, async () => {
            await this.moves.fetch(r.owner, r.name, b, false);
            await this.prune(r.name, b);
            this.records.counters.replications++;
          })
          .catch((err: Error) => {
            log.warn(`volume ${r.name}: replicating from ${net.nickname(r.owner)}: ${err.message}`);
          });
      } else if (!mine && local.has(r.name) && net.reachable(r.owner) && !this.mounts.has(r.name)) {
        await this.records.serial(r.name, () => this.records.dropAll(r.name)).catch(() => {});
      }
    }
    for (const r of state.volumes.values()) {
      if (!r.deleted && r.owner === net.name && !busy.busy(r.name)) await this.prune(r.name, b);
    }
    await this.records.publishHeld();
  }

  /** Keeps the newest snapshot, and on the owner those other hosts hold (the bases of their next increments). */
  private async prune(name: string, b: VolumeBackend): Promise<void> {
    const held: HeldVolume | undefined = (await b.list()).get(name);
    if (!held) return;
    const theirs = [...this.records.state.hosts.values()].map((h) => h.held.get(name));
    const needed = new Set([held.snapshots.at(-1), ...theirs]);
    const sending = this.transfers.sending(name);
    for (const g of held.snapshots) if (!needed.has(g) && !sending.has(g)) await b.dropSnapshot(name, g);
  }
}
