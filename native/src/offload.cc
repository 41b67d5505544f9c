// Segmentation (Split) and receive coalescing (Coalescer) for the native sleeve; see offload.h.
#include "offload.h"

#include <algorithm>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <cstring>
#include <utility>

namespace weave::offload {
namespace {

constexpr size_t kEth = 14;
constexpr size_t kHdr = sizeof(VnetHdr);
constexpr uint8_t kTcp = 6, kUdp = 17;
constexpr uint8_t kFin = 0x01, kPsh = 0x08, kAck = 0x10, kCwr = 0x80;
constexpr size_t kMaxRun = 64;  // segments per coalesced write, as Linux's GRO

uint16_t Get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t Get32(const uint8_t* p) { return uint32_t(Get16(p)) << 16 | Get16(p + 2); }
void Put16(uint8_t* p, size_t v) { p[0] = uint8_t(v >> 8), p[1] = uint8_t(v); }
void Put32(uint8_t* p, uint32_t v) { Put16(p, v >> 16), Put16(p + 2, v & 0xffff); }

uint16_t Fold(uint64_t s) {
  s = (s & 0xffffffff) + (s >> 32);
  s = (s & 0xffffffff) + (s >> 32);
  s = (s & 0xffff) + (s >> 16);
  return uint16_t((s & 0xffff) + (s >> 16));
}

// The sum over the pseudo-header but for its length: addresses (adjacent in both IP versions) and
// protocol. Its L4 length is added per packet.
uint64_t PseudoSum(const uint8_t* ip, bool v6, uint8_t proto) {
  return v6 ? SumWords(ip + 8, 32, proto) : SumWords(ip + 12, 8, proto);
}

// A frame the Coalescer may merge: a TCP segment with data, flags ACK or ACK|PSH, valid checksums.
struct Segment {
  bool v6;
  size_t l4, hdrs, payload;  // TCP header offset, all headers' length, payload length
  uint32_t seq;
  uint16_t id;
  bool psh;
};

bool ParseSegment(const uint8_t* f, size_t len, Segment* s) {
  if (len < kEth + 40 || len > kMaxFrame) return false;  // 40: the shortest IP + TCP headers
  const uint8_t* ip = f + kEth;
  const uint16_t type = Get16(f + 12);
  if (type == 0x0800) {
    // No options, not a fragment (DF alone allowed), and no padding: the IP length is the frame's.
    if (ip[0] != 0x45 || (Get16(ip + 6) & 0x3fff) || ip[9] != kTcp || Get16(ip + 2) != len - kEth) return false;
    s->v6 = false, s->l4 = kEth + 20;
  } else if (type == 0x86dd) {
    if (len < kEth + 60 || ip[0] >> 4 != 6 || ip[6] != kTcp || Get16(ip + 4) != len - kEth - 40) return false;
    s->v6 = true, s->l4 = kEth + 40;
  } else {
    return false;
  }
  const uint8_t* tcp = f + s->l4;
  const uint8_t flags = tcp[13];
  s->hdrs = s->l4 + (tcp[12] >> 4) * 4;
  if (s->hdrs < s->l4 + 20 || s->hdrs >= len || (flags != kAck && flags != (kAck | kPsh))) return false;
  s->payload = len - s->hdrs;
  s->seq = Get32(tcp + 4);
  s->id = Get16(ip + 4);
  s->psh = flags & kPsh;
  // Both checksums must be exactly what Split would write back (so a merged run splits into the
  // same bytes): ~fold(sum with the field zeroed). Adding 0xffff - field cancels the field.
  if (!s->v6 && Checksum(ip, 20, 0xffff - Get16(ip + 10)) != Get16(ip + 10)) return false;
  const size_t l4len = len - s->l4;
  const uint64_t sum = PseudoSum(ip, s->v6, kTcp) + l4len + 0xffff - Get16(tcp + 16);
  return Checksum(tcp, l4len, Fold(sum)) == Get16(tcp + 16);
}

}  // namespace

#if defined(__x86_64__)
// The sum of data's 32-bit host-order words (len a multiple of 32), each lane widened to 64 bits:
// modulo 0xffff it equals the sum of its 16-bit words, as the 64-bit words below do.
__attribute__((target("avx2"))) static unsigned __int128 SumAvx2(const uint8_t* data, size_t len) {
  __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
  const __m256i zero = _mm256_setzero_si256();
  for (size_t i = 0; i < len; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + i));
    a = _mm256_add_epi64(a, _mm256_unpacklo_epi32(v, zero));
    b = _mm256_add_epi64(b, _mm256_unpackhi_epi32(v, zero));
  }
  alignas(32) uint64_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), a);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 4), b);
  unsigned __int128 sum = 0;
  for (uint64_t l : lanes) sum += l;
  return sum;
}
#endif

uint64_t SumWords(const uint8_t* data, size_t len, uint64_t initial) {
  // Sum 64-bit host-order words into 128 bits (the carries pile up in the high half, an add-with-
  // carry per word), then fold: the ones' complement sum commutes with byte swapping (RFC 1071
  // 2(B)), so the folded host-order sum, swapped on a little-endian host, is the big-endian one.
  __extension__ typedef unsigned __int128 u128;
  u128 acc = 0;
  uint64_t w[4];
#if defined(__x86_64__)
  // Where the CPU has AVX2, 32 bytes a step in four lanes (the received side verifies every
  // segment's checksum: it was the largest cost of ours on that path); the rest as below.
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2 && len >= 256) {
    const size_t done = len & ~size_t(31);
    acc += SumAvx2(data, done);
    data += done;
    len -= done;
  }
#endif
  for (; len >= 32; len -= 32, data += 32) {
    memcpy(w, data, 32);
    acc += w[0], acc += w[1], acc += w[2], acc += w[3];
  }
  for (; len >= 8; len -= 8, data += 8) {
    memcpy(w, data, 8);
    acc += w[0];
  }
  w[0] = 0;
  if (len) memcpy(w, data, len);  // the last 0-7 bytes, zero-padded: an odd byte is its word's high byte
  acc += w[0];
  uint64_t s = uint64_t(acc) + uint64_t(acc >> 64);
  s += s < uint64_t(acc >> 64);
  uint16_t folded = Fold(s);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  folded = uint16_t(folded << 8 | folded >> 8);
#endif
  const uint64_t r = initial + folded;
  return r + (r < initial);
}

uint16_t Checksum(const uint8_t* data, size_t len, uint32_t initial) {
  return uint16_t(~Fold(SumWords(data, len, initial)));
}

int Split(const VnetHdr& h, const uint8_t* f, size_t len, const SplitOut& out) {
  if (len < kEth || len > kMaxFrame || out.max_segments == 0) return -1;

  if (h.gso_type == kGsoNone) {
    const size_t at = size_t(h.csum_start) + h.csum_offset;  // where a NEEDS_CSUM sum goes
    if (len > 0xffff || len > out.cap || out.headroom > out.cap - len) return -1;
    if ((h.flags & kNeedsCsum) && at + 2 > len) return -1;
    uint8_t* seg = out.buf + out.headroom;
    memcpy(seg, f, len);
    if (h.flags & kNeedsCsum) {
      // The field holds the pseudo-header sum: summing it with the rest completes the checksum.
      uint16_t c = Checksum(f + h.csum_start, len - h.csum_start);
      if (c == 0 && h.csum_offset == 6) c = 0xffff;  // UDP's check is at 6; there 0 means "none"
      Put16(seg + at, c);
    }
    out.lens[0] = uint16_t(len);
    return 1;
  }

  bool tcp;
  const uint8_t type = h.gso_type & ~kGsoEcn;
  if (type == kGsoTcpV4 || type == kGsoTcpV6) tcp = true;
  else if (h.gso_type == kGsoUdpL4) tcp = false;
  else return -1;
  const uint16_t ethertype = Get16(f + 12);
  const bool v6 = ethertype == 0x86dd;
  if (h.gso_size == 0 || (ethertype != 0x0800 && !v6) || (v6 ? type == kGsoTcpV4 : type == kGsoTcpV6)) return -1;

  const uint8_t proto = tcp ? kTcp : kUdp;
  const uint8_t* ip = f + kEth;
  size_t iphl;
  if (v6) {
    iphl = 40;
    if (len < kEth + iphl || ip[0] >> 4 != 6 || ip[6] != proto || Get16(ip + 4) != len - kEth - iphl) return -1;
  } else {
    if (len < kEth + 20 || ip[0] >> 4 != 4) return -1;
    iphl = (ip[0] & 15) * 4;
    if (iphl < 20 || len < kEth + iphl || Get16(ip + 2) != len - kEth || (Get16(ip + 6) & 0x3fff) || ip[9] != proto)
      return -1;  // also a fragment (MF or an offset): its L4 header is not a whole datagram's
  }
  const size_t l4 = kEth + iphl;
  if (len < l4 + (tcp ? 20 : 8)) return -1;
  const size_t hdrs = l4 + (tcp ? (f[l4 + 12] >> 4) * 4 : 8);
  if (hdrs < l4 + (tcp ? 20 : 8) || hdrs > len) return -1;

  const size_t payload = len - hdrs, mss = h.gso_size;
  const size_t n = payload == 0 ? 1 : (payload + mss - 1) / mss;
  // Checked before writing: the count, the first (longest) segment's length, and the total, which
  // is n × (headroom + headers) + payload, without overflowing.
  if (n > out.max_segments || hdrs + std::min(mss, payload) > 0xffff || payload > out.cap) return -1;
  const size_t per = (out.cap - payload) / n;
  if (out.headroom > per || hdrs > per - out.headroom) return -1;

  const uint64_t pseudo = PseudoSum(ip, v6, proto);
  const uint32_t seq0 = tcp ? Get32(f + l4 + 4) : 0;
  const uint8_t flags = tcp ? f[l4 + 13] : 0;
  const uint16_t id0 = Get16(ip + 4);  // IPv4 only
  const bool no_udp_csum = !tcp && !v6 && Get16(f + l4 + 6) == 0;
  uint8_t* seg = out.buf;
  for (size_t i = 0, off = 0; i < n; i++, off += mss) {
    const size_t pl = std::min(mss, payload - off), l4len = hdrs - l4 + pl;
    seg += out.headroom;
    memcpy(seg, f, hdrs);
    memcpy(seg + hdrs, f + hdrs + off, pl);
    uint8_t *sip = seg + kEth, *sl4 = seg + l4;
    if (v6) {
      Put16(sip + 4, l4len);
    } else {
      Put16(sip + 2, iphl + l4len);
      Put16(sip + 4, uint16_t(id0 + i));
      Put16(sip + 10, 0);
      Put16(sip + 10, Checksum(sip, iphl));
    }
    const uint32_t initial = Fold(pseudo + l4len);
    if (tcp) {
      Put32(sl4 + 4, uint32_t(seq0 + off));
      uint8_t fl = flags;  // CWR on the first segment only, FIN and PSH on the last only
      if (i > 0) fl &= ~kCwr;
      if (i + 1 < n) fl &= ~(kFin | kPsh);
      sl4[13] = fl;
      Put16(sl4 + 16, 0);
      Put16(sl4 + 16, Checksum(sl4, l4len, initial));
    } else {
      Put16(sl4 + 4, l4len);
      Put16(sl4 + 6, 0);
      if (!no_udp_csum) {
        const uint16_t c = Checksum(sl4, l4len, initial);
        Put16(sl4 + 6, c ? c : 0xffff);
      }
    }
    out.lens[i] = uint16_t(hdrs + pl);
    seg += hdrs + pl;
  }
  return int(n);
}

// The pending run is kept as one frame in buf, after room for its VnetHdr: the first segment as
// it came, then each later one's payload.
struct Coalescer::State {
  size_t len = 0;  // frame bytes held; 0: no run
  Segment first;   // the run's first segment (its headers are in buf)
  size_t count;    // segments in the run
  uint32_t next_seq;
  uint16_t last_id;
  bool psh;
  uint8_t buf[kHdr + kMaxFrame];

  uint8_t* frame() { return buf + kHdr; }

  // Whether s (frame f) continues the run: the headers equal but for the fields that vary per
  // segment (IP length, ID and checksum; TCP sequence number, flags and checksum).
  bool Continues(const Segment& s, const uint8_t* f) {
    const uint8_t* r = frame();
    const size_t l4 = first.l4;
    auto same = [&](size_t from, size_t to) { return memcmp(r + from, f + from, to - from) == 0; };
    if (s.v6 != first.v6 || s.hdrs != first.hdrs || s.seq != next_seq || s.payload > first.payload ||
        count >= kMaxRun || len + s.payload > kMaxFrame)
      return false;
    if (!same(0, kEth + 2)) return false;  // Ethernet; IPv4 version, IHL and TOS; IPv6 version, class
    if (s.v6 && !same(kEth + 2, kEth + 4)) return false;  // flow label
    if (!s.v6 && (s.id != uint16_t(last_id + 1) || !same(kEth + 6, kEth + 10))) return false;  // DF, TTL
    if (!same(s.v6 ? kEth + 6 : kEth + 12, l4)) return false;  // addresses (IPv6: next header, hop limit)
    // TCP ports; ACK number and header length; window; urgent pointer and options.
    return same(l4, l4 + 4) && same(l4 + 8, l4 + 13) && same(l4 + 14, l4 + 16) && same(l4 + 18, s.hdrs);
  }

  void Start(const Segment& s, const uint8_t* f, size_t flen) {
    memcpy(frame(), f, flen);
    len = flen, first = s, count = 1, next_seq = s.seq + uint32_t(s.payload), last_id = s.id, psh = s.psh;
  }

  void Append(const Segment& s, const uint8_t* f) {
    memcpy(frame() + len, f + s.hdrs, s.payload);
    len += s.payload, count++, next_seq += uint32_t(s.payload), last_id = s.id, psh = s.psh;
  }

  // Nothing more can join: PSH, a short segment, or the most segments.
  bool Ended(const Segment& last) const { return psh || last.payload < first.payload || count == kMaxRun; }
};

Coalescer::Coalescer(Write write) : s_(new State), write_(std::move(write)) {}

Coalescer::~Coalescer() { delete s_; }

void Coalescer::Add(const uint8_t* frame, size_t len) {
  State& s = *s_;
  Segment seg;
  if (ParseSegment(frame, len, &seg)) {
    if (s.len && s.Continues(seg, frame)) {
      s.Append(seg, frame);
    } else {
      Flush();
      s.Start(seg, frame, len);
    }
    if (s.Ended(seg)) Flush();
    return;
  }
  Flush();
  if (len > kMaxFrame) return;  // more than a TAP takes (and than arrives in one datagram): dropped
  memset(s.buf, 0, kHdr);
  if (len) memcpy(s.frame(), frame, len);
  write_(s.buf, kHdr + len);
}

void Coalescer::Flush() {
  State& s = *s_;
  if (!s.len) return;
  VnetHdr h{};  // a single segment goes as it came
  if (s.count > 1) {
    const Segment& first = s.first;
    uint8_t *f = s.frame(), *ip = f + kEth, *tcp = f + first.l4;
    const size_t l4len = s.len - first.l4;
    h = {kNeedsCsum, first.v6 ? kGsoTcpV6 : kGsoTcpV4, uint16_t(first.hdrs), uint16_t(first.payload),
         uint16_t(first.l4), 16};
    if (first.v6) {
      Put16(ip + 4, l4len);
    } else {
      Put16(ip + 2, s.len - kEth);
      Put16(ip + 10, 0);
      Put16(ip + 10, Checksum(ip, 20));
    }
    if (s.psh) tcp[13] |= kPsh;
    // As Linux leaves a CHECKSUM_PARTIAL packet (tcp_v4_send_check): the pseudo-header sum, folded
    // but not complemented; the kernel adds the rest from csum_start.
    Put16(tcp + 16, Fold(PseudoSum(ip, first.v6, kTcp) + l4len));
  }
  memcpy(s.buf, &h, kHdr);
  write_(s.buf, kHdr + s.len);
  s.len = 0;
}

}  // namespace weave::offload
