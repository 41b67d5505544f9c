import type { Members } from '../membership/members.js';
import { place, type Pin, type Placement } from './placement.js';
import { replicaVolume, type SchedHost } from './stack.js';
import type { ReplicaState, SchedulerState } from './state.js';
import type { ThisHost } from './this-host.js';

/** What the scheduler needs of the volume manager. */
export interface ReplicaVolumes {
  /**
   * The host a volume is on (its owner; after the owner's death the live host with its freshest
   * copy); undefined when it does not exist yet.
   */
  home(name: string): string | undefined;
  /** Creates the volume here unless it exists somewhere. */
  ensure(name: string, replicas: number): Promise<void>;
}

/**
 * The cluster as placement sees it, the same on every router: the deployed stacks, the members
 * whose container engines answer, where stateful replicas are pinned; and what each host says of
 * its replicas.
 */
export class Cluster {
  constructor(
    private readonly state: SchedulerState,
    private readonly membership: Members,
    private readonly here: ThisHost,
    private readonly volumes?: ReplicaVolumes,
  ) {}

  /** The hosts replicas may be placed on: members whose container engine answers. */
  hosts(): SchedHost[] {
    return this.membership
      .hosts()
      .filter((h) => !this.state.hosts.get(h.peer)?.engineError)
      .map((h) => ({ name: h.peer, labels: h.labels }));
  }

  placement(): Placement[] {
    return place(this.state.liveStacks(), this.hosts(), this.pin);
  }

  /** A stateful replica runs where its (first) volume is: data does not move on its own, the replica follows it. */
  readonly pin: Pin = (p, s) =>
    s.volumes.length ? this.volumes?.home(replicaVolume(p, s.volumes[0].name)) : undefined;

  /** What the members say of their replicas (we, what we know now), by host and replica. */
  reported(): (host: string, ident: string) => ReplicaState | undefined {
    const by = new Map<string, ReplicaState>();
    for (const peer of this.membership.members()) {
      const rs = peer === this.here.name ? this.here.replicas.values() : (this.state.hosts.get(peer)?.replicas ?? []);
      for (const r of rs) by.set(`${peer} ${r.ident}`, r);
    }
    return (host, ident) => by.get(`${host} ${ident}`);
  }
}
