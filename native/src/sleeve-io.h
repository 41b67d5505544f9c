// The native sleeve's two devices: a TAP with virtio_net_hdr offloads, and the UDP socket with
// segmentation offload (GSO) out and receive offload (GRO) in. Each open probes what the kernel
// can do and says so; a failure is a one-line std::runtime_error.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace weave::sleeve {

struct Tap {
  int fd = -1;
  bool tso = false;  // the kernel hands us TCP super-frames (TSO4/TSO6) and unfinished checksums
  bool uso = false;  // and UDP super-frames (USO, Linux 6.2+)
};

// A TAP device by that name on the current network namespace, non-blocking, IFF_VNET_HDR, with
// the most offloads the kernel accepts. It lives as long as fd is open.
Tap OpenTap(const std::string& name);

struct Udp {
  int fd = -1;
  bool gro = false;  // reads may be several datagrams of one size (UDP_GRO)
  bool gso = false;  // sends may carry several datagrams of one size (UDP_SEGMENT)
};

// A UDP socket bound to port on every address, with large buffers.
Udp OpenUdp(uint16_t port);

// Sends n datagrams laid out back to back at data (every one but the last of `size` bytes, the last
// `last` bytes) to `to`: one UDP_SEGMENT send per 64 datagrams or 64 KiB when gso, else one
// sendmmsg. Returns false when the kernel refused GSO (the caller turns it off and sends again).
bool SendDatagrams(int fd, const sockaddr_in& to, const uint8_t* data, size_t n, size_t size, size_t last, bool gso, uint64_t* failed);

}  // namespace weave::sleeve
