import type { GossipChannel } from '../gossip/typed-channel.js';
import type { IpamService } from '../ipam/service.js';
import type { weave } from '../proto/gen/weave.js';
import type { LocalReplica } from './replicas.js';
import type { ReplicaState, SchedulerState } from './state.js';

/**
 * This host as the scheduler's parts share it: its replicas' containers, what it says of them and
 * of its container engine, and its record on the channel, published when any of that changes.
 */
export class ThisHost {
  readonly name: string;
  /** This host's replica containers, by identity: their addresses are not handed over while here. */
  containers = new Map<string, LocalReplica>();
  /** What this host says of the replicas placed on it, by identity. */
  readonly replicas = new Map<string, ReplicaState>();
  /** Replicas between taking their address and being attached. */
  readonly connecting = new Set<string>();
  /** Why the container engine cannot be used, or '' (it answered last time). */
  engineError = '';
  private published = '';

  constructor(
    private readonly state: SchedulerState,
    private readonly channel: GossipChannel<weave.ISchedulerState>,
    private readonly ipam: IpamService,
  ) {
    this.name = state.self;
  }

  /** What we say of a replica: published when its state, address or error changed. */
  mark(ident: string, state: string, digest: string, container: string, error = ''): void {
    const cur = this.replicas.get(ident);
    const address = this.ipam.lookup(ident)[0]?.ip ?? '';
    const since = cur?.state === state ? cur.since : Date.now();
    this.replicas.set(ident, { ident, state, since, address, digest, container, error });
    if (cur?.state !== state || cur.address !== address || cur.error !== error) this.publish();
  }

  /** Our record, published when anything in it changed. */
  publish(): void {
    const replicas = [...this.replicas.values()].sort((a, b) => (a.ident < b.ident ? -1 : 1));
    const text = JSON.stringify({ replicas, engineError: this.engineError });
    if (text === this.published) return;
    this.published = text;
    this.channel.publish(this.state.putSelf({ replicas, engineError: this.engineError }));
  }
}
