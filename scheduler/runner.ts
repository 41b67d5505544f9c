import { log } from '../common/log.js';
import type { IpamService } from '../ipam/service.js';
import type { Members } from '../membership/members.js';
import type { Cluster, ReplicaVolumes } from './cluster.js';
import { serviceDigest } from './manifest.js';
import type { Placement } from './placement.js';
import type { LocalReplica, ReplicaEngine } from './replicas.js';
import { replicaVolume, type ServiceSpec, type Stack } from './stack.js';
import type { ThisHost } from './this-host.js';

/** A replica running this long after a restart has its restart backoff forgotten. */
const BACKOFF_RESET_MS = 10_000;

/**
 * One replica placed here: started with its address, restarted per its policy, rolled when its
 * turn comes, adopted after a router restart, taken over by its standby; and stopped.
 */
export class ReplicaRunner {
  /** Replicas whose containers died: how many restarts in a row, and when the last was. */
  private readonly backoff = new Map<string, { n: number; at: number }>();

  constructor(
    private readonly here: ThisHost,
    private readonly cluster: Cluster,
    private readonly membership: Members,
    private readonly ipam: IpamService,
    private readonly engine: ReplicaEngine,
    private readonly volumes?: ReplicaVolumes,
  ) {}

  /** Running the current spec, restarted per its policy, rolled when its turn comes. */
  async ensure(p: Placement, stack: Stack, placement: Placement[]): Promise<void> {
    const spec = stack.services[p.service];
    const digest = serviceDigest(spec);
    const r = this.here.containers.get(p.ident);
    if (r?.running && r.digest === digest) {
      if (Date.now() - (this.backoff.get(p.ident)?.at ?? 0) > BACKOFF_RESET_MS) this.backoff.delete(p.ident);
      if (this.engine.attached(p.ident) || (await this.engine.adopt(r))) {
        return this.here.mark(p.ident, 'running', digest, r.id);
      }
      return this.connect(p, digest, r.id); // a standby taking over (or a start cut short)
    }
    if (r?.running) {
      if (this.mayRoll(p, digest, placement)) return this.restart(p, spec, digest, r);
      return this.here.mark(p.ident, 'running', r.digest, r.id);
    }
    const exited = r?.exitCode === undefined ? '' : `exit code ${r.exitCode}`;
    if (r && (spec.restart === 'no' || (spec.restart === 'on-failure' && r.exitCode === 0))) {
      return this.here.mark(p.ident, 'exited', r.digest, r.id, exited);
    }
    // A container that keeps dying is started again after 1, 2, 4 ... 60 s, as Docker's restart policies do.
    const b = this.backoff.get(p.ident);
    if (r && b && Date.now() < b.at + Math.min(1000 * 2 ** b.n, 60_000)) {
      return this.here.mark(p.ident, 'restarting', r.digest, r.id, exited);
    }
    if (r) this.backoff.set(p.ident, { n: b ? b.n + 1 : 0, at: Date.now() });
    return this.restart(p, spec, digest, r);
  }

  /** Forgets the backoff of replicas no longer placed here. */
  keepBackoff(placedHere: Set<string>): void {
    for (const id of this.backoff.keys()) if (!placedHere.has(id)) this.backoff.delete(id);
  }

  /** Removes a replica's container here; its address too when the replica is gone from every stack. */
  async drop(r: LocalReplica, release: boolean): Promise<void> {
    await this.engine.remove(r);
    this.here.containers.delete(r.ident);
    this.here.replicas.delete(r.ident);
    if (release) await this.ipam.release(r.ident).catch(() => {});
    log.info(`replica ${r.ident} stopped here${release ? ' and its address released' : ''}`);
  }

  /**
   * A rolling update takes one replica of a service at a time: this one when every lower-numbered
   * one runs the new spec.
   */
  private mayRoll(p: Placement, digest: string, placement: Placement[]): boolean {
    const reported = this.cluster.reported();
    return placement
      .filter((q) => q.stack === p.stack && q.service === p.service && q.index < p.index && q.host)
      .every((q) => {
        const r = reported(q.host!, q.ident);
        return r?.state === 'running' && r.digest === digest;
      });
  }

  private async restart(p: Placement, spec: ServiceSpec, digest: string, old?: LocalReplica): Promise<void> {
    if (old) await this.drop(old, false);
    await this.connect(p, digest, undefined, spec);
  }

  /** Takes the replica's address and attaches its container: the one given, or a new one of spec. */
  private async connect(p: Placement, digest: string, id: string | undefined, spec?: ServiceSpec): Promise<void> {
    if (this.membership.view.fenced) return;
    this.here.connecting.add(p.ident);
    try {
      this.here.mark(p.ident, 'starting', digest, id ?? '');
      const t0 = Date.now();
      const cidr = await this.address(p.ident);
      for (const v of spec?.volumes ?? []) await this.volumes?.ensure(replicaVolume(p, v.name), v.replicas);
      if (id) await this.engine.attach(p, id, cidr);
      else id = await this.engine.start(p, spec!, digest, cidr);
      this.here.containers.set(p.ident, { id, ident: p.ident, digest, running: true });
      this.here.mark(p.ident, 'running', digest, id);
      const how = spec ? 'started' : 'taken over by its standby';
      log.info(`replica ${p.ident} ${how} with ${cidr} in ${Date.now() - t0} ms`);
    } catch (err) {
      this.here.mark(p.ident, 'waiting', digest, id ?? '', (err as Error).message.split('\n')[0]);
    } finally {
      this.here.connecting.delete(p.ident);
    }
  }

  /** The replica's own address: claimed where it is, taken over from a dead host, or allocated the first time. */
  private async address(ident: string): Promise<string> {
    const held = this.ipam.lookup(ident)[0];
    if (!held) return (await this.ipam.allocate(ident)).cidr;
    const owner = this.ipam.ownerOf(held.ip);
    if (owner && owner !== this.here.name && this.membership.isDead(owner)) {
      return (await this.ipam.takeover(ident, held.ip, owner)).cidr;
    }
    return (await this.ipam.claim(ident, held.ip, Number(held.cidr.split('/')[1]))).cidr;
  }
}
