import { join } from 'node:path';
import { weave } from '../proto/gen/weave.js';
import type { ControlPlane } from '../gossip/control-plane.js';
import { channelSpec, GossipChannel, handler, requestSpec } from '../gossip/typed-channel.js';
import type { IpamReport } from '../contract/report.js';
import { DATA_FILES } from '../contract/files.js';
import { contains, ipToNum, numToIp, parseSubnet, type Subnet, within } from '../common/subnet.js';
import { Allocator, IpamError } from './allocator.js';
import { IpamStore } from './persist.js';

export { IpamError };

export interface IpamConfig {
  range: string;
  defaultSubnet?: string;
  consensus: number;
}

const IPAM = channelSpec('ipam', weave.IpamState);
const IPAM_REQUEST = requestSpec('ipam', weave.IpamRequest, weave.IpamReply);
const BROADCAST_COALESCE_MS = 5;

/** IPAM in a router: an Allocator whose transport is the control plane, its state kept in the data directory. */
export class IpamService {
  readonly allocator: Allocator;
  readonly range: Subnet;
  readonly defaultSubnet: Subnet;
  readonly channel: GossipChannel<weave.IIpamState>;
  readonly requests;
  private readonly store: IpamStore;
  private pending?: weave.IIpamState;
  private pendingTimer?: NodeJS.Timeout;

  constructor(
    private readonly cp: ControlPlane,
    dataDir: string,
    cfg: IpamConfig,
    private readonly nickname: string,
  ) {
    this.range = parseSubnet(cfg.range);
    this.defaultSubnet = cfg.defaultSubnet ? parseSubnet(cfg.defaultSubnet, 'default subnet') : this.range;
    if (!within(this.defaultSubnet, this.range))
      throw new Error(`default subnet ${this.defaultSubnet.text} is outside the range ${this.range.text}`);
    this.store = new IpamStore(join(dataDir, DATA_FILES.ipam), this.range);
    const a = (this.allocator = new Allocator(
      {
        self: cp.name,
        broadcast: (d) => this.broadcast(d),
        request: (peer, req) => cp.request(peer, IPAM_REQUEST, req),
        // Every peer in the topology can be asked (requests are relayed); peers of another range are no part of ours.
        reachable: () => cp.routes.reachable.filter((n) => !this.allocator.mismatches.has(n)),
      },
      {
        range: this.range,
        defaultSubnet: this.defaultSubnet,
        consensus: cfg.consensus,
        state: this.store.load(),
        save: (d, s, durable) => this.store.append(d, s, durable),
      },
    ));
    this.channel = new GossipChannel(IPAM, () => ({
      merge: (m, _from, sender) => a.onDelta(m, sender),
      state: () => a.state.encode(),
      get rejected() {
        return a.mismatches.size;
      },
    }));
    this.requests = [handler(IPAM_REQUEST, (from, req) => a.onRequest(from, req))];
  }

  /** This peer's name: identities that belong to a host, not to something that moves, carry it. */
  get self(): string {
    return this.cp.name;
  }

  close(): void {
    this.flush();
    this.store.close();
  }

  /**
   * Our changes go out gathered over BROADCAST_COALESCE_MS, as one delta: a burst of allocations
   * (a hundred containers started at once) is a few gossip messages, not one signed message each
   * for every router to verify. Each change is on disk before it is gathered.
   */
  private broadcast(d: weave.IIpamState): void {
    if (this.pending) {
      this.pending.entries!.push(...(d.entries ?? []));
      this.pending.allocations!.push(...(d.allocations ?? []));
      return;
    }
    this.pending = { ...d, entries: [...(d.entries ?? [])], allocations: [...(d.allocations ?? [])] };
    this.pendingTimer = setTimeout(() => this.flush(), BROADCAST_COALESCE_MS);
  }

  private flush(): void {
    clearTimeout(this.pendingTimer);
    const p = this.pending;
    this.pending = undefined;
    if (p) this.channel.publish(p);
  }

  /** An address for ident: `net:CIDR` or `net:default` picks a subnet; nothing means the default. */
  allocate(ident: string, subnet?: string) {
    return this.allocator.allocate(ident, subnet === undefined || subnet === 'default' ? undefined : subnet);
  }

  claim(ident: string, ip: string, prefix: number) {
    return this.allocator.claim(ident, ipToNum(ip), prefix);
  }

  /** Takes ident's address over from a peer declared dead (the scheduler re-placed ident here). */
  takeover(ident: string, ip: string, dead: string) {
    const a = ipToNum(ip);
    return this.allocator.takeover(ident, a, this.prefixFor(a), dead);
  }

  /** The peer that owns an address in our view of the ring. */
  ownerOf(ip: string): string | undefined {
    return this.allocator.state.owner(ipToNum(ip));
  }

  /** Addresses of identities that `busy` says still run here are not handed over (the scheduler's replicas). */
  guard(busy: (ident: string) => boolean): void {
    this.allocator.o.busy = busy;
  }
  release(ident: string, ip?: string) {
    return this.allocator.release(ident, ip === undefined ? undefined : ipToNum(ip));
  }

  /** Whether an address is IPAM's to hand out. */
  inRange(ip: string): boolean {
    return contains(this.range, ipToNum(ip));
  }

  /** The identity holding an address, if any. */
  holder(ip: string): string | undefined {
    const a = this.allocator.state.allocations.get(ipToNum(ip));
    return a && !a.released ? a.ident : undefined;
  }

  lookup(ident: string) {
    return this.allocator
      .lookup(ident)
      .map((a) => ({ ip: numToIp(a.addr), cidr: `${numToIp(a.addr)}/${this.prefixFor(a.addr)}` }));
  }

  /** `weave rmpeer`: takes over a dead peer's space, by name or nickname. */
  async rmpeer(peer: string) {
    const p = this.report().peers.find((x) => x.name === peer || x.nickname === peer);
    if (!p) throw new IpamError(`no peer "${peer}" owns any of the range`);
    return { peer: p.name, addresses: await this.allocator.rmpeer(p.name) };
  }

  async reset() {
    return { heir: await this.allocator.reset() };
  }

  /** The prefix length an address is announced with: the default subnet's if inside it, else the range's. */
  prefixFor(addr: number): number {
    return contains(this.defaultSubnet, addr) ? this.defaultSubnet.prefix : this.range.prefix;
  }

  /** The identities with live addresses in our pieces of the ring (without building the whole report). */
  heldHere(): string[] {
    return [...new Set(this.owned().map((x) => x.ident))];
  }

  /** Live allocations of addresses we own. */
  private owned() {
    const s = this.allocator.state;
    return [...s.allocations.values()].filter((x) => !x.released && s.owner(x.addr) === this.cp.name);
  }

  report(): IpamReport {
    const reachable = new Set([this.cp.name, ...this.cp.routes.reachable]);
    const total = this.range.end - this.range.start;
    const a = this.allocator;
    const local = this.owned();
    const shares = a.shares();
    return {
      status: a.state.empty ? 'idle (the range is split at the first allocation)' : 'ready',
      range: this.range.text,
      defaultSubnet: this.defaultSubnet.text,
      consensus: a.o.consensus,
      total,
      peers: shares.map((s) => ({
        name: s.peer,
        nickname: s.peer === this.cp.name ? this.nickname : this.cp.nickname(s.peer),
        owned: s.owned,
        free: s.free,
        percent: Math.round((s.owned / total) * 1000) / 10,
        reachable: reachable.has(s.peer),
        self: s.peer === this.cp.name,
      })),
      allocations: local.map((x) => ({
        address: numToIp(x.addr),
        cidr: `${numToIp(x.addr)}/${this.prefixFor(x.addr)}`,
        container: x.ident,
      })),
      inUse: shares.reduce((n, s) => n + s.owned - s.free, 0),
      free: shares.reduce((n, s) => n + s.free, 0),
      mismatches: [...a.mismatches].map(([peer, range]) => ({ peer, nickname: this.cp.nickname(peer), range })),
    };
  }
}
