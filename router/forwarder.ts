import { decode, encode, encodeDirected, encodeRelay, ETH_HEADER } from './vxlan.js';
import { isGroupMac, type Mac, readMac } from '../common/mac.js';
import { LOCAL, type MacTable } from './mac-table.js';
import type { Endpoint, Endpoints } from './endpoints.js';
import type { ForwarderCounters, Routing } from './datapath.js';
import { isHeartbeat } from './heartbeat.js';
import { fragmentationNeeded } from './pmtu.js';

export interface ForwarderDeps {
  vni: number;
  maxFrame: number; // MTU + Ethernet header: a larger frame cannot go onto the bridge
  macs: MacTable;
  endpoints: Endpoints;
  routing(): Routing;
  /** Where the control plane says a MAC lives (MAC gossip), when traffic has not told us. */
  announced(mac: Mac): string | undefined;
  /**
   * final: a frame we originate for a MAC that lives at that peer, as plain VXLAN: the peer's kernel
   * may take it. Anything it must pass on (relayed, flooded down a tree) goes to its userspace.
   */
  send(datagram: Buffer, to: Endpoint, final: boolean): void;
  /** Where to build the next datagram (a pooled buffer the transport knows is free); a new one when not given. */
  buffer?(): Buffer;
  inject(frame: Buffer): void;
  /** A data-path heartbeat arrived from a peer. */
  heartbeat(frame: Buffer, from: Endpoint): void;
  /** The endpoint to send through for ep: itself, another router that passes frames on to it, or none. */
  via?(ep: Endpoint): Endpoint | undefined;
  /** Traffic showed a MAC somewhere new (LOCAL or a peer). */
  learned?(mac: Mac, owner: string): void;
}

/**
 * Decides where each frame goes. A frame from the bridge goes to the next hop towards the peer
 * that owns its destination MAC, or down our broadcast tree for group and unknown destinations.
 * A frame from a peer is injected when it is for us (or a group, or unknown) and passed on down
 * its origin's broadcast tree or towards its owner; it never goes back to the peer it came from.
 * Plain VXLAN endpoints (no router) hang off this router like local ports.
 */
export class Forwarder {
  readonly counters: ForwarderCounters = {
    captured: { frames: 0, bytes: 0 },
    injected: { frames: 0, bytes: 0 },
    sent: { datagrams: 0, bytes: 0 },
    received: { datagrams: 0, bytes: 0 },
    relayed: 0,
    flooded: 0,
    dropped: {},
  };

  constructor(private readonly d: ForwarderDeps) {}

  /** A frame captured from the local bridge. Only valid during the call. */
  fromBridge(frame: Buffer): void {
    const c = this.counters;
    c.captured.frames++;
    c.captured.bytes += frame.length;
    if (frame.length < ETH_HEADER) return this.drop('truncated');
    // Larger than our MTU (a container attached before the MTU went down, say a password was
    // added): its sender is told, as a router would, and TCP lowers its segment size.
    if (frame.length > this.d.maxFrame) return this.tooBig(frame, this.d.maxFrame - ETH_HEADER);
    // Capture sees only frames entering from the bridge, never our own injections, so the
    // source is here now, even if it lived at a peer before (the container moved).
    if (!isGroupMac(frame, 6)) this.learn(readMac(frame, 6), LOCAL);
    this.route(frame, undefined, undefined);
  }

  /** A datagram that arrived on the data port from ip. */
  fromPeer(datagram: Buffer, ip: string): void {
    const c = this.counters;
    c.received.datagrams++;
    c.received.bytes += datagram.length;
    const ep = this.d.endpoints.fromIp(ip);
    if (!ep) return this.drop('unknown-sender');
    const dec = decode(datagram, this.d.vni, this.d.maxFrame);
    if (typeof dec === 'string') return this.drop(dec);
    const frame = dec.frame;
    if (isGroupMac(frame, 6)) return this.drop('group-source');
    if (isHeartbeat(frame)) return this.d.heartbeat(frame, ep);
    if (dec.destination !== undefined) {
      if (ep.kind !== 'router') return this.drop('bad-flags');
      const to = this.d.routing().peerOf(dec.destination);
      if (to === undefined) return this.drop('unknown-origin');
      if (to !== this.d.routing().self) return this.passOn(frame, dec.origin!, to, ep, dec.hops);
    }
    ep.rx.frames++;
    ep.rx.bytes += frame.length;
    let origin: string | undefined = ep.name;
    if (dec.origin !== undefined) {
      if (ep.kind !== 'router') return this.drop('bad-flags');
      origin = this.d.routing().peerOf(dec.origin);
      if (!origin) return this.drop('unknown-origin');
    }
    this.learn(readMac(frame, 6), origin);
    // A plain VXLAN endpoint is a port of ours: its frames start here, as if captured.
    if (ep.kind === 'vxlan') return this.route(frame, undefined, ep, true);
    this.route(frame, origin, ep, true, dec.hops);
  }

  /**
   * origin undefined: the frame starts here. from: the endpoint it arrived from (never sent back).
   * inject: whether it may be delivered to the local bridge.
   */
  private route(
    frame: Buffer,
    origin: string | undefined,
    from: Endpoint | undefined,
    inject = false,
    hops = 32,
  ): void {
    const r = this.d.routing();
    if (!isGroupMac(frame, 0)) {
      const to = this.unicast(readMac(frame, 0));
      if (to === LOCAL) return inject ? this.deliver(frame) : this.drop('local-destination');
      if (to !== undefined) {
        if (!to.ep || to.ep === from) return this.drop('no-route');
        return this.sendTo(frame, to.ep, origin, hops, to.final);
      }
    }
    // Group or unknown destination: down the origin's broadcast tree, and to our VXLAN endpoints.
    if (inject) this.deliver(frame);
    this.counters.flooded++;
    for (const child of r.children(origin ?? r.self)) {
      const ep = this.d.endpoints.named(child);
      if (ep && ep !== from) this.sendTo(frame, ep, origin, hops);
    }
    for (const ep of this.d.endpoints.list)
      if (ep.kind === 'vxlan' && ep !== from) this.sendTo(frame, ep, undefined, hops);
  }

  /**
   * Where a frame for a unicast MAC goes: the bridge (LOCAL), the endpoint towards its owner (final:
   * the owner itself; no endpoint: no route), or undefined (unknown: flooded).
   */
  unicast(dst: Mac): typeof LOCAL | { ep: Endpoint | undefined; final: boolean } | undefined {
    const owner = this.d.macs.lookup(dst) ?? this.d.announced(dst);
    if (owner === undefined || owner === LOCAL) return owner;
    const ep = this.d.endpoints.named(owner) ?? this.endpointTo(this.d.routing().nextHop(owner));
    return { ep, final: ep?.name === owner };
  }

  /**
   * A frame another router could not send its destination directly: passed on as a relayed frame, never detoured again.
   */
  private passOn(frame: Buffer, origin: bigint, to: string, from: Endpoint, hops: number): void {
    const ep = this.d.endpoints.named(to);
    if (!ep || ep === from) return this.drop('no-route');
    if (this.d.routing().peerOf(origin) === undefined) return this.drop('unknown-origin');
    this.transmit(encodeRelay(this.d.vni, origin, hops - 1, frame, this.d.buffer?.()), ep, false);
    this.counters.relayed++;
  }

  private learn(mac: Mac, owner: string): void {
    if (this.d.macs.learn(mac, owner)) this.d.learned?.(mac, owner);
  }

  private endpointTo(peer: string | undefined): Endpoint | undefined {
    return peer === undefined ? undefined : this.d.endpoints.named(peer);
  }

  private deliver(frame: Buffer): void {
    const c = this.counters;
    try {
      this.d.inject(frame);
    } catch {
      return this.drop('inject-failed');
    } // the bridge refused it: never fatal
    c.injected.frames++;
    c.injected.bytes += frame.length;
  }

  /**
   * Frames we originate travel as plain VXLAN; frames we pass on for another origin carry it. A
   * frame larger than the peer's MTU cannot arrive (the underlay drops it silently): its sender is
   * told, as a router on the path would, so TCP lowers its segment size instead of stalling.
   */
  private sendTo(frame: Buffer, ep: Endpoint, origin: string | undefined, hops: number, final = false): void {
    if (frame.length > ep.mtu + ETH_HEADER)
      return origin === undefined ? this.tooBig(frame, ep.mtu) : this.drop('too-big');
    const into = this.d.buffer?.();
    const via = this.d.via ? this.d.via(ep) : ep;
    if (!via) return this.drop('no-data-path');
    if (via !== ep) {
      // our datagrams do not reach it: another router passes this one on
      const r = this.d.routing();
      this.counters.relayed++;
      return this.transmit(
        encodeDirected(this.d.vni, r.shortIdOf(origin ?? r.self), r.shortIdOf(ep.name), hops - 1, frame, into),
        via,
        false,
      );
    }
    const plain = origin === undefined || ep.kind === 'vxlan';
    if (!plain) this.counters.relayed++;
    this.transmit(
      plain
        ? encode(this.d.vni, frame, into)
        : encodeRelay(this.d.vni, this.d.routing().shortIdOf(origin), hops - 1, frame, into),
      ep,
      plain && final,
    );
  }

  private transmit(datagram: Buffer, ep: Endpoint, final: boolean): void {
    const c = this.counters;
    c.sent.datagrams++;
    c.sent.bytes += datagram.length;
    ep.tx.frames++;
    ep.tx.bytes += datagram.length;
    try {
      this.d.send(datagram, ep, final);
    } catch {
      this.drop('send-failed');
    }
  }

  /**
   * A frame from the bridge larger than mtu: an ICMP "fragmentation needed" back to its sender (for an IPv4 DF packet),
   * and dropped.
   */
  private tooBig(frame: Buffer, mtu: number): void {
    const icmp = fragmentationNeeded(frame, mtu);
    if (icmp) this.deliver(icmp);
    this.drop('too-big');
  }

  /** Counts a frame or datagram dropped, by reason (the I/O below the forwarder counts its own here too). */
  drop(reason: string): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
  }
}
