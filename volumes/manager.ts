// The volume manager: which volumes exist, which host owns each (the `volumes` channel), and the
// moves that bring a volume to the host that mounts it. This is its face to the router; the work is
// in its parts: records.ts (the records, the pool), lifecycle.ts (create, remove, make writable
// here), moves.ts (a move's two phases, both ends), replication.ts, transfers.ts (the bytes in
// flight), mounts.ts (Docker's mounts and plugin calls) and views.ts (what users see).
import { log } from '../common/log.js';
import type { RequestHandler } from '../common/channel.js';
import type { GossipChannel } from '../gossip/typed-channel.js';
import type { weave } from '../proto/gen/weave.js';
import type { VolumeBackend } from './backend.js';
import { VolumeLifecycle } from './lifecycle.js';
import { Mounts } from './mounts.js';
import { Moves } from './moves.js';
import type { PluginVolumes } from './plugin.js';
import { VolumeRecords, type VolumeCounters } from './records.js';
import { Replication } from './replication.js';
import { answer, CHUNK, OP, SEND, type VolumeNet } from './requests.js';
import type { VolumeRecord, VolumesState } from './state.js';
import { Transfers } from './transfers.js';
import { VolumeViews, type VolumeView } from './views.js';

export { checkName } from './records.js';
export type { VolumeNet } from './requests.js';
export type { TransferView } from './transfers.js';
export type { VolumeView } from './views.js';

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

export class VolumeManager {
  readonly state: VolumesState;
  readonly channel: GossipChannel<weave.IVolumesState>;
  readonly requests: RequestHandler[];
  readonly counters: VolumeCounters;
  private readonly records: VolumeRecords;
  private readonly transfers: Transfers;
  private readonly mounts: Mounts;
  private readonly views: VolumeViews;
  private readonly moves: Moves;
  private readonly lifecycle: VolumeLifecycle;
  private readonly replication: Replication;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly net: VolumeNet,
    private readonly o: VolumeOptions,
  ) {
    this.records = new VolumeRecords(net, o.file, o.open);
    this.state = this.records.state;
    this.channel = this.records.channel;
    this.counters = this.records.counters;
    this.transfers = new Transfers(net, this.counters);
    this.mounts = new Mounts(this.records, this);
    this.views = new VolumeViews(this.records, this.mounts, this.transfers);
    this.moves = new Moves(this.records, this.transfers, this.mounts, o.stopUsers);
    this.lifecycle = new VolumeLifecycle(this.records, this.moves, this.mounts, this.views, o.users);
    this.replication = new Replication(this.records, this.moves, this.transfers, this.mounts, o.replicateIntervalMs);
    this.requests = [
      answer(SEND, (from, q) => this.moves.send(from, q)),
      answer(CHUNK, (_from, q) => this.moves.chunk(q)),
      answer(OP, (from, q) => this.onOp(from, q)),
    ];
  }

  async start(): Promise<void> {
    // A host that had volumes opens its pool at once: its copies are in the channel, and Docker may ask.
    if (this.state.volumes.size) {
      await this.records.publishHeld().catch((err: Error) => log.warn(`volumes: ${err.message}`));
    }
    this.timer = setInterval(() => void this.tick(), Math.min(this.o.replicateIntervalMs, 1000));
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.transfers.stop();
    await this.records.close();
  }

  // ---- what users ask (the API, the CLI, Docker's plugin calls) ----

  create(name: string, replicas = 1): Promise<VolumeView> {
    return this.lifecycle.create(name, replicas);
  }
  remove(name: string): Promise<string> {
    return this.lifecycle.remove(name);
  }
  mount(name: string, id: string): Promise<string> {
    return this.mounts.mount(name, id);
  }
  unmount(name: string, id: string): void {
    this.mounts.unmount(name, id);
  }
  move(name: string, to: string): Promise<string> {
    return this.lifecycle.move(name, to);
  }
  ensureLocal(name: string): Promise<string> {
    return this.lifecycle.ensureLocal(name);
  }
  home(name: string): string | undefined {
    return this.lifecycle.home(name);
  }
  list(): VolumeView[] {
    return this.views.list();
  }
  view(name: string): VolumeView | undefined {
    return this.views.view(name);
  }
  inspect(name: string): VolumeView {
    return this.views.inspect(name);
  }
  plugin(): PluginVolumes {
    return this.mounts.plugin();
  }
  report() {
    return this.views.report();
  }
  replicaHosts(r: VolumeRecord): string[] {
    return this.records.replicaHosts(r);
  }

  private async onOp(from: string, q: weave.IVolumeOpRequest): Promise<weave.IVolumeOpReply> {
    const name = q.name ?? '';
    switch (q.op) {
      case 'commit':
        return this.moves.commit(from, q);
      case 'pull':
        return { message: await this.lifecycle.move(name, this.net.name) };
      case 'cancel':
        return { message: this.moves.cancel(from, name) };
      case 'remove':
        return { message: await this.lifecycle.removeOwned(name) };
      default:
        throw new Error(`unknown volume operation "${String(q.op).slice(0, 20)}"`);
    }
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    this.moves.expire(now);
    this.transfers.expire(now);
    await this.replication.tick(now);
  }
}
