#include "sleeve-io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/udp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace weave::sleeve {
namespace {

// Debian 12's headers predate UDP segmentation offload on TAP devices (Linux 6.2).
constexpr unsigned kTunUso4 = 0x20, kTunUso6 = 0x40;
// IP and UDP headers: what a GSO send's 64 KiB must leave room for.
constexpr size_t kGsoBytes = 65535 - 20 - 8;
constexpr size_t kGsoSegments = 64;  // UDP_MAX_SEGMENTS

[[noreturn]] void Fail(const std::string& what) { throw std::runtime_error(what + ": " + strerror(errno)); }

}  // namespace

Tap OpenTap(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) throw std::runtime_error("bad TAP name \"" + name + "\"");
  Tap t;
  t.fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (t.fd < 0) Fail("cannot open /dev/net/tun");
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  memcpy(ifr.ifr_name, name.data(), name.size());
  if (ioctl(t.fd, TUNSETIFF, &ifr) < 0) { int e = errno; close(t.fd); errno = e; Fail("cannot make TAP " + name); }
  // The most the kernel takes: checksums and TCP segmentation, UDP's where it has it.
  const unsigned tcp = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
  if (ioctl(t.fd, TUNSETOFFLOAD, tcp | kTunUso4 | kTunUso6) == 0) t.tso = t.uso = true;
  else if (ioctl(t.fd, TUNSETOFFLOAD, tcp) == 0) t.tso = true;
  else ioctl(t.fd, TUNSETOFFLOAD, 0);
  return t;
}

Udp OpenUdp(uint16_t port) {
  Udp u;
  // Blocking: a full send buffer holds the sender back (TCP sees backpressure, not loss); reads use MSG_DONTWAIT.
  u.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (u.fd < 0) Fail("cannot make a UDP socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (bind(u.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
    int e = errno;
    close(u.fd);
    if (e == EADDRINUSE) throw std::runtime_error("UDP port " + std::to_string(port) + " is already in use");
    errno = e;
    Fail("cannot open UDP port " + std::to_string(port));
  }
  int bytes = 8 << 20;  // the FORCE variants pass the sysctl limits (we run as root); else the plain ones
  if (setsockopt(u.fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0) setsockopt(u.fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  if (setsockopt(u.fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) < 0) setsockopt(u.fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  int one = 1;
  u.gro = setsockopt(u.fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  // Setting a segment size per socket is the probe that the kernel has UDP GSO; ours is per send.
  int size = 1400, none = 0;
  u.gso = setsockopt(u.fd, SOL_UDP, UDP_SEGMENT, &size, sizeof size) == 0 && setsockopt(u.fd, SOL_UDP, UDP_SEGMENT, &none, sizeof none) == 0;
  return u;
}

bool SendDatagrams(int fd, const sockaddr_in& to, const uint8_t* data, size_t n, size_t size, size_t last, bool gso, uint64_t* failed) {
  if (gso && n > 1) {
    const size_t per = std::min(kGsoSegments, kGsoBytes / size);
    for (size_t i = 0; i < n;) {
      size_t k = std::min(per, n - i);
      size_t bytes = (k - 1) * size + (i + k == n ? last : size);
      iovec iov{const_cast<uint8_t*>(data + i * size), bytes};
      alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(uint16_t))] = {};
      msghdr m{};
      m.msg_name = const_cast<sockaddr_in*>(&to);
      m.msg_namelen = sizeof to;
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      if (k > 1) {
        m.msg_control = ctl;
        m.msg_controllen = sizeof ctl;
        cmsghdr* c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t s = size;
        memcpy(CMSG_DATA(c), &s, sizeof s);
      }
      if (sendmsg(fd, &m, 0) < 0) {
        // EIO: the way out cannot checksum for GSO; the rest goes one datagram at a time.
        if (k > 1 && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT)) {
          SendDatagrams(fd, to, data + i * size, n - i, size, last, false, failed);
          return false;
        }
        *failed += k;
      }
      i += k;
    }
    return true;
  }
  constexpr size_t kBatch = 64;
  mmsghdr msgs[kBatch];
  iovec iovs[kBatch];
  for (size_t i = 0; i < n;) {
    size_t k = std::min(kBatch, n - i);
    for (size_t j = 0; j < k; j++) {
      iovs[j] = {const_cast<uint8_t*>(data + (i + j) * size), i + j + 1 == n ? last : size};
      msgs[j] = {};
      msgs[j].msg_hdr.msg_name = const_cast<sockaddr_in*>(&to);
      msgs[j].msg_hdr.msg_namelen = sizeof to;
      msgs[j].msg_hdr.msg_iov = &iovs[j];
      msgs[j].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(fd, msgs, k, 0);
    if (sent < 0) sent = 0;
    if (static_cast<size_t>(sent) < k) *failed += k - sent;  // a full socket buffer drops, as a wire would
    i += k;
  }
  return true;
}

}  // namespace weave::sleeve
