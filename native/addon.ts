// The weave_native addon (native/src/addon.cc), loaded once: its rtnetlink part (netlink.ts) and
// the native sleeve datapath. A missing or broken build is a reason the caller can show, not an exception.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Source runs from native/, compiled code from dist/native/: both find the build from the checkout
// (native/ stands apart from common/, so it walks up itself).
function checkout(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

// The addon's rtnetlink part, as netlink.ts offers it.
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

interface Traffic {
  frames: number;
  bytes: number;
}
interface Datagrams {
  datagrams: number;
  bytes: number;
}

/** The native sleeve's threads (native/src/sleeve.cc). Addresses are numbers (a.b.c.d is a<<24|b<<16|c<<8|d). */
export interface NativeSleeve {
  /** onQueued is called on Node's thread when upcall records wait; drain() takes them all. */
  start(onQueued: () => void): void;
  /** Joins the threads and closes the TAP (the kernel removes it) and the socket. */
  stop(): void;
  routeLocal(mac: number): void;
  routePeer(mac: number, ip: number, port: number, mtu: number): void;
  unroute(mac: number): void;
  setPeers(ips: number[]): void;
  /** With encryption: a peer address's keys; null: none (nothing passes to or from it). */
  secure(
    ip: number,
    s:
      | null
      | { plain: true }
      | { plain: false; cipher: string; tx: { id: number; key: Buffer }; rx: { id: number; key: Buffer }[] },
  ): void;
  inject(frame: Buffer): boolean;
  send(datagram: Buffer, ip: number, port: number): boolean;
  drain(): Buffer | null;
  stats(): {
    captured: Traffic;
    injected: Traffic;
    sent: Datagrams;
    received: Datagrams;
    upFrames: Traffic;
    upDatagrams: Datagrams;
    gsoSends: number;
    gsoWrites: number;
    dropped: Record<string, number>;
    offloads: { tso: boolean; uso: boolean; gro: boolean; gsoSend: boolean; gsoWrite: boolean };
    peers: { ip: number; tx: Traffic; rx: Traffic }[];
  };
}

export type NativeLoad =
  | {
      ok: true;
      netlink: Netlink;
      Sleeve: new (cfg: { tap: string; port: number; vni: number; mtu: number; encrypt: boolean }) => NativeSleeve;
      aesGcmHardware: boolean;
    }
  | { ok: false; reason: string };

let loaded: NativeLoad | undefined;

export function loadNative(): NativeLoad {
  if (!loaded) {
    try {
      const addon = createRequire(import.meta.url)(join(checkout(), 'native/build/Release/weave_native.node'));
      loaded = {
        ok: true,
        netlink: addon.netlink as Netlink,
        Sleeve: addon.Sleeve,
        aesGcmHardware: addon.aesGcmHardware === true,
      };
    } catch (err) {
      const why = (err instanceof Error ? err.message : String(err)).split('\n')[0];
      loaded = { ok: false, reason: `the native addon is not built (run make build): ${why}` };
    }
  }
  return loaded;
}
