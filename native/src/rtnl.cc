#include "rtnl.h"

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace weave::rtnl {
namespace {

// rtnetlink handles a whole sendmsg before returning and queues one ack skb (~1 KiB of receive
// buffer each) per request: 128 per send stays well inside the default 208 KiB, so no ack is dropped.
constexpr size_t kChunk = 128;
// A dump skb is at most 32 KiB; acks are tens of bytes.
constexpr size_t kRecvBuf = 64 * 1024;

std::mutex mu;
int fd = -1;
uint32_t nextSeq = 1;

std::runtime_error SysError(const char* what, int err) {
  return std::runtime_error(std::string("netlink: ") + what + ": " + strerror(err) + " (" +
                            ErrnoName(err) + ")");
}

int Socket() {
  if (fd >= 0) return fd;
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) throw SysError("socket", errno);
  int one = 1;
  // Best effort (older kernels lack them): extended acks carry the kernel's reason; capped acks do
  // not echo our request back; strict checking lets a dump filter by port in the kernel (without it
  // FdbDump still filters here).
  setsockopt(s, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(s, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  setsockopt(s, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one);
  timeval tv{5, 0};  // never hang on an ack that will not come
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    int err = errno;
    close(s);
    throw SysError("bind", err);
  }
  return fd = s;
}

// After a failure the socket may hold stale replies: start the next call on a fresh one.
void Reset() {
  if (fd >= 0) close(fd);
  fd = -1;
}

int Send(const void* buf, size_t len) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  while (sendto(fd, buf, len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

void AddAttr(std::vector<char>& b, uint16_t type, const void* data, size_t len) {
  size_t at = b.size();
  b.resize(at + RTA_SPACE(len));
  auto* rta = reinterpret_cast<rtattr*>(&b[at]);
  rta->rta_type = type;
  rta->rta_len = RTA_LENGTH(len);
  memcpy(RTA_DATA(rta), data, len);
}

// The message `bridge fdb replace|append|del MAC dev D [dst IP] self permanent | master static`
// sends (iproute2 bridge/fdb.c, fdb_modify): the state starts at NUD_NOARP and `permanent` adds
// NUD_PERMANENT, `static` adds NUD_REACHABLE; delete sends the same header.
void PutFdb(std::vector<char>& b, const FdbReq& r, uint32_t seq) {
  size_t at = b.size();
  b.resize(at + NLMSG_SPACE(sizeof(ndmsg)));
  auto* h = reinterpret_cast<nlmsghdr*>(&b[at]);
  h->nlmsg_type = r.cmd == FdbCmd::Del ? RTM_DELNEIGH : RTM_NEWNEIGH;
  h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  if (r.cmd == FdbCmd::Replace) h->nlmsg_flags |= NLM_F_CREATE | NLM_F_REPLACE;
  if (r.cmd == FdbCmd::Append) h->nlmsg_flags |= NLM_F_CREATE | NLM_F_APPEND;
  h->nlmsg_seq = seq;
  auto* ndm = static_cast<ndmsg*>(NLMSG_DATA(h));
  ndm->ndm_family = AF_BRIDGE;
  ndm->ndm_ifindex = r.ifindex;
  ndm->ndm_flags = r.master ? NTF_MASTER : NTF_SELF;
  ndm->ndm_state = NUD_NOARP | (r.master ? NUD_REACHABLE : NUD_PERMANENT);
  AddAttr(b, NDA_LLADDR, r.mac, 6);
  if (r.hasDst) AddAttr(b, NDA_DST, &r.dst, 4);
  reinterpret_cast<nlmsghdr*>(&b[at])->nlmsg_len = b.size() - at;  // b may have moved
}

// The kernel's NLMSGERR_ATTR_MSG of an ack, if it sent one.
std::string ExtAck(const nlmsghdr* h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
  size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += NLMSG_ALIGN(e->msg.nlmsg_len) - NLMSG_HDRLEN;
  if (off >= h->nlmsg_len) return "";
  int len = h->nlmsg_len - off;
  for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(h) + off);
       RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type == NLMSGERR_ATTR_MSG)
      return std::string(static_cast<const char*>(RTA_DATA(a)),
                         strnlen(static_cast<const char*>(RTA_DATA(a)), RTA_PAYLOAD(a)));
  }
  return "";
}

// Reads the acks of requests first..first+n-1 into out[0..n-1] (err -1 marks one still missing).
void ReadAcks(uint32_t first, size_t n, Result* out, std::vector<char>& buf) {
  size_t got = 0;
  bool lost = false;
  while (got < n) {
    // Once the kernel reports dropped acks (ENOBUFS) only what is queued will come: drain, then stop.
    ssize_t len = recv(fd, buf.data(), buf.size(), lost ? MSG_DONTWAIT : 0);
    if (len < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS && !lost) {
        lost = true;
        continue;
      }
      int err = lost ? ENOBUFS : errno == EAGAIN ? ETIMEDOUT : errno;  // EAGAIN: SO_RCVTIMEO passed
      for (size_t i = 0; i < n; i++)
        if (out[i].err < 0) out[i] = {err, "no ack from the kernel"};
      Reset();
      return;
    }
    int left = len;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      uint32_t i = h->nlmsg_seq - first;  // wraps past n for replies to anything else
      if (h->nlmsg_type != NLMSG_ERROR || i >= n || out[i].err >= 0) continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) continue;
      out[i] = {-static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error, ExtAck(h)};
      got++;
    }
  }
}

}  // namespace

std::vector<Result> FdbApply(const std::vector<FdbReq>& reqs) {
  std::lock_guard<std::mutex> lock(mu);
  std::vector<Result> out(reqs.size(), Result{-1, ""});
  std::vector<char> msg, buf(kRecvBuf);
  for (size_t base = 0; base < reqs.size(); base += kChunk) {
    Socket();
    size_t n = std::min(kChunk, reqs.size() - base);
    uint32_t first = nextSeq;
    nextSeq += n;
    msg.clear();
    for (size_t i = 0; i < n; i++) PutFdb(msg, reqs[base + i], first + i);
    if (int err = Send(msg.data(), msg.size())) {
      for (size_t i = 0; i < n; i++) out[base + i] = {err, "sendmsg failed"};
      Reset();
      continue;
    }
    ReadAcks(first, n, &out[base], buf);
  }
  return out;
}

std::vector<FdbRow> FdbDump(int ifindex) {
  std::lock_guard<std::mutex> lock(mu);
  std::vector<char> buf(kRecvBuf);
  for (int attempt = 1;; attempt++) {
    Socket();
    struct {
      nlmsghdr h;
      ndmsg ndm;
    } req{};
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(ndmsg));
    req.h.nlmsg_type = RTM_GETNEIGH;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = nextSeq++;
    req.ndm.ndm_family = AF_BRIDGE;
    req.ndm.ndm_ifindex = ifindex;  // the kernel's filter under strict checking
    if (int err = Send(&req, req.h.nlmsg_len)) {
      Reset();
      throw SysError("dump request", err);
    }
    std::vector<FdbRow> rows;
    bool done = false, interrupted = false;
    while (!done) {
      ssize_t len = recv(fd, buf.data(), buf.size(), 0);
      if (len < 0 && errno == EINTR) continue;
      if (len < 0) {
        int err = errno;
        Reset();
        throw SysError("dump", err);
      }
      int left = len;
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
        if (h->nlmsg_seq != req.h.nlmsg_seq) continue;
        if (h->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
        if (h->nlmsg_type == NLMSG_DONE) {
          done = true;
          break;
        }
        if (h->nlmsg_type == NLMSG_ERROR) {
          int err = -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
          Reset();
          throw SysError("dump", err);
        }
        auto* ndm = static_cast<const ndmsg*>(NLMSG_DATA(h));
        if (h->nlmsg_type != RTM_NEWNEIGH || h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg)) ||
            ndm->ndm_family != AF_BRIDGE || ndm->ndm_ifindex != ifindex)
          continue;
        FdbRow row{ifindex, {}, "", (ndm->ndm_flags & NTF_MASTER) != 0, ndm->ndm_state, -1};
        bool hasMac = false;
        int alen = h->nlmsg_len - NLMSG_LENGTH(sizeof(ndmsg));
        for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(ndm) + NLMSG_ALIGN(sizeof(ndmsg)));
             RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
          const void* d = RTA_DATA(a);
          size_t dlen = RTA_PAYLOAD(a);
          char ip[INET6_ADDRSTRLEN];
          if (a->rta_type == NDA_LLADDR && dlen == 6) {
            memcpy(row.mac, d, 6);
            hasMac = true;
          } else if (a->rta_type == NDA_DST && (dlen == 4 || dlen == 16)) {
            if (inet_ntop(dlen == 4 ? AF_INET : AF_INET6, d, ip, sizeof ip)) row.dst = ip;
          } else if (a->rta_type == NDA_VLAN && dlen == 2) {
            row.vlan = *static_cast<const uint16_t*>(d);
          } else if (a->rta_type == NDA_MASTER) {
            row.master = true;  // the bridge marks its entries so, not with NTF_MASTER
          }
        }
        if (hasMac) rows.push_back(row);
      }
    }
    // An entry changed mid-dump: what we read may be inconsistent, so read it again (a few times).
    if (!interrupted || attempt == 3) return rows;
  }
}

std::string ErrnoName(int err) {
  static const struct {
    int err;
    const char* name;
  } names[] = {
      {EPERM, "EPERM"},         {ENOENT, "ENOENT"},           {EINTR, "EINTR"},
      {ENOMEM, "ENOMEM"},       {EACCES, "EACCES"},           {EBUSY, "EBUSY"},
      {EEXIST, "EEXIST"},       {ENODEV, "ENODEV"},           {EINVAL, "EINVAL"},
      {ENOSPC, "ENOSPC"},       {ERANGE, "ERANGE"},           {EAGAIN, "EAGAIN"},
      {EMSGSIZE, "EMSGSIZE"},   {EPROTONOSUPPORT, "EPROTONOSUPPORT"},
      {EOPNOTSUPP, "EOPNOTSUPP"}, {EAFNOSUPPORT, "EAFNOSUPPORT"}, {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
      {ENETDOWN, "ENETDOWN"},   {ENOBUFS, "ENOBUFS"},         {ETIMEDOUT, "ETIMEDOUT"},
  };
  for (auto& n : names)
    if (n.err == err) return n.name;
  return "errno " + std::to_string(err);
}

}  // namespace weave::rtnl
