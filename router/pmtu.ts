// Path MTU on the overlay: the underlay drops a datagram too big for it without a word (a Linux
// bridge or a veth sends no ICMP), so the router answers for the path, as any IP router would: an
// ICMP "fragmentation needed" (RFC 792, RFC 1191) back to the sender of a DF packet that is too big,
// from the address it was sent to. The sender's kernel lowers its path MTU for that address.
const ETH = 14;
const IPV4 = 0x0800;

const checksum = (buf: Buffer, start: number, end: number): number => {
  let sum = 0;
  for (let i = start; i < end - 1; i += 2) sum += buf.readUInt16BE(i);
  if ((end - start) & 1) sum += buf[end - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
};

/** The ICMP error frame for a too-big IPv4 frame with DF set; undefined for anything else (dropped silently). */
export function fragmentationNeeded(frame: Buffer, mtu: number): Buffer | undefined {
  if (frame.length < ETH + 20 || frame.readUInt16BE(12) !== IPV4) return undefined;
  const ihl = (frame[ETH] & 0x0f) * 4;
  if (frame[ETH] >> 4 !== 4 || ihl < 20 || frame.length < ETH + ihl) return undefined;
  if (!(frame[ETH + 6] & 0x40)) return undefined; // no DF: not ours to answer
  // never an error about an error
  if (frame[ETH + 9] === 1 && frame.length > ETH + ihl && frame[ETH + ihl] === 3) return undefined;
  const quoted = Math.min(frame.length - ETH, ihl + 8);
  const out = Buffer.alloc(ETH + 20 + 8 + quoted);
  frame.copy(out, 0, 6, 12); // back to the sender's MAC
  frame.copy(out, 6, 0, 6); // from the MAC it wrote to
  out.writeUInt16BE(IPV4, 12);
  const ip = ETH;
  out[ip] = 0x45;
  out.writeUInt16BE(20 + 8 + quoted, ip + 2);
  out[ip + 8] = 64; // TTL
  out[ip + 9] = 1; // ICMP
  frame.copy(out, ip + 12, ETH + 16, ETH + 20); // source: the address it was sent to
  frame.copy(out, ip + 16, ETH + 12, ETH + 16); // destination: its sender
  out.writeUInt16BE(checksum(out, ip, ip + 20), ip + 10);
  const icmp = ip + 20;
  out[icmp] = 3; // destination unreachable
  out[icmp + 1] = 4; // fragmentation needed and DF set
  out.writeUInt16BE(mtu, icmp + 6);
  frame.copy(out, icmp + 8, ETH, ETH + quoted);
  out.writeUInt16BE(checksum(out, icmp, out.length), icmp + 2);
  return out;
}
