// Segmentation and coalescing for the native sleeve: pure functions over bytes, no I/O, so the
// fuzz test (native/test/fuzz-offload.cc) drives exactly the code the datapath runs.
//
// A TAP opened with IFF_VNET_HDR prefixes every frame with a virtio_net_hdr. With TUNSETOFFLOAD
// the kernel hands us TCP (and UDP, where it has USO) super-frames of up to 64 KiB, and frames whose
// L4 checksum is still to be finished (NEEDS_CSUM). The wire carries one ordinary frame per VXLAN
// datagram, so a super-frame is split here into segments; on the way back, consecutive TCP segments
// of one flow are merged into one super-frame for a single TAP write.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace weave::offload {

// struct virtio_net_hdr (linux/virtio_net.h), in host byte order (the TAP's default on x86).
struct VnetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
static_assert(sizeof(VnetHdr) == 10, "virtio_net_hdr is 10 bytes");

constexpr uint8_t kNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kDataValid = 2;  // VIRTIO_NET_HDR_F_DATA_VALID
constexpr uint8_t kGsoNone = 0, kGsoTcpV4 = 1, kGsoUdp = 3, kGsoTcpV6 = 4, kGsoUdpL4 = 5, kGsoEcn = 0x80;

// The largest frame either direction handles: a 64 KiB IP packet and its Ethernet header.
constexpr size_t kMaxFrame = 65535 + 14;

// Where Split writes its segments. Each segment is preceded by `headroom` bytes the caller fills
// (a VXLAN header), and segments are laid out back to back:
//   [headroom][segment 0][headroom][segment 1]...
// so that one UDP GSO send can carry them all when every segment but the last has the same size.
struct SplitOut {
  uint8_t* buf;       // where to write
  size_t cap;         // bytes available at buf
  size_t headroom;    // bytes left free before each segment
  uint16_t* lens;     // out: length of each segment (without its headroom)
  size_t max_segments;
};

// Turns one frame read from the TAP (frame: Ethernet header onwards; h: its virtio_net_hdr) into
// wire frames:
//  - gso_type NONE: the frame itself, its L4 checksum finished when NEEDS_CSUM is set (the sum from
//    csum_start to the end, stored at csum_start + csum_offset; both checked against the length).
//  - TCPV4 / TCPV6 (ECN bit allowed): segments of at most gso_size payload bytes each. Per segment:
//    Ethernet header copied; IPv4 total length, ID (first segment's ID + i) and header checksum;
//    IPv6 payload length; TCP sequence number (+ bytes before it), FIN and PSH only on the last,
//    CWR only on the first; full TCP checksum with the pseudo-header. Header lengths come from
//    parsing the headers (hdr_len is not trusted); IPv4 options and IPv6 without extension headers
//    only, and not a fragment (anything else: malformed).
//  - UDP_L4 (USO): the same into UDP datagrams of gso_size payload each, with their own UDP length
//    and checksum (a zero checksum stays zero only over IPv4).
// A frame whose headers are too short, inconsistent with its length (IP length must match the
// frame), of another protocol than its gso_type says, or that yields more than max_segments
// segments, a segment over 65535 bytes (lens are 16-bit) or more bytes than cap, is malformed:
// returns -1 and nothing written is to be used.
// Otherwise returns the number of segments (>= 1). Never reads outside [frame, frame+len) nor
// writes outside [out.buf, out.buf+out.cap). frame is not modified.
int Split(const VnetHdr& h, const uint8_t* frame, size_t len, const SplitOut& out);

// Gathers frames on their way into the TAP. Consecutive TCP segments of one flow that continue one
// another are merged into one super-frame written with a GSO virtio_net_hdr (NEEDS_CSUM, the TCP
// checksum field holding the folded pseudo-header sum, gso_size = the first segment's payload);
// every other frame is written as it came, after a zero virtio_net_hdr.
//
// A segment joins the pending run when: same Ethernet header; IPv4 with no options, not a fragment,
// same addresses, TOS, TTL, DF, and ID one more than the previous; or IPv6 with no extension
// header, same addresses, traffic class, flow label, hop limit; TCP with the same ports, ACK number,
// window, header length and option bytes; flags ACK only, or ACK|PSH (which ends the run); sequence
// number right after the previous segment; payload not empty and not larger than the run's first
// segment's; the merged packet within 65535 bytes and 64 segments. A segment shorter than the first
// ends the run. A frame's IPv4 header checksum and TCP checksum are verified before it may start
// or join a run; one that fails is written as it came (the kernel drops it).
//
// write(data, len) receives one complete TAP write: a VnetHdr followed by the frame. data is valid
// only during the call. Frames are copied when kept, so the caller may reuse its buffer after Add.
class Coalescer {
 public:
  using Write = std::function<void(const uint8_t* data, size_t len)>;
  explicit Coalescer(Write write);
  ~Coalescer();
  Coalescer(const Coalescer&) = delete;
  Coalescer& operator=(const Coalescer&) = delete;

  // A frame (Ethernet header onwards) to write. Frames of any content are accepted; none crashes.
  // One longer than kMaxFrame (more than one datagram carries) is dropped.
  void Add(const uint8_t* frame, size_t len);
  // Writes what is pending (at the end of each batch of received datagrams).
  void Flush();

 private:
  struct State;
  State* s_;
  Write write_;
};

// The Internet checksum (RFC 1071) of data, folded and complemented, with an initial 32-bit sum.
uint16_t Checksum(const uint8_t* data, size_t len, uint32_t initial = 0);
// The sum of data's 16-bit big-endian words (odd last byte padded) plus initial, unfolded: equal to
// the plain sum modulo 0xffff (ones' complement), not necessarily as an integer; fold before use.
uint64_t SumWords(const uint8_t* data, size_t len, uint64_t initial = 0);

}  // namespace weave::offload
