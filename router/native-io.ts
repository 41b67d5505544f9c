import type { Mac } from '../common/mac.js';
import { run, runOk } from '../common/exec.js';
import { loadNative, type NativeSleeve } from '../native/addon.js';
import { BRIDGE, BRIDGE_PORT_IF, quietIPv6 } from './bridge.js';
import { ipToNum, numToIp } from '../common/subnet.js';
import type { PeerSecurity } from './data-keys.js';
import { portFlags, type FastRoute, type IoReport, type SleeveIo, type SleeveUp } from './sleeve-io.js';

export const TAP_IF = 'vethwe-tap';

// The upcall records the native threads queue (native/src/sleeve-engine.h).
const FRAME = 1,
  DATAGRAM = 2,
  LOCAL_MAC = 3,
  PEER_MAC = 4;
const RECORD = 12;

/**
 * The native addon's threads move the frames (native/src/sleeve-engine.cc): a TAP on the bridge
 * with TSO and checksum offload, super-frames split into one VXLAN datagram per frame and sent with
 * UDP GSO; datagrams received with UDP GRO, and TCP segments of a flow merged into one TAP write.
 * They send and deliver from the routes pushed down; what they cannot decide comes up, batched.
 */
export class NativeIo implements SleeveIo {
  readonly name = 'sleeve';
  readonly port = TAP_IF;
  private scratch = Buffer.allocUnsafeSlow(65536 + 32);
  private up?: SleeveUp;

  private constructor(
    private readonly native: NativeSleeve,
    private readonly mtu: number,
    private readonly inner: boolean,
  ) {}

  /** Takes the UDP port and makes the TAP (it goes when the process does); throws a one-line Error. */
  static open(cfg: { udpPort: number; vni: number; mtu: number; encrypt?: boolean }, inner = false): NativeIo {
    const n = loadNative();
    if (!n.ok) throw new Error(n.reason);
    return new NativeIo(
      new n.Sleeve({ tap: TAP_IF, port: cfg.udpPort, vni: cfg.vni, mtu: cfg.mtu, encrypt: cfg.encrypt ?? false }),
      cfg.mtu,
      inner,
    );
  }

  async start(up: SleeveUp): Promise<void> {
    this.up = up;
    // The TAP is the bridge's overlay port: the capture pair another datapath left there goes off it.
    await run(['ip', 'link', 'set', 'dev', BRIDGE_PORT_IF, 'nomaster', 'down']);
    await runOk(['ip', 'link', 'set', 'dev', TAP_IF, 'mtu', String(this.mtu), 'master', BRIDGE]);
    await runOk(['bridge', 'link', 'set', 'dev', TAP_IF, ...portFlags(this.inner)]);
    quietIPv6(TAP_IF);
    await runOk(['ip', 'link', 'set', 'dev', TAP_IF, 'up']);
    this.native.start(this.drain);
  }

  /** Called (from the threads, through Node's queue) when records wait: all of them are taken at once. */
  private readonly drain = (): void => {
    const b = this.native.drain();
    const up = this.up;
    if (!b || !up) return;
    for (let at = 0; at + RECORD <= b.length; ) {
      const kind = b[at],
        len = b.readUInt32LE(at + 8),
        data = b.subarray(at + RECORD, at + RECORD + len);
      if (kind === FRAME) up.fromBridge(data);
      else if (kind === DATAGRAM) up.fromPeer(data, numToIp(b.readUInt32BE(at + 4)));
      else if (kind === LOCAL_MAC) up.seen(data.readUIntBE(0, 6), undefined);
      else if (kind === PEER_MAC) up.seen(data.readUIntBE(0, 6), numToIp(b.readUInt32BE(at + 4)));
      at += RECORD + len;
    }
  };

  inject(frame: Buffer): void {
    if (!this.native.inject(frame)) throw new Error('the TAP refused the frame');
  }
  /**
   * A datagram the socket refuses (the underlay is down: ENETUNREACH) is a drop, as a lost one would be, not an error.
   */
  send(datagram: Buffer, ip: string, port: number): void {
    if (!this.native.send(datagram, ipToNum(ip), port)) this.up?.dropped('send');
  }
  /** The native send copies the datagram before it returns: one buffer serves every send. */
  buffer(): Buffer {
    return this.scratch;
  }
  peers(ips: string[]): void {
    this.native.setPeers(ips.map(ipToNum));
  }

  /** The threads seal and open (native/src/seal.h); the keys go down as they are agreed. */
  secure(ip: string, s: PeerSecurity | undefined): void {
    this.native.secure(ipToNum(ip), s ?? null);
  }

  route(mac: Mac, to: FastRoute | undefined): void {
    if (to === undefined) this.native.unroute(mac);
    else if (to === 'local') this.native.routeLocal(mac);
    else this.native.routePeer(mac, ipToNum(to.ip), to.port, to.mtu);
  }

  report(): IoReport {
    const s = this.native.stats();
    return {
      captured: s.captured,
      received: s.received,
      injected: s.injected,
      sent: s.sent,
      dropped: Object.fromEntries(Object.entries(s.dropped).filter(([, n]) => n > 0)),
      peers: new Map(s.peers.map((p) => [numToIp(p.ip), { tx: p.tx, rx: p.rx }])),
      offloads: { ...s.offloads, gsoSends: s.gsoSends, gsoWrites: s.gsoWrites },
    };
  }

  async stop(): Promise<void> {
    this.native.stop();
  }
}
