import type { Mac } from '../common/mac.js';
import type { Neighbour } from '../gossip/control-plane.js';
import type { Traffic, VxlanEndpointView } from '../contract/report.js';
import type { MacEntryView } from './mac-table.js';
import type { PeerSecurity } from './data-keys.js';

/**
 * A datapath owns its whole frame path (capture or kernel, the UDP sockets, its tables). The data
 * plane tells it the control state as it changes; it tells the data plane, in batches, what it
 * learned. Nothing crosses this interface per frame.
 */
export interface Datapath {
  readonly name: string;
  /** Where our userspace takes relayed frames: peers are told it through the topology. */
  readonly sleevePort: number;
  /** Puts its ports on the bridge and starts moving frames. Ports were taken when it was made. */
  start(events: DatapathEvents): Promise<void>;
  /** The routers we hold a control connection with (the whole set, each time it changes). */
  setPeers(peers: PeerLink[]): void;
  setRouting(routing: Routing): void;
  /** Where a MAC lives: LOCAL (this host), a peer's name, or undefined (withdrawn). */
  setMac(mac: Mac, owner: string | undefined): void;
  /** With encryption on: how frames to and from a neighbour are protected (undefined: not yet agreed; none pass). */
  setSecurity?(peer: string, s: PeerSecurity | undefined): void;
  /** Datagrams sent to a neighbour so far (for key rotation by use). */
  sentTo?(peer: string): number;
  report(): DatapathReport;
  stop(): Promise<void>;
}

export interface DatapathEvents {
  /** New or moved MAC locations learned from traffic (owner LOCAL or a peer), gathered per turn of the event loop. */
  learned(batch: { mac: Mac; owner: string }[]): void;
  /** A peer's path changed (fastdp to sleeve and back, the heartbeat lost or back). */
  pathChanged(peer: string, path: PeerPath): void;
}

/** A router one hop away, as the data plane sends to it: the control plane's neighbour. */
export type PeerLink = Neighbour;

/** What the forwarder needs to know of the topology (computed identically on every peer). */
export interface Routing {
  readonly self: string;
  nextHop(peer: string): string | undefined;
  /** Our children in the broadcast tree rooted at source. */
  children(source: string): string[];
  /** Whether two peers hold a connection (the topology): a router that can pass a frame on. */
  linked(a: string, b: string): boolean;
  /** The peer a relayed frame's origin id stands for. */
  peerOf(shortId: bigint): string | undefined;
  shortIdOf(peer: string): bigint;
}

/** How frames reach a peer: the kernel's VXLAN (fastdp) or our userspace (sleeve), and why. */
export interface PeerPath {
  mode: 'fastdp' | 'sleeve';
  heartbeat: boolean;
  reason?: string;
}

/** What a userspace forwarder counts (the native sleeve's threads count the same). */
export interface ForwarderCounters {
  captured: { frames: number; bytes: number };
  injected: { frames: number; bytes: number };
  sent: { datagrams: number; bytes: number };
  received: { datagrams: number; bytes: number };
  relayed: number;
  flooded: number;
  dropped: Record<string, number>;
}

export type { Traffic };
/** A tunnel endpoint as the report shows it, with the path frames take to it. */
export interface EndpointReport extends VxlanEndpointView {
  path?: PeerPath;
}

export interface DatapathReport {
  endpoints: EndpointReport[];
  macs: MacEntryView[];
  counters: ForwarderCounters;
  macsEvicted: number;
  /** Kernel FDB entries a fastdp datapath keeps (vxlan unicast, bridge static, flooding). */
  fdb?: { vxlan: number; bridge: number; flood: number };
  /** What the native sleeve's devices do for it (TSO, USO, GRO, GSO sends and writes) and how often. */
  offloads?: Record<string, boolean | number>;
}

/** A datapath is made in two steps: its ports are taken first, so a launch that cannot run changes nothing. */
export interface DatapathConfig {
  vni: number;
  udpPort: number;
  sleevePort: number;
  mtu: number;
  vxlanPeers: { ip: string; port: number }[];
  /** Seal every datagram between routers (a password was given): plain VXLAN peers excepted, they cannot. */
  encrypt?: boolean;
}
