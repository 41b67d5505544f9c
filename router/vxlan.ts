// Plain VXLAN (RFC 7348): 8-byte header, flags 0x08 (I: VNI valid), 24-bit VNI, one Ethernet frame.
// Only the exact flags byte 0x08 is accepted: other first bytes are reserved for our encrypted
// header and for extensions (GBP, GPE) we do not speak; Linux's vxlan driver drops those too.
export const VXLAN_HEADER = 8;
export const VXLAN_FLAGS = 0x08;
export const ETH_HEADER = 14;
export const DEFAULT_VNI = 6784;
export const MAX_VNI = 0xffffff;

export type DecodeError = 'truncated' | 'oversized' | 'bad-flags' | 'wrong-vni';

/** Encode a frame into a new datagram (the frame buffer may be reused by the caller afterwards). */
export function encode(vni: number, frame: Buffer, length = frame.length): Buffer {
  const out = Buffer.allocUnsafe(VXLAN_HEADER + length);
  out.writeUInt32BE(VXLAN_FLAGS << 24, 0);
  out.writeUInt32BE(vni << 8, 4);
  frame.copy(out, VXLAN_HEADER, 0, length);
  return out;
}

/** Returns the inner frame, or the reason the datagram is dropped. */
export function decode(datagram: Buffer, vni: number, maxFrame: number): Buffer | DecodeError {
  if (datagram.length < VXLAN_HEADER + ETH_HEADER) return 'truncated';
  if (datagram.length > VXLAN_HEADER + maxFrame) return 'oversized';
  if (datagram[0] !== VXLAN_FLAGS) return 'bad-flags';
  if (datagram.readUInt32BE(4) >>> 8 !== vni) return 'wrong-vni';
  return datagram.subarray(VXLAN_HEADER);
}

export function parseVni(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > MAX_VNI) throw new Error(`invalid VNI "${text}": expected an integer 0..${MAX_VNI}`);
  return n;
}
