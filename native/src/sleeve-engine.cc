#include "sleeve-engine.h"

#include <errno.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

namespace weave::sleeve {
namespace {

using offload::VnetHdr;

constexpr size_t kVxlan = 8;
// Sealed, a segment's datagram is [seal header][VXLAN header][segment][tag]; Split leaves this much
// before each segment, so the previous one's tag, this one's headers and the segment lie back to back.
constexpr size_t kSealedRoom = seal::kHeader + kVxlan + seal::kTag;
constexpr size_t kMaxSegments = 1024;     // a 64 KiB super-frame at an MSS of 64
constexpr size_t kUpLimit = 8 << 20;      // beyond this the TypeScript side is not keeping up: drop
constexpr int64_t kConfirmMs = 30'000;    // the TypeScript MAC table ages entries out after minutes
constexpr size_t kRecvBytes = 65536;
const VnetHdr kZeroHdr{};

uint64_t MacAt(const uint8_t* p) {
  uint64_t m = 0;
  for (int i = 0; i < 6; i++) m = m << 8 | p[i];
  return m;
}

sockaddr_in Address(uint32_t ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = ip;
  a.sin_port = htons(port);
  return a;
}

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace

Engine::Engine(const Config& cfg) : cfg_(cfg) {
  udp_ = OpenUdp(cfg.port);  // first: a port in use must fail before a device is made
  try {
    tap_ = OpenTap(cfg.tap);
  } catch (...) {
    close(udp_.fd);
    throw;
  }
  gsoSend_ = udp_.gso;
  stopFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

Engine::~Engine() {
  Stop();
  for (int fd : {tap_.fd, udp_.fd, stopFd_}) if (fd >= 0) close(fd);
}

void Engine::Start(std::function<void()> wake) {
  wake_ = std::move(wake);
  tapThread_ = std::thread([this] { pthread_setname_np(pthread_self(), "weave-tap"); TapLoop(); });
  udpThread_ = std::thread([this] { pthread_setname_np(pthread_self(), "weave-udp"); UdpLoop(); });
}

void Engine::Stop() {
  uint64_t one = 1;
  if (write(stopFd_, &one, sizeof one) < 0) { /* it is already signalled */ }
  if (tapThread_.joinable()) tapThread_.join();
  if (udpThread_.joinable()) udpThread_.join();
}

// True when fd is readable, false when the engine stops.
bool Engine::Wait(int fd) {
  pollfd p[2] = {{stopFd_, POLLIN, 0}, {fd, POLLIN, 0}};
  while (poll(p, 2, -1) < 0 && errno == EINTR) {}
  return !(p[0].revents & POLLIN);
}

void Engine::RouteLocal(uint64_t mac) {
  std::unique_lock l(tableMu_);
  Route& r = routes_[mac];
  r.local = true;
  r.traffic = nullptr;
}

void Engine::RoutePeer(uint64_t mac, uint32_t ip, uint16_t port, unsigned mtu) {
  std::unique_lock l(tableMu_);
  Route& r = routes_[mac];
  r.local = false;
  r.to = Address(ip, port);
  r.mtu = mtu;
  r.traffic = TrafficOf(ip);
}

void Engine::Unroute(uint64_t mac) {
  std::unique_lock l(tableMu_);
  routes_.erase(mac);
}

void Engine::Secure(uint32_t ip, const SecuritySpec* spec) {
  std::shared_ptr<Crypto> c;
  if (spec) {
    c = std::make_shared<Crypto>();
    c->plain = spec->plain;
    c->cipher = spec->cipher;
    c->tx = spec->tx;
    if (!spec->plain) {
      c->txTap = std::make_unique<seal::Aead>(spec->cipher, spec->tx.key);
      c->txJs = std::make_unique<seal::Aead>(spec->cipher, spec->tx.key);
    }
  }
  std::unique_lock l(tableMu_);
  auto it = crypto_.find(ip);
  Crypto* old = it == crypto_.end() ? nullptr : it->second.get();
  if (c && !c->plain) {
    bool same = old && !old->plain && old->cipher == c->cipher;
    if (same && memcmp(&old->tx, &c->tx, sizeof c->tx) == 0) c->counter = old->counter.load();
    for (const KeySpec& k : spec->rx) {
      Crypto::Rx* was = nullptr;
      if (same) for (auto& r : old->rx) if (memcmp(&r.key, &k, sizeof k) == 0) was = &r;
      if (was) c->rx.push_back(std::move(*was));
      else c->rx.push_back({k, std::make_unique<seal::Aead>(spec->cipher, k.key), {}});
    }
  }
  if (c) crypto_[ip] = std::move(c);
  else crypto_.erase(ip);
}

void Engine::SetPeers(const std::vector<uint32_t>& ips) {
  std::unique_lock l(tableMu_);
  peers_.clear();
  for (uint32_t ip : ips) { peers_.insert(ip); TrafficOf(ip); }
}

PeerTraffic* Engine::TrafficOf(uint32_t ip) {
  auto& t = traffic_[ip];
  if (!t) t = std::make_unique<PeerTraffic>();
  return t.get();
}

void Engine::ForEachPeer(const std::function<void(uint32_t, const PeerTraffic&)>& fn) {
  std::shared_lock l(tableMu_);
  for (auto& [ip, t] : traffic_) fn(ip, *t);
}

bool Engine::Inject(const uint8_t* frame, size_t len) {
  iovec iov[2] = {{const_cast<VnetHdr*>(&kZeroHdr), sizeof kZeroHdr}, {const_cast<uint8_t*>(frame), len}};
  return writev(tap_.fd, iov, 2) >= 0;
}

bool Engine::Send(const uint8_t* datagram, size_t len, uint32_t ip, uint16_t port) {
  sockaddr_in to = Address(ip, port);
  if (cfg_.encrypt) {
    std::shared_lock l(tableMu_);
    auto it = crypto_.find(ip);
    if (it == crypto_.end()) { counters_.noKey++; return true; }  // keys not agreed yet: dropped, counted
    Crypto& c = *it->second;
    if (!c.plain) {
      jsScratch_.resize(len + seal::kOverhead);
      memcpy(jsScratch_.data() + seal::kHeader, datagram, len);
      if (!c.txJs->Seal(jsScratch_.data(), len, c.tx.id, c.counter++)) return false;
      datagram = jsScratch_.data();
      len += seal::kOverhead;
    }
  }
  return sendto(udp_.fd, datagram, len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), sizeof to) >= 0;
}

std::vector<uint8_t> Engine::Drain() {
  std::vector<uint8_t> out;
  std::lock_guard l(upMu_);
  out.swap(up_);
  return out;
}

void Engine::Up(Upcall kind, uint32_t ip, const uint8_t* data, size_t len) {
  bool wake;
  {
    std::lock_guard l(upMu_);
    if (up_.size() + 12 + len > kUpLimit) { counters_.queueFull++; return; }
    wake = up_.empty();
    uint8_t h[12] = {kind};
    memcpy(h + 4, &ip, 4);
    uint32_t n = len;
    memcpy(h + 8, &n, 4);
    up_.insert(up_.end(), h, h + 12);
    up_.insert(up_.end(), data, data + len);
  }
  if (kind == kFrame) counters_.upFrames.Add(1, len);
  if (kind == kDatagram) counters_.upDatagrams.Add(1, len);
  if (wake && wake_) wake_();
}

// A location traffic shows: confirmed now and then when the table agrees, reported when it does
// not (once a second per thread for a stream from one MAC, until TypeScript routes it).
void Engine::Learn(Upcall kind, uint64_t mac, uint32_t ip, const Route* r, int64_t now, Reported& rep) {
  bool agrees = r && (kind == kLocalMac ? r->local : !r->local && r->to.sin_addr.s_addr == ip);
  if (agrees) {
    if (now - r->confirmed.load(std::memory_order_relaxed) < kConfirmMs) return;
    const_cast<Route*>(r)->confirmed.store(now, std::memory_order_relaxed);
  } else {
    if (rep.mac == mac && rep.where == ip && now - rep.at < 1000) return;
    rep = {mac, ip, now};
  }
  uint8_t m[6];
  for (int i = 0; i < 6; i++) m[i] = mac >> (40 - 8 * i);
  Up(kind, ip, m, sizeof m);
}

Engine::TapSide::TapSide()
    : in(sizeof(VnetHdr) + offload::kMaxFrame),
      // Each segment repeats the headers (at most 14 + 60 + 60 bytes) after its VXLAN (and seal) headers.
      out(offload::kMaxFrame + kMaxSegments * (kSealedRoom + 134) + seal::kTag),
      lens(kMaxSegments) {}

bool Engine::FromTap(TapSide& s, int max) {
  for (int i = 0; i < max; i++) {
    ssize_t n = read(tap_.fd, s.in.data(), s.in.size());
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR) counters_.malformed++;
      return i > 0;
    }
    FromBridge(s.in.data(), n, s.out.data(), s.out.size(), s.lens.data(), s.rep);
  }
  return true;
}

void Engine::FromBridge(const uint8_t* buf, size_t n, uint8_t* out, size_t cap, uint16_t* lens, Reported& rep) {
  if (n < sizeof(VnetHdr) + 14) { counters_.malformed++; return; }
  VnetHdr h;
  memcpy(&h, buf, sizeof h);
  const uint8_t* f = buf + sizeof h;
  size_t len = n - sizeof h;
  counters_.captured.Add(1, len);
  sockaddr_in to;
  unsigned mtu = 0;
  PeerTraffic* t = nullptr;
  std::shared_ptr<Crypto> crypto;
  {
    std::shared_lock l(tableMu_);
    if (!(f[6] & 1)) {
      uint64_t src = MacAt(f + 6);
      auto it = routes_.find(src);
      Learn(kLocalMac, src, 0, it == routes_.end() ? nullptr : &it->second, NowMs(), rep);
    }
    if (!(f[0] & 1)) {
      auto it = routes_.find(MacAt(f));
      if (it != routes_.end() && !it->second.local) { to = it->second.to; mtu = it->second.mtu; t = it->second.traffic; }
    }
    if (t && cfg_.encrypt) {
      auto c = crypto_.find(to.sin_addr.s_addr);
      if (c == crypto_.end()) { counters_.noKey++; return; }  // keys not agreed yet: as a wire would, it drops
      if (!c->second->plain) crypto = c->second;
    }
  }
  const size_t room = crypto ? kSealedRoom : kVxlan;
  int segs = offload::Split(h, f, len, {out, cap - seal::kTag, room, lens, kMaxSegments});
  if (segs <= 0) { counters_.malformed++; return; }
  // Segments are alike but the last, which is no larger: the first says whether they fit the peer.
  if (t && lens[0] <= mtu + 14) {
    // Each datagram: [seal header][VXLAN header][segment][tag] sealed, [VXLAN header][segment] plain.
    const size_t over = crypto ? seal::kOverhead : 0;
    uint8_t* first = out + room - kVxlan - (crypto ? seal::kHeader : 0);
    uint8_t* p = first;
    size_t bytes = 0;
    for (int i = 0; i < segs; i++) {
      uint8_t* vx = p + (crypto ? seal::kHeader : 0);
      uint32_t flags = htonl(0x08000000), vni = htonl(cfg_.vni << 8);
      memcpy(vx, &flags, 4);
      memcpy(vx + 4, &vni, 4);
      if (crypto && !crypto->txTap->Seal(p, kVxlan + lens[i], crypto->tx.id, crypto->counter++)) { counters_.sendFailed++; return; }
      bytes += kVxlan + lens[i] + over;
      p += kVxlan + lens[i] + over;
    }
    uint64_t failed = 0;
    bool gso = gsoSend_.load(std::memory_order_relaxed);
    if (!SendDatagrams(udp_.fd, to, first, segs, kVxlan + over + lens[0], kVxlan + over + lens[segs - 1], gso, &failed)) gsoSend_ = gso = false;
    if (gso && segs > 1) counters_.gsoSends++;
    counters_.sendFailed += failed;
    counters_.sent.Add(segs - failed, bytes);
    t->tx.Add(segs - failed, bytes);
    return;
  }
  // TypeScript decides: floods, relays, too big (it answers with ICMP), unknown destinations.
  const uint8_t* p = out;
  for (int i = 0; i < segs; i++) {
    Up(kFrame, 0, p + room, lens[i]);
    p += room + lens[i];
  }
}

bool Engine::Open(Crypto* c, uint8_t* d, size_t len, size_t* inner, size_t* innerLen) {
  *inner = 0;
  *innerLen = len;
  if (d[0] != seal::kType) {
    if (c && c->plain) return true;
    counters_.unencrypted++;
    return false;
  }
  uint8_t id;
  uint64_t counter;
  if (!seal::ReadHeader(d, len, &id, &counter)) { counters_.truncated++; return false; }
  Crypto::Rx* rx = nullptr;
  if (c) for (auto& r : c->rx) if (r.key.id == id) rx = &r;
  if (!rx) { counters_.noKey++; return false; }
  switch (rx->window.Check(counter)) {
    case seal::ReplayWindow::kReplay: counters_.replay++; return false;
    case seal::ReplayWindow::kTooOld: counters_.tooOld++; return false;
    case seal::ReplayWindow::kFresh: break;
  }
  if (!rx->aead->Open(d, len)) { counters_.auth++; return false; }
  rx->window.Accept(counter);
  *inner = seal::kHeader;
  *innerLen = len - seal::kOverhead;
  return true;
}

Engine::UdpSide::UdpSide(Engine* e) : bufs(kRecvBatch * kRecvBytes), co([e](const uint8_t* d, size_t n) { e->Write(d, n); }) {}

bool Engine::FromUdp(UdpSide& s) {
  auto& [bufs, msgs, iovs, from, ctl, co, rep] = s;
  for (size_t i = 0; i < kRecvBatch; i++) {
    iovs[i] = {bufs.data() + i * kRecvBytes, kRecvBytes};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_control = ctl[i];
    msgs[i].msg_hdr.msg_controllen = sizeof ctl[i];
  }
  int n = recvmmsg(udp_.fd, msgs, kRecvBatch, MSG_DONTWAIT, nullptr);
  // EAGAIN: nothing yet; anything else (an ICMP error a peer sent back) is no reason to stop.
  if (n <= 0) return n < 0 && errno != EAGAIN && errno != EINTR;
  int64_t now = NowMs();
  {
    std::shared_lock l(tableMu_);
    for (int i = 0; i < n; i++) {
      const msghdr& m = msgs[i].msg_hdr;
      size_t len = msgs[i].msg_len, seg = len;
      if (m.msg_flags & MSG_TRUNC) { counters_.malformed++; continue; }
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(const_cast<msghdr*>(&m), c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
          int size;
          memcpy(&size, CMSG_DATA(c), sizeof size);
          if (size > 0) seg = size;
        }
      }
      uint32_t ip = from[i].sin_addr.s_addr;
      PeerTraffic* t = nullptr;
      if (peers_.count(ip)) t = traffic_.find(ip)->second.get();  // SetPeers made it
      Crypto* c = nullptr;
      if (cfg_.encrypt) {
        auto it = crypto_.find(ip);
        if (it != crypto_.end()) c = it->second.get();
      }
      uint8_t* d = bufs.data() + i * kRecvBytes;
      for (size_t off = 0; off < len; off += seg) {
        size_t dl = std::min(seg, len - off), at = 0;
        counters_.received.Add(1, dl);
        if (cfg_.encrypt && !Open(c, d + off, dl, &at, &dl)) continue;
        if (!t || !ToBridge(d + off + at, dl, ip, t, now, rep, co)) Up(kDatagram, ip, d + off + at, dl);
      }
    }
  }
  co.Flush();
  return true;
}

// One thread each way: the two directions run in parallel, and each sleeps when its side is quiet.
// (One thread for both that spins 200 us before it sleeps was tried: RTT p50 0.30-0.34 ms against
// 0.25 here, the same throughput: on two cores the spinning takes the CPU the replies need.)
void Engine::TapLoop() {
  TapSide s;
  for (;;) if (!FromTap(s, 1 << 30) && !Wait(tap_.fd)) return;
}

void Engine::UdpLoop() {
  UdpSide s(this);
  for (;;) if (!FromUdp(s) && !Wait(udp_.fd)) return;
}

// A plain VXLAN datagram from a peer, for a MAC on our bridge: on its way. Anything else goes up.
bool Engine::ToBridge(const uint8_t* d, size_t len, uint32_t ip, PeerTraffic* t, int64_t now, Reported& rep, offload::Coalescer& co) {
  if (len < kVxlan + 14 || len > kVxlan + cfg_.mtu + 14 || d[0] != 0x08) return false;
  uint32_t vni;
  memcpy(&vni, d + 4, 4);
  if (ntohl(vni) >> 8 != cfg_.vni) return false;
  const uint8_t* f = d + kVxlan;
  if ((f[0] & 1) || (f[6] & 1)) return false;
  auto it = routes_.find(MacAt(f));
  if (it == routes_.end() || !it->second.local) return false;
  uint64_t src = MacAt(f + 6);
  auto s = routes_.find(src);
  Learn(kPeerMac, src, ip, s == routes_.end() ? nullptr : &s->second, now, rep);
  size_t fl = len - kVxlan;
  t->rx.Add(1, fl);
  counters_.injected.Add(1, fl);
  if (gsoWrite_.load(std::memory_order_relaxed)) co.Add(f, fl);
  else WriteFrame(f, fl);
  return true;
}

void Engine::WriteFrame(const uint8_t* frame, size_t len) {
  if (!Inject(frame, len)) counters_.writeFailed++;
}

// One TAP write from the coalescer. A kernel that refuses GSO writes gets this one split again and
// every later frame as it came.
void Engine::Write(const uint8_t* data, size_t len) {
  VnetHdr h;
  memcpy(&h, data, sizeof h);
  if (write(tap_.fd, data, len) >= 0) {
    if (h.gso_type != offload::kGsoNone) counters_.gsoWrites++;
    return;
  }
  if (h.gso_type == offload::kGsoNone || errno != EINVAL) { counters_.writeFailed++; return; }
  gsoWrite_ = false;
  static thread_local std::vector<uint8_t> out(offload::kMaxFrame + kMaxSegments * (sizeof h + 134));
  static thread_local std::vector<uint16_t> lens(kMaxSegments);
  int segs = offload::Split(h, data + sizeof h, len - sizeof h, {out.data(), out.size(), 0, lens.data(), kMaxSegments});
  const uint8_t* p = out.data();
  for (int i = 0; i < segs; i++) { WriteFrame(p, lens[i]); p += lens[i]; }
}

}  // namespace weave::sleeve
