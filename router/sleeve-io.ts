import type { Mac } from '../common/mac.js';
import type { Traffic } from './datapath.js';
import type { PeerSecurity } from './data-keys.js';

/**
 * How a sleeve moves frames (the idea of wireguard-go's Bind and Device, in one): a port on the
 * bridge and a UDP socket. It hands up what the userspace forwarder must decide; a native one
 * decides most frames itself from routes pushed down, and hands up only the rest.
 */
export interface SleeveIo {
  /** The datapath's name: what `weave status` shows. */
  readonly name: string;
  /** Its port on the bridge (fastdp points MACs that take the sleeve at it). */
  readonly port: string;
  /**
   * Puts its port on the bridge and starts handing frames up. Alone it is the bridge's overlay port
   * and learns like any other; the sleeve of a fastdp datapath (inner) neither learns nor forwards
   * to the vxlan device (both are isolated), and fastdp tells the bridge which MACs it serves.
   */
  start(up: SleeveUp): Promise<void>;
  /** A frame onto the bridge. Throws when the bridge refused it. */
  inject(frame: Buffer): void;
  /** Best effort, like the network: a datagram that cannot be sent is counted as dropped, never thrown. */
  send(datagram: Buffer, ip: string, port: number): void;
  /** Where to build the next datagram (a pooled buffer the transport knows is free). */
  buffer(): Buffer;
  /** The addresses of every endpoint, each time they change: datagrams from others are not ours. */
  peers(ips: string[]): void;
  /**
   * A native I/O sends frames for mac itself: to the bridge (LOCAL), or to a peer's address, port
   * and MTU; undefined hands them up. Absent where every frame is handed up.
   */
  route?(mac: Mac, to: FastRoute | undefined): void;
  /**
   * With encryption on (it was opened so), how datagrams to and from a peer's address go: sealed
   * under these keys, or plain; undefined: not at all (no keys yet, or gone).
   */
  secure(ip: string, s: PeerSecurity | undefined): void;
  /** What moved without the forwarder (a native I/O), to add to its counters. */
  report?(): IoReport;
  stop(): Promise<void>;
}

export type FastRoute = 'local' | { ip: string; port: number; mtu: number };

export interface SleeveUp {
  fromBridge(frame: Buffer): void;
  fromPeer(datagram: Buffer, ip: string): void;
  /** Traffic showed mac sending from the bridge (ip undefined) or from ip. */
  seen(mac: Mac, ip: string | undefined): void;
  /** The I/O dropped a datagram (it could not be opened, or could not be sealed). */
  dropped(reason: string): void;
}

export interface IoReport {
  /**
   * Everything read from the bridge and the socket (what was handed up included), and what was moved without the
   * forwarder.
   */
  captured: Traffic;
  received: { datagrams: number; bytes: number };
  injected: Traffic;
  sent: { datagrams: number; bytes: number };
  dropped: Record<string, number>;
  /** Per peer address: datagrams sent to it, frames received from it, without the forwarder. */
  peers: Map<string, { tx: Traffic; rx: Traffic }>;
  offloads: Record<string, boolean | number>;
}

/**
 * `bridge link set` flags for a sleeve's port: alone it learns; inner (fastdp's) it is isolated from the vxlan device
 * and learns nothing.
 */
export const portFlags = (inner: boolean): string[] =>
  inner ? ['learning', 'off', 'isolated', 'on'] : ['learning', 'on', 'isolated', 'off'];
