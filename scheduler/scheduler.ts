import { existsSync, readFileSync } from 'node:fs';
import { log } from '../common/log.js';
import { UserError } from '../common/errors.js';
import { writeFileAtomic } from '../common/files.js';
import { GossipChannel } from '../gossip/typed-channel.js';
import type { IpamService } from '../ipam/service.js';
import type { weave } from '../proto/gen/weave.js';
import { canonicalStack, parseManifest, serviceDigest } from './manifest.js';
import { Membership, type MembershipView } from '../membership/majority.js';
import { place, unplaceable, type Pin, type Placement } from './placement.js';
import type { LocalReplica, ReplicaEngine } from './replicas.js';
import { SCHEDULER, SchedulerState, type ReplicaState } from './state.js';
import { replicaVolume, type Stack } from './stack.js';

/** What the scheduler needs of the control plane: who we are, whom the topology reaches. */
export interface SchedulerNet {
  readonly name: string;
  reachable(peer: string): boolean;
  nickname(peer: string): string;
}

export interface SchedulerOptions {
  hostTimeoutMs: number;
  labels: Record<string, string>;
  nickname: string;
  /** Where deployed stacks are kept across restarts. */
  file?: string;
  /** Replicas' volumes: where each is, and making one (here) the first time its replica starts. */
  volumes?: ReplicaVolumes;
}

/** What the scheduler needs of the volume manager. */
export interface ReplicaVolumes {
  /** The host a volume is on (its owner; after the owner's death the live host with its freshest copy); undefined when it does not exist yet. */
  home(name: string): string | undefined;
  /** Creates the volume here unless it exists somewhere. */
  ensure(name: string, replicas: number): Promise<void>;
}

/** Replica starts at once per host: Docker and IPAM serialise much of it anyway. */
const PARALLEL_STARTS = 4;
const OBSERVE_MS = 250;
/** A replica running this long after a restart has its restart backoff forgotten. */
const BACKOFF_RESET_MS = 10_000;
/** Containers are looked at every RECONCILE_EVERY membership ticks, and at once on any change of the scheduler's state. */
const RECONCILE_EVERY = 4;
/** A router that just started acts on its state after it has heard from a peer, or after this long alone. */
const SETTLE_MS = 3000;

/**
 * The leaderless scheduler in one router. Every router holds the same deployed stacks and host
 * records (a gossip channel), computes the same placement from them and the hosts not declared
 * dead, and runs only its own replicas. A replica's address belongs to its identity
 * (stack/service/index): it is claimed from whichever host had it, or taken over from a dead one.
 */
export class Scheduler {
  readonly channel: GossipChannel<weave.ISchedulerState>;
  readonly state: SchedulerState;
  private readonly membership: Membership;
  private incarnation = Date.now();
  private view: MembershipView = { lost: [], suspected: [], dead: [], fenced: false, quorum: true };
  /** This host's replica containers, by identity: their addresses are not handed over while here. */
  private local = new Map<string, LocalReplica>();
  private readonly replicas = new Map<string, ReplicaState>();
  /** Replicas between taking their address and being attached. */
  private readonly connecting = new Set<string>();
  /** Replicas whose containers died: how many restarts in a row, and when the last was. */
  private readonly backoff = new Map<string, { n: number; at: number }>();
  /** Why the container engine cannot be used, or '' (it answered last time). */
  private engineError = '';
  private published = '';
  private readonly started = Date.now();
  private heard = false;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;

  constructor(private readonly net: SchedulerNet, private readonly ipam: IpamService, private readonly engine: ReplicaEngine, private readonly o: SchedulerOptions) {
    const state = this.state = new SchedulerState(net.name, Date.now, () => this.kick());
    this.channel = new GossipChannel(SCHEDULER, () => ({
      merge: (m, from, sender) => { if (sender !== net.name) this.heard = true; return state.merge(m, from); },
      state: () => state.state(),
      get rejected() { return state.rejected; },
    }));
    this.membership = new Membership(net.name, o.hostTimeoutMs);
    this.load();
    // A replica's address is live here while it is attached, or being attached: it is not handed over then.
    // (Other identities move as their users say: `weave attach` on another host takes the address.)
    ipam.guard((ident) => this.connecting.has(ident) || (this.local.has(ident) && engine.attached(ident)));
  }

  start(): void {
    // Membership is cheap and decides how soon a death is acted on: it is looked at more often than containers.
    let n = 0;
    this.timer = setInterval(() => { this.observe(); if (++n % RECONCILE_EVERY === 0) this.kick(); }, OBSERVE_MS);
    this.observe();
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  // ---- what users ask ----

  /** `weave deploy`: the manifest becomes the stack's desired state everywhere; deploying the same again changes nothing. */
  deploy(text: string, name: string, source: string): { stack: string; changed: boolean; replicas: number } {
    const stack = parseManifest(text, name, source);
    const hosts = this.hosts();
    if (hosts.length === 0) throw new UserError(`no host can run containers now${this.engineError ? ` (here: ${this.engineError})` : ''}`);
    for (const [svc, s] of Object.entries(stack.services)) {
      const why = unplaceable(s, hosts);
      if (why) throw new UserError(`${source}: service ${svc}: ${why}`);
    }
    const spec = canonicalStack(stack);
    const replicas = Object.values(stack.services).reduce((n, s) => n + s.replicas, 0);
    const cur = this.state.stacks.get(name);
    if (cur && !cur.deleted && cur.spec === spec) return { stack: name, changed: false, replicas };
    this.channel.publish(this.state.putStack(name, spec));
    log.info(`stack ${name} deployed: ${replicas} replicas of ${Object.keys(stack.services).length} services`);
    return { stack: name, changed: true, replicas };
  }

  remove(name: string): { stack: string } {
    const cur = this.state.stacks.get(name);
    if (!cur || cur.deleted) throw new UserError(`no stack "${name}" is deployed`);
    this.channel.publish(this.state.putStack(name, undefined));
    log.info(`stack ${name} removed`);
    return { stack: name };
  }

  /** Every deployed stack: its services and how many of its replicas run (of `rows`, ps() when not given). */
  list(rows = this.ps()): { name: string; services: number; replicas: number; running: number }[] {
    return this.state.liveStacks().map((s) => ({
      name: s.name, services: Object.keys(s.services).length,
      replicas: Object.values(s.services).reduce((n, x) => n + x.replicas, 0),
      running: rows.filter((r) => r.stack === s.name && r.state === 'running').length,
    }));
  }

  /** Each replica: where it is placed, its address, and what that host says of it. */
  ps(name?: string) {
    if (name !== undefined && !this.state.liveStacks().some((s) => s.name === name)) throw new UserError(`no stack "${name}" is deployed`);
    const reported = new Map<string, ReplicaState & { host: string }>();
    for (const h of this.state.members()) for (const r of h.peer === this.net.name ? [...this.replicas.values()] : h.replicas) reported.set(`${h.peer} ${r.ident}`, { ...r, host: h.peer });
    return this.placement().filter((p) => name === undefined || p.stack === name).map((p) => {
      const r = p.host ? reported.get(`${p.host} ${p.ident}`) : undefined;
      const state = !p.host ? 'unplaced' : r?.state ?? (p.host === this.net.name || this.net.reachable(p.host) ? 'pending' : 'host unreachable');
      return { replica: p.ident, stack: p.stack, service: p.service, index: p.index, host: p.host ?? '', nickname: p.host ? this.nick(p.host) : '',
        address: r?.address || this.ipam.lookup(p.ident)[0]?.ip || '', state, since: r?.since ?? 0, error: r?.error || p.why || '' };
    });
  }

  report() {
    const replicas = this.ps();
    return {
      hostTimeoutMs: this.o.hostTimeoutMs, incarnation: this.incarnation, labels: this.o.labels, engineError: this.engineError, quorum: this.view.quorum, fenced: this.view.fenced, lost: this.view.lost,
      hosts: this.state.members().map((h) => ({ name: h.peer, nickname: this.nick(h.peer), labels: h.labels, reachable: h.peer === this.net.name || this.net.reachable(h.peer),
        fenced: h.fenced, engineError: h.engineError })),
      dead: [...this.state.deaths.values()].filter((d) => this.state.isDead(d.peer)).map((d) => ({ name: d.peer, nickname: this.nick(d.peer), at: d.at })),
      stacks: this.list(replicas),
      replicas,
      standby: [...this.local.keys()].filter((id) => !this.replicas.has(id)).sort(),
    };
  }

  // ---- the loop ----

  /** Runs the reconcile loop now, or once more after the run in progress. */
  private kick(): void {
    if (this.stopped || !this.timer) return;
    if (this.running) { this.again = true; return; }
    this.running = this.reconcile().catch((err: Error) => log.warn(`scheduler: ${err.message}`)).finally(() => {
      this.running = undefined;
      if (this.again) { this.again = false; this.kick(); }
    });
  }

  /** Membership, every tick and apart from the (slower) container work: whom we lost, who is dead, whether we are fenced. */
  private observe(): void {
    const now = Date.now();
    const death = this.state.deaths.get(this.net.name);
    if (death && death.incarnation >= this.incarnation) {
      this.incarnation = Math.max(now, death.incarnation + 1);
      log.warn(`the other hosts declared this one dead at ${new Date(death.at).toISOString()}: rejoining`);
    }
    const wasFenced = this.view.fenced;
    this.view = this.membership.observe(this.state.members(), (p) => this.net.reachable(p), now);
    if (this.view.fenced !== wasFenced) log.warn(this.view.fenced ? 'fenced: fewer than half of the hosts are reachable; this host stops its replicas' : 'a majority of the hosts is reachable again');
    for (const d of this.view.dead) {
      if (this.state.isDead(d.peer)) continue;
      log.warn(`host ${this.nick(d.peer)} is dead: a majority has lost it for ${this.o.hostTimeoutMs / 1000}s; its replicas are placed elsewhere`);
      this.channel.publish(this.state.declareDead(d.peer, d.incarnation));
    }
    this.publishSelf();
  }

  private async reconcile(): Promise<void> {
    this.save();
    let all: LocalReplica[];
    try {
      all = await this.engine.list();
    } catch (err) {
      const why = (err as Error).message.split('\n')[0];
      if (why !== this.engineError) log.warn(`scheduler: this host runs no replicas while its container engine cannot be used: ${why}`);
      this.engineError = why;
      this.replicas.clear();
      return this.publishSelf();
    }
    if (this.engineError) log.info('scheduler: the container engine answers again');
    this.engineError = '';
    this.local = new Map(all.map((r) => [r.ident, r]));
    if (this.view.fenced) await this.fence(all);
    // Replicas start only where a majority is in sight: a host cut off never starts what the others may be starting.
    else if (this.view.quorum && (this.heard || Date.now() - this.started > SETTLE_MS)) await this.converge(all);
    this.publishSelf();
  }

  /** Cut off from the majority: stop every replica here before the others can start them elsewhere. */
  private async fence(all: LocalReplica[]): Promise<void> {
    await Promise.all(all.map((r) => this.drop(r, false)));
  }

  private async converge(all: LocalReplica[]): Promise<void> {
    const placement = this.placement();
    const wanted = new Set(placement.map((p) => p.ident));
    const mine = placement.filter((p) => p.host === this.net.name);
    const mineIds = new Set(mine.map((p) => p.ident));
    const stacks = new Map(this.state.liveStacks().map((s) => [s.name, s]));
    const standby = this.standbys(stacks, mineIds);
    for (const r of all) if (!mineIds.has(r.ident) && !standby.has(r.ident)) await this.drop(r, !wanted.has(r.ident));
    for (const id of this.replicas.keys()) if (!mineIds.has(id)) this.replicas.delete(id);
    for (const id of this.backoff.keys()) if (!mineIds.has(id)) this.backoff.delete(id);
    await this.releaseUnwanted(wanted);
    const tasks = [...mine.map((p) => () => this.ensure(p, stacks.get(p.stack)!, placement)), ...[...standby.values()].map((p) => () => this.warm(p, stacks.get(p.stack)!))];
    await pool(tasks, PARALLEL_STARTS);
  }

  /**
   * Warm standbys: while a host is unreachable but not yet declared dead, the replicas that would
   * come here if it died are started already, unattached (on no network, no address): when the
   * death is declared they only need their addresses. Stateful services (volumes) wait for the death.
   */
  private standbys(stacks: Map<string, Stack>, mine: Set<string>): Map<string, Placement> {
    const hosts = this.hosts();
    const suspects = new Set(this.view.suspected);
    if (suspects.size === 0 || !this.view.quorum) return new Map();
    return new Map(place([...stacks.values()], hosts.filter((h) => !suspects.has(h.name)), this.pin)
      .filter((p) => p.host === this.net.name && !mine.has(p.ident) && stacks.get(p.stack)!.services[p.service].volumes.length === 0)
      .map((p) => [p.ident, p]));
  }

  private async warm(p: Placement, stack: Stack): Promise<void> {
    const spec = stack.services[p.service];
    const digest = serviceDigest(spec);
    const r = this.local.get(p.ident);
    if (r?.running && r.digest === digest) return;
    if (r) await this.drop(r, false);
    if (this.view.fenced) return;
    try {
      const id = await this.engine.start(p, spec, digest);
      this.local.set(p.ident, { id, ident: p.ident, digest, running: true });
    } catch (err) { log.warn(`standby for ${p.ident}: ${(err as Error).message.split('\n')[0]}`); }
  }

  /** One replica placed here: running the current spec, restarted per its policy, rolled when its turn comes. */
  private async ensure(p: Placement, stack: Stack, placement: Placement[]): Promise<void> {
    const spec = stack.services[p.service];
    const digest = serviceDigest(spec);
    const r = this.local.get(p.ident);
    if (r?.running && r.digest === digest) {
      if (Date.now() - (this.backoff.get(p.ident)?.at ?? 0) > BACKOFF_RESET_MS) this.backoff.delete(p.ident);
      if (this.engine.attached(p.ident) || (await this.engine.adopt(r))) return this.mark(p.ident, 'running', digest, r.id);
      return this.connect(p, digest, r.id); // a standby taking over (or a start cut short)
    }
    if (r?.running) return this.mayRoll(p, digest, placement) ? this.restart(p, spec, digest, r) : this.mark(p.ident, 'running', r.digest, r.id);
    const exited = r?.exitCode === undefined ? '' : `exit code ${r.exitCode}`;
    if (r && (spec.restart === 'no' || (spec.restart === 'on-failure' && r.exitCode === 0))) return this.mark(p.ident, 'exited', r.digest, r.id, exited);
    // A container that keeps dying is started again after 1, 2, 4 ... 60 s, as Docker's restart policies do.
    const b = this.backoff.get(p.ident);
    if (r && b && Date.now() < b.at + Math.min(1000 * 2 ** b.n, 60_000)) return this.mark(p.ident, 'restarting', r.digest, r.id, exited);
    if (r) this.backoff.set(p.ident, { n: b ? b.n + 1 : 0, at: Date.now() });
    return this.restart(p, spec, digest, r);
  }

  /** A rolling update takes one replica of a service at a time: this one when every lower-numbered one runs the new spec. */
  private mayRoll(p: Placement, digest: string, placement: Placement[]): boolean {
    const hosts = new Map(this.state.members().map((h) => [h.peer, h]));
    return placement.filter((q) => q.stack === p.stack && q.service === p.service && q.index < p.index && q.host).every((q) => {
      const r = q.host === this.net.name ? this.replicas.get(q.ident) : hosts.get(q.host!)?.replicas.find((x) => x.ident === q.ident);
      return r?.state === 'running' && r.digest === digest;
    });
  }

  private async restart(p: Placement, spec: Stack['services'][string], digest: string, old?: LocalReplica): Promise<void> {
    if (old) await this.drop(old, false);
    await this.connect(p, digest, undefined, spec);
  }

  /** Takes the replica's address and attaches its container: the one given, or a new one of spec. */
  private async connect(p: Placement, digest: string, id: string | undefined, spec?: Stack['services'][string]): Promise<void> {
    if (this.view.fenced) return;
    this.connecting.add(p.ident);
    try {
      this.mark(p.ident, 'starting', digest, id ?? '');
      const t0 = Date.now();
      const cidr = await this.address(p.ident);
      for (const v of spec?.volumes ?? []) await this.o.volumes?.ensure(replicaVolume(p, v.name), v.replicas);
      if (id) await this.engine.attach(p, id, cidr);
      else id = await this.engine.start(p, spec!, digest, cidr);
      this.local.set(p.ident, { id, ident: p.ident, digest, running: true });
      this.mark(p.ident, 'running', digest, id);
      log.info(`replica ${p.ident} ${spec ? 'started' : 'taken over by its standby'} with ${cidr} in ${Date.now() - t0} ms`);
    } catch (err) {
      this.mark(p.ident, 'waiting', digest, id ?? '', (err as Error).message.split('\n')[0]);
    } finally {
      this.connecting.delete(p.ident);
    }
  }

  /** The replica's own address: claimed where it is, taken over from a dead host, or allocated the first time. */
  private async address(ident: string): Promise<string> {
    const held = this.ipam.lookup(ident)[0];
    if (!held) return (await this.ipam.allocate(ident)).cidr;
    const owner = this.ipam.ownerOf(held.ip);
    if (owner && owner !== this.net.name && this.state.isDead(owner)) return (await this.ipam.takeover(ident, held.ip, owner)).cidr;
    return (await this.ipam.claim(ident, held.ip, Number(held.cidr.split('/')[1]))).cidr;
  }

  /** Removes a replica's container here; its address too when the replica is gone from every stack. */
  private async drop(r: LocalReplica, release: boolean): Promise<void> {
    await this.engine.remove(r);
    this.local.delete(r.ident);
    this.replicas.delete(r.ident);
    if (release) await this.ipam.release(r.ident).catch(() => {});
    log.info(`replica ${r.ident} stopped here${release ? ' and its address released' : ''}`);
  }

  /** Addresses we own of replicas no stack wants any more (scaled down, or their stack removed while elsewhere). */
  private async releaseUnwanted(wanted: Set<string>): Promise<void> {
    const stacks = new Set(this.state.stacks.keys());
    for (const ident of this.ipam.heldHere()) {
      const [stack, , index, extra] = ident.split('/');
      if (extra === undefined && index !== undefined && stacks.has(stack) && !wanted.has(ident) && !this.local.has(ident)) {
        await this.ipam.release(ident).catch(() => {});
      }
    }
  }

  private mark(ident: string, state: string, digest: string, container: string, error = ''): void {
    const cur = this.replicas.get(ident);
    const address = this.ipam.lookup(ident)[0]?.ip ?? '';
    const since = cur?.state === state ? cur.since : Date.now();
    this.replicas.set(ident, { ident, state, since, address, digest, container, error });
    if (cur?.state !== state || cur.address !== address || cur.error !== error) this.publishSelf();
  }

  // ---- helpers ----

  private placement(): Placement[] { return place(this.state.liveStacks(), this.hosts(), this.pin); }

  /** A stateful replica runs where its (first) volume is: data does not move on its own, the replica follows it. */
  private readonly pin: Pin = (p, s) => (s.volumes.length ? this.o.volumes?.home(replicaVolume(p, s.volumes[0].name)) : undefined);
  /** Whether a majority declared the host dead. */
  isDead(peer: string): boolean { return this.state.isDead(peer); }

  /** The hosts not declared dead, by name. */
  members(): string[] { return this.state.members().map((h) => h.peer); }

  /** The hosts replicas may be placed on: members whose container engine answers. */
  private hosts() { return this.state.members().filter((h) => !h.engineError).map((h) => ({ name: h.peer, labels: h.labels })); }
  private nick(peer: string): string { return peer === this.net.name ? this.o.nickname : this.net.nickname(peer) || this.state.hosts.get(peer)?.nickname || peer.slice(0, 12); }

  /** Our record, published when anything in it changed. */
  private publishSelf(): void {
    const r = { incarnation: this.incarnation, nickname: this.o.nickname, labels: this.o.labels, lost: this.view.lost,
      replicas: [...this.replicas.values()].sort((a, b) => (a.ident < b.ident ? -1 : 1)), fenced: this.view.fenced, engineError: this.engineError };
    const text = JSON.stringify(r);
    if (text === this.published) return;
    this.published = text;
    this.channel.publish(this.state.putSelf(r));
  }

  /**
   * Stacks, hosts and deaths outlive a restart: a router that comes back cut off must still know
   * the cluster it belongs to (alone, it would otherwise be a majority of one and run everything).
   * Of each host only who it is is kept, not what it said (whom it lost, its replicas' states): no
   * death is declared on old votes, and the file changes when the cluster does, not at every start.
   * Version 0 lets the hosts' live records (whatever their versions) replace these at the first exchange.
   */
  private save(): void {
    if (!this.o.file) return;
    const s = this.state.state();
    const text = JSON.stringify({ ...s, hosts: s.hosts!.map((h) => ({ peer: h.peer, incarnation: h.incarnation, nickname: h.nickname, labels: h.labels, version: 0 })) });
    if (text === this.saved) return;
    writeFileAtomic(this.o.file, text);
    this.saved = text;
  }
  private saved = '';

  private load(): void {
    if (!this.o.file || !existsSync(this.o.file)) return;
    try {
      this.state.merge(JSON.parse(readFileSync(this.o.file, 'utf8')) as weave.ISchedulerState, undefined);
    } catch (err) { log.warn(`cannot read ${this.o.file}: ${(err as Error).message}; the cluster's state comes back from peers`); }
  }
}

/** Runs tasks with at most n at once. */
async function pool(tasks: (() => Promise<void>)[], n: number): Promise<void> {
  let next = 0;
  const worker = async () => { while (next < tasks.length) await tasks[next++](); };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
}
