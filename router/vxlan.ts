// Plain VXLAN (RFC 7348): 8-byte header, flags 0x08 (I: VNI valid), 24-bit VNI, one Ethernet frame.
// Only the exact flags byte 0x08 is accepted as VXLAN: other first bytes are our own headers (a
// relayed frame, later encrypted ones) or extensions (GBP, GPE) we do not speak; Linux drops those too.
//
// A frame relayed by a router that is not its origin (multi-hop) carries our own header instead,
// so the next router knows whose broadcast tree it follows:
//   byte 0 'W' (0x57) | byte 1 hop limit | bytes 2-3 zero | bytes 4-6 VNI | byte 7 zero
//   bytes 8-15 origin peer short id (8 bytes of SHA-256 of its name) | Ethernet frame
// A frame for a neighbour our datagrams cannot reach directly (its UDP path is blocked) goes to
// another neighbour that can, which passes it on as a relayed frame:
//   byte 0 'D' (0x44) | as above | bytes 16-23 the destination peer's short id | Ethernet frame
export const VXLAN_HEADER = 8;
export const VXLAN_FLAGS = 0x08;
export const RELAY_TYPE = 0x57;
export const RELAY_HEADER = 16;
export const RELAY_HOPS = 32;
export const DIRECTED_TYPE = 0x44;
export const DIRECTED_HEADER = 24;
export const ETH_HEADER = 14;

export type DecodeError = 'truncated' | 'oversized' | 'bad-flags' | 'wrong-vni' | 'hop-limit';

export interface Decoded {
  frame: Buffer;
  origin?: bigint;
  hops: number;
  destination?: bigint;
}

/** The first size bytes of into (when given and large enough), else a new buffer. */
const room = (size: number, into?: Buffer): Buffer =>
  into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);

/**
 * Encode a frame into a datagram, into the given buffer or a new one (the frame may be reused by the caller
 * afterwards).
 */
export function encode(vni: number, frame: Buffer, into?: Buffer): Buffer {
  const out = room(VXLAN_HEADER + frame.length, into);
  out.writeUInt32BE(VXLAN_FLAGS << 24, 0);
  out.writeUInt32BE(vni << 8, 4);
  frame.copy(out, VXLAN_HEADER);
  return out;
}

export function encodeRelay(vni: number, origin: bigint, hops: number, frame: Buffer, into?: Buffer): Buffer {
  const out = room(RELAY_HEADER + frame.length, into);
  out.writeUInt32BE(((RELAY_TYPE << 24) | (hops << 16)) >>> 0, 0);
  out.writeUInt32BE(vni << 8, 4);
  out.writeBigUInt64BE(origin, 8);
  frame.copy(out, RELAY_HEADER);
  return out;
}

export function encodeDirected(
  vni: number,
  origin: bigint,
  destination: bigint,
  hops: number,
  frame: Buffer,
  into?: Buffer,
): Buffer {
  const out = room(DIRECTED_HEADER + frame.length, into);
  out.writeUInt32BE(((DIRECTED_TYPE << 24) | (hops << 16)) >>> 0, 0);
  out.writeUInt32BE(vni << 8, 4);
  out.writeBigUInt64BE(origin, 8);
  out.writeBigUInt64BE(destination, 16);
  frame.copy(out, DIRECTED_HEADER);
  return out;
}

/** Returns the inner frame (and origin for a relayed one), or the reason the datagram is dropped. */
export function decode(datagram: Buffer, vni: number, maxFrame: number): Decoded | DecodeError {
  const directed = datagram[0] === DIRECTED_TYPE;
  const relayed = directed || datagram[0] === RELAY_TYPE;
  const header = directed ? DIRECTED_HEADER : relayed ? RELAY_HEADER : VXLAN_HEADER;
  if (datagram.length < header + ETH_HEADER) return 'truncated';
  if (datagram.length > header + maxFrame) return 'oversized';
  if (!relayed && datagram[0] !== VXLAN_FLAGS) return 'bad-flags';
  if (datagram.readUInt32BE(4) >>> 8 !== vni) return 'wrong-vni';
  if (!relayed) return { frame: datagram.subarray(VXLAN_HEADER), hops: RELAY_HOPS };
  const hops = datagram[1];
  if (hops === 0) return 'hop-limit';
  if (directed)
    return {
      frame: datagram.subarray(DIRECTED_HEADER),
      origin: datagram.readBigUInt64BE(8),
      hops,
      destination: datagram.readBigUInt64BE(16),
    };
  return { frame: datagram.subarray(RELAY_HEADER), origin: datagram.readBigUInt64BE(8), hops };
}
