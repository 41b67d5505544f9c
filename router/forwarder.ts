import { decode, encode, ETH_HEADER } from './vxlan.js';
import { isGroupMac, readMac } from './mac.js';
import { LOCAL, MacTable } from './mac-table.js';
import { Endpoint, Endpoints } from './endpoints.js';

export interface ForwarderCounters {
  captured: { frames: number; bytes: number };
  injected: { frames: number; bytes: number };
  sent: { datagrams: number; bytes: number };
  received: { datagrams: number; bytes: number };
  flooded: number;
  dropped: Record<string, number>;
}

export interface ForwarderDeps {
  vni: number;
  maxFrame: number; // MTU + Ethernet header (+ a VLAN tag)
  macs: MacTable;
  endpoints: Endpoints;
  send(datagram: Buffer, to: Endpoint): void;
  inject(frame: Buffer): void;
}

/**
 * Decides where each frame goes. Frames from the bridge go to the peer that owns the destination
 * MAC, or to every peer when it is a group address or unknown. Frames from peers are injected into
 * the bridge only when their destination is here (or a group, or unknown): in a full mesh the
 * sender already reached every other peer itself, so nothing is relayed and nothing loops back.
 */
export class Forwarder {
  readonly counters: ForwarderCounters = {
    captured: { frames: 0, bytes: 0 }, injected: { frames: 0, bytes: 0 },
    sent: { datagrams: 0, bytes: 0 }, received: { datagrams: 0, bytes: 0 },
    flooded: 0, dropped: {},
  };

  constructor(private readonly d: ForwarderDeps) {}

  /** A frame captured from the local bridge. Only valid during the call. */
  fromBridge(frame: Buffer): void {
    const c = this.counters;
    c.captured.frames++; c.captured.bytes += frame.length;
    if (frame.length < ETH_HEADER) return this.drop('truncated');
    if (frame.length > this.d.maxFrame) return this.drop('oversized');
    // Capture sees only frames entering from the bridge, never our own injections, so the
    // source is here now, even if it lived at a peer before (the container moved).
    if (!isGroupMac(frame, 6)) this.d.macs.learn(readMac(frame, 6), LOCAL);
    if (isGroupMac(frame, 0)) return this.flood(frame);
    const owner = this.d.macs.lookup(readMac(frame, 0));
    if (owner === LOCAL) return this.drop('local-destination');
    const ep = owner === undefined ? undefined : this.d.endpoints.named(owner);
    if (!ep) return this.flood(frame);
    this.sendTo(encode(this.d.vni, frame), ep);
  }

  /** A datagram that arrived on the data port from ip. */
  fromPeer(datagram: Buffer, ip: string): void {
    const c = this.counters;
    c.received.datagrams++; c.received.bytes += datagram.length;
    const ep = this.d.endpoints.fromIp(ip);
    if (!ep) return this.drop('unknown-sender');
    const frame = decode(datagram, this.d.vni, this.d.maxFrame);
    if (typeof frame === 'string') return this.drop(frame);
    if (isGroupMac(frame, 6)) return this.drop('group-source');
    ep.rx.frames++; ep.rx.bytes += frame.length;
    this.d.macs.learn(readMac(frame, 6), ep.name);
    if (!isGroupMac(frame, 0)) {
      const owner = this.d.macs.lookup(readMac(frame, 0));
      if (owner !== undefined && owner !== LOCAL) return this.drop('not-for-us');
    }
    c.injected.frames++; c.injected.bytes += frame.length;
    this.d.inject(frame);
  }

  private flood(frame: Buffer): void {
    const eps = this.d.endpoints.list;
    if (eps.length === 0) return;
    this.counters.flooded++;
    const datagram = encode(this.d.vni, frame);
    for (const ep of eps) this.sendTo(datagram, ep);
  }

  private sendTo(datagram: Buffer, ep: Endpoint): void {
    const c = this.counters;
    c.sent.datagrams++; c.sent.bytes += datagram.length;
    ep.tx.frames++; ep.tx.bytes += datagram.length;
    this.d.send(datagram, ep);
  }

  private drop(reason: string): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
  }
}
