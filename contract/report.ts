// The HTTP API's answers, declared once: the CLI, the lab, the status page's data and the metrics
// read these types, never the router's or IPAM's own. Subsystems build their parts of them.

export interface Traffic {
  frames: number;
  bytes: number;
}

/** A block of `weave status`: a service and its rows (label, value), in Weave's shape. */
export interface StatusSection {
  service: string;
  rows: [string, string][];
}

export interface ConnectionView {
  direction: 'outbound' | 'inbound';
  address: string;
  state: string;
  info: string;
  name?: string;
  nickname?: string;
  /** The data path to this peer: fastdp or sleeve. */
  datapath?: string;
  /**
   * With a password: how its frames are sealed (aes-256-gcm, chacha20-poly1305), or none (trusted subnet), or pending.
   */
  encryption?: string;
  traffic?: { tx: Traffic; rx: Traffic };
}

/**
 * One neighbour's data-plane keys: the cipher, the epoch (one more at each rotation) and the age of the keys in use.
 */
export interface PeerKeysView {
  encryption: string;
  epoch: number;
  rotations: number;
  ageSeconds: number;
}

export interface PeerLinkView {
  peer: string;
  addr: string;
  outbound: boolean;
  nickname: string;
  established: boolean;
}
export interface PeerView {
  name: string;
  nickname: string;
  self: boolean;
  reachable: boolean;
  nextHop?: string;
  version: number;
  connections: PeerLinkView[];
}
export interface VxlanEndpointView {
  name: string;
  nickname: string;
  ip: string;
  port: number;
  kind: string;
  tx: Traffic;
  rx: Traffic;
}
export interface MacView {
  mac: string;
  peer: string;
  local: boolean;
  ageSeconds: number;
  nickname: string;
}

export interface Counters {
  captured: Traffic;
  injected: Traffic;
  sent: { datagrams: number; bytes: number };
  received: { datagrams: number; bytes: number };
  relayed: number;
  flooded: number;
  dropped: Record<string, number>;
  gossipRejected: number;
  /** MAC table entries evicted because the table was full. */
  macsEvicted: number;
  /** MAC locations learned from traffic (new or moved). */
  macsLearned: number;
}

/** How frames reach a neighbour: the kernel's VXLAN (fastdp) or our userspace (sleeve), and why. */
export interface PathView {
  mode: 'fastdp' | 'sleeve';
  heartbeat: boolean;
  reason?: string;
  tx: Traffic;
  rx: Traffic;
}

export interface GossipChannelCounters {
  messagesIn: number;
  bytesIn: number;
  messagesOut: number;
  bytesOut: number;
  dropped: number;
  syncs: number;
}

/** The router's own part: who it is, its control plane and its data plane. */
export interface RouterReport {
  version: string;
  name: string;
  nickname: string;
  pid: number;
  /** The process that starts the router again if it dies (weave launch runs one). */
  supervisorPid?: number;
  dataDir: string;
  uptimeSeconds: number;
  datapath: string;
  /**
   * What is encrypted: the control plane always is (noise), and with a password it is a private
   * network too, and every frame between routers is sealed with keys agreed per neighbour (peers).
   */
  encryption: { enabled: boolean; controlPlane: string; dataPlane: string; peers?: Record<string, PeerKeysView> };
  peerDiscovery: boolean;
  vni: number;
  mtu: number;
  port: number;
  udpPort: number;
  connLimit: number;
  targets: string[];
  connections: ConnectionView[];
  peers: PeerView[];
  vxlanEndpoints: VxlanEndpointView[];
  /** Per neighbour (by peer name): the data path its frames take. */
  paths: Record<string, PathView>;
  /** Kernel FDB entries a fastdp router keeps: vxlan unicast, bridge static, flooding. */
  fdb?: { vxlan: number; bridge: number; flood: number };
  /** The native sleeve's offloads (tso, uso, gro, gsoSend, gsoWrite) and how many GSO sends and writes it made. */
  offloads?: Record<string, boolean | number>;
  macs: MacView[];
  counters: Counters;
  gossip: Record<string, GossipChannelCounters>;
  /** Requests between peers: sent by us, relayed for others (we were a hop on the route), refused as bad. */
  requests: { sent: number; relayed: number; refused: number };
}

export interface IpamPeerView {
  name: string;
  nickname: string;
  owned: number;
  free: number;
  percent: number;
  reachable: boolean;
  self: boolean;
}
export interface IpamReport {
  status: string;
  range: string;
  defaultSubnet: string;
  consensus: number;
  /** Addresses in the range. */
  total: number;
  /** Allocated (cluster-wide, as this peer knows it). */
  inUse: number;
  free: number;
  peers: IpamPeerView[];
  /** The allocations on this host. */
  allocations: { address: string; cidr: string; container: string }[];
  /** Peers that gossip a different range (their IPAM state is ignored). */
  mismatches: { peer: string; nickname: string; range: string }[];
}

/** GET /report: every subsystem's fields, and the `weave status` sections they give. */
export interface Report extends RouterReport {
  ipam: IpamReport;
  status: StatusSection[];
  [section: string]: unknown;
}

/** One replica of a deployed stack, as `weave stack ps` and the report show it. */
export interface ReplicaView {
  replica: string;
  stack: string;
  service: string;
  index: number;
  /** Its host's peer name and nickname ('' while unplaced). */
  host: string;
  nickname: string;
  address: string;
  /** running, pending, unplaced, host unreachable, or what the host says. */
  state: string;
  since: number;
  error: string;
}
