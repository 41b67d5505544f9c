/**
 * What the status page and /metrics read from `report.ipam` (ipam/service.ts builds it). Every
 * field is optional so a partial or older IPAM still renders; the page falls back to showing
 * the raw JSON of anything it does not know, and to "IPAM not running" when the field is absent.
 */
export interface IpamView {
  /** e.g. "ready", or why it is not yet. */
  status?: string;
  /** The cluster-wide allocation range, e.g. 10.32.0.0/12. */
  range?: string;
  defaultSubnet?: string;
  /** Addresses in the range. */
  total?: number;
  /** Addresses allocated to containers (cluster-wide as this peer knows it). */
  inUse?: number;
  /** Addresses still free for allocation (cluster-wide as this peer knows it). */
  free?: number;
  /** Each peer's share of the range. */
  peers?: { name: string; nickname?: string; owned: number; free?: number; percent?: number; reachable?: boolean; self?: boolean }[];
  /** The allocations on this host. */
  allocations?: { address: string; cidr?: string; container?: string }[];
  /** Peers that gossip a different range (their IPAM state is ignored). */
  mismatches?: { peer: string; nickname?: string; range: string }[];
}
