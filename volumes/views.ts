// What users see of the volumes: a volume's view (`weave volume ls|inspect`, the API) and the
// report, from the records, Docker's mounts here and the transfers in progress.
import type { Mounts } from './mounts.js';
import type { VolumeRecords } from './records.js';
import type { TransferView, Transfers } from './transfers.js';

export interface VolumeView {
  name: string;
  owner: string;
  ownerNickname: string;
  replicas: number;
  here: boolean;
  mounted: number;
  copies: { host: string; nickname: string; gen: number }[];
  transfer?: TransferView;
  path?: string;
}

export class VolumeViews {
  constructor(
    private readonly records: VolumeRecords,
    private readonly mounts: Pick<Mounts, 'count'>,
    private readonly transfers: Pick<Transfers, 'view' | 'all'>,
  ) {}

  list(): VolumeView[] {
    return [...this.records.state.volumes.values()]
      .filter((r) => !r.deleted)
      .map((r) => this.view(r.name)!)
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  view(name: string): VolumeView | undefined {
    const { state, net } = this.records;
    const r = state.live(name);
    if (!r) return undefined;
    const here = r.owner === net.name;
    const kept = this.records.replicaHosts(r);
    return {
      name,
      owner: r.owner,
      ownerNickname: net.nickname(r.owner),
      replicas: r.replicas,
      here,
      mounted: this.mounts.count(name),
      // The copies kept for it: a host's leftover of a move or an old replica goes at its next round.
      copies: state
        .holders(name)
        .filter((h) => h.peer === r.owner || kept.includes(h.peer))
        .map((h) => ({ host: h.peer, nickname: net.nickname(h.peer), gen: h.gen })),
      transfer: this.transfers.view(name),
      ...(here && this.records.backendAsked ? { path: this.records.pathIfOpen(name) } : {}),
    };
  }

  /** `weave volume inspect`: the view, and where the copy here is. */
  inspect(name: string): VolumeView {
    this.records.record(name);
    return this.view(name)!;
  }

  report() {
    const b = this.records.opened;
    return {
      backend: b ? { kind: b.kind, pool: b.describe } : undefined,
      volumes: this.list(),
      transfers: this.transfers.all(),
      counters: this.records.counters,
    };
  }
}
