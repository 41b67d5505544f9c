// The volume manager: which volumes exist, which host owns each (the `volumes` channel), and the
// moves that bring a volume to the host that mounts it. A move is two-phase: the destination pulls a
// snapshot while the volume's users keep running, then asks for the last increment (the owner stops
// the users first and holds the volume for it), then asks the owner to commit: the owner writes the
// destination as the new owner, and only then does the destination make its copy writable. Killed
// or cut off at any point, the owner still owns a whole copy, and asking again completes the move.
import { existsSync, readFileSync } from 'node:fs';
import { log } from '../common/log.js';
import { writeFileAtomic } from '../common/files.js';
import { NotFound, UserError } from '../common/errors.js';
import { nextVersion } from '../common/channel.js';
import { formatBytes } from '../common/format.js';
import { KeyedSerial } from '../common/keyed-serial.js';
import { score } from '../common/rendezvous.js';
import type { RequestHandler } from '../common/channel.js';
import { GossipChannel, handler, requestSpec, type RequestSpec } from '../gossip/typed-channel.js';
import { weave } from '../proto/gen/weave.js';
import { VOLUME_NAME, type HeldVolume, type VolumeBackend } from './backend.js';
import { VOLUMES, VolumesState, type VolumeRecord } from './state.js';
import { IDLE_MS, Outgoing, pull } from './transfer.js';
import type { PluginVolumes } from './plugin.js';

const SEND = requestSpec('volumes.send', weave.VolumeSendRequest, weave.VolumeSendReply);
const CHUNK = requestSpec('volumes.chunk', weave.VolumeChunkRequest, weave.VolumeChunkReply);
const OP = requestSpec('volumes.op', weave.VolumeOpRequest, weave.VolumeOpReply);

/** The longest a move asked of another host may take. */
const MOVE_TIMEOUT_MS = 3_600_000;
/** How long the owner waits for a volume's users to stop and unmount it before the last increment. */
const UNMOUNT_WAIT_MS = 15_000;

/** What the manager needs of the cluster; the composition root wires it to the control plane and the scheduler. */
export interface VolumeNet {
  readonly name: string;
  nickname(peer: string): string;
  reachable(peer: string): boolean;
  /** Declared dead by a majority of the hosts (the scheduler's membership): its volumes may be promoted elsewhere. */
  dead(peer: string): boolean;
  /** The hosts that may hold copies: those not declared dead, ourselves included. */
  members(): string[];
  request<Q, R>(peer: string, spec: RequestSpec<Q, R>, req: Q, timeoutMs?: number): Promise<R>;
}

export interface VolumeOptions {
  /** Opens this host's pool; called once, when a volume is first needed here. */
  open(): Promise<VolumeBackend>;
  /** Stops this host's containers that use the volume (before the last increment of a move). */
  stopUsers(name: string): Promise<void>;
  /** The names of this host's running containers that use the volume (Docker says so even after our restart). */
  users(name: string): Promise<string[]>;
  /** Where the channel's volume records are kept across restarts. */
  file: string;
  replicateIntervalMs: number;
}

/** A transfer in progress, for `weave volume inspect` and the report. */
export interface TransferView { name: string; peer: string; direction: 'in' | 'out'; gen: number; bytes: number; started: number; full: boolean }

export interface VolumeView {
  name: string; owner: string; ownerNickname: string; replicas: number; here: boolean; mounted: number;
  copies: { host: string; nickname: string; gen: number }[]; transfer?: TransferView; path?: string;
}

export class VolumeManager {
  readonly state: VolumesState;
  readonly channel: GossipChannel<weave.IVolumesState>;
  readonly requests: RequestHandler[];
  /** Docker's mount ids per volume mounted here. */
  private readonly mounts = new Map<string, Set<string>>();
  private readonly outgoing = new Map<string, Outgoing>();
  private readonly transfers = new Map<string, TransferView>();
  /** Volumes held for the destination of a move after their last increment: nothing mounts them here. */
  private readonly leaving = new Map<string, { to: string; gen: number; until: number }>();
  /** One operation at a time per volume here (a mount, a move, a replication, a removal). */
  private readonly busy = new KeyedSerial();
  private backendP?: Promise<VolumeBackend>;
  private timer?: NodeJS.Timeout;
  private replicating = false;
  counters = { movesIn: 0, movesOut: 0, replications: 0, bytesIn: 0, bytesOut: 0, promotions: 0 };

  constructor(private readonly net: VolumeNet, private readonly o: VolumeOptions) {
    this.state = new VolumesState(net.name, Date.now, (names) => this.changed(names));
    this.channel = new GossipChannel(VOLUMES, () => this.state);
    if (existsSync(o.file)) {
      const saved = JSON.parse(readFileSync(o.file, 'utf8')) as { volumes: VolumeRecord[] };
      this.state.merge({ volumes: saved.volumes }, undefined);
    }
    this.requests = [answer(SEND, (from, q) => this.onSend(from, q)), answer(CHUNK, (_from, q) => this.onChunk(q)), answer(OP, (from, q) => this.onOp(from, q))];
  }

  async start(): Promise<void> {
    // A host that had volumes opens its pool at once: its copies are in the channel, and Docker may ask.
    if (this.state.volumes.size) await this.publishHeld().catch((err: Error) => log.warn(`volumes: ${err.message}`));
    this.timer = setInterval(() => void this.tick(), Math.min(this.o.replicateIntervalMs, 1000));
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    for (const t of this.outgoing.values()) t.cancel();
    if (this.backendP) await (await this.backendP.catch(() => undefined))?.close();
  }

  private backend(): Promise<VolumeBackend> {
    if (!this.backendP) {
      this.backendP = this.o.open();
      this.backendP.then((b) => { this.openBackend = b; }, () => { this.backendP = undefined; }); // a pool that failed may be made later
    }
    return this.backendP;
  }

  /** Runs one operation on a volume at a time, here. */
  private serial<T>(name: string, fn: () => Promise<T>): Promise<T> { return this.busy.run(name, fn); }

  // ---- what users ask (the API, the CLI, Docker's plugin calls) ----

  async create(name: string, replicas = 1): Promise<VolumeView> {
    checkName(name);
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 16) throw new UserError(`invalid replicas ${replicas}: expected 1..16`);
    return this.serial(name, async () => {
      const r = this.state.live(name);
      if (r) throw new UserError(`volume ${name} exists already (on ${this.net.nickname(r.owner)})`);
      const b = await this.backend();
      if ((await b.list()).get(name)?.live) throw new UserError(`volume ${name} exists already here (a copy no record names: remove it from ${b.path(name)})`);
      await b.create(name);
      this.publish(this.state.put({ name, owner: this.net.name, replicas, deleted: false, gen: 0 }));
      log.info(`volume ${name} created (${replicas} ${replicas === 1 ? 'copy' : 'copies'})`);
      return this.view(name)!;
    });
  }

  /** Removes a volume everywhere: asked of its owner, which refuses while a container uses it. */
  async remove(name: string): Promise<string> {
    const r = this.record(name);
    if (r.owner === this.net.name) return this.removeOwned(name);
    if (!this.net.reachable(r.owner)) throw new UserError(`volume ${name} is on ${this.net.nickname(r.owner)}, which is unreachable`);
    return (await this.ask(r.owner, OP, { op: 'remove', name }, 30_000)).message ?? '';
  }

  /** Makes the volume writable here, moving it here first; its directory. Docker's Mount. */
  async mount(name: string, id: string): Promise<string> {
    const path = await this.ensureLocal(name);
    const ids = this.mounts.get(name) ?? new Set<string>();
    ids.add(id);
    this.mounts.set(name, ids);
    return path;
  }

  unmount(name: string, id: string): void {
    const ids = this.mounts.get(name);
    ids?.delete(id);
    if (ids?.size === 0) this.mounts.delete(name);
  }

  /** Moves a volume to a host (`weave volume move`): the destination does the work. */
  async move(name: string, to: string): Promise<string> {
    const r = this.record(name);
    if (r.owner === to) return `volume ${name} is on ${this.net.nickname(to)} already`;
    if (to === this.net.name) { await this.ensureLocal(name); return `volume ${name} moved to ${this.net.nickname(to)}`; }
    if (!this.net.reachable(to)) throw new UserError(`${this.net.nickname(to)} is unreachable`);
    // The destination does the work, for as long as the volume takes (a relayed request waits 60 s at most).
    return (await this.ask(to, OP, { op: 'pull', name }, MOVE_TIMEOUT_MS)).message ?? '';
  }

  /** The volume's writable copy here: ours already, moved from its owner, or promoted after the owner's death. */
  ensureLocal(name: string): Promise<string> {
    return this.serial(name, async () => {
      const r = this.record(name);
      const b = await this.backend();
      if (r.owner === this.net.name) {
        const lv = this.leaving.get(name);
        if (lv) throw new UserError(`volume ${name} is moving to ${this.net.nickname(lv.to)}`);
        if (!(await b.list()).get(name)?.live) await b.promote(name, r.gen); // a commit we did not hear of before a restart
        return b.path(name);
      }
      if (this.net.reachable(r.owner) && !this.net.dead(r.owner)) await this.moveHere(r, b);
      else if (this.net.dead(r.owner)) await this.promoteHere(r, b);
      else throw new UserError(`volume ${name} is on ${this.net.nickname(r.owner)}, which is unreachable`);
      return b.path(name);
    });
  }

  /** Where a volume's container should run: its owner while that lives, else the live host with its freshest copy. */
  home(name: string): string | undefined {
    const r = this.state.live(name);
    if (!r) return undefined;
    if (!this.net.dead(r.owner)) return r.owner;
    return this.state.holders(name).find((h) => !this.net.dead(h.peer))?.peer;
  }

  list(): VolumeView[] {
    return [...this.state.volumes.values()].filter((r) => !r.deleted).map((r) => this.view(r.name)!).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  view(name: string): VolumeView | undefined {
    const r = this.state.live(name);
    if (!r) return undefined;
    const here = r.owner === this.net.name;
    const kept = this.replicaHosts(r);
    return {
      name, owner: r.owner, ownerNickname: this.net.nickname(r.owner), replicas: r.replicas, here, mounted: this.mounts.get(name)?.size ?? 0,
      // The copies kept for it: a host's leftover of a move or an old replica goes at its next round.
      copies: this.state.holders(name).filter((h) => h.peer === r.owner || kept.includes(h.peer))
        .map((h) => ({ host: h.peer, nickname: this.net.nickname(h.peer), gen: h.gen })),
      transfer: this.transfers.get(name), ...(here && this.backendP ? { path: this.pathIfOpen(name) } : {}),
    };
  }

  /** `weave volume inspect`: the view, and where the copy here is. */
  inspect(name: string): VolumeView {
    this.record(name);
    return this.view(name)!;
  }

  /** Docker's volume plugin calls, on this manager. */
  plugin(): PluginVolumes {
    const entry = (v: VolumeView) => ({ name: v.name, ...(this.mounts.has(v.name) ? { mountpoint: this.pathIfOpen(v.name) } : {}) });
    return {
      create: async (name, opts) => {
        // Docker asks to create a volume it has not seen on this host; in the cluster it may exist already.
        if (this.state.live(name)) return;
        await this.create(name, opts.replicas === undefined ? 1 : Number(opts.replicas));
      },
      remove: async (name) => { if (this.state.live(name)) await this.remove(name); },
      mount: (name, id) => this.mount(name, id),
      unmount: async (name, id) => this.unmount(name, id),
      path: (name) => (this.mounts.has(name) ? this.pathIfOpen(name) : undefined),
      get: (name) => {
        const v = this.view(name);
        return v && { ...entry(v), status: { owner: v.ownerNickname || v.owner, replicas: v.replicas } };
      },
      list: () => this.list().map(entry),
    };
  }

  private pathIfOpen(name: string): string | undefined { return this.openBackend?.path(name); }
  private openBackend?: VolumeBackend;

  report() {
    return { backend: this.openBackend ? { kind: this.openBackend.kind, pool: this.openBackend.describe } : undefined,
      volumes: this.list(), transfers: [...this.transfers.values()], counters: this.counters };
  }

  /** Asks another host; its refusal is ours to show as it is. */
  private async ask<Q, R extends { error?: string | null }>(peer: string, spec: RequestSpec<Q, R>, q: Q, timeoutMs: number): Promise<R> {
    const r = await this.net.request(peer, spec, q, timeoutMs);
    if (r.error) throw new UserError(r.error);
    return r;
  }

  private record(name: string): VolumeRecord {
    checkName(name);
    const r = this.state.live(name);
    if (!r) throw new NotFound(`no volume ${name}`);
    return r;
  }

  // ---- moves, as the destination ----

  private async moveHere(r: VolumeRecord, b: VolumeBackend): Promise<void> {
    const started = Date.now();
    const first = await this.fetch(r.owner, r.name, b, false);
    const stopped = Date.now();
    const last = await this.fetch(r.owner, r.name, b, true);
    const reply = await this.ask(r.owner, OP, { op: 'commit', name: r.name, gen: last }, 30_000);
    if (reply.record) this.state.merge({ volumes: [reply.record] }, undefined);
    if (this.state.live(r.name)?.owner !== this.net.name) throw new Error(`${this.net.nickname(r.owner)} did not hand ${r.name} over`);
    await b.promote(r.name, last);
    this.counters.movesIn++;
    log.info(`volume ${r.name} moved here from ${this.net.nickname(r.owner)}: snapshot ${first} in ${stopped - started} ms, last increment and hand-over in ${Date.now() - stopped} ms`);
    await this.publishHeld();
  }

  /** Pulls the owner's newest snapshot (an increment on the newest one we hold, if it has that one); its generation. */
  private async fetch(from: string, name: string, b: VolumeBackend, final: boolean): Promise<number> {
    const parent = (await b.list()).get(name)?.snapshots.at(-1) ?? 0;
    const s = await this.ask(from, SEND, { name, parent, final }, final ? UNMOUNT_WAIT_MS + 15_000 : 30_000);
    if (s.kind !== b.kind) throw new UserError(`volume ${name}: ${this.net.nickname(from)} keeps volumes in ${s.kind}, this host in ${b.kind}`);
    // uint64s may decode as Longs: numbers, always, before a test for zero.
    const gen = Number(s.gen), base = Number(s.parent ?? 0) || undefined, size = Number(s.size ?? 0), free = await b.free();
    if (size > free) {
      await this.ask(from, OP, { op: 'cancel', name }, 10_000).catch(() => {});
      throw new UserError(`no room for volume ${name} on ${this.net.nickname(this.net.name)}: it holds ${formatBytes(size)}, the pool has ${formatBytes(free)} free`);
    }
    const t: TransferView = { name, peer: from, direction: 'in', gen, bytes: 0, started: Date.now(), full: !base };
    this.transfers.set(name, t);
    try {
      const bytes = await pull((seq) => this.ask(from, CHUNK, { transfer: s.transfer, seq }, 30_000).then((c) => ({ data: c.data ?? new Uint8Array(), eof: !!c.eof })),
        (data) => b.receive(name, gen, base, data), (n) => { t.bytes = n; });
      this.counters.bytesIn += bytes;
    } finally {
      this.transfers.delete(name);
    }
    return gen;
  }

  /** The owner was declared dead: our copy becomes the volume, if it is the freshest a live host holds. */
  private async promoteHere(r: VolumeRecord, b: VolumeBackend): Promise<void> {
    const best = this.state.holders(r.name).find((h) => !this.net.dead(h.peer));
    if (best?.peer !== this.net.name) {
      throw new UserError(`volume ${r.name} was on ${this.net.nickname(r.owner)}, which is dead; ${best ? `its freshest copy is on ${this.net.nickname(best.peer)}` : 'no live host has a copy'}`);
    }
    await b.promote(r.name, best.gen);
    this.publish(this.state.put({ name: r.name, owner: this.net.name, replicas: r.replicas, deleted: false, gen: best.gen }));
    this.counters.promotions++;
    log.warn(`volume ${r.name}: its owner ${this.net.nickname(r.owner)} is dead; promoted our copy (snapshot ${best.gen}, ${Math.round((Date.now() - best.gen) / 1000)} s old)`);
  }

  // ---- as the owner ----

  private async onSend(from: string, q: weave.IVolumeSendRequest): Promise<weave.IVolumeSendReply> {
    const name = q.name ?? '';
    const r = this.record(name);
    if (r.owner !== this.net.name) throw new Error(`volume ${name} is not here (${this.net.nickname(r.owner)} has it)`);
    const lv = this.leaving.get(name);
    if (lv && lv.to !== from) throw new Error(`volume ${name} is moving to ${this.net.nickname(lv.to)}`);
    const b = await this.backend();
    if (q.final) {
      this.leaving.set(name, { to: from, gen: 0, until: Date.now() + IDLE_MS + UNMOUNT_WAIT_MS });
      try {
        await this.o.stopUsers(name);
        await waitUntil(() => !this.mounts.has(name), UNMOUNT_WAIT_MS);
        if (this.mounts.has(name)) throw new Error(`volume ${name} is still mounted here after its containers were stopped`);
      } catch (err) {
        this.leaving.delete(name);
        throw err;
      }
    }
    const held = (await b.list()).get(name);
    const gen = nextVersion(Math.max(r.gen, held?.snapshots.at(-1) ?? 0, ...[...this.state.hosts.values()].map((h) => h.held.get(name) ?? 0)), Date.now());
    await b.snapshot(name, gen);
    if (q.final) this.leaving.set(name, { to: from, gen, until: Date.now() + IDLE_MS });
    const asked = Number(q.parent ?? 0);
    const parent = asked && held?.snapshots.includes(asked) ? asked : undefined;
    const t: TransferView = { name, peer: from, direction: 'out', gen, bytes: 0, started: Date.now(), full: !parent };
    const out = new Outgoing(name, gen, from, b.send(name, gen, parent));
    this.outgoing.set(out.id, out);
    this.transfers.set(name, t);
    return { transfer: out.id, gen, parent: parent ?? 0, kind: b.kind, size: parent ? 0 : await b.size(name) };
  }

  private async onChunk(q: weave.IVolumeChunkRequest): Promise<weave.IVolumeChunkReply> {
    const out = this.outgoing.get(q.transfer ?? '');
    if (!out) throw new Error('no such transfer (it ended, or its sender restarted)');
    const c = await out.chunk(q.seq ?? 0);
    const t = this.transfers.get(out.name);
    if (t?.direction === 'out') t.bytes = out.bytes;
    // Done; kept until it has been idle a while, for a receiver whose last reply was lost.
    if (c.eof && t?.gen === out.gen) { this.counters.bytesOut += out.bytes; this.transfers.delete(out.name); }
    const lv = this.leaving.get(out.name);
    if (lv) lv.until = Date.now() + IDLE_MS;
    return c;
  }

  private async onOp(from: string, q: weave.IVolumeOpRequest): Promise<weave.IVolumeOpReply> {
    const name = q.name ?? '';
    switch (q.op) {
      case 'commit': return this.serial(name, async () => {
        const r = this.record(name);
        const lv = this.leaving.get(name);
        // Asked again after a reply was lost: the record already says so.
        if (r.owner === from && r.gen === Number(q.gen)) return { record: r };
        if (r.owner !== this.net.name || lv?.to !== from || lv.gen !== Number(q.gen)) throw new Error(`volume ${name}: no move to ${this.net.nickname(from)} at snapshot ${q.gen} to commit`);
        const delta = this.state.put({ name, owner: from, replicas: r.replicas, deleted: false, gen: lv.gen });
        this.save(); // before the reply: a restart must not make us the owner again
        this.publish(delta);
        this.leaving.delete(name);
        this.counters.movesOut++;
        await (await this.backend()).dropLive(name); // our last snapshot stays: a copy
        await this.publishHeld();
        log.info(`volume ${name} handed over to ${this.net.nickname(from)} (snapshot ${lv.gen})`);
        return { record: this.state.live(name)! };
      });
      case 'pull': return { message: await this.move(name, this.net.name) };
      case 'cancel': return { message: this.cancel(from, name) };
      case 'remove': return { message: await this.removeOwned(name) };
      default: throw new Error(`unknown volume operation "${String(q.op).slice(0, 20)}"`);
    }
  }

  /** A receiver gave up before it began: its transfers of the volume end, and a held volume is ours again. */
  private cancel(from: string, name: string): string {
    for (const [id, t] of this.outgoing) if (t.name === name && t.to === from) { t.cancel(); this.outgoing.delete(id); }
    if (this.transfers.get(name)?.peer === from) this.transfers.delete(name);
    if (this.leaving.get(name)?.to === from) this.leaving.delete(name);
    return '';
  }

  private removeOwned(name: string): Promise<string> {
    return this.serial(name, async () => {
      const r = this.record(name);
      if (r.owner !== this.net.name) throw new Error(`volume ${name} is not here (${this.net.nickname(r.owner)} has it)`);
      const users = await this.o.users(name);
      if (users.length || this.mounts.has(name)) throw new UserError(`volume ${name} is in use by a container on ${this.net.nickname(this.net.name)}${users.length ? ` (${users.join(', ')})` : ''}`);
      if (this.leaving.has(name)) throw new UserError(`volume ${name} is moving to ${this.net.nickname(this.leaving.get(name)!.to)}`);
      this.publish(this.state.put({ ...r, deleted: true }));
      await this.dropAll(name);
      return `volume ${name} removed`;
    });
  }

  // ---- the channel, copies, replication ----

  private publish(delta: weave.IVolumesState): void {
    this.save();
    this.channel.publish(delta);
  }

  private save(): void {
    writeFileAtomic(this.o.file, JSON.stringify({ volumes: [...this.state.volumes.values()] }));
  }

  /** Tells every host which snapshots we hold (the newest of each volume). */
  private async publishHeld(): Promise<void> {
    const b = await this.backend();
    this.openBackend = b;
    const held = new Map<string, number>();
    for (const [name, h] of await b.list()) if (h.snapshots.length) held.set(name, h.snapshots.at(-1)!);
    const d = this.state.putHeld(held);
    if (d) this.channel.publish(d);
  }

  private changed(names: string[]): void {
    // A removal or a record from a restart: other hosts' copies of a removed volume go.
    for (const n of names) if (this.state.volumes.get(n)?.deleted && this.backendP) void this.serial(n, () => this.dropAll(n)).catch(() => {});
  }

  private async dropAll(name: string): Promise<void> {
    const b = await this.backend();
    const held = (await b.list()).get(name);
    if (!held) return;
    await b.dropLive(name);
    for (const g of held.snapshots) await b.dropSnapshot(name, g);
    await this.publishHeld();
  }

  /** The hosts that keep copies of a volume besides its owner: rendezvous over the live hosts. */
  replicaHosts(r: VolumeRecord): string[] {
    return this.net.members().filter((h) => h !== r.owner).sort((a, b) => score(r.name, b) - score(r.name, a) || (a < b ? -1 : 1)).slice(0, r.replicas - 1);
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    for (const [name, lv] of this.leaving) if (lv.until < now) { this.leaving.delete(name); log.warn(`volume ${name}: the move to ${this.net.nickname(lv.to)} was not committed; it stays here`); }
    for (const [id, t] of this.outgoing) if (t.lastUse + IDLE_MS < now) { t.cancel(); this.outgoing.delete(id); this.transfers.delete(t.name); }
    if (this.replicating || now - this.lastReplication < this.o.replicateIntervalMs) return;
    // A host with nothing of volumes leaves its pool unmade until it keeps a copy of one.
    if (!this.backendP && ![...this.state.volumes.values()].some((r) => !r.deleted && r.owner !== this.net.name && this.replicaHosts(r).includes(this.net.name))) return;
    this.replicating = true;
    this.lastReplication = now;
    try { await this.replicate(); } catch (err) { log.warn(`volumes: ${(err as Error).message}`); } finally { this.replicating = false; }
  }
  private lastReplication = 0;

  /** Pulls an increment of every volume this host keeps a copy of; drops copies nobody needs. */
  private async replicate(): Promise<void> {
    const b = await this.backend();
    const local = await b.list();
    for (const r of this.state.volumes.values()) {
      if (r.deleted || r.owner === this.net.name || this.busy.busy(r.name)) continue;
      const mine = this.replicaHosts(r).includes(this.net.name);
      if (mine && this.net.reachable(r.owner) && !this.net.dead(r.owner)) {
        await this.serial(r.name, async () => {
          await this.fetch(r.owner, r.name, b, false);
          await this.prune(r.name, b);
          this.counters.replications++;
        }).catch((err: Error) => log.warn(`volume ${r.name}: replicating from ${this.net.nickname(r.owner)}: ${err.message}`));
      } else if (!mine && local.has(r.name) && this.net.reachable(r.owner) && !this.mounts.has(r.name)) {
        await this.serial(r.name, () => this.dropAll(r.name)).catch(() => {});
      }
    }
    for (const r of this.state.volumes.values()) if (!r.deleted && r.owner === this.net.name && !this.busy.busy(r.name)) await this.prune(r.name, b);
    await this.publishHeld();
  }

  /** Keeps the newest snapshot, and on the owner those other hosts hold (the bases of their next increments). */
  private async prune(name: string, b: VolumeBackend): Promise<void> {
    const held: HeldVolume | undefined = (await b.list()).get(name);
    if (!held) return;
    const needed = new Set([held.snapshots.at(-1), ...[...this.state.hosts.values()].map((h) => h.held.get(name))]);
    const sending = new Set([...this.outgoing.values()].filter((t) => t.name === name).map((t) => t.gen));
    for (const g of held.snapshots) if (!needed.has(g) && !sending.has(g)) await b.dropSnapshot(name, g);
  }
}

/** A request handler whose failures travel back as the reply's error, in one line. */
const answer = <Q, R extends { error?: string | null }>(spec: RequestSpec<Q, R>, fn: (from: string, q: Q) => Promise<R>) =>
  handler(spec, async (from, q) => { try { return await fn(from, q); } catch (err) { return { error: (err as Error).message.split('\n')[0] } as R; } });

/** A volume name as a user gave it (API, CLI, Docker): returned when valid, else a one-line refusal. */
export function checkName(name: string): string {
  if (!VOLUME_NAME.test(name)) throw new UserError(`invalid volume name "${name.slice(0, 70)}": letters, digits, _ . -, at most 128, starting with a letter or digit`);
  return name;
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}
