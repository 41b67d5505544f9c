import { log } from '../common/log.js';
import { JsonFile } from '../common/json-file.js';
import { GossipChannel } from '../gossip/typed-channel.js';
import type { weave } from '../proto/gen/weave.js';
import { Membership, type MembershipView } from './majority.js';
import type { Members, MembershipReport } from './members.js';
import { HOSTS, MembershipState, type HostRecord } from './state.js';

/** What membership needs of the control plane: who we are, whom the topology reaches, what it calls them. */
export interface MembershipNet {
  readonly name: string;
  reachable(peer: string): boolean;
  nickname(peer: string): string;
}

export interface MembershipOptions {
  hostTimeoutMs: number;
  /** In our record: the scheduler places by labels. */
  labels: Record<string, string>;
  nickname: string;
  /** Where the cluster's hosts and deaths are kept across restarts. */
  file?: string;
}

const OBSERVE_MS = 250;

/**
 * This router's membership: our record on the hosts channel, the others' records and the deaths,
 * and a tick that says whom we lost, declares the hosts a majority lost dead, and fences us when we
 * cannot see a majority. A host declared dead that is still running rejoins with a higher incarnation.
 */
export class MembershipService implements Members {
  readonly channel: GossipChannel<weave.IHostsState>;
  readonly state: MembershipState;
  private readonly majority: Membership;
  private incarnation = Date.now();
  private current: MembershipView = { lost: [], suspected: [], dead: [], fenced: false, quorum: true };
  private readonly listeners: (() => void)[] = [];
  private readonly file: JsonFile<weave.IHostsState>;
  private changed = true;
  private published = '';
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly net: MembershipNet,
    private readonly o: MembershipOptions,
  ) {
    const state = (this.state = new MembershipState(net.name, Date.now, () => {
      this.changed = true;
      for (const l of this.listeners) l();
    }));
    this.channel = new GossipChannel(HOSTS, () => state);
    this.majority = new Membership(net.name, o.hostTimeoutMs);
    this.file = new JsonFile(o.file);
    this.file.load((saved) => state.merge(saved, undefined));
  }

  start(): void {
    this.timer = setInterval(() => this.observe(), OBSERVE_MS);
    this.observe();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get view(): MembershipView {
    return this.current;
  }
  members(): string[] {
    return this.state.members().map((h) => h.peer);
  }
  hosts(): HostRecord[] {
    return this.state.members();
  }
  isDead(peer: string): boolean {
    return this.state.isDead(peer);
  }
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  nickname(peer: string): string {
    if (peer === this.net.name) return this.o.nickname;
    return this.net.nickname(peer) || this.state.hosts.get(peer)?.nickname || peer.slice(0, 12);
  }

  report(): MembershipReport {
    const { quorum, fenced, lost } = this.view;
    return {
      hostTimeoutMs: this.o.hostTimeoutMs,
      incarnation: this.incarnation,
      labels: this.o.labels,
      quorum,
      fenced,
      lost,
      hosts: this.state.members().map((h) => ({
        name: h.peer,
        nickname: this.nickname(h.peer),
        labels: h.labels,
        reachable: h.peer === this.net.name || this.net.reachable(h.peer),
        fenced: h.fenced,
      })),
      dead: [...this.state.deaths.values()]
        .filter((d) => this.state.isDead(d.peer))
        .map((d) => ({ name: d.peer, nickname: this.nickname(d.peer), at: d.at })),
    };
  }

  /** Every tick: whom we lost, who is dead, whether we are fenced. */
  private observe(): void {
    const now = Date.now();
    const death = this.state.deaths.get(this.net.name);
    if (death && death.incarnation >= this.incarnation) {
      this.incarnation = Math.max(now, death.incarnation + 1);
      log.warn(`the other hosts declared this one dead at ${new Date(death.at).toISOString()}: rejoining`);
    }
    const wasFenced = this.current.fenced;
    const view = (this.current = this.majority.observe(this.state.members(), (p) => this.net.reachable(p), now));
    if (view.fenced !== wasFenced) {
      log.warn(
        view.fenced
          ? 'fenced: fewer than half of the hosts are reachable; this host stops its replicas'
          : 'a majority of the hosts is reachable again',
      );
    }
    for (const d of view.dead) {
      if (this.state.isDead(d.peer)) continue;
      log.warn(
        `host ${this.nickname(d.peer)} is dead: a majority has lost it for ${this.o.hostTimeoutMs / 1000}s; ` +
          'its replicas are placed elsewhere',
      );
      this.channel.publish(this.state.declareDead(d.peer, d.incarnation));
    }
    this.publishSelf();
    if (this.changed) this.save();
  }

  /** Our record, published when anything in it changed. */
  private publishSelf(): void {
    const r = {
      incarnation: this.incarnation,
      nickname: this.o.nickname,
      labels: this.o.labels,
      lost: this.view.lost,
      fenced: this.view.fenced,
    };
    const text = JSON.stringify(r);
    if (text === this.published) return;
    this.published = text;
    this.channel.publish(this.state.putSelf(r));
  }

  /**
   * Hosts and deaths outlive a restart: a router that comes back cut off must still know the
   * cluster it belongs to (alone, it would otherwise be a majority of one and run everything).
   * Of each host only who it is is kept, not what it said (whom it lost): no death is declared on
   * old votes, and the file changes when the cluster does, not at every start. Version 0 lets the
   * hosts' live records (whatever their versions) replace these at the first exchange.
   */
  private save(): void {
    this.changed = false;
    const s = this.state.state();
    this.file.write({
      hosts: s.hosts!.map((h) => ({
        peer: h.peer,
        incarnation: h.incarnation,
        nickname: h.nickname,
        labels: h.labels,
        version: 0,
      })),
      deaths: s.deaths,
    });
  }
}
