// Typed access to the addon's rtnetlink part (native/src/netlink.cc): the kernel FDB of the fastdp
// datapath's vxlan device and bridge, programmed without one `bridge` process per entry.
// Calls are synchronous and act on the network namespace the process was in at its first call.
import { loadNative } from './addon.js';

/** One entry as `bridge fdb show dev D` lists it. */
export interface FdbEntry {
  mac: string; // 'aa:bb:cc:dd:ee:ff', lower case
  ifindex: number;
  dst?: string; // the remote IP of a vxlan entry
  master: boolean; // the bridge's entry for a port (shown "master br0"), not the device's own ("self")
  permanent: boolean; // NUD_PERMANENT
  static: boolean; // NUD_NOARP without NUD_PERMANENT: what `master static` programs
  vlan?: number;
}

/**
 * `replace`: `bridge fdb replace MAC dev D [dst IP] self permanent` (or `master static` with master);
 * `append`: the same with NLM_F_APPEND (several all-zero flooding entries, one per peer);
 * `del`: `bridge fdb del`, with dst naming which one of several entries of a MAC goes.
 */
export interface FdbOp {
  op: 'replace' | 'append' | 'del';
  ifindex: number;
  mac: string;
  dst?: string; // IPv4
  master?: boolean;
}

export interface Netlink {
  /** Per op: null on success, else one line such as "replace aa:..:ff dev 12: No such device (ENODEV)".
   *  Throws (a one-line Error, nothing sent) when an op is malformed: bad MAC, IPv4, ifindex or op. */
  fdbApply(ops: FdbOp[]): (string | null)[];
  /** Every AF_BRIDGE FDB entry of the device, self and master ones. */
  fdbList(ifindex: number): FdbEntry[];
  /** if_nametoindex; throws a one-line Error when there is no such interface. */
  ifindex(name: string): number;
}

export { loadNative };

function netlink(): Netlink {
  const n = loadNative();
  if (!n.ok) throw new Error(n.reason);
  return n.netlink;
}

export const fdbApply = (ops: FdbOp[]): (string | null)[] => netlink().fdbApply(ops);
export const fdbList = (ifindex: number): FdbEntry[] => netlink().fdbList(ifindex);
export const ifindex = (name: string): number => netlink().ifindex(name);
