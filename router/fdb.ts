import type { Netlink } from '../native/netlink.js';
import { log } from '../common/log.js';

/** Where the kernel should send frames for a remote MAC: to a peer through the vxlan device, or to our sleeve. */
export interface FdbWant {
  via: 'vxlan' | 'sleeve';
  dst?: string;
}

const ZERO_MAC = '00:00:00:00:00:00';

/**
 * Keeps the kernel's forwarding tables in step with what we want, over rtnetlink, in batches:
 * per remote MAC a static bridge entry pointing at the port that serves it (bridge learning is off
 * on both overlay ports, so nothing learnt overrides it) and, for MACs the kernel carries, a vxlan
 * entry naming the peer's address. Flooding goes to one all-zero vxlan entry per plain VXLAN peer.
 * What the kernel holds is compared with what we want now and then: a router restarted finds the
 * previous one's entries and removes the stale ones once it has heard from its peers.
 */
export class FdbSync {
  private readonly want = new Map<string, FdbWant>();
  private readonly have = new Map<string, FdbWant>();
  private readonly dirty = new Set<string>();
  private scheduled = false;
  errors = 0;
  staleRemoved = 0;

  constructor(
    private readonly nl: Netlink,
    private readonly vxlanIndex: number,
    private readonly sleeveIndex: number,
    private readonly flood: string[],
  ) {}

  set(mac: string, w: FdbWant | undefined): void {
    const cur = this.want.get(mac);
    if (cur?.via === w?.via && cur?.dst === w?.dst) return;
    if (w) this.want.set(mac, w);
    else this.want.delete(mac);
    this.dirty.add(mac);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    const ops: Parameters<Netlink['fdbApply']>[0] = [];
    for (const mac of this.dirty) {
      const w = this.want.get(mac),
        h = this.have.get(mac);
      if (h?.dst && !w?.dst) ops.push({ op: 'del', ifindex: this.vxlanIndex, mac });
      if (w?.dst && w.dst !== h?.dst) ops.push({ op: 'replace', ifindex: this.vxlanIndex, mac, dst: w.dst });
      if (h && !w) ops.push({ op: 'del', ifindex: this.portOf(h), mac, master: true });
      // a replace moves it between ports
      if (w && w.via !== h?.via) ops.push({ op: 'replace', ifindex: this.portOf(w), mac, master: true });
      if (w) this.have.set(mac, w);
      else this.have.delete(mac);
    }
    this.dirty.clear();
    this.apply(ops);
  }

  /**
   * Compares the kernel's entries with ours and fixes what differs. removeStale: entries for MACs
   * we do not want are removed too (not before we have heard from our peers after a restart).
   */
  reconcile(removeStale: boolean): void {
    this.flush();
    const ops: Parameters<Netlink['fdbApply']>[0] = [];
    const seenVxlan = new Map<string, string>(),
      seenBridge = new Map<string, 'vxlan' | 'sleeve'>();
    const floods = new Set<string>();
    for (const [index, via] of [
      [this.vxlanIndex, 'vxlan'],
      [this.sleeveIndex, 'sleeve'],
    ] as const) {
      for (const e of this.nl.fdbList(index)) {
        if (e.master && !e.permanent) seenBridge.set(e.mac, via);
        else if (!e.master && e.dst && index === this.vxlanIndex) {
          if (e.mac === ZERO_MAC) floods.add(e.dst);
          else seenVxlan.set(e.mac, e.dst);
        }
      }
    }
    for (const dst of this.flood)
      if (!floods.has(dst)) ops.push({ op: 'append', ifindex: this.vxlanIndex, mac: ZERO_MAC, dst });
    for (const dst of floods)
      if (!this.flood.includes(dst)) ops.push({ op: 'del', ifindex: this.vxlanIndex, mac: ZERO_MAC, dst });
    for (const [mac, w] of this.want) {
      if (w.dst && seenVxlan.get(mac) !== w.dst) ops.push({ op: 'replace', ifindex: this.vxlanIndex, mac, dst: w.dst });
      if (!w.dst && seenVxlan.has(mac)) ops.push({ op: 'del', ifindex: this.vxlanIndex, mac });
      if (seenBridge.get(mac) !== w.via) ops.push({ op: 'replace', ifindex: this.portOf(w), mac, master: true });
      this.have.set(mac, w);
    }
    if (removeStale) {
      const before = ops.length;
      for (const mac of seenVxlan.keys())
        if (!this.want.has(mac)) ops.push({ op: 'del', ifindex: this.vxlanIndex, mac });
      for (const [mac, via] of seenBridge)
        if (!this.want.has(mac))
          ops.push({ op: 'del', ifindex: via === 'vxlan' ? this.vxlanIndex : this.sleeveIndex, mac, master: true });
      this.staleRemoved += ops.length - before;
    }
    this.apply(ops);
  }

  /** The MACs it keeps entries for (as the kernel writes them). */
  wanted(): string[] {
    return [...this.want.keys()];
  }

  counts(): { vxlan: number; bridge: number; flood: number } {
    let vxlan = 0;
    for (const w of this.have.values()) if (w.dst) vxlan++;
    return { vxlan, bridge: this.have.size, flood: this.flood.length };
  }

  private portOf(w: FdbWant): number {
    return w.via === 'vxlan' ? this.vxlanIndex : this.sleeveIndex;
  }

  private apply(ops: Parameters<Netlink['fdbApply']>[0]): void {
    if (!ops.length) return;
    const results = this.nl.fdbApply(ops);
    for (const err of results) {
      if (!err) continue;
      if (this.errors++ === 0) log.warn(`FDB: ${err} (counted; logged once)`);
    }
  }
}
