// A volume's moves between hosts, both ends. A move is two-phase: the destination pulls a snapshot
// while the volume's users keep running, then asks for the last increment (the owner stops the users
// first and holds the volume for it), then asks the owner to commit: the owner writes the destination
// as the new owner, and only then does the destination make its copy writable. Killed or cut off at
// any point, the owner still owns a whole copy, and asking again completes the move. A replica's
// increment is a move's first phase, with no hand-over.
import { log } from '../common/log.js';
import { UserError } from '../common/errors.js';
import { nextVersion } from '../common/channel.js';
import { formatBytes } from '../common/format.js';
import type { weave } from '../proto/gen/weave.js';
import type { VolumeBackend } from './backend.js';
import type { Mounts } from './mounts.js';
import type { VolumeRecords } from './records.js';
import { ask, OP, SEND, type VolumeNet } from './requests.js';
import type { VolumeRecord } from './state.js';
import { IDLE_MS } from './transfer.js';
import type { Transfers } from './transfers.js';

/** How long the owner waits for a volume's users to stop and unmount it before the last increment. */
const UNMOUNT_WAIT_MS = 15_000;

export class Moves {
  /** Volumes held for the destination of a move after their last increment: nothing mounts them here. */
  private readonly leaving = new Map<string, { to: string; gen: number; until: number }>();

  constructor(
    private readonly records: VolumeRecords,
    private readonly transfers: Transfers,
    private readonly mounts: Pick<Mounts, 'has'>,
    private readonly stopUsers: (name: string) => Promise<void>,
  ) {}

  private get net(): VolumeNet {
    return this.records.net;
  }

  /** The host a volume of ours is held for, while it moves there. */
  movingTo(name: string): string | undefined {
    return this.leaving.get(name)?.to;
  }

  /** Gives up the moves whose destinations never committed. */
  expire(now: number): void {
    for (const [name, lv] of this.leaving) {
      if (lv.until >= now) continue;
      this.leaving.delete(name);
      log.warn(`volume ${name}: the move to ${this.net.nickname(lv.to)} was not committed; it stays here`);
    }
  }

  // ---- as the destination ----

  async moveHere(r: VolumeRecord, b: VolumeBackend): Promise<void> {
    const started = Date.now();
    const first = await this.fetch(r.owner, r.name, b, false);
    const stopped = Date.now();
    const last = await this.fetch(r.owner, r.name, b, true);
    const reply = await ask(this.net, r.owner, OP, { op: 'commit', name: r.name, gen: last }, 30_000);
    if (reply.record) this.records.state.merge({ volumes: [reply.record] }, undefined);
    if (this.records.state.live(r.name)?.owner !== this.net.name) {
      throw new Error(`${this.net.nickname(r.owner)} did not hand ${r.name} over`);
    }
    await b.promote(r.name, last);
    this.records.counters.movesIn++;
    log.info(
      `volume ${r.name} moved here from ${this.net.nickname(r.owner)}: ` +
        `snapshot ${first} in ${stopped - started} ms, last increment and hand-over in ${Date.now() - stopped} ms`,
    );
    await this.records.publishHeld();
  }

  /** Pulls the owner's newest snapshot (an increment on the newest one we hold, if it has that one); its generation. */
  async fetch(from: string, name: string, b: VolumeBackend, final: boolean): Promise<number> {
    const parent = (await b.list()).get(name)?.snapshots.at(-1) ?? 0;
    const s = await ask(this.net, from, SEND, { name, parent, final }, final ? UNMOUNT_WAIT_MS + 15_000 : 30_000);
    if (s.kind !== b.kind) {
      throw new UserError(
        `volume ${name}: ${this.net.nickname(from)} keeps volumes in ${s.kind}, ` + `this host in ${b.kind}`,
      );
    }
    // uint64s may decode as Longs: numbers, always, before a test for zero.
    const gen = Number(s.gen),
      base = Number(s.parent ?? 0) || undefined;
    const size = Number(s.size ?? 0),
      free = await b.free();
    if (size > free) {
      await ask(this.net, from, OP, { op: 'cancel', name }, 10_000).catch(() => {});
      throw new UserError(
        `no room for volume ${name} on ${this.net.nickname(this.net.name)}: ` +
          `it holds ${formatBytes(size)}, the pool has ${formatBytes(free)} free`,
      );
    }
    await this.transfers.pull(from, name, s.transfer, gen, !base, (data) => b.receive(name, gen, base, data));
    return gen;
  }

  // ---- as the owner ----

  /** A snapshot for `from`: the newest, made now; for the last increment, once the volume's users stopped. */
  async send(from: string, q: weave.IVolumeSendRequest): Promise<weave.IVolumeSendReply> {
    const name = q.name ?? '';
    const r = this.records.owned(name);
    const lv = this.leaving.get(name);
    if (lv && lv.to !== from) throw new Error(`volume ${name} is moving to ${this.net.nickname(lv.to)}`);
    const b = await this.records.backend();
    if (q.final) {
      this.leaving.set(name, { to: from, gen: 0, until: Date.now() + IDLE_MS + UNMOUNT_WAIT_MS });
      try {
        await this.stopUsers(name);
        await waitUntil(() => !this.mounts.has(name), UNMOUNT_WAIT_MS);
        if (this.mounts.has(name)) {
          throw new Error(`volume ${name} is still mounted here after its containers were stopped`);
        }
      } catch (err) {
        this.leaving.delete(name);
        throw err;
      }
    }
    const held = (await b.list()).get(name);
    const others = [...this.records.state.hosts.values()].map((h) => h.held.get(name) ?? 0);
    const gen = nextVersion(Math.max(r.gen, held?.snapshots.at(-1) ?? 0, ...others), Date.now());
    await b.snapshot(name, gen);
    if (q.final) this.leaving.set(name, { to: from, gen, until: Date.now() + IDLE_MS });
    const asked = Number(q.parent ?? 0);
    const parent = asked && held?.snapshots.includes(asked) ? asked : undefined;
    const transfer = this.transfers.serve(name, gen, from, !parent, b.send(name, gen, parent));
    return { transfer, gen, parent: parent ?? 0, kind: b.kind, size: parent ? 0 : await b.size(name) };
  }

  async chunk(q: weave.IVolumeChunkRequest): Promise<weave.IVolumeChunkReply> {
    const { name, reply } = await this.transfers.chunk(q);
    // A volume held for its destination stays held while the destination still pulls.
    const lv = this.leaving.get(name);
    if (lv) lv.until = Date.now() + IDLE_MS;
    return reply;
  }

  /** The destination has the last increment: it becomes the owner. */
  commit(from: string, q: weave.IVolumeOpRequest): Promise<weave.IVolumeOpReply> {
    const name = q.name ?? '';
    return this.records.serial(name, async () => {
      const r = this.records.record(name);
      const lv = this.leaving.get(name);
      // Asked again after a reply was lost: the record already says so.
      if (r.owner === from && r.gen === Number(q.gen)) return { record: r };
      if (r.owner !== this.net.name || lv?.to !== from || lv.gen !== Number(q.gen)) {
        throw new Error(`volume ${name}: no move to ${this.net.nickname(from)} at snapshot ${q.gen} to commit`);
      }
      const delta = this.records.state.put({ name, owner: from, replicas: r.replicas, deleted: false, gen: lv.gen });
      this.records.save(); // before the reply: a restart must not make us the owner again
      this.records.publish(delta);
      this.leaving.delete(name);
      this.records.counters.movesOut++;
      await (await this.records.backend()).dropLive(name); // our last snapshot stays: a copy
      await this.records.publishHeld();
      log.info(`volume ${name} handed over to ${this.net.nickname(from)} (snapshot ${lv.gen})`);
      return { record: this.records.state.live(name)! };
    });
  }

  /** A receiver gave up before it began: its transfers of the volume end, and a held volume is ours again. */
  cancel(from: string, name: string): string {
    this.transfers.cancel(from, name);
    if (this.leaving.get(name)?.to === from) this.leaving.delete(name);
    return '';
  }
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}
