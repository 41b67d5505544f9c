// A volume's life as users ask for it: created on one host, which owns it; made writable where it
// is mounted (moved there from its owner, or promoted there after the owner's death); moved by
// hand; removed everywhere, by its owner only.
import { log } from '../common/log.js';
import { Conflict, UserError } from '../common/errors.js';
import type { VolumeBackend } from './backend.js';
import type { Mounts } from './mounts.js';
import type { Moves } from './moves.js';
import { checkName, type VolumeRecords } from './records.js';
import { ask, OP, type VolumeNet } from './requests.js';
import type { VolumeRecord } from './state.js';
import type { VolumeView, VolumeViews } from './views.js';

/** The longest a move asked of another host may take. */
const MOVE_TIMEOUT_MS = 3_600_000;

export class VolumeLifecycle {
  constructor(
    private readonly records: VolumeRecords,
    private readonly moves: Moves,
    private readonly mounts: Pick<Mounts, 'has'>,
    private readonly views: Pick<VolumeViews, 'view'>,
    /** The names of this host's running containers that use the volume. */
    private readonly users: (name: string) => Promise<string[]>,
  ) {}

  private get net(): VolumeNet {
    return this.records.net;
  }

  async create(name: string, replicas = 1): Promise<VolumeView> {
    checkName(name);
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 16) {
      throw new UserError(`invalid replicas ${replicas}: expected 1..16`);
    }
    return this.records.serial(name, async () => {
      const r = this.records.state.live(name);
      if (r) throw new Conflict(`volume ${name} exists already (on ${this.net.nickname(r.owner)})`);
      const b = await this.records.backend();
      if ((await b.list()).get(name)?.live) {
        throw new UserError(
          `volume ${name} exists already here ` + `(a copy no record names: remove it from ${b.path(name)})`,
        );
      }
      await b.create(name);
      this.records.publish(this.records.state.put({ name, owner: this.net.name, replicas, deleted: false, gen: 0 }));
      log.info(`volume ${name} created (${replicas} ${replicas === 1 ? 'copy' : 'copies'})`);
      return this.views.view(name)!;
    });
  }

  /** Removes a volume everywhere: asked of its owner, which refuses while a container uses it. */
  async remove(name: string): Promise<string> {
    const r = this.records.record(name);
    if (r.owner === this.net.name) return this.removeOwned(name);
    if (!this.net.reachable(r.owner)) {
      throw new UserError(`volume ${name} is on ${this.net.nickname(r.owner)}, which is unreachable`);
    }
    return (await ask(this.net, r.owner, OP, { op: 'remove', name }, 30_000)).message ?? '';
  }

  removeOwned(name: string): Promise<string> {
    return this.records.serial(name, async () => {
      const r = this.records.owned(name);
      const users = await this.users(name);
      if (users.length || this.mounts.has(name)) {
        throw new UserError(
          `volume ${name} is in use by a container on ${this.net.nickname(this.net.name)}` +
            `${users.length ? ` (${users.join(', ')})` : ''}`,
        );
      }
      this.notMoving(name);
      this.records.publish(this.records.state.put({ ...r, deleted: true }));
      await this.records.dropAll(name);
      return `volume ${name} removed`;
    });
  }

  /** Moves a volume to a host (`weave volume move`): the destination does the work. */
  async move(name: string, to: string): Promise<string> {
    const r = this.records.record(name);
    if (r.owner === to) return `volume ${name} is on ${this.net.nickname(to)} already`;
    if (to === this.net.name) {
      await this.ensureLocal(name);
      return `volume ${name} moved to ${this.net.nickname(to)}`;
    }
    if (!this.net.reachable(to)) throw new UserError(`${this.net.nickname(to)} is unreachable`);
    // The destination does the work, for as long as the volume takes (a relayed request waits 60 s at most).
    return (await ask(this.net, to, OP, { op: 'pull', name }, MOVE_TIMEOUT_MS)).message ?? '';
  }

  /** The volume's writable copy here: ours already, moved from its owner, or promoted after the owner's death. */
  ensureLocal(name: string): Promise<string> {
    return this.records.serial(name, async () => {
      const r = this.records.record(name);
      const b = await this.records.backend();
      if (r.owner === this.net.name) {
        this.notMoving(name);
        // A commit we did not hear of before a restart.
        if (!(await b.list()).get(name)?.live) await b.promote(name, r.gen);
        return b.path(name);
      }
      if (this.net.reachable(r.owner) && !this.net.membership.isDead(r.owner)) await this.moves.moveHere(r, b);
      else if (this.net.membership.isDead(r.owner)) await this.promoteHere(r, b);
      else throw new UserError(`volume ${name} is on ${this.net.nickname(r.owner)}, which is unreachable`);
      return b.path(name);
    });
  }

  /** Where a volume's container should run: its owner while that lives, else the live host with its freshest copy. */
  home(name: string): string | undefined {
    const r = this.records.state.live(name);
    if (!r) return undefined;
    if (!this.net.membership.isDead(r.owner)) return r.owner;
    return this.records.state.holders(name).find((h) => !this.net.membership.isDead(h.peer))?.peer;
  }

  /** Refuses to change a volume of ours while it is held for the destination of its move. */
  private notMoving(name: string): void {
    const to = this.moves.movingTo(name);
    if (to !== undefined) throw new UserError(`volume ${name} is moving to ${this.net.nickname(to)}`);
  }

  /** The owner was declared dead: our copy becomes the volume, if it is the freshest a live host holds. */
  private async promoteHere(r: VolumeRecord, b: VolumeBackend): Promise<void> {
    const best = this.records.state.holders(r.name).find((h) => !this.net.membership.isDead(h.peer));
    if (best?.peer !== this.net.name) {
      throw new UserError(
        `volume ${r.name} was on ${this.net.nickname(r.owner)}, which is dead; ` +
          `${best ? `its freshest copy is on ${this.net.nickname(best.peer)}` : 'no live host has a copy'}`,
      );
    }
    await b.promote(r.name, best.gen);
    const { name, replicas } = r;
    const delta = this.records.state.put({ name, owner: this.net.name, replicas, deleted: false, gen: best.gen });
    this.records.publish(delta);
    this.records.counters.promotions++;
    const age = Math.round((Date.now() - best.gen) / 1000);
    log.warn(
      `volume ${name}: its owner ${this.net.nickname(r.owner)} is dead; ` +
        `promoted our copy (snapshot ${best.gen}, ${age} s old)`,
    );
  }
}
