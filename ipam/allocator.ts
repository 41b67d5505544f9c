import { Conflict, NotFound, NotReady, UserError } from '../common/errors.js';
import type { weave } from '../proto/gen/weave.js';
import { contains, numToIp, parseSubnet, type Subnet, usable, within } from '../common/subnet.js';
import { type Allocation, type Entry, IpamState } from './state.js';

/** How an allocator reaches the others: the libp2p control plane in the router, a simulated network in tests. */
export interface IpamTransport {
  readonly self: string;
  broadcast(delta: weave.IIpamState): void;
  request(peer: string, req: weave.IIpamRequest): Promise<weave.IIpamReply>;
  /** Other peers reachable now. */
  reachable(): string[];
}

export interface AllocatorOptions {
  range: Subnet;
  defaultSubnet: Subnet;
  /** The initial split waits until this many peers (us included) can agree on it. */
  consensus: number;
  state?: IpamState;
  /**
   * Records a change; `durable` when it must be on disk before anyone hears of it (our own changes,
   * and space we acknowledge adopting). Others' changes merged from gossip need not wait for the
   * disk: their authors keep them durably and a restart gets them back by sync, and our next durable
   * write flushes them anyway. So an allocation anywhere is not a disk flush everywhere.
   */
  save?: (delta: { entries: Entry[]; allocations: Allocation[] }, s: IpamState, durable: boolean) => void;
  waitMs?: number;
  /** Whether an identity still runs here: its address is not handed over until it stops (no address live twice). */
  busy?: (ident: string) => boolean;
}

/** An allocation that cannot be done as asked: the caller's to fix (400 in the API). */
export class IpamError extends UserError {}

export interface Allocated {
  addr: number;
  ip: string;
  cidr: string;
}

/**
 * One peer's allocator. Only the owner of a piece of the ring allocates in it, so two live
 * allocations never share an address. A peer without space asks the peer with the most free space
 * in the wanted subnet to donate half of its largest free run; an address held elsewhere is handed
 * over by its owner, with its allocation, when its identity moves here.
 *
 * The initial split: once `consensus` peers are reachable, the lowest-named of them cuts the range
 * into equal pieces, one for each reachable peer, and everyone else asks it for that ring.
 */
export class Allocator {
  readonly state: IpamState;
  readonly mismatches = new Map<string, string>(); // peer -> its range, when it differs from ours
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly t: IpamTransport,
    readonly o: AllocatorOptions,
  ) {
    this.state = o.state ?? new IpamState(o.range);
  }

  get self(): string {
    return this.t.self;
  }

  // ---- local operations (serialised: each may wait on other peers) ----

  allocate(ident: string, subnetText?: string): Promise<Allocated> {
    return this.serial(async () => {
      const subnet = subnetText ? this.subnet(subnetText) : this.o.defaultSubnet;
      const held = this.state.identAllocations(ident).find((a) => contains(subnet, a.addr));
      if (held) return this.adopt(ident, held.addr, subnet.prefix);
      await this.ensureRing();
      let addr = this.findFree(subnet);
      for (const donor of addr === undefined ? this.donors(subnet) : []) {
        const reply = await this.t
          .request(donor, { kind: 'donate', range: this.o.range.text, subnet: subnet.text })
          .catch(() => undefined);
        if (reply?.state) this.onDelta(reply.state);
        if ((addr = this.findFree(subnet)) !== undefined) break;
      }
      if (addr === undefined) throw new IpamError(`no free address in ${subnet.text}`);
      return this.write(addr, ident, subnet.prefix);
    });
  }

  claim(ident: string, ip: number, prefix: number): Promise<Allocated> {
    return this.serial(async () => {
      if (ip < this.o.range.start || ip >= this.o.range.end)
        throw new IpamError(`${numToIp(ip)} is outside the allocation range ${this.o.range.text}`);
      await this.ensureRing();
      return this.adopt(ident, ip, prefix);
    });
  }

  /** Releases an identity's addresses (all, or one) that live here; returns the addresses released. */
  release(ident: string, ip?: number): Promise<number[]> {
    return this.serial(async () => {
      const mine = this.state
        .identAllocations(ident)
        .filter((a) => (ip === undefined || a.addr === ip) && this.state.owner(a.addr) === this.self);
      if (mine.length === 0 && this.state.identAllocations(ident).length === 0)
        throw new NotFound(`unknown identity "${ident}"`);
      const changed = mine.map((a) => this.state.setAllocation(a.addr, ident, true));
      this.commit([], changed);
      return changed.map((a) => a.addr);
    });
  }

  lookup(ident: string): Allocation[] {
    return this.state.identAllocations(ident);
  }

  /** Takes over a dead peer's pieces (and so its allocations, which stay valid). Returns addresses taken. */
  rmpeer(peer: string): Promise<number> {
    return this.serial(async () => {
      if (peer === this.self) throw new IpamError('cannot rmpeer ourselves');
      let n = 0;
      const changed: Entry[] = [];
      for (const p of this.state.pieces())
        if (p.entry.peer === peer) {
          n += p.end - p.start;
          changed.push(this.state.setEntry(p.start, this.self));
        }
      this.commit(changed, []);
      return n;
    });
  }

  /**
   * Takes over one address of a peer declared dead, with its allocation for ident (a scheduled
   * replica placed here now): the address becomes a piece of its own, ours, and the rest of the dead
   * peer's piece stays its. The piece after it is written at version 0, below any real write, so two
   * peers taking neighbouring addresses of the same dead peer at once do not undo each other.
   */
  takeover(ident: string, addr: number, prefix: number, dead: string): Promise<Allocated> {
    return this.serial(async () => {
      const owner = this.state.owner(addr);
      this.allocationFor(addr, ident);
      if (owner !== this.self) {
        if (owner !== dead) throw new IpamError(`${numToIp(addr)} belongs to ${owner ?? 'nobody'}, not ${dead}`);
        const changed = [this.state.setEntry(addr, this.self)];
        if (addr + 1 < this.o.range.end && !this.state.entries.has(addr + 1))
          changed.push(this.state.putEntry({ token: addr + 1, peer: dead, version: 0 }));
        this.commit(changed, []);
      }
      return this.write(addr, ident, prefix);
    });
  }

  /** Hands all our pieces to a reachable peer before we leave. */
  reset(): Promise<string | undefined> {
    return this.serial(async () => {
      const mine = this.state.pieces().filter((p) => p.entry.peer === this.self);
      const heir = this.t.reachable().sort()[0];
      if (mine.length === 0) return undefined;
      if (!heir) throw new IpamError('no reachable peer to hand our address space to');
      const changed = mine.map((p) => this.state.setEntry(p.start, heir));
      const delta = this.state.encode(
        changed,
        [...this.state.allocations.values()].filter((a) => mine.some((p) => contains(p, a.addr))),
      );
      const reply = await this.t.request(heir, { kind: 'adopt', range: this.o.range.text, state: delta });
      if (reply.error) throw new IpamError(`${heir} refused our space: ${reply.error}`);
      this.commit(changed, []);
      return heir;
    });
  }

  // ---- what other peers send ----

  /** Merges a delta or full state; returns true when it changed anything. */
  onDelta(msg: weave.IIpamState, from?: string, durable = false): boolean {
    const d = IpamState.decode(msg);
    if (d.range !== this.o.range.text) {
      if (from) this.mismatches.set(from, d.range);
      return false;
    }
    if (from) this.mismatches.delete(from);
    const changed = this.state.merge(d.entries, d.allocations);
    const any = changed.entries.length + changed.allocations.length > 0;
    if (any) this.o.save?.(changed, this.state, durable);
    return any;
  }

  async onRequest(from: string, req: weave.IIpamRequest): Promise<weave.IIpamReply> {
    if (req.range !== this.o.range.text)
      return { error: `range mismatch: ours is ${this.o.range.text}, yours ${req.range}` };
    try {
      switch (req.kind) {
        case 'donate':
          return { state: this.donate(from, this.subnet(req.subnet ?? '')) };
        case 'handover':
          return { state: this.handover(from, req.addr ?? 0, req.ident ?? '') };
        case 'init':
          await this.serial(async () => this.createRing());
          return { state: this.state.encode() };
        case 'adopt':
          if (req.state) this.onDelta(req.state, from, true);
          return {}; // on disk before we say we took it
        default:
          return { error: `unknown request "${req.kind}"` };
      }
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  // ---- reading ----

  /** Each peer's share: addresses owned and free, by our view of the ring. */
  shares(): { peer: string; owned: number; free: number }[] {
    const byPeer = new Map<string, { owned: number; free: number }>();
    const allocated = [...this.state.allocations.values()].filter((a) => !a.released).map((a) => a.addr);
    for (const p of this.state.pieces()) {
      const s = byPeer.get(p.entry.peer) ?? { owned: 0, free: 0 };
      const used = allocated.filter((a) => contains(p, a)).length;
      s.owned += p.end - p.start;
      s.free += p.end - p.start - used;
      byPeer.set(p.entry.peer, s);
    }
    return [...byPeer].map(([peer, s]) => ({ peer, ...s }));
  }

  // ---- internals ----

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private subnet(text: string): Subnet {
    let s: Subnet;
    try {
      s = parseSubnet(text, 'subnet');
    } catch (err) {
      throw new IpamError((err as Error).message.slice(0, 200));
    }
    if (!within(s, this.o.range))
      throw new IpamError(`subnet ${text} is outside the allocation range ${this.o.range.text}`);
    return s;
  }

  /** Records an allocation of an address we own. */
  private write(addr: number, ident: string, prefix: number): Allocated {
    const a = this.state.setAllocation(addr, ident, false);
    this.commit([], [a]);
    return { addr, ip: numToIp(addr), cidr: `${numToIp(addr)}/${prefix}` };
  }

  /** The allocation record of addr, when no other identity holds it (else the refusal every path gives). */
  private allocationFor(addr: number, ident: string): Allocation | undefined {
    const cur = this.state.allocations.get(addr);
    if (cur && !cur.released && cur.ident !== ident)
      throw new Conflict(`${numToIp(addr)} is held by another identity ("${cur.ident}")`);
    return cur;
  }

  /** Makes an address ours for ident: it is free or already ident's; its owner hands it over if needed. */
  private async adopt(ident: string, addr: number, prefix: number): Promise<Allocated> {
    const cur = this.allocationFor(addr, ident);
    const owner = this.state.owner(addr);
    if (owner === this.self && cur && !cur.released)
      return { addr, ip: numToIp(addr), cidr: `${numToIp(addr)}/${prefix}` }; // asking twice: same answer
    if (owner !== this.self) {
      if (!owner) throw new NotReady(`no peer owns ${numToIp(addr)} yet`);
      if (!this.t.reachable().includes(owner))
        throw new IpamError(
          `${numToIp(addr)} belongs to ${owner}, which is unreachable: once it is gone for good, take its space over with "weave rmpeer"`,
        );
      const reply = await this.t.request(owner, { kind: 'handover', range: this.o.range.text, addr, ident });
      if (reply.error) throw new Conflict(reply.error); // the owner keeps it: another identity has it, or runs there
      if (reply.state) this.onDelta(reply.state);
      if (this.state.owner(addr) !== this.self) throw new IpamError(`${owner} did not hand over ${numToIp(addr)}`);
    }
    return this.write(addr, ident, prefix);
  }

  private findFree(subnet: Subnet): number | undefined {
    const [lo, hi] = usable(subnet);
    for (const p of this.state.pieces()) {
      if (p.entry.peer !== this.self || p.end <= lo || p.start >= hi) continue;
      for (let a = Math.max(p.start, lo); a < Math.min(p.end, hi); a++) if (!this.state.isAllocated(a)) return a;
    }
    return undefined;
  }

  /** Reachable peers by free space in the subnet, most first. */
  private donors(subnet: Subnet): string[] {
    const reachable = new Set(this.t.reachable());
    const free = new Map<string, number>();
    const [lo, hi] = usable(subnet);
    for (const p of this.state.pieces()) {
      if (!reachable.has(p.entry.peer)) continue;
      const s = Math.max(p.start, lo),
        e = Math.min(p.end, hi);
      if (e <= s) continue;
      let used = 0;
      for (const a of this.state.allocations.values()) if (!a.released && a.addr >= s && a.addr < e) used++;
      free.set(p.entry.peer, (free.get(p.entry.peer) ?? 0) + e - s - used);
    }
    return [...free]
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .map(([p]) => p);
  }

  /** Gives the requester the upper half of our largest free run in the subnet. */
  private donate(to: string, subnet: Subnet): weave.IIpamState {
    const [lo, hi] = usable(subnet);
    let best: [number, number] | undefined;
    for (const p of this.state.pieces()) {
      if (p.entry.peer !== this.self) continue;
      const s = Math.max(p.start, lo),
        e = Math.min(p.end, hi);
      let runStart = s;
      const taken = [...this.state.allocations.values()]
        .filter((a) => !a.released && a.addr >= s && a.addr < e)
        .map((a) => a.addr)
        .sort((a, b) => a - b);
      for (const t of [...taken, e]) {
        if (t - runStart > (best ? best[1] - best[0] : 0)) best = [runStart, t];
        runStart = t + 1;
      }
    }
    if (!best) throw new IpamError(`no free space in ${subnet.text} to donate`);
    const len = best[1] - best[0];
    return this.give(to, len === 1 ? best[0] : best[0] + Math.floor(len / 2), best[1]);
  }

  /** Hands over one address with its allocation (the identity moved to the requester). */
  private handover(to: string, addr: number, ident: string): weave.IIpamState {
    if (this.state.owner(addr) !== this.self) throw new IpamError(`${numToIp(addr)} is not ours to hand over`);
    if (this.o.busy?.(ident))
      throw new Conflict(`${ident} still runs on ${this.self}: ${numToIp(addr)} is handed over once it stops`);
    this.allocationFor(addr, ident);
    return this.give(to, addr, addr + 1);
  }

  /**
   * Cuts [start, end) out of our pieces and makes it `to`'s, with every allocation record in it
   * (released ones too: the new owner continues their versions).
   */
  private give(to: string, start: number, end: number): weave.IIpamState {
    const allocations = [...this.state.allocations.values()].filter((a) => a.addr >= start && a.addr < end);
    const changed: Entry[] = [];
    if (end < this.o.range.end && !this.state.entries.has(end)) changed.push(this.state.setEntry(end, this.self));
    for (const p of this.state.pieces())
      if (p.start > start && p.start < end) changed.push(this.state.setEntry(p.start, to));
    changed.push(this.state.setEntry(start, to));
    this.commit(changed, []);
    return this.state.encode(changed, allocations);
  }

  private async ensureRing(): Promise<void> {
    const deadline = Date.now() + (this.o.waitMs ?? 30_000);
    while (this.state.empty) {
      const peers = this.t.reachable();
      if (peers.length + 1 >= this.o.consensus) {
        const leader = [this.self, ...peers].sort()[0];
        if (leader === this.self) this.createRing();
        else {
          const reply = await this.t.request(leader, { kind: 'init', range: this.o.range.text }).catch(() => undefined);
          if (reply?.state) this.onDelta(reply.state);
        }
        if (!this.state.empty) break;
      }
      if (Date.now() > deadline)
        throw new NotReady(
          `waiting for ${this.o.consensus} peers to agree on the initial split of ${this.o.range.text} (${peers.length + 1} reachable)`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private createRing(): void {
    if (!this.state.empty) return;
    const peers = [this.self, ...this.t.reachable()].sort();
    const size = this.o.range.end - this.o.range.start;
    const changed = peers.map((p, i) =>
      this.state.setEntry(this.o.range.start + Math.floor((i * size) / peers.length), p),
    );
    this.commit(changed, []);
  }

  /** Saves, then tells the others: a change is durable before anyone hears of it. */
  private commit(entries: Entry[], allocations: Allocation[]): void {
    if (entries.length + allocations.length === 0) return;
    this.o.save?.({ entries, allocations }, this.state, true);
    this.t.broadcast(this.state.encode(entries, allocations));
  }
}
