/** Everything `weave launch` decides; the launcher hands it to the daemon as JSON. */
export interface RouterConfig {
  dataDir: string;
  nickname: string;
  port: number;      // control plane, TCP
  udpPort: number;   // data plane, UDP (VXLAN)
  httpAddr: string;
  vni: number;
  mtu?: number;      // overlay MTU; default: underlay MTU minus VXLAN overhead
  datapath?: DatapathChoice; // default auto
  peers: string[];   // routers to connect to, host[:port]
  vxlanPeers: string[]; // plain VXLAN endpoints (no router there), ip[:udpport]
  discovery: boolean;
  password?: string; // makes the control plane a private network and seals the data plane
  trustedSubnets?: string[]; // peers in these subnets (both ways) exchange frames unencrypted
  keyRotationMs?: number; // how often data-plane keys are agreed again
  connLimit: number;
  ipallocRange: string;
  ipallocDefaultSubnet?: string;
  ipallocConsensus: number; // peers that must be reachable before the range is first split
  releaseGraceMs?: number; // how long a dead container keeps its address, so a restart keeps it
  dnsDomain?: string; // the cluster domain, lower case, no trailing dot (weave.local)
  resolvConf?: string; // where the upstream resolvers are named
  /** Host labels for the scheduler's constraints and spread (os and arch are read from the host unless given). */
  labels?: Record<string, string>;
  /** How long a majority must have lost a host before its replicas are placed elsewhere. */
  hostTimeoutMs?: number;
  /**
   * Volumes: the pool (`PATH[:SIZE]`: an existing btrfs directory, or a loop file made there), its kind, replication;
   * the mount namespace a loop pool is mounted in, when not the router's own (WEAVE_MOUNT_NS: a lab host's router runs
   * in a namespace of its own, and Docker must see the pool).
   */
  volumes?: { pool?: string; backend?: VolumeBackendChoice; replicateIntervalMs?: number; pluginDir?: string; mountNs?: string };
  /** The Docker API proxy: on the unix socket weave.sock in the data directory unless disabled, and on TCP if asked. */
  proxy?: { enabled: boolean; tcp?: string; adapters?: string };
}

export const DATAPATHS = ['auto', 'fastdp', 'sleeve', 'sleeve-pcap'] as const;
export type DatapathChoice = typeof DATAPATHS[number];

export const VOLUME_BACKENDS = ['auto', 'btrfs', 'dir'] as const;
export type VolumeBackendChoice = typeof VOLUME_BACKENDS[number];

export const DEFAULT_VNI = 6784;
export const MAX_VNI = 0xffffff;

export const DEFAULTS = {
  dataDir: '/var/lib/weave',
  port: 6783,
  udpPort: 6784,
  httpAddr: '127.0.0.1:6784',
  vni: DEFAULT_VNI,
  connLimit: 100,
  ipallocRange: '10.32.0.0/12',
  releaseGraceMs: 30_000,
  keyRotationMs: 120_000,
  dnsDomain: 'weave.local',
  resolvConf: '/etc/resolv.conf',
  hostTimeoutMs: 10_000,
  replicateIntervalMs: 5000,
  /** Where Docker looks for volume plugins' sockets (WEAVE_PLUGIN_DIR elsewhere: each lab host has its own). */
  pluginDir: '/run/docker/plugins',
};

export const VERSION = '0.1.0';



export function parseVni(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > MAX_VNI) throw new Error(`invalid VNI "${text}": expected an integer 0..${MAX_VNI}`);
  return n;
}

/** A DNS domain as a user writes it (weave.local or weave.local.): stored lower case, without the dot. */
export function parseDomain(text: string): string {
  const d = text.toLowerCase().replace(/\.$/, '');
  if (!/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(d) || d.length > 200) throw new Error(`invalid DNS domain "${text}": expected a name like weave.local`);
  return d;
}

const LABEL = /^([a-zA-Z0-9_.-]{1,63})=([^\s=]{1,253})$/;

/** `--label k=v`, repeatable; a bad one is refused at launch. */
export function parseLabel(text: string, prev: Record<string, string> = {}): Record<string, string> {
  const m = LABEL.exec(text);
  if (!m) throw new Error(`invalid --label "${text.slice(0, 80)}": expected KEY=VALUE (letters, digits, _ . - in the key; no spaces)`);
  return { ...prev, [m[1]]: m[2] };
}
