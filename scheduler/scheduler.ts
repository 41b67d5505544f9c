import { log } from '../common/log.js';
import { NotFound, UserError } from '../common/errors.js';
import { JsonFile } from '../common/json-file.js';
import type { ReplicaView } from '../contract/report.js';
import { GossipChannel } from '../gossip/typed-channel.js';
import type { IpamService } from '../ipam/service.js';
import type { Members } from '../membership/members.js';
import type { weave } from '../proto/gen/weave.js';
import { Cluster, type ReplicaVolumes } from './cluster.js';
import { canonicalStack, parseManifest, servicesOf } from './manifest.js';
import { unplaceable } from './placement.js';
import { Reconciler } from './reconciler.js';
import type { ReplicaEngine } from './replicas.js';
import { ReplicaRunner } from './runner.js';
import { Standbys } from './standby.js';
import { SCHEDULER, SchedulerState } from './state.js';
import { ThisHost } from './this-host.js';

export type { ReplicaVolumes } from './cluster.js';

/** What the scheduler needs of the control plane: who we are, whom the topology reaches. */
export interface SchedulerNet {
  readonly name: string;
  reachable(peer: string): boolean;
}

export interface SchedulerOptions {
  /** Where deployed stacks are kept across restarts. */
  file?: string;
  /** Replicas' volumes: where each is, and making one (here) the first time its replica starts. */
  volumes?: ReplicaVolumes;
  /** The NetworkPolicies a manifest carries beside its services (the policy subsystem's). */
  policies?: StackPolicies;
}

/** A manifest's NetworkPolicy documents, in force for its stack (the stack is their namespace). */
export interface StackPolicies {
  /** Throws a one-line UserError naming the document and place of a bad one; changes nothing. */
  check(text: string, stack: string, source: string): void;
  /** Puts them in force, and takes away the stack's earlier ones that the manifest no longer has. */
  apply(text: string, stack: string, source: string): void;
  /** The stack is gone: so are its policies. */
  remove(stack: string): void;
}

/**
 * The leaderless scheduler in one router. Every router holds the same deployed stacks and hosts'
 * reports (a gossip channel), computes the same placement from them and the members (hosts not
 * declared dead, membership's), and runs only its own replicas. A replica's address belongs to its
 * identity (stack/service/index): it is claimed from whichever host had it, or taken over from a
 * dead one. This is its face (what users ask, the report); the work is in its parts: cluster.ts
 * (what placement sees), reconciler.ts (the loop), runner.ts (one replica), standby.ts (warm
 * standbys), this-host.ts (what this host runs and says of it).
 */
export class Scheduler {
  readonly channel: GossipChannel<weave.ISchedulerState>;
  readonly state: SchedulerState;
  private readonly here: ThisHost;
  private readonly cluster: Cluster;
  private readonly loop: Reconciler;
  private readonly file: JsonFile<weave.ISchedulerState>;
  private readonly policies?: StackPolicies;

  constructor(
    private readonly net: SchedulerNet,
    private readonly membership: Members,
    private readonly ipam: IpamService,
    engine: ReplicaEngine,
    o: SchedulerOptions,
  ) {
    this.policies = o.policies;
    const state = (this.state = new SchedulerState(net.name, Date.now, () => this.loop.kick()));
    this.channel = new GossipChannel(SCHEDULER, () => ({
      merge: (m, from, sender) => {
        if (sender !== net.name) this.loop.hear();
        return state.merge(m, from);
      },
      state: () => state.state(),
      get rejected() {
        return state.rejected;
      },
    }));
    const here = (this.here = new ThisHost(state, this.channel, ipam));
    const cluster = (this.cluster = new Cluster(state, membership, here, o.volumes));
    const runner = new ReplicaRunner(here, cluster, membership, ipam, engine, o.volumes);
    const standbys = new Standbys(here, cluster, membership, runner, engine);
    this.loop = new Reconciler(state, membership, here, cluster, runner, standbys, engine, ipam, () => this.save());
    membership.onChange(() => this.loop.kick());
    this.file = new JsonFile(o.file);
    this.file.load((saved) => state.merge({ stacks: saved.stacks }, undefined));
    // A replica's address is live here while it is attached, or being attached: it is not handed over then.
    // (Other identities move as their users say: `weave attach` on another host takes the address.)
    ipam.guard((ident) => here.connecting.has(ident) || (here.containers.has(ident) && engine.attached(ident)));
  }

  start(): void {
    this.loop.start();
  }
  stop(): Promise<void> {
    return this.loop.stop();
  }

  // ---- what users ask ----

  /**
   * `weave deploy`: the manifest becomes the stack's desired state everywhere; deploying the same
   * again changes nothing.
   */
  deploy(text: string, name: string, source: string): { stack: string; changed: boolean; replicas: number } {
    const stack = parseManifest(servicesOf(text).services, name, source);
    this.policies?.check(text, name, source);
    const hosts = this.cluster.hosts();
    if (hosts.length === 0) {
      const why = this.here.engineError ? ` (here: ${this.here.engineError})` : '';
      throw new UserError(`no host can run containers now${why}`);
    }
    for (const [svc, s] of Object.entries(stack.services)) {
      const why = unplaceable(s, hosts);
      if (why) throw new UserError(`${source}: service ${svc}: ${why}`);
    }
    const spec = canonicalStack(stack);
    const replicas = Object.values(stack.services).reduce((n, s) => n + s.replicas, 0);
    this.policies?.apply(text, name, source);
    const cur = this.state.stacks.get(name);
    if (cur && !cur.deleted && cur.spec === spec) return { stack: name, changed: false, replicas };
    this.channel.publish(this.state.putStack(name, spec));
    log.info(`stack ${name} deployed: ${replicas} replicas of ${Object.keys(stack.services).length} services`);
    return { stack: name, changed: true, replicas };
  }

  remove(name: string): { stack: string } {
    const cur = this.state.stacks.get(name);
    if (!cur || cur.deleted) throw new NotFound(`no stack "${name}" is deployed`);
    this.channel.publish(this.state.putStack(name, undefined));
    this.policies?.remove(name);
    log.info(`stack ${name} removed`);
    return { stack: name };
  }

  /** Every deployed stack: its services and how many of its replicas run (of `rows`, ps() when not given). */
  list(rows = this.ps()): { name: string; services: number; replicas: number; running: number }[] {
    return this.state.liveStacks().map((s) => ({
      name: s.name,
      services: Object.keys(s.services).length,
      replicas: Object.values(s.services).reduce((n, x) => n + x.replicas, 0),
      running: rows.filter((r) => r.stack === s.name && r.state === 'running').length,
    }));
  }

  /** Each replica: where it is placed, its address, and what that host says of it. */
  ps(name?: string): ReplicaView[] {
    if (name !== undefined && !this.state.liveStacks().some((s) => s.name === name)) {
      throw new NotFound(`no stack "${name}" is deployed`);
    }
    const reported = this.cluster.reported();
    const seen = (host: string) => host === this.net.name || this.net.reachable(host);
    return this.cluster
      .placement()
      .filter((p) => name === undefined || p.stack === name)
      .map((p) => {
        const r = p.host ? reported(p.host, p.ident) : undefined;
        const state = !p.host ? 'unplaced' : (r?.state ?? (seen(p.host) ? 'pending' : 'host unreachable'));
        return {
          replica: p.ident,
          stack: p.stack,
          service: p.service,
          index: p.index,
          host: p.host ?? '',
          nickname: p.host ? this.membership.nickname(p.host) : '',
          address: r?.address || this.ipam.lookup(p.ident)[0]?.ip || '',
          state,
          since: r?.since ?? 0,
          error: r?.error || p.why || '',
        };
      });
  }

  /** The scheduler's report, with membership's part (hosts, deaths, quorum, fencing), as users have seen it. */
  report() {
    const m = this.membership.report();
    const replicas = this.ps();
    return {
      hostTimeoutMs: m.hostTimeoutMs,
      incarnation: m.incarnation,
      labels: m.labels,
      engineError: this.here.engineError,
      quorum: m.quorum,
      fenced: m.fenced,
      lost: m.lost,
      hosts: m.hosts.map((h) => ({ ...h, engineError: this.state.hosts.get(h.name)?.engineError ?? '' })),
      dead: m.dead,
      stacks: this.list(replicas),
      replicas,
      standby: [...this.here.containers.keys()].filter((id) => !this.here.replicas.has(id)).sort(),
    };
  }

  /**
   * Stacks outlive a restart (the cluster's hosts too, in membership's file). What hosts said of
   * their replicas is not kept: it is news only while they say it.
   */
  private save(): void {
    this.file.write({ stacks: this.state.state().stacks });
  }
}
