// Property fuzzing for offload.cc, deterministic from a seed:
//   fuzz-offload SEED ITERATIONS     every case; case i is of kind i % 3 (below)
//   fuzz-offload SEED --case N       case N alone (as printed by a failure)
//   fuzz-offload --bench             Split and Coalescer throughput (build with -O2, no sanitizers)
// Kinds: (a) hostile input to Split, checked against a reference model of the contract in
// offload.h; (b) a valid TCP super-frame through Split, Coalescer and Split again, which must give
// back the same segments; (c) streams of TCP segments with mutations into the Coalescer, whose
// every write must be one input as it came or a super-frame splitting into consecutive inputs.
// Checksums are checked with the plain byte-pair sum below, not with the code under test.
// Build: g++ -std=c++17 -O1 -g -fsanitize=address,undefined native/test/fuzz-offload.cc native/src/offload.cc
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "rng.h"
#include "../src/offload.h"

using namespace weave::offload;
using Bytes = std::vector<uint8_t>;

namespace {

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kUrg = 0x20, kEce = 0x40,
                  kCwr = 0x80;

// ---- Reporting. A case stops being checked at its first failure (the rest would follow from it).
uint64_t g_seed;
size_t g_case;
const char* g_kind = "";
size_t g_cases, g_segments, g_coalesced, g_malformed, g_failures;
bool g_case_failed;

void Fail(bool malformed, const char* fmt, ...) {
  if (g_case_failed) return;
  g_case_failed = true;
  (malformed ? g_malformed : g_failures)++;
  if (g_malformed + g_failures > 1) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "FAIL seed %llu case %zu (%s): %s\n  rerun: fuzz-offload %llu --case %zu\n",
          (unsigned long long)g_seed, g_case, g_kind, msg, (unsigned long long)g_seed, g_case);
}

// ---- Byte helpers and the reference checksum: byte pairs, no tricks.
uint16_t G16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t G32(const uint8_t* p) { return uint32_t(G16(p)) << 16 | G16(p + 2); }
void P16(uint8_t* p, size_t v) { p[0] = uint8_t(v >> 8), p[1] = uint8_t(v); }
void P32(uint8_t* p, uint32_t v) { P16(p, v >> 16), P16(p + 2, v & 0xffff); }

uint64_t RefSum(const uint8_t* p, size_t n, uint64_t s = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) s += G16(p + i);
  if (n & 1) s += p[n - 1] << 8;
  return s;
}
uint16_t RefFold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(s);
}
uint64_t RefPseudo(const uint8_t* ip, bool v6, uint8_t proto, size_t l4len) {
  return v6 ? RefSum(ip + 8, 32, proto + l4len) : RefSum(ip + 12, 8, proto + l4len);
}

// ---- Packets the generators build: Ethernet, IPv4 (options) or IPv6, TCP (options) or UDP.
struct Pkt {
  Bytes b;
  bool v6 = false, udp = false;
  size_t l4 = 0, hdrs = 0;
  uint8_t* ip() { return b.data() + 14; }
  uint8_t* l4p() { return b.data() + l4; }
  size_t payload() const { return b.size() - hdrs; }
};

// IP and UDP lengths from the packet's size.
void SetLengths(Pkt& p) {
  size_t len = p.b.size();
  if (p.v6) P16(p.ip() + 4, len - 54);
  else P16(p.ip() + 2, len - 14);
  if (p.udp) P16(p.l4p() + 4, len - p.l4);
}

// The IPv4 header checksum, and the L4 checksum complete (or, partial: the folded pseudo-header
// sum a NEEDS_CSUM frame carries).
void SetSums(Pkt& p, bool partial = false) {
  uint8_t *ip = p.ip(), *l4 = p.l4p();
  size_t l4len = p.b.size() - p.l4, at = p.udp ? 6 : 16;
  if (!p.v6) {
    P16(ip + 10, 0);
    P16(ip + 10, uint16_t(~RefFold(RefSum(ip, p.l4 - 14))));
  }
  P16(l4 + at, 0);
  uint64_t pseudo = RefPseudo(ip, p.v6, p.udp ? 17 : 6, l4len);
  if (partial) {
    P16(l4 + at, RefFold(pseudo));
  } else {
    uint16_t c = uint16_t(~RefFold(RefSum(l4, l4len, pseudo)));
    P16(l4 + at, p.udp && c == 0 ? 0xffff : c);
  }
}

// Makes the complete L4 checksum come out as 0 (one payload word takes up the sum), which UDP
// sends as 0xffff and TCP as 0. Needs 2 bytes of payload.
void ForceZeroSum(Pkt& p) {
  SetSums(p);
  uint8_t *w = p.b.data() + p.hdrs, *field = p.l4p() + (p.udp ? 6 : 16);
  P16(w, RefFold(uint64_t(G16(w)) + G16(field)));
  P16(field, 0);
}

Pkt Make(Rng& r, bool v6, bool udp, size_t ipopt, size_t l4opt, size_t payload, uint8_t flags) {
  Pkt p;
  p.v6 = v6, p.udp = udp;
  p.l4 = 14 + (v6 ? 40 : 20 + ipopt);
  p.hdrs = p.l4 + (udp ? 8 : 20 + l4opt);
  p.b.resize(p.hdrs + payload);
  r.Fill(p.b.data(), p.b.size());  // addresses, ports, TOS, options, payload...: random
  P16(p.b.data() + 12, v6 ? 0x86dd : 0x0800);
  uint8_t *ip = p.ip(), *l4 = p.l4p();
  if (v6) {
    ip[0] = 0x60 | (ip[0] & 15);
    ip[6] = udp ? 17 : 6;
  } else {
    ip[0] = uint8_t(0x40 | (20 + ipopt) / 4);
    P16(ip + 6, r.Chance(50) ? 0x4000 : 0);  // DF or nothing: not a fragment
    ip[9] = udp ? 17 : 6;
  }
  if (!udp) {
    l4[12] = uint8_t((20 + l4opt) / 4 << 4);
    l4[13] = flags;
    if (!r.Chance(10)) P16(l4 + 18, 0);  // urgent pointer, mostly 0
  }
  SetLengths(p);
  SetSums(p);
  return p;
}

// ---- (a) Split: a reference model of the contract, and checks of every segment.
struct Expect {
  int n = -1;        // segments, or -1 for a malformed frame
  size_t need = 0;   // bytes of cap needed
  bool gso = false, tcp = false, v6 = false;
  size_t l4 = 0, hdrs = 0, payload = 0, mss = 0;
};

Expect RefSplit(const VnetHdr& h, const uint8_t* f, size_t len, size_t headroom) {
  Expect e;
  if (len < 14 || len > kMaxFrame) return e;
  if (h.gso_type == kGsoNone) {
    if (len > 65535 || ((h.flags & kNeedsCsum) && size_t(h.csum_start) + h.csum_offset + 2 > len)) return e;
    e.n = 1, e.need = headroom + len;
    return e;
  }
  const int type = h.gso_type & 0x7f;
  e.gso = true;
  e.tcp = (type == kGsoTcpV4 || type == kGsoTcpV6);
  if (!e.tcp && h.gso_type != kGsoUdpL4) return e;
  if (h.gso_size == 0) return e;
  const uint16_t et = G16(f + 12);
  if (et != 0x0800 && et != 0x86dd) return e;
  e.v6 = et == 0x86dd;
  if (e.tcp && e.v6 != (type == kGsoTcpV6)) return e;
  const uint8_t* ip = f + 14;
  const uint8_t proto = e.tcp ? 6 : 17;
  if (e.v6) {
    if (len < 54 || ip[0] >> 4 != 6 || G16(ip + 4) != len - 54 || ip[6] != proto) return e;
    e.l4 = 54;
  } else {
    if (len < 34 || ip[0] >> 4 != 4) return e;
    e.l4 = 14 + (ip[0] & 15) * 4;
    if (e.l4 < 34 || len < e.l4 || G16(ip + 2) != len - 14 || (G16(ip + 6) & 0x3fff) || ip[9] != proto) return e;
  }
  if (e.tcp) {
    if (len < e.l4 + 20) return e;
    e.hdrs = e.l4 + (f[e.l4 + 12] >> 4) * 4;
    if (e.hdrs < e.l4 + 20 || e.hdrs > len) return e;
  } else {
    e.hdrs = e.l4 + 8;
    if (e.hdrs > len) return e;
  }
  e.payload = len - e.hdrs, e.mss = h.gso_size;
  size_t n = e.payload ? (e.payload + e.mss - 1) / e.mss : 1;
  if (e.hdrs + (e.payload < e.mss ? e.payload : e.mss) > 65535) return e;
  e.n = int(n), e.need = n * (headroom + e.hdrs) + e.payload;
  return e;
}

// One segment of a GSO split: the original's headers but for the per-segment fields, valid sums.
bool CheckSegment(const Expect& e, const uint8_t* f, const uint8_t* s, size_t L, size_t i, size_t off) {
  const size_t last = size_t(e.n) - 1, pl = L - e.hdrs, l4 = e.l4;
  const uint8_t *ip = f + 14, *sip = s + 14, *t = f + l4, *st = s + l4;
  auto diff = [&](size_t from, size_t to) { return memcmp(f + from, s + from, to - from) != 0; };
  if (L < e.hdrs || L > 65535) return Fail(true, "segment %zu: %zu bytes, headers %zu", i, L, e.hdrs), false;
  if (pl > e.mss || (i < last && pl != e.mss) || (i == last && off + pl != e.payload))
    return Fail(true, "segment %zu of %d: payload %zu, gso_size %zu", i, e.n, pl, e.mss), false;
  if (memcmp(s + e.hdrs, f + e.hdrs + off, pl)) return Fail(true, "segment %zu: payload differs", i), false;
  if (diff(0, 14)) return Fail(true, "segment %zu: Ethernet header differs", i), false;
  if (e.v6) {
    if (G16(sip + 4) != L - 54 || diff(14, 18) || diff(20, l4))
      return Fail(true, "segment %zu: IPv6 header (payload length %u, segment %zu)", i, G16(sip + 4), L), false;
  } else {
    if (G16(sip + 2) != L - 14 || G16(sip + 4) != uint16_t(G16(ip + 4) + i) || diff(14, 16) || diff(20, 24) ||
        diff(26, l4))
      return Fail(true, "segment %zu: IPv4 header (total length %u, segment %zu)", i, G16(sip + 2), L), false;
    if (RefFold(RefSum(sip, l4 - 14)) != 0xffff) return Fail(true, "segment %zu: IPv4 header checksum", i), false;
  }
  const size_t l4len = L - l4;
  const uint64_t sum = RefSum(st, l4len, RefPseudo(sip, e.v6, e.tcp ? 6 : 17, l4len));
  if (e.tcp) {
    uint8_t fl = t[13];
    if (i > 0) fl &= ~kCwr;
    if (i < last) fl &= ~(kFin | kPsh);
    if (G32(st + 4) != uint32_t(G32(t + 4) + off) || st[13] != fl || diff(l4, l4 + 4) || diff(l4 + 8, l4 + 13) ||
        diff(l4 + 14, l4 + 16) || diff(l4 + 18, e.hdrs))
      return Fail(true, "segment %zu: TCP header (seq %u, flags %02x)", i, G32(st + 4), st[13]), false;
    if (RefFold(sum) != 0xffff) return Fail(true, "segment %zu: TCP checksum %04x", i, G16(st + 16)), false;
  } else {
    const bool none = !e.v6 && G16(t + 6) == 0;  // over IPv4, no checksum stays none
    if (diff(l4, l4 + 4) || G16(st + 4) != l4len)
      return Fail(true, "segment %zu: UDP header (length %u)", i, G16(st + 4)), false;
    if (none ? G16(st + 6) != 0 : G16(st + 6) == 0 || RefFold(sum) != 0xffff)
      return Fail(true, "segment %zu: UDP checksum %04x", i, G16(st + 6)), false;
  }
  return true;
}

struct SplitRun {
  size_t headroom, cap, max_segments;
  std::unique_ptr<uint8_t[]> buf;
  std::unique_ptr<uint16_t[]> lens;
  int ret;
};

// Runs Split on an exact-size copy of the frame into an exact-size, patterned buffer (so ASan and
// the pattern catch any access outside), and checks its answer and output against the model.
bool RunSplit(const VnetHdr& h, const Bytes& frame, size_t headroom, size_t cap, size_t max_segments, SplitRun* run,
              const Expect* known = nullptr) {
  const size_t len = frame.size();
  const Expect e = known ? *known : RefSplit(h, frame.data(), len, headroom);
  Bytes in(frame.begin(), frame.end());
  run->headroom = headroom, run->cap = cap, run->max_segments = max_segments;
  run->buf.reset(new uint8_t[cap]);
  run->lens.reset(new uint16_t[max_segments]);
  memset(run->buf.get(), 0xa5, cap);
  const int want = e.n > 0 && size_t(e.n) <= max_segments && e.need <= cap ? e.n : -1;
  const int got = run->ret = Split(h, in.empty() ? nullptr : in.data(), len, {run->buf.get(), cap, headroom, run->lens.get(), max_segments});
  if (in != frame) return Fail(false, "Split modified its input"), false;
  if (got != want)
    return Fail(false, "Split returned %d, the model %d (gso_type %u, gso_size %u, len %zu, cap %zu/%zu, max %zu)",
                got, want, h.gso_type, h.gso_size, len, cap, e.need, max_segments),
           false;
  const uint8_t* p = run->buf.get();
  size_t off = 0;
  for (int i = 0; i < got; i++) {
    for (size_t k = 0; k < headroom; k++)
      if (p[k] != 0xa5) return Fail(true, "segment %d: headroom written", i), false;
    p += headroom;
    const size_t L = run->lens[i];
    g_segments++;
    if (!e.gso) {
      const size_t at = size_t(h.csum_start) + h.csum_offset;
      const bool csum = h.flags & kNeedsCsum;
      if (L != len || memcmp(p, frame.data(), csum ? at : len) || (csum && memcmp(p + at + 2, frame.data() + at + 2, len - at - 2)))
        return Fail(true, "non-GSO frame changed (%zu bytes, now %zu)", len, L), false;
      if (csum) {
        uint16_t c = uint16_t(~RefFold(RefSum(frame.data() + h.csum_start, len - h.csum_start)));
        if (c == 0 && h.csum_offset == 6) c = 0xffff;
        // Valid: the sum of what it covers, with the pseudo-header (the partial sum it replaced),
        // when the field is a whole word of that sum (at an even offset).
        const uint64_t sum = RefSum(p + h.csum_start, len - h.csum_start, G16(frame.data() + at));
        if (G16(p + at) != c || (h.csum_offset % 2 == 0 && RefFold(sum) != 0xffff))
          return Fail(true, "NEEDS_CSUM: checksum %04x, want %04x", G16(p + at), c), false;
      }
    } else if (!CheckSegment(e, frame.data(), p, L, size_t(i), off)) {
      return false;
    }
    off += L - e.hdrs;
    p += L;
  }
  return true;
}

// SumWords and Checksum against the reference, at any alignment and length, on random bytes and on
// runs of 0xff (which carry on every add; a small word after them wraps the final fold).
void CheckSums(Rng& r) {
  Bytes b(8 + (r.Chance(90) ? r.Below(300) : r.Below(70000)));
  const size_t at = r.Below(8), room = b.size() - at, len = room - r.Below(std::min<size_t>(room, 8) + 1);
  const int fill = int(r.Below(3));
  if (fill == 0) r.Fill(b.data(), b.size());
  else memset(b.data(), fill == 1 ? 0xff : 0, b.size());
  if (len && r.Chance(50)) b[at + len - 1 - r.Below(std::min<size_t>(len, 3))] = uint8_t(r.Next());
  const uint32_t initial = r.Chance(50) ? 0 : uint32_t(r.Next());
  const uint16_t want = RefFold(RefSum(b.data() + at, len, initial));
  const uint64_t sum = SumWords(b.data() + at, len, initial);
  const uint16_t c = Checksum(b.data() + at, len, initial);
  if (RefFold(sum) != want || c != uint16_t(~want))
    Fail(false, "SumWords/Checksum of %zu bytes at +%zu (fill %d): folded %04x, checksum %04x, want %04x", len, at, fill,
         RefFold(sum), c, want);
}

void CaseSplit(Rng& r) {
  CheckSums(r);
  static const uint8_t kTypes[] = {kGsoNone, kGsoTcpV4, kGsoUdp, kGsoTcpV6, kGsoUdpL4, 0x81, 0x84, 0x85};
  VnetHdr h{};
  Bytes f;
  if (r.Chance(10)) {  // noise
    f.resize(r.Chance(90) ? r.Below(160) : r.Chance(50) ? r.Range(65530, kMaxFrame + 10) : r.Below(kMaxFrame));
    r.Fill(f.data(), f.size());
    r.Fill(reinterpret_cast<uint8_t*>(&h), sizeof h);
    if (r.Chance(50)) h.gso_type = kGsoNone;
    if (f.size() >= 14 && r.Chance(50)) P16(f.data() + 12, r.Chance(50) ? 0x0800 : 0x86dd);
  } else {
    const bool v6 = r.Chance(50), udp = r.Chance(25), none = r.Chance(15);
    const size_t ipopt = !v6 && r.Chance(30) ? 4 * r.Range(1, 10) : 0, l4opt = udp ? 0 : 4 * r.Range(0, 10);
    size_t mss = r.Chance(10) ? r.Range(1, 16) : r.Range(1, 1500);
    const size_t hdrs = 14 + (v6 ? 40 : 20 + ipopt) + (udp ? 8 : 20 + l4opt);
    const size_t maxp = (v6 ? 65589 : 65549) - hdrs;  // a whole IP length of 65535
    size_t payload = r.Chance(5) ? maxp : r.Below(std::min(maxp, mss * (r.Chance(5) ? 65535 : 300)) + 1);
    if (r.Chance(10)) payload = r.Below(std::min(maxp, mss) + 1);  // one segment
    if (r.Chance(3)) payload = 0;
    if (r.Chance(3)) payload = 65535 + r.Below(2) - hdrs;            // a frame of 64 KiB, or a byte more
    if ((payload == maxp || payload > 65000) && r.Chance(30)) mss = 65535;  // in one segment
    if (none && r.Chance(90)) payload = r.Below(1500);
    Pkt p = Make(r, v6, udp, ipopt, l4opt, payload, uint8_t(r.Chance(50) ? kAck : r.Next()));
    if (p.payload() >= 2 && (none || payload <= mss) && r.Chance(10)) ForceZeroSum(p);
    SetSums(p, true);  // as the kernel leaves it: the pseudo-header sum
    if (udp && r.Chance(20)) P16(p.l4p() + 6, 0);  // "no checksum" (IPv4 only)
    h.flags = kNeedsCsum;
    h.gso_type = none ? kGsoNone : udp ? kGsoUdpL4 : v6 ? kGsoTcpV6 : kGsoTcpV4;
    if (!none && !udp && r.Chance(20)) h.gso_type |= kGsoEcn;
    h.hdr_len = uint16_t(p.hdrs), h.gso_size = uint16_t(mss);
    h.csum_start = uint16_t(p.l4), h.csum_offset = udp ? 6 : 16;
    f = std::move(p.b);
    const size_t hdrs_len = p.hdrs;
    for (size_t k = r.Chance(60) ? r.Range(1, 3) : 0; k > 0 && f.size() >= hdrs_len; k--) {
      uint8_t* b = f.data();  // the offsets below assume whole headers
      const size_t l4 = p.l4;
      switch (r.Below(16)) {
        case 0: f.resize(r.Below(f.size())); break;                                 // truncated
        case 1: f.resize(f.size() + r.Range(1, 64), 0); break;                      // padded
        case 2: P16(b + 14 + (v6 ? 4 : 2), G16(b + 14 + (v6 ? 4 : 2)) + r.Range(1, 3) - 2); break;  // IP length
        case 3: b[14] = uint8_t(r.Chance(50) ? (b[14] & 0xf0) | r.Below(16) : r.Next()); break;  // IHL, version
        case 4: if (!udp) b[l4 + 12] = uint8_t(r.Below(16) << 4); break;            // TCP header length
        case 5: h.gso_size = uint16_t(r.Chance(30) ? 0 : r.Chance(30) ? 1 : r.Chance(50) ? 0xffff : r.Next()); break;
        case 6: h.csum_start = uint16_t(r.Chance(50) ? f.size() - r.Below(4) : r.Next()); break;
        case 7: h.csum_offset = uint16_t(r.Chance(50) ? r.Below(64) : r.Next()); break;
        case 8: h.flags = uint8_t(r.Next()); break;
        case 9: h.gso_type = uint8_t(r.Chance(70) ? kTypes[r.Below(8)] : r.Next()); break;
        case 10: P16(b + 12, r.Chance(50) ? 0x8100 : r.Chance(50) ? (v6 ? 0x0800 : 0x86dd) : r.Next()); break;
        case 11: b[14 + (v6 ? 6 : 9)] = uint8_t(r.Chance(50) ? (udp ? 6 : 17) : r.Next()); break;  // protocol
        case 12: if (!v6) P16(b + 20, r.Chance(50) ? 0x2000 : r.Range(1, 0x1fff)); break;  // MF, offset
        case 13: b[r.Below(f.size())] ^= uint8_t(1 << r.Below(8)); break;
        case 14: h.hdr_len = uint16_t(r.Next()); break;                              // ignored
        case 15: f.resize(f.size() + r.Below(200)); break;                           // grown, with garbage
      }
    }
  }
  // The checksum field at the end of a frame, or one or two bytes past it.
  if (h.gso_type == kGsoNone && size_t(h.csum_start) + 2 <= f.size() && r.Chance(20))
    h.csum_offset = uint16_t(f.size() - h.csum_start - 2 + r.Below(3));
  const size_t headroom = r.Chance(70) ? 8 : r.Below(80);
  const Expect e = RefSplit(h, f.data(), f.size(), headroom);
  // Room for what is wanted; for a malformed frame, little or plenty (so that accepting it shows).
  const bool plenty = r.Chance(50);
  size_t need = e.n > 0 ? e.need : plenty ? 2 * f.size() + 70000 : 4096;
  size_t max_segments = e.n > 0 ? size_t(e.n) : plenty ? 70000 : 1;
  size_t cap = need + (r.Chance(50) ? 0 : r.Below(100));
  if (r.Chance(10)) cap = need - 1;
  else if (r.Chance(10)) cap = r.Below(need + 1);
  if (r.Chance(80)) max_segments += r.Below(8);
  else if (r.Chance(50)) max_segments = r.Below(max_segments + 1);  // possibly one short, or 0
  SplitRun run;
  RunSplit(h, f, headroom, cap, max_segments, &run, &e);
}

// ---- (b) and (c): the Coalescer's writes, against the frames that went in.
struct Sink {
  std::vector<Bytes> in;  // every frame Added, in order
  size_t next = 0, writes = 0, gso_writes = 0;
  Bytes buf = Bytes(kMaxFrame + 1024 * 134);  // to split GSO writes into (up to 1024 segments)
  std::vector<uint16_t> lens = std::vector<uint16_t>(1024);

  void SkipDropped() {
    while (next < in.size() && in[next].size() > kMaxFrame) next++;  // documented: dropped
  }

  void Take(const uint8_t* f, size_t len, const char* what) {
    SkipDropped();
    g_segments++;
    if (next >= in.size()) return Fail(true, "%s: more frames written than went in (%zu)", what, in.size());
    const Bytes& want = in[next];
    if (want.size() != len || (len && memcmp(want.data(), f, len)))
      return Fail(true, "%s: frame %zu of %zu (%zu bytes) comes out as %zu bytes, differing", what, next, in.size(),
                  want.size(), len);
    next++;
  }

  void Write(const uint8_t* d, size_t n) {
    writes++;
    if (g_case_failed) return;
    if (n < sizeof(VnetHdr)) return Fail(true, "a write of %zu bytes", n);
    VnetHdr h;
    memcpy(&h, d, sizeof h);
    const uint8_t* f = d + sizeof h;
    const size_t len = n - sizeof h;
    static const VnetHdr zero{};
    if (!memcmp(&h, &zero, sizeof h)) return Take(f, len, "written as it came");
    gso_writes++, g_coalesced++;
    // The GSO header and the super-frame's own headers, as the kernel wants them.
    const bool v6 = h.gso_type == kGsoTcpV6;
    const size_t l4 = v6 ? 54 : 34;
    if (h.flags != kNeedsCsum || (h.gso_type != kGsoTcpV4 && h.gso_type != kGsoTcpV6) || len < l4 + 20 ||
        G16(f + 12) != (v6 ? 0x86dd : 0x0800) || h.csum_start != l4 || h.csum_offset != 16 ||
        h.hdr_len != l4 + (f[l4 + 12] >> 4) * 4 || h.hdr_len > len)
      return Fail(true, "GSO write: header {%u %u %u %u %u %u}, %zu bytes", h.flags, h.gso_type, h.hdr_len, h.gso_size,
                  h.csum_start, h.csum_offset, len);
    const uint8_t* ip = f + 14;
    if (v6 ? G16(ip + 4) != len - 54 : G16(ip + 2) != len - 14 || RefFold(RefSum(ip, 20)) != 0xffff)
      return Fail(true, "GSO write: IP length or header checksum");
    const uint16_t pseudo = RefFold(RefPseudo(ip, v6, 6, len - l4));
    if (G16(f + l4 + 16) != pseudo)
      return Fail(true, "GSO write: TCP checksum field %04x, want the pseudo-header sum %04x", G16(f + l4 + 16), pseudo);
    // Split back, it must give consecutive inputs (more than one: a lone segment goes as it came).
    const int segs = Split(h, f, len, {buf.data(), buf.size(), 0, lens.data(), lens.size()});
    if (segs < 2) return Fail(true, "GSO write of %zu bytes splits into %d segments", len, segs);
    if (lens[0] - h.hdr_len != h.gso_size)
      return Fail(true, "GSO write: gso_size %u, first segment's payload %d", h.gso_size, lens[0] - h.hdr_len);
    const uint8_t* p = buf.data();
    for (int i = 0; i < segs && !g_case_failed; i++) Take(p, lens[i], "coalesced"), p += lens[i];
  }

  void Done() {
    SkipDropped();
    if (next != in.size()) Fail(true, "%zu of %zu frames never written", in.size() - next, in.size());
  }
};

// (b) A valid TCP super-frame, split, coalesced, split again.
void CaseRoundTrip(Rng& r) {
  const bool v6 = r.Chance(50);
  const size_t ipopt = !v6 && r.Chance(15) ? 4 * r.Range(1, 10) : 0, l4opt = 4 * r.Range(0, 10);
  static const size_t kMss[] = {536, 1398, 1448, 1460};
  const size_t mss = r.Chance(50) ? r.Range(1, 1460) : kMss[r.Below(4)];
  const size_t hdrs = 14 + (v6 ? 40 : 20 + ipopt) + 20 + l4opt;
  const size_t maxp = kMaxFrame - hdrs;  // as far as the Coalescer goes (IPv6: 40 bytes short)
  size_t payload = std::min(r.Below(maxp + 1), r.Chance(3) ? maxp : mss * 1000);
  if (payload <= mss && hdrs + payload > 65535) payload = 65535 - hdrs;  // one segment: a uint16_t
  uint8_t flags = kAck;
  if (r.Chance(30)) flags |= kPsh;
  if (r.Chance(15)) flags |= kFin;
  if (r.Chance(15)) flags |= kCwr;
  if (r.Chance(5)) flags |= kEce;
  Pkt p = Make(r, v6, false, ipopt, l4opt, payload, flags);
  SetSums(p, true);
  const VnetHdr h{kNeedsCsum, uint8_t((v6 ? kGsoTcpV6 : kGsoTcpV4) | (flags & kCwr ? kGsoEcn : 0)),
                  uint16_t(hdrs), uint16_t(mss), uint16_t(p.l4), 16};
  const Expect e = RefSplit(h, p.b.data(), p.b.size(), 0);
  if (e.n < 1) return Fail(false, "generated an invalid super-frame");
  const size_t headroom = r.Below(17);
  SplitRun run;
  if (!RunSplit(h, p.b, headroom, e.n * (headroom + hdrs) + payload, size_t(e.n), &run)) return;

  Sink sink;
  Coalescer co([&](const uint8_t* d, size_t n) { sink.Write(d, n); });
  const uint8_t* s = run.buf.get();
  for (int i = 0; i < run.ret; i++) {
    s += headroom;
    sink.in.emplace_back(s, s + run.lens[i]);
    s += run.lens[i];
  }
  for (const Bytes& seg : sink.in) co.Add(seg.data(), seg.size());
  co.Flush();
  sink.Done();
  if (g_case_failed) return;

  // How many writes, and how many of them GSO, the rules in offload.h give for these segments.
  size_t writes = 0, gso = 0, run_n = 0, run_len = 0, first = 0;
  auto close = [&] { writes++, gso += run_n > 1, run_n = 0; };
  for (const Bytes& seg : sink.in) {
    const size_t pl = seg.size() - hdrs;
    const uint8_t fl = seg[p.l4 + 13];
    const bool cand = ipopt == 0 && pl > 0 && (fl == kAck || fl == (kAck | kPsh));
    if (run_n && cand && pl <= first && run_n < 64 && run_len + pl <= kMaxFrame) {
      run_n++, run_len += pl;
    } else {
      if (run_n) close();
      if (cand) run_n = 1, run_len = seg.size(), first = pl;
      else writes++;
    }
    if (run_n && ((fl & kPsh) || pl < first || run_n == 64)) close();
  }
  if (run_n) close();
  if (sink.writes != writes || sink.gso_writes != gso)
    Fail(false, "%d segments (mss %zu, flags %02x) made %zu writes (%zu GSO), the rules say %zu (%zu)", run.ret, mss,
         flags, sink.writes, sink.gso_writes, writes, gso);
}

// (c) Streams of segments of a few flows, some mutated, with noise between.
struct Flow {
  Pkt tmpl;
  size_t mss;
  uint32_t seq;
  uint16_t id;
};

void Mutate(Rng& r, Pkt& p) {
  static const uint8_t kOther[] = {kFin, kSyn, kRst, kUrg, kEce, kCwr};
  Bytes& b = p.b;
  uint8_t *ip = p.ip(), *t = p.l4p();
  bool fix = r.Chance(60);  // mostly with valid sums again, so the rule under test is the one that fails
  switch (r.Below(22)) {
    case 0: ip[p.v6 ? 7 : 10] ^= uint8_t(1 << r.Below(8)), fix = false; break;  // IPv4 checksum; IPv6 hop limit
    case 1: t[16 + r.Below(2)] ^= uint8_t(1 << r.Below(8)), fix = false; break;  // TCP checksum
    case 2: t[13] = uint8_t(r.Chance(50) ? r.Next() : t[13] | kOther[r.Below(6)]); break;  // flags
    case 3: P32(t + 4, G32(t + 4) + uint32_t(r.Range(1, 3000) * (r.Chance(50) ? 1 : -1))); break;  // seq gap
    case 4: { uint8_t* port = t + 2 * r.Below(2); P16(port, G16(port) + 1); } break;               // ports
    case 5: if (!p.v6) P16(ip + 4, G16(ip + 4) + (r.Chance(50) ? 1 : -1)); break;                  // ID
    case 6: b.resize(r.Below(b.size())); break;  // truncated, (fixed:) with an L4 sum over the frame
    case 7:  // padded: as a NIC pads (sums over the IP packet), or (fixed:) with an L4 sum over the frame
      if (r.Chance(50)) SetSums(p), fix = false;
      b.resize(r.Chance(50) && b.size() < 60 ? 60 : b.size() + r.Range(1, 40), 0);
      break;
    case 8: r.Fill(b.data(), b.size()), fix = false; break;                                        // noise
    case 9: P16(b.data() + 12, r.Chance(50) ? 0x0806 : r.Chance(50) ? 0x8100 : r.Next()); break;   // ethertype
    case 10: ip[1] ^= uint8_t(1 << r.Below(8)); break;  // TOS (ECN CE); IPv6 class, flow label
    case 11: ip[p.v6 ? 3 : 8] ^= 1; break;              // flow label; TTL
    case 12: t[8 + r.Below(4) + (r.Chance(50) ? 6 : 0)] ^= 1; break;  // ACK number or window, urgent pointer
    case 13: if (p.hdrs > p.l4 + 20) t[20 + r.Below(p.hdrs - p.l4 - 20)] ^= 1; break;  // options
    case 14: b.resize(b.size() + r.Range(1, 100)); SetLengths(p); break;  // a larger payload
    case 15: b.resize(p.hdrs); SetLengths(p); break;                      // no payload
    case 16: b[r.Below(6)] ^= 1; break;                                   // a MAC
    case 17: if (!p.v6) P16(ip + 6, G16(ip + 6) | (r.Chance(50) ? 0x2000 : r.Range(1, 0x1fff))); break;  // fragment
    case 18: b[r.Below(b.size())] ^= uint8_t(1 << r.Below(8)), fix = r.Chance(30); break;
    case 19: if (!p.v6) {  // an IPv4 option (NOPs), the headers move 4 bytes on
        b.insert(b.begin() + 34, 4, 1), ip = p.ip(), ip[0] = 0x46, p.l4 += 4, p.hdrs += 4, SetLengths(p);
      }
      break;
    case 21: t[12] = uint8_t(r.Below(16) << 4 | (t[12] & 15)); break;  // TCP header length
    case 20: if (p.payload() >= 2) ForceZeroSum(p), P16(t + 16, 0xffff), fix = false; break;  // 0 as 0xffff
  }
  if (fix && b.size() >= p.hdrs && b.size() >= 14 && G16(b.data() + 12) == (p.v6 ? 0x86dd : 0x0800)) SetSums(p);
}

void CaseStream(Rng& r) {
  std::vector<Flow> flows(r.Range(1, 3));
  for (Flow& fl : flows) {
    const bool v6 = r.Chance(50);
    fl.mss = r.Chance(30) ? r.Range(1, 200) : r.Chance(50) ? r.Range(200, 1460) : r.Range(1000, 1460);
    fl.tmpl = Make(r, v6, false, !v6 && r.Chance(5) ? 4 : 0, 4 * r.Range(0, 10), 0, kAck);
    fl.seq = uint32_t(r.Next()), fl.id = uint16_t(r.Next());
  }
  Sink sink;
  Coalescer co([&](const uint8_t* d, size_t n) { sink.Write(d, n); });
  // Per cent of frames mutated, of frames from another flow, of Flush calls between frames; a
  // tenth of the cases are one clean flow of long runs (up to the merged packet's 64 KiB).
  const bool clean = r.Chance(10);
  const unsigned mutate = clean || r.Chance(20) ? 0 : unsigned(r.Range(1, 30));
  const unsigned other = clean ? 0 : unsigned(r.Range(0, 20)), flush = clean ? 0 : unsigned(r.Range(0, 5));
  if (clean) flows.resize(1), flows[0].mss = r.Range(1000, 1460);
  const size_t frames = r.Range(clean ? 50 : 1, 300);
  size_t cur = 0;
  for (size_t k = 0; k < frames && !g_case_failed; k++) {
    if (r.Chance(other)) cur = r.Below(flows.size());
    Bytes frame;
    if (!clean && r.Chance(4)) {  // noise: anything, rarely too large for a TAP
      frame.resize(r.Chance(99) ? r.Below(200) : r.Range(kMaxFrame - 10, kMaxFrame + 10));
      r.Fill(frame.data(), frame.size());
      if (frame.size() >= 14 && r.Chance(50)) P16(frame.data() + 12, r.Chance(50) ? 0x0800 : 0x86dd);
    } else {
      Flow& fl = flows[cur];
      Pkt p = fl.tmpl;
      const size_t pl = clean || r.Chance(85) ? fl.mss : r.Range(1, fl.mss);
      p.b.resize(p.hdrs + pl);
      r.Fill(p.b.data() + p.hdrs, pl);
      P32(p.l4p() + 4, fl.seq);
      if (!p.v6) P16(p.ip() + 4, fl.id);
      if (!clean && r.Chance(5)) p.l4p()[13] |= kPsh;
      fl.seq += uint32_t(pl), fl.id++;
      SetLengths(p);
      if (pl >= 2 && r.Chance(2)) ForceZeroSum(p);
      else SetSums(p);
      if (r.Chance(mutate)) Mutate(r, p);
      frame = std::move(p.b);
    }
    sink.in.push_back(frame);  // before Add: it may be written at once
    Bytes exact(frame.begin(), frame.end());
    co.Add(exact.empty() ? nullptr : exact.data(), exact.size());
    if (r.Chance(flush)) co.Flush();
  }
  co.Flush();
  if (!g_case_failed) sink.Done();
}

// ---- --bench: a 64 KiB TCPv4 super-frame at an MSS of 1398.
template <typename F>
double NsPer(F f) {
  using C = std::chrono::steady_clock;
  size_t n = 0;
  auto t0 = C::now();
  double ns;
  do {
    for (int i = 0; i < 100; i++) f();
    n += 100;
    ns = std::chrono::duration<double, std::nano>(C::now() - t0).count();
  } while (ns < 1e9);
  return ns / double(n);
}

int Bench() {
  Rng r{1};
  Pkt p = Make(r, false, false, 0, 12, 65535 - 20 - 32, kAck | kPsh);
  SetSums(p, true);
  const VnetHdr h{kNeedsCsum, kGsoTcpV4, uint16_t(p.hdrs), 1398, uint16_t(p.l4), 16};
  std::vector<uint8_t> out(2 << 20);
  std::vector<uint16_t> lens(1024);
  int segs = 0;
  const double split = NsPer([&] { segs = Split(h, p.b.data(), p.b.size(), {out.data(), out.size(), 8, lens.data(), 1024}); });
  std::vector<Bytes> in;
  size_t bytes = 0;
  for (int i = 0, off = 0; i < segs; i++) {
    off += 8;
    in.emplace_back(out.data() + off, out.data() + off + lens[i]);
    off += lens[i], bytes += lens[i];
  }
  size_t writes = 0;
  Coalescer co([&](const uint8_t*, size_t) { writes++; });
  for (const Bytes& s : in) co.Add(s.data(), s.size());
  co.Flush();
  const size_t per_run = writes;
  const double coal = NsPer([&] {
    for (const Bytes& s : in) co.Add(s.data(), s.size());
    co.Flush();
  });
  const double sum = NsPer([&] { volatile uint16_t c = Checksum(p.b.data(), p.b.size()); (void)c; });
  printf("Split: %zu-byte super-frame into %d segments: %.0f ns, %.2f GB/s\n", p.b.size(), segs, split,
         double(p.b.size()) / split);
  printf("Coalescer: %d segments (%zu bytes) into %zu write(s) per run: %.0f ns, %.2f GB/s\n", segs, bytes,
         per_run, coal, double(bytes) / coal);
  printf("Checksum: %zu bytes: %.0f ns, %.2f GB/s\n", p.b.size(), sum, double(p.b.size()) / sum);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Cases cases;
  if (!ParseCases(argc, argv, "fuzz-offload", &cases)) return 2;
  if (cases.bench) return Bench();
  g_seed = cases.seed;
  const size_t from = cases.from, to = cases.to;
  static const char* const kKinds[] = {"split", "round trip", "coalescer stream"};
  for (g_case = from; g_case < to; g_case++) {
    Rng r = CaseRng(g_seed, g_case);
    g_case_failed = false;
    g_kind = kKinds[g_case % 3];
    g_cases++;
    switch (g_case % 3) {
      case 0: CaseSplit(r); break;
      case 1: CaseRoundTrip(r); break;
      case 2: CaseStream(r); break;
    }
  }
  printf("fuzz-offload: %zu cases, %zu segments checked, %zu coalesced writes, %zu malformed\n", g_cases, g_segments,
         g_coalesced, g_malformed);
  return g_malformed || g_failures ? 1 : 0;
}
