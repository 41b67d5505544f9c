// A data-path heartbeat: a plain VXLAN datagram our userspace sends once a second to each peer's
// VXLAN port, so it crosses exactly what the kernel's frames cross (the port, firewalls, the path).
// Its inner frame goes to a reserved link-local group address (IEEE 802.1D), which no Linux bridge
// forwards, so containers never see it; the far router takes it from its socket (sleeve) or from a
// capture on its vxlan device (fastdp).
//   Ethernet: dst 01:80:c2:00:00:0f | src 02:77 + 4 bytes of the sender's short id | type 0x88b5
//   payload:  'WHB1' | sender short id (8 bytes) | flags (bit 0: "I hear you") | zeros to 46 bytes
// A path is up when the peer's heartbeats reach us and say ours reach it; down after DOWN_AFTER_MS
// without one. Anyone on the underlay can forge one, as they can forge any VXLAN frame.
import { encode } from './vxlan.js';

export const HEARTBEAT_MAC = 0x0180c200000f;
export const HEARTBEAT_ETHERTYPE = 0x88b5;
export const HEARTBEAT_INTERVAL_MS = 1000;
export const DOWN_AFTER_MS = 3500;
const MAGIC = 0x57484231; // 'WHB1'
const FRAME = 14 + 46;

export const isHeartbeat = (frame: Buffer): boolean =>
  frame[0] === 0x01 && frame.length >= FRAME && frame.readUIntBE(0, 6) === HEARTBEAT_MAC &&
  frame.readUInt16BE(12) === HEARTBEAT_ETHERTYPE && frame.readUInt32BE(14) === MAGIC;

export function heartbeatDatagram(vni: number, sender: bigint, hearYou: boolean): Buffer {
  const f = Buffer.alloc(FRAME);
  f.writeUIntBE(HEARTBEAT_MAC, 0, 6);
  f.writeUInt16BE(0x0277, 6);
  f.writeUInt32BE(Number(sender >> 32n), 8);
  f.writeUInt16BE(HEARTBEAT_ETHERTYPE, 12);
  f.writeUInt32BE(MAGIC, 14);
  f.writeBigUInt64BE(sender, 18);
  f[26] = hearYou ? 1 : 0;
  return encode(vni, f);
}

export const heartbeatSender = (frame: Buffer): { sender: bigint; hearsUs: boolean } =>
  ({ sender: frame.readBigUInt64BE(18), hearsUs: (frame[26] & 1) === 1 });

interface PeerBeat { heard: number; hearsUs: boolean; up: boolean }

export interface HeartbeatOptions {
  now?: () => number;
  send(peer: string, hearYou: boolean): void;
  onChange(peer: string, up: boolean): void;
}

/** Per peer, whether the VXLAN path works both ways. */
export class Heartbeats {
  private readonly beats = new Map<string, PeerBeat>();
  private readonly now: () => number;

  constructor(private readonly o: HeartbeatOptions) { this.now = o.now ?? Date.now; }

  /** Sends one heartbeat to each peer and notices the silent ones; peers no longer listed are forgotten. */
  tick(peers: string[]): void {
    const t = this.now();
    for (const name of this.beats.keys()) if (!peers.includes(name)) this.beats.delete(name);
    for (const name of peers) {
      const b = this.beats.get(name);
      const hear = b !== undefined && t - b.heard < DOWN_AFTER_MS;
      this.o.send(name, hear);
      if (b && b.up && !hear) this.set(name, b, false);
    }
  }

  receive(peer: string, hearsUs: boolean): void {
    let b = this.beats.get(peer);
    if (!b) this.beats.set(peer, b = { heard: 0, hearsUs: false, up: false });
    b.heard = this.now();
    b.hearsUs = hearsUs;
    if (b.up !== hearsUs) this.set(peer, b, hearsUs);
  }

  up(peer: string): boolean { return this.beats.get(peer)?.up ?? false; }

  private set(peer: string, b: PeerBeat, up: boolean): void {
    b.up = up;
    this.o.onChange(peer, up);
  }
}
