// The native sleeve's frame path: two threads, one per direction, that move frames between the TAP
// on the bridge and the UDP socket without TypeScript. TypeScript pushes down where each MAC lives
// (this host, or the address and port of the peer its frames go to); what the threads cannot decide
// alone (group and unknown destinations, relayed frames, heartbeats, frames too big for a peer,
// anything malformed) goes up to it whole, with what traffic taught about MAC locations, in one
// queue that is drained in batches.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "offload.h"
#include "seal.h"
#include "sleeve-io.h"

namespace weave::sleeve {

// Records in the upcall queue: kind (1 byte), 3 zero bytes, IPv4 address (network order), length
// (4 bytes, host order), then that many bytes.
enum Upcall : uint8_t {
  kFrame = 1,     // a frame from the bridge the threads did not send (payload: the frame)
  kDatagram = 2,  // a datagram from ip the threads did not deliver (payload: the datagram)
  kLocalMac = 3,  // a MAC seen sending from the bridge (payload: 6 bytes)
  kPeerMac = 4,   // a MAC seen in a frame from ip (payload: 6 bytes)
};

struct Traffic {
  std::atomic<uint64_t> frames{0}, bytes{0};
  void Add(uint64_t n, uint64_t b) { frames.fetch_add(n, std::memory_order_relaxed); bytes.fetch_add(b, std::memory_order_relaxed); }
};

struct PeerTraffic { Traffic tx, rx; };

struct Counters {
  Traffic captured, injected, sent, received, upFrames, upDatagrams;
  std::atomic<uint64_t> gsoSends{0}, gsoWrites{0};
  std::atomic<uint64_t> malformed{0}, sendFailed{0}, writeFailed{0}, queueFull{0};
  // Encryption: datagrams that could not be opened (or sealed), by reason.
  std::atomic<uint64_t> noKey{0}, unencrypted{0}, auth{0}, replay{0}, tooOld{0}, truncated{0};
};

// With encryption, how datagrams to and from one peer address go: plain (both trust each other's
// subnet), or sealed under a send key and opened under the newest receive keys.
struct KeySpec { uint8_t id; uint8_t key[32]; };
struct SecuritySpec {
  bool plain = false;
  seal::Cipher cipher = seal::Cipher::kChaCha20Poly1305;
  KeySpec tx{};
  std::vector<KeySpec> rx;
};

class Engine {
 public:
  struct Config { std::string tap; uint16_t port; uint32_t vni; unsigned mtu; bool encrypt; };
  // Opens the TAP and takes the UDP port; throws a one-line std::runtime_error.
  explicit Engine(const Config& cfg);
  ~Engine();

  // wake is called from a datapath thread when the upcall queue stops being empty.
  void Start(std::function<void()> wake);
  void Stop();

  // Where frames for mac go: local (the bridge), or a peer (to, with its MTU); Unroute: ask TypeScript.
  void RouteLocal(uint64_t mac);
  void RoutePeer(uint64_t mac, uint32_t ip, uint16_t port, unsigned mtu);
  void Unroute(uint64_t mac);
  // The addresses datagrams are taken from (every endpoint's); anything else goes up.
  void SetPeers(const std::vector<uint32_t>& ips);
  // With encryption: a peer address's keys (nullptr: none, nothing passes). A receive key it had
  // before keeps its replay window, and an unchanged send key its counter.
  void Secure(uint32_t ip, const SecuritySpec* spec);

  // From TypeScript: a frame onto the bridge, a datagram to a peer. false when the kernel refused.
  bool Inject(const uint8_t* frame, size_t len);
  bool Send(const uint8_t* datagram, size_t len, uint32_t ip, uint16_t port);

  // Takes everything queued so far.
  std::vector<uint8_t> Drain();

  const Counters& counters() const { return counters_; }
  // Per peer address (network order): datagrams sent to it and frames received from it by the threads.
  void ForEachPeer(const std::function<void(uint32_t ip, const PeerTraffic&)>& fn);
  const Tap& tap() const { return tap_; }
  const Udp& udp() const { return udp_; }
  bool gsoSend() const { return gsoSend_.load(); }
  bool gsoWrite() const { return gsoWrite_.load(); }

 private:
  struct Route {
    bool local = false;
    sockaddr_in to{};
    unsigned mtu = 0;
    PeerTraffic* traffic = nullptr;
    // When this location was last confirmed to TypeScript: its MAC table ages entries out.
    std::atomic<int64_t> confirmed{0};
  };
  struct Crypto {
    bool plain = false;
    seal::Cipher cipher{};
    KeySpec tx{};
    std::atomic<uint64_t> counter{0};
    std::unique_ptr<seal::Aead> txTap, txJs;  // one per sending thread: a cipher context is not shared
    struct Rx { KeySpec key; std::unique_ptr<seal::Aead> aead; seal::ReplayWindow window; };
    std::vector<Rx> rx;  // used by the UDP thread alone
  };
  // Per thread: the last MAC location reported, so a stream from one unknown MAC is reported once a second.
  struct Reported { uint64_t mac = ~0ull; uint32_t where = 0; int64_t at = -1; };

  struct TapSide {
    TapSide();
    std::vector<uint8_t> in, out;
    std::vector<uint16_t> lens;
    Reported rep;
  };
  static constexpr size_t kRecvBatch = 16;
  struct UdpSide {
    explicit UdpSide(Engine* e);
    std::vector<uint8_t> bufs;
    mmsghdr msgs[kRecvBatch];
    iovec iovs[kRecvBatch];
    sockaddr_in from[kRecvBatch];
    alignas(cmsghdr) char ctl[kRecvBatch][CMSG_SPACE(sizeof(int))];
    offload::Coalescer co;
    Reported rep;
  };
  // Each moves what is waiting on its side now: false when nothing was.
  bool FromTap(TapSide& s, int max);
  bool FromUdp(UdpSide& s);
  void TapLoop();
  void UdpLoop();
  bool Wait(int fd);
  void FromBridge(const uint8_t* buf, size_t n, uint8_t* out, size_t cap, uint16_t* lens, Reported& rep);
  // Opens a sealed datagram in place (or lets a plain one through from a trusted peer): the inner
  // datagram's offset and length, or false (counted) when it is dropped.
  bool Open(Crypto* c, uint8_t* d, size_t len, size_t* inner, size_t* innerLen);
  bool ToBridge(const uint8_t* d, size_t len, uint32_t ip, PeerTraffic* t, int64_t now, Reported& rep, offload::Coalescer& co);
  void Up(Upcall kind, uint32_t ip, const uint8_t* data, size_t len);
  void Learn(Upcall kind, uint64_t mac, uint32_t ip, const Route* r, int64_t now, Reported& rep);
  void Write(const uint8_t* data, size_t len);
  void WriteFrame(const uint8_t* frame, size_t len);
  PeerTraffic* TrafficOf(uint32_t ip);  // under the table lock, held exclusively

  const Config cfg_;
  Tap tap_;
  Udp udp_;
  int stopFd_ = -1;
  std::atomic<bool> gsoSend_{false}, gsoWrite_{true};
  std::thread tapThread_, udpThread_;
  std::function<void()> wake_;

  std::shared_mutex tableMu_;
  std::unordered_map<uint64_t, Route> routes_;
  std::unordered_map<uint32_t, std::unique_ptr<PeerTraffic>> traffic_;  // never shrinks: routes point into it
  std::unordered_set<uint32_t> peers_;
  std::unordered_map<uint32_t, std::shared_ptr<Crypto>> crypto_;
  std::vector<uint8_t> jsScratch_;  // Send's sealing room (Node's thread only)

  std::mutex upMu_;
  std::vector<uint8_t> up_;
  Counters counters_;
};

}  // namespace weave::sleeve
