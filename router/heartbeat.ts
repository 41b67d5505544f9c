// A data-path heartbeat: a plain VXLAN datagram our userspace sends once a second to each peer's
// VXLAN port, so it crosses exactly what the kernel's frames cross (the port, firewalls, the path).
// Its inner frame goes to a reserved link-local group address (IEEE 802.1D), which no Linux bridge
// forwards, so containers never see it; the far router takes it from its socket (sleeve) or from a
// capture on its vxlan device (fastdp).
//   Ethernet: dst 01:80:c2:00:00:0f | src 02:77 + 4 bytes of the sender's short id | type 0x88b5
//   payload:  'WHB1' | sender short id (8 bytes) | flags (below) | zeros to 46 bytes
// A fastdp host gets a second one on its sleeve port. Each says which of ours the sender hears, so
// both ends know both directions; DOWN_AFTER_MS without a word is a lost path. Anyone on the
// underlay can forge one, as they can forge any VXLAN frame.
import { encode } from './vxlan.js';

export const HEARTBEAT_MAC = 0x0180c200000f;
export const HEARTBEAT_ETHERTYPE = 0x88b5;
export const HEARTBEAT_INTERVAL_MS = 1000;
export const DOWN_AFTER_MS = 3500;
const MAGIC = 0x57484231; // 'WHB1'
const FRAME = 14 + 46;

export const isHeartbeat = (frame: Buffer): boolean =>
  frame[0] === 0x01 &&
  frame.length >= FRAME &&
  frame.readUIntBE(0, 6) === HEARTBEAT_MAC &&
  frame.readUInt16BE(12) === HEARTBEAT_ETHERTYPE &&
  frame.readUInt32BE(14) === MAGIC;

/**
 * Flags: the sender hears our heartbeats to its VXLAN port (bit 0), to its sleeve port (bit 2); this one went to our
 * sleeve port (bit 1).
 */
export const HEARS_VXLAN = 1,
  TO_SLEEVE = 2,
  HEARS_SLEEVE = 4;
export type BeatKind = 'vxlan' | 'sleeve';

export function heartbeatDatagram(vni: number, sender: bigint, flags: number): Buffer {
  const f = Buffer.alloc(FRAME);
  f.writeUIntBE(HEARTBEAT_MAC, 0, 6);
  f.writeUInt16BE(0x0277, 6);
  f.writeUInt32BE(Number(sender >> 32n), 8);
  f.writeUInt16BE(HEARTBEAT_ETHERTYPE, 12);
  f.writeUInt32BE(MAGIC, 14);
  f.writeBigUInt64BE(sender, 18);
  f[26] = flags;
  return encode(vni, f);
}

export const heartbeatSender = (frame: Buffer): { sender: bigint; flags: number } => ({
  sender: frame.readBigUInt64BE(18),
  flags: frame[26],
});

interface PeerBeat {
  since: number;
  heard: Record<BeatKind, number>;
  flags: number;
  reported: number;
  up: boolean;
  reaches: boolean;
}

export interface HeartbeatOptions {
  now?: () => number;
  send(peer: string, kind: BeatKind, flags: number): void;
  onChange(peer: string): void;
}

/**
 * Per peer: whether the VXLAN path works both ways (`up`: the kernel may carry its frames), and
 * whether our datagrams reach its sleeve at all (`reaches`: else another router passes them on).
 * A peer with one port (a sleeve host) gets one heartbeat; a fastdp host one to each port.
 */
export class Heartbeats {
  private readonly beats = new Map<string, PeerBeat>();
  private readonly now: () => number;

  constructor(private readonly o: HeartbeatOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Sends each peer its heartbeats and notices the silent ones; peers no longer listed are forgotten. */
  tick(peers: { name: string; twoPorts: boolean }[]): void {
    const t = this.now();
    const names = new Set(peers.map((p) => p.name));
    for (const name of this.beats.keys()) if (!names.has(name)) this.beats.delete(name);
    for (const { name, twoPorts } of peers) {
      let b = this.beats.get(name);
      if (!b)
        this.beats.set(
          name,
          (b = { since: t, heard: { vxlan: 0, sleeve: 0 }, flags: 0, reported: 0, up: false, reaches: true }),
        );
      const flags =
        (t - b.heard.vxlan < DOWN_AFTER_MS ? HEARS_VXLAN : 0) | (t - b.heard.sleeve < DOWN_AFTER_MS ? HEARS_SLEEVE : 0);
      this.o.send(name, 'vxlan', flags);
      if (twoPorts) this.o.send(name, 'sleeve', flags | TO_SLEEVE);
      this.judge(name, b, twoPorts);
    }
  }

  receive(peer: string, flags: number, twoPorts: boolean): void {
    const b = this.beats.get(peer);
    if (!b) return; // not a neighbour (yet): its next tick counts
    const t = this.now();
    b.heard[flags & TO_SLEEVE ? 'sleeve' : 'vxlan'] = t;
    b.flags = flags;
    b.reported = t;
    this.judge(peer, b, twoPorts);
  }

  up(peer: string): boolean {
    return this.beats.get(peer)?.up ?? false;
  }
  reaches(peer: string): boolean {
    return this.beats.get(peer)?.reaches ?? true;
  }

  private judge(peer: string, b: PeerBeat, twoPorts: boolean): void {
    const t = this.now();
    const fresh = t - b.reported < DOWN_AFTER_MS;
    const up = fresh && t - b.heard.vxlan < DOWN_AFTER_MS && (b.flags & HEARS_VXLAN) !== 0;
    const reaches = t - b.since < DOWN_AFTER_MS || (fresh && (b.flags & (twoPorts ? HEARS_SLEEVE : HEARS_VXLAN)) !== 0);
    if (up === b.up && reaches === b.reaches) return;
    b.up = up;
    b.reaches = reaches;
    this.o.onChange(peer);
  }
}
