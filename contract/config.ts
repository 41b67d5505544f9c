/** Everything `weave launch` decides; the launcher hands it to the daemon as JSON. */
export interface RouterConfig {
  dataDir: string;
  nickname: string;
  port: number;      // control plane, TCP
  udpPort: number;   // data plane, UDP (VXLAN)
  httpAddr: string;
  vni: number;
  mtu?: number;      // overlay MTU; default: underlay MTU minus VXLAN overhead
  peers: string[];   // routers to connect to, host[:port]
  vxlanPeers: string[]; // plain VXLAN endpoints (no router there), ip[:udpport]
  discovery: boolean;
  password?: string; // makes the control plane a private network
  connLimit: number;
  ipallocRange: string;
  ipallocDefaultSubnet?: string;
  ipallocConsensus: number; // peers that must be reachable before the range is first split
  releaseGraceMs?: number; // how long a dead container keeps its address, so a restart keeps it
}

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
};

export const VERSION = '0.1.0';


export function parseVni(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > MAX_VNI) throw new Error(`invalid VNI "${text}": expected an integer 0..${MAX_VNI}`);
  return n;
}
