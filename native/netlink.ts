// Typed access to the addon's rtnetlink part (native/src/netlink.cc): the kernel FDB of the fastdp
// datapath's vxlan device and bridge, programmed without one `bridge` process per entry.
// Calls are synchronous and act on the network namespace the process was in at its first call.
import { loadNative, type FdbEntry, type FdbOp, type Netlink } from './addon.js';

export type { FdbEntry, FdbOp, Netlink };

export { loadNative };

function netlink(): Netlink {
  const n = loadNative();
  if (!n.ok) throw new Error(n.reason);
  return n.netlink;
}

export const fdbApply = (ops: FdbOp[]): (string | null)[] => netlink().fdbApply(ops);
export const fdbList = (ifindex: number): FdbEntry[] => netlink().fdbList(ifindex);
export const ifindex = (name: string): number => netlink().ifindex(name);
