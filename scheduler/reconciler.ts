import { log } from '../common/log.js';
import type { IpamService } from '../ipam/service.js';
import type { Members } from '../membership/members.js';
import type { Cluster } from './cluster.js';
import type { LocalReplica, ReplicaEngine } from './replicas.js';
import type { ReplicaRunner } from './runner.js';
import type { Standbys } from './standby.js';
import type { SchedulerState } from './state.js';
import type { ThisHost } from './this-host.js';

/** Replica starts at once per host: Docker and IPAM serialise much of it anyway. */
const PARALLEL_STARTS = 4;
/**
 * Containers are looked at this often (every fourth membership tick: membership is cheap and decides
 * how soon a death is acted on), and at once on any change of the scheduler's or membership's state.
 */
const RECONCILE_MS = 1000;
/** A router that just started acts on its state after it has heard from a peer, or after this long alone. */
const SETTLE_MS = 3000;

/** The reconcile loop: this host's containers brought to what the placement says of it, one run at a time. */
export class Reconciler {
  private readonly started = Date.now();
  private heard = false;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;

  /** `save` keeps the state on disk, at the start of each run. */
  constructor(
    private readonly state: SchedulerState,
    private readonly membership: Members,
    private readonly here: ThisHost,
    private readonly cluster: Cluster,
    private readonly runner: ReplicaRunner,
    private readonly standbys: Standbys,
    private readonly engine: ReplicaEngine,
    private readonly ipam: IpamService,
    private readonly save: () => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), RECONCILE_MS);
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** A peer spoke on the scheduler's channel: our state is theirs too now. */
  hear(): void {
    this.heard = true;
  }

  /** Runs the reconcile loop now, or once more after the run in progress. */
  kick(): void {
    if (this.stopped || !this.timer) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.reconcile()
      .catch((err: Error) => log.warn(`scheduler: ${err.message}`))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async reconcile(): Promise<void> {
    this.save();
    const here = this.here;
    let all: LocalReplica[];
    try {
      all = await this.engine.list();
    } catch (err) {
      const why = (err as Error).message.split('\n')[0];
      if (why !== here.engineError) {
        log.warn(`scheduler: this host runs no replicas while its container engine cannot be used: ${why}`);
      }
      here.engineError = why;
      here.replicas.clear();
      return here.publish();
    }
    if (here.engineError) log.info('scheduler: the container engine answers again');
    here.engineError = '';
    here.containers = new Map(all.map((r) => [r.ident, r]));
    const view = this.membership.view;
    if (view.fenced) await this.fence(all);
    // Replicas start only where a majority is in sight: a host cut off never starts what the others may be starting.
    else if (view.quorum && (this.heard || Date.now() - this.started > SETTLE_MS)) await this.converge(all);
    here.publish();
  }

  /** Cut off from the majority: stop every replica here before the others can start them elsewhere. */
  private async fence(all: LocalReplica[]): Promise<void> {
    await Promise.all(all.map((r) => this.runner.drop(r, false)));
  }

  private async converge(all: LocalReplica[]): Promise<void> {
    const placement = this.cluster.placement();
    const wanted = new Set(placement.map((p) => p.ident));
    const mine = placement.filter((p) => p.host === this.here.name);
    const mineIds = new Set(mine.map((p) => p.ident));
    const stacks = new Map(this.state.liveStacks().map((s) => [s.name, s]));
    const standby = this.standbys.pick(stacks, mineIds);
    for (const r of all) {
      if (!mineIds.has(r.ident) && !standby.has(r.ident)) await this.runner.drop(r, !wanted.has(r.ident));
    }
    for (const id of this.here.replicas.keys()) if (!mineIds.has(id)) this.here.replicas.delete(id);
    this.runner.keepBackoff(mineIds);
    await this.releaseUnwanted(wanted);
    const tasks = [
      ...mine.map((p) => () => this.runner.ensure(p, stacks.get(p.stack)!, placement)),
      ...[...standby.values()].map((p) => () => this.standbys.warm(p, stacks.get(p.stack)!)),
    ];
    await pool(tasks, PARALLEL_STARTS);
  }

  /** Addresses we own of replicas no stack wants any more (scaled down, or their stack removed while elsewhere). */
  private async releaseUnwanted(wanted: Set<string>): Promise<void> {
    const stacks = new Set(this.state.stacks.keys());
    for (const ident of this.ipam.heldHere()) {
      const [stack, , index, extra] = ident.split('/');
      if (
        extra === undefined &&
        index !== undefined &&
        stacks.has(stack) &&
        !wanted.has(ident) &&
        !this.here.containers.has(ident)
      ) {
        await this.ipam.release(ident).catch(() => {});
      }
    }
  }
}

/** Runs tasks with at most n at once. */
async function pool(tasks: (() => Promise<void>)[], n: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]();
  };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
}
