// Tests for seal.cc, deterministic from a seed:
//   seal-test SEED ITERATIONS     known answers, then every case
//   seal-test SEED --case N       known answers, then case N alone (as printed by a failure)
//   seal-test --bench             Seal and Open throughput (build with -O2, no sanitizers)
// Known answers: RFC 8439 2.8.2 (ChaCha20-Poly1305) and the GCM paper's test case 16 (AES-256-GCM),
// through the calls Aead makes (seal.cc's detail::Crypt) and through the reference below.
// A case, its cipher alternating: 1-4 datagrams of 0-9000 bytes sealed under one random key, each
// compared byte for byte with the reference (header as seal.h lays it out, nonce 4 zero bytes and
// the counter, the header as associated data), then forged (bit flips anywhere, truncation,
// lengthening, another key, the other cipher) and opened for real; then a random walk of counters
// through a ReplayWindow, its every verdict compared with a model (a set and the highest).
// Build: g++ -std=c++17 -O1 -g -fsanitize=address,undefined native/test/seal-test.cc native/src/seal.cc -lcrypto
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

#include "rng.h"
#include "../src/seal.h"

using namespace weave::seal;
using Bytes = std::vector<uint8_t>;

namespace weave::seal::detail {
void* NewContext(Cipher cipher, const uint8_t key[32]);
bool Crypt(void* ctx, bool seal, const uint8_t nonce[12], const uint8_t* aad, size_t aadLen, uint8_t* data,
           size_t len, uint8_t tag[kTag]);
}  // namespace weave::seal::detail

namespace {

// ---- Reporting. A case stops being checked at its first failure (the rest would follow from it).
uint64_t g_seed;
size_t g_case = SIZE_MAX;  // SIZE_MAX: the known answers
const char* g_kind = "known answers";
size_t g_roundtrips, g_rejected, g_checks, g_failures;
bool g_case_failed;

void Fail(const char* fmt, ...) {
  if (g_case_failed) return;
  g_case_failed = true;
  if (++g_failures > 1) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (g_case == SIZE_MAX)
    fprintf(stderr, "FAIL %s: %s\n", g_kind, msg);
  else
    fprintf(stderr, "FAIL seed %llu case %zu (%s): %s\n  rerun: seal-test %llu --case %zu\n",
            (unsigned long long)g_seed, g_case, g_kind, msg, (unsigned long long)g_seed, g_case);
}

const char* Name(Cipher c) { return c == Cipher::kAes256Gcm ? "aes-256-gcm" : "chacha20-poly1305"; }

Bytes Hex(const char* s) {
  Bytes b;
  int half = -1;
  for (; *s; s++) {
    if (*s == ' ') continue;
    const int v = *s <= '9' ? *s - '0' : (*s | 0x20) - 'a' + 10;
    if (half < 0) {
      half = v;
    } else {
      b.push_back(uint8_t(half << 4 | v));
      half = -1;
    }
  }
  return b;
}

// ---- The reference: libcrypto called the textbook way, a fresh context each time, nothing in
// place, the nonce length set explicitly. Not seal.cc's code, so the two check each other.
bool RefAead(Cipher c, bool seal, const uint8_t key[32], const uint8_t nonce[12], const Bytes& aad, const Bytes& in,
             Bytes* out, uint8_t tag[kTag]) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  const EVP_CIPHER* cipher = c == Cipher::kAes256Gcm ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();
  out->assign(in.size() + 16, 0);
  int a = 0, n = 0, m = 0;  // a apart: an update of associated data reports its length too
  bool ok = ctx && EVP_CipherInit_ex(ctx, cipher, nullptr, nullptr, nullptr, seal) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) == 1 &&
            EVP_CipherInit_ex(ctx, nullptr, nullptr, key, nonce, seal) == 1 &&
            (seal || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, int(kTag), tag) == 1) &&
            (aad.empty() || EVP_CipherUpdate(ctx, nullptr, &a, aad.data(), int(aad.size())) == 1) &&
            (in.empty() || EVP_CipherUpdate(ctx, out->data(), &n, in.data(), int(in.size())) == 1) &&
            EVP_CipherFinal_ex(ctx, out->data() + n, &m) == 1 &&
            (!seal || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, int(kTag), tag) == 1);
  out->resize(size_t(n + m));
  EVP_CIPHER_CTX_free(ctx);
  return ok && out->size() == in.size();
}

// ---- (a) Known answers, through detail::Crypt (sealing and opening, on one context as Aead keeps
// it) and through the reference.
void KnownAnswer(const char* what, Cipher c, const char* keyHex, const char* nonceHex, const char* aadHex,
                 const Bytes& plain, const char* cipherHex, const char* tagHex) {
  g_kind = what;
  g_case_failed = false;
  const Bytes key = Hex(keyHex), nonce = Hex(nonceHex), aad = Hex(aadHex), want = Hex(cipherHex), wantTag = Hex(tagHex);
  if (key.size() != 32 || nonce.size() != 12 || wantTag.size() != kTag || want.size() != plain.size())
    return Fail("malformed vector");
  void* ctx = detail::NewContext(c, key.data());
  if (!ctx) return Fail("NewContext failed");
  for (int round = 0; round < 2 && !g_case_failed; round++) {  // twice: the context must be reusable
    Bytes data = plain;
    uint8_t tag[kTag];
    if (!detail::Crypt(ctx, true, nonce.data(), aad.data(), aad.size(), data.data(), data.size(), tag))
      Fail("Crypt (seal) failed");
    else if (data != want)
      Fail("ciphertext differs from the vector");
    else if (memcmp(tag, wantTag.data(), kTag))
      Fail("tag differs from the vector");
    else if (!detail::Crypt(ctx, false, nonce.data(), aad.data(), aad.size(), data.data(), data.size(), tag))
      Fail("Crypt (open) rejected the vector");
    else if (data != plain)
      Fail("opening gave other bytes than the plaintext");
    if (g_case_failed) break;
    data = want;
    tag[round ? kTag - 1 : 0] ^= uint8_t(round ? 0x80 : 0x01);
    if (detail::Crypt(ctx, false, nonce.data(), aad.data(), aad.size(), data.data(), data.size(), tag))
      Fail("Crypt (open) took a damaged tag");
    data = want;
    Bytes aad2 = aad;
    aad2[round ? aad2.size() - 1 : 0] ^= 0x01;
    memcpy(tag, wantTag.data(), kTag);
    if (detail::Crypt(ctx, false, nonce.data(), aad2.data(), aad2.size(), data.data(), data.size(), tag))
      Fail("Crypt (open) took damaged associated data");
  }
  EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(ctx));
  Bytes out;
  uint8_t tag[kTag];
  if (g_case_failed) return;
  if (!RefAead(c, true, key.data(), nonce.data(), aad, plain, &out, tag) || out != want ||
      memcmp(tag, wantTag.data(), kTag))
    return Fail("the reference does not reproduce the vector");
  if (!RefAead(c, false, key.data(), nonce.data(), aad, want, &out, tag) || out != plain)
    return Fail("the reference does not open the vector");
}

void KnownAnswers() {
  const char* lg = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
                   "sunscreen would be it.";
  KnownAnswer("RFC 8439 2.8.2", Cipher::kChaCha20Poly1305,
              "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f", "070000004041424344454647",
              "50515253c0c1c2c3c4c5c6c7", Bytes(lg, lg + strlen(lg)),
              "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
              "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
              "3ff4def08e4b7a9de576d26586cec64b6116",
              "1ae10b594f09e26a7e902ecbd0600691");
  KnownAnswer("GCM test case 16", Cipher::kAes256Gcm,
              "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
              "feedfacedeadbeeffeedfacedeadbeefabaddad2",
              Hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525"
                  "b16aedf5aa0de657ba637b39"),
              "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838"
              "c5f61e6393ba7a0abcc9f662",
              "76fc6ece0f4e1768cddf8853bb2d551b");
  // The header, spelled out: type, key id, six zeros, the counter big-endian.
  g_kind = "header layout";
  g_case_failed = false;
  uint8_t h[kHeader];
  WriteHeader(h, 0xab, 0x0102030405060708);
  const Bytes want = Hex("45ab000000000000 0102030405060708");
  if (memcmp(h, want.data(), kHeader)) Fail("WriteHeader(0xab, 0x0102030405060708) is not 45ab0000000000000102030405060708");
}

// ---- (b, c) Round trips and forgeries.

uint64_t PickCounter(Rng& r) {
  switch (r.Below(10)) {
    case 0: return 0;
    case 1: return UINT64_MAX;
    case 2: return r.Below(256);
    case 3: return UINT64_MAX - r.Below(256);
    default: return r.Next() >> r.Below(64);  // every magnitude
  }
}

size_t PickLength(Rng& r) {
  switch (r.Below(8)) {
    case 0: return r.Chance(50) ? 0 : 9000;
    case 1: case 2: return r.Below(65);
    case 3: return r.Range(1400, 1500);
    default: return r.Below(9001);
  }
}

// Opening a forgery must fail (ReadHeader may refuse it first). Counts it when it does.
void Forged(Aead& a, const Bytes& d, size_t len, const char* what, size_t at) {
  Bytes t = d;
  t.resize(std::max(len, size_t(1)));
  uint8_t id;
  uint64_t ctr;
  if (ReadHeader(t.data(), len, &id, &ctr) && a.Open(t.data(), len))
    return Fail("%s (at %zu of %zu bytes) was opened", what, at, d.size());
  g_rejected++;
}

void RoundTrip(Rng& r, Cipher c, const uint8_t key[32], Aead& sealer, Aead& opener) {
  const size_t len = PickLength(r), total = len + kOverhead;
  const uint8_t keyId = uint8_t(r.Next());
  const uint64_t counter = PickCounter(r);
  Bytes inner(len);
  r.Fill(inner.data(), len);
  Bytes d(total);
  r.Fill(d.data(), total);  // junk where the header and tag go: Seal must write them all
  std::copy(inner.begin(), inner.end(), d.begin() + kHeader);  // (memcpy may not take an empty vector's null)
  if (!sealer.Seal(d.data(), len, keyId, counter)) return Fail("Seal failed (%zu bytes)", len);

  // The header as documented, computed here independently.
  Bytes hdr = {kType, keyId, 0, 0, 0, 0, 0, 0};
  for (int i = 7; i >= 0; i--) hdr.push_back(uint8_t(counter >> (8 * i)));
  if (memcmp(d.data(), hdr.data(), kHeader))
    return Fail("header of counter %016llx, key id %u is not as documented", (unsigned long long)counter, keyId);
  uint8_t nonce[12] = {};
  memcpy(nonce + 4, hdr.data() + 8, 8);
  Bytes ref;
  uint8_t tag[kTag];
  if (!RefAead(c, true, key, nonce, hdr, inner, &ref, tag)) return Fail("the reference failed to seal");
  if (!std::equal(ref.begin(), ref.end(), d.begin() + kHeader))
    return Fail("ciphertext (%zu bytes, counter %016llx) differs from the reference", len, (unsigned long long)counter);
  if (memcmp(d.data() + kHeader + len, tag, kTag))
    return Fail("tag (%zu bytes, counter %016llx) differs from the reference", len, (unsigned long long)counter);

  uint8_t id = 0;
  uint64_t ctr = 0;
  if (!ReadHeader(d.data(), total, &id, &ctr) || id != keyId || ctr != counter)
    return Fail("ReadHeader gave key id %u counter %016llx, sealed %u %016llx", id, (unsigned long long)ctr, keyId,
                (unsigned long long)counter);
  if (ReadHeader(d.data(), kOverhead - 1, &id, &ctr)) return Fail("ReadHeader took %zu bytes", kOverhead - 1);
  for (size_t at : {0, 2, 3, 4, 5, 6, 7}) {  // the type byte and the zeros: not ours
    Bytes t = d;
    t[at] ^= uint8_t(1 << r.Below(8));
    if (ReadHeader(t.data(), total, &id, &ctr)) return Fail("ReadHeader took byte %zu = %02x", at, t[at]);
  }

  // Forgeries, each on a fresh copy (a failed Open leaves its bytes unspecified). Small datagrams
  // sometimes get every bit flipped; otherwise a sample spread over header, ciphertext and tag.
  if (total <= 64 && r.Chance(25)) {
    for (size_t bit = 0; bit < total * 8 && !g_case_failed; bit++) {
      Bytes t = d;
      t[bit / 8] ^= uint8_t(1 << (bit % 8));
      Forged(opener, t, total, "bit flip", bit / 8);
    }
  } else {
    for (int k = 0; k < 12 && !g_case_failed; k++) {
      const int region = k % 3;
      size_t at = region == 0 ? r.Below(kHeader) : region == 2 || !len ? kHeader + len + r.Below(kTag) : kHeader + r.Below(len);
      Bytes t = d;
      t[at] ^= uint8_t(1 << r.Below(8));
      Forged(opener, t, total, "bit flip", at);
    }
  }
  for (int k = 0; k < 3 && !g_case_failed; k++) {
    const size_t cut = k == 0 ? total - 1 : k == 1 && total > kOverhead ? r.Range(kOverhead, total - 1) : r.Below(total);
    Forged(opener, d, cut, "truncation", cut);
  }
  if (!g_case_failed) {
    Bytes t = d;
    const size_t more = r.Range(1, 32);
    for (size_t i = 0; i < more; i++) t.push_back(uint8_t(r.Next()));
    Forged(opener, t, t.size(), "lengthening", total);
  }
  if (!g_case_failed) {
    uint8_t other[32];
    memcpy(other, key, 32);
    if (r.Chance(50))
      other[r.Below(32)] ^= uint8_t(1 << r.Below(8));
    else
      r.Fill(other, 32);
    Aead wrong(c, other);
    Forged(wrong, d, total, "another key", 0);
  }
  if (!g_case_failed) {
    Aead wrong(c == Cipher::kAes256Gcm ? Cipher::kChaCha20Poly1305 : Cipher::kAes256Gcm, key);
    Forged(wrong, d, total, "the other cipher", 0);
  }
  if (g_case_failed) return;

  // And the genuine one, after all those failures on the same context.
  Bytes t = d;
  if (!opener.Open(t.data(), total)) return Fail("Open rejected a genuine datagram (%zu bytes)", len);
  if (!std::equal(inner.begin(), inner.end(), t.begin() + kHeader)) return Fail("Open gave other bytes (%zu bytes)", len);
  g_roundtrips++;
}

void CaseAead(Rng& r, Cipher c) {
  uint8_t key[32];
  r.Fill(key, 32);
  Aead sealer(c, key);
  Aead other(c, key);
  // One context sealing and opening (directions switch on one context), or one for each.
  Aead& opener = r.Chance(50) ? sealer : other;
  for (size_t n = r.Range(1, 4), i = 0; i < n && !g_case_failed; i++) RoundTrip(r, c, key, sealer, opener);
}

// ---- (d) The replay window against a model. The boundary, per seal.h: with H the highest counter
// accepted, counters above H are fresh, H - kSize .. H are fresh unless taken, below H - kSize too
// old; 2^64-1 is never fresh.

struct Model {
  std::set<uint64_t> seen;
  bool any = false;
  uint64_t hi = 0;
  ReplayWindow::Verdict Check(uint64_t c) const {
    if (c == UINT64_MAX) return ReplayWindow::kReplay;
    if (!any || c > hi) return ReplayWindow::kFresh;
    if (hi - c > ReplayWindow::kSize) return ReplayWindow::kTooOld;  // (c + kSize < hi, without overflow)
    return seen.count(c) ? ReplayWindow::kReplay : ReplayWindow::kFresh;
  }
  void Accept(uint64_t c) {
    seen.insert(c);
    if (!any || c > hi) hi = c;
    any = true;
  }
};

uint64_t Add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
uint64_t Sub(uint64_t a, uint64_t b) { return a < b ? 0 : a - b; }

const char* VerdictName(ReplayWindow::Verdict v) {
  return v == ReplayWindow::kFresh ? "fresh" : v == ReplayWindow::kReplay ? "replay" : "too old";
}

bool Same(const ReplayWindow& w, const Model& m, uint64_t c, const char* when) {
  g_checks++;
  const ReplayWindow::Verdict got = w.Check(c), want = m.Check(c);
  if (got == want) return true;
  Fail("%s: Check(%llu) is %s, the model says %s (highest %llu, %zu accepted)", when, (unsigned long long)c,
       VerdictName(got), VerdictName(want), (unsigned long long)m.hi, m.seen.size());
  return false;
}

void CaseWindow(Rng& r) {
  constexpr uint64_t K = ReplayWindow::kSize;
  ReplayWindow w;
  Model m;
  std::vector<uint64_t> taken;
  uint64_t at;  // where the walk starts
  switch (r.Below(5)) {
    case 0: at = 0; break;
    case 1: at = r.Below(3 * K); break;
    case 2: at = UINT64_MAX - r.Below(3 * K); break;
    default: at = r.Next() >> r.Below(64);
  }
  if (!Same(w, m, at, "empty window") || !Same(w, m, 0, "empty window")) return;
  for (size_t n = r.Range(20, 200), i = 0; i < n && !g_case_failed; i++) {
    const uint64_t hi = m.any ? m.hi : at;
    uint64_t c;
    switch (r.Below(12)) {
      case 0: case 1: case 2: c = Add(hi, r.Range(1, 3)); break;                    // in order
      case 3: c = Sub(hi, r.Below(100)); break;                                      // reordered, or repeated
      case 4: c = taken.empty() ? hi : taken[r.Below(taken.size())]; break;          // replayed
      case 5: c = Add(Sub(hi, K + 2), r.Below(5)); break;                            // the old edge
      case 6: c = Add(Sub(hi, 64 * r.Range(1, 66)), r.Below(3)); break;              // word edges
      case 7: c = Add(hi, K - 64 + r.Below(129)); break;                             // about a window ahead
      case 8: c = Add(hi, r.Chance(50) ? uint64_t(1) << 40 : r.Below(uint64_t(1) << 40)); break;  // a leap
      case 9: c = Add(Sub(hi, K + 64), r.Below(K + 129)); break;                     // anywhere near
      case 10: c = r.Chance(20) ? UINT64_MAX : r.Next() >> r.Below(64); break;       // anything
      default: c = Sub(hi, r.Below(3 * K)); break;                                   // behind
    }
    if (!Same(w, m, c, "walk")) return;
    if (m.Check(c) != ReplayWindow::kFresh || !r.Chance(85)) continue;
    w.Accept(c);
    m.Accept(c);
    taken.push_back(c);
    // After each Accept: the counter itself, the top, both sides of the old edge, and a sample.
    const uint64_t h = m.hi;
    const uint64_t probes[] = {c, h, Add(h, 1), Sub(h, K + 1), Sub(h, K), Sub(h, K - 1), Sub(h, r.Below(K + 1)),
                               Sub(h, r.Below(K + 1)), taken[r.Below(taken.size())], taken[r.Below(taken.size())]};
    for (uint64_t p : probes)
      if (!Same(w, m, p, "after Accept")) return;
  }
}

// ---- Benchmark.
template <typename F>
double NsPer(F f) {
  for (int i = 0; i < 1000; i++) f();
  size_t n = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double ns = 0;
  do {
    for (int i = 0; i < 1000; i++) f();
    n += 1000;
    ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  } while (ns < 5e8);
  return ns / double(n);
}

int Bench() {
  constexpr size_t kInner = 1464;
  printf("AES-GCM hardware: %s\n", HasAesGcmHardware() ? "yes" : "no");
  Rng r{1};
  uint8_t key[32];
  r.Fill(key, 32);
  Bytes buf(kInner + kOverhead), sealed(kInner + kOverhead);
  r.Fill(buf.data(), buf.size());
  // Open decrypts in place, so each run starts from a copy; the copy's cost is measured and taken off.
  const double copy = NsPer([&] {
    memcpy(buf.data(), sealed.data(), sealed.size());
    asm volatile("" : : "r"(buf.data()) : "memory");
  });
  for (Cipher c : {Cipher::kChaCha20Poly1305, Cipher::kAes256Gcm}) {
    Aead a(c, key);
    uint64_t counter = 0;
    bool ok = true;
    const double seal = NsPer([&] { ok &= a.Seal(buf.data(), kInner, 7, counter++); });
    sealed = buf;
    const double open = NsPer([&] {
      memcpy(buf.data(), sealed.data(), sealed.size());
      ok &= a.Open(buf.data(), buf.size());
    }) - copy;
    if (!ok) return fprintf(stderr, "bench: %s failed\n", Name(c)), 1;
    printf("%s Seal: %zu bytes: %.0f ns, %.2f GB/s\n", Name(c), kInner, seal, double(kInner) / seal);
    printf("%s Open: %zu bytes: %.0f ns, %.2f GB/s\n", Name(c), kInner, open, double(kInner) / open);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Cases cases;
  if (!ParseCases(argc, argv, "seal-test", &cases)) return 2;
  if (cases.bench) return Bench();
  g_seed = cases.seed;
  KnownAnswers();
  const size_t from = cases.from, to = cases.to;
  for (g_case = from; g_case < to; g_case++) {
    Rng r = CaseRng(g_seed, g_case);
    g_case_failed = false;
    const Cipher c = g_case % 2 ? Cipher::kAes256Gcm : Cipher::kChaCha20Poly1305;
    g_kind = Name(c);
    CaseAead(r, c);
    if (g_case_failed) continue;
    g_kind = "replay window";
    CaseWindow(r);
  }
  printf("seal-test: %zu round trips, %zu tamperings rejected, %zu window checks, %zu failures\n", g_roundtrips,
         g_rejected, g_checks, g_failures);
  if (g_failures) fprintf(stderr, "seal-test: %zu failures\n", g_failures);
  return g_failures ? 1 : 0;
}
