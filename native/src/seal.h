// Sealed datagrams between two routers: the encrypted data plane's wire format and its AEAD, for
// the native sleeve's threads (router/seal.ts speaks the same format with Node's crypto).
//
// A sealed datagram, told apart from VXLAN (0x08) and our relay headers ('W', 'D') by its first byte:
//   byte 0       0x45 ('E')
//   byte 1       key id: the epoch of the key that sealed it, mod 256
//   bytes 2-7    zero
//   bytes 8-15   counter, 64-bit big-endian, never reused under one key; the AEAD nonce is
//                4 zero bytes then these 8
//   bytes 16-    the inner datagram (plain VXLAN, or a relay or directed header and its frame), encrypted
//   last 16      the AEAD tag, over bytes 0-15 as associated data and the inner datagram
// Keys are 32 bytes: ChaCha20-Poly1305 (RFC 8439) or AES-256-GCM, as the two routers agreed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace weave::seal {

constexpr size_t kHeader = 16, kTag = 16, kOverhead = kHeader + kTag;
constexpr uint8_t kType = 0x45;

enum class Cipher : uint8_t { kChaCha20Poly1305 = 0, kAes256Gcm = 1 };

// Whether this CPU runs AES-GCM in hardware (AES-NI and carry-less multiply).
bool HasAesGcmHardware();

void WriteHeader(uint8_t header[kHeader], uint8_t keyId, uint64_t counter);
// False unless data starts with a well-formed header (type, zero bytes) and has room for a tag
// after it (len >= kOverhead).
bool ReadHeader(const uint8_t* data, size_t len, uint8_t* keyId, uint64_t* counter);

// One key in one direction, used by one thread at a time (it keeps its cipher context, set up
// once, so a datagram costs no key schedule). Nothing is allocated per datagram.
class Aead {
 public:
  Aead(Cipher cipher, const uint8_t key[32]);
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;

  // datagram: kHeader bytes of header (written here from keyId and counter), then len bytes of
  // inner datagram (encrypted in place), then kTag bytes of room (the tag is written there).
  // Returns false only if the cipher library fails.
  bool Seal(uint8_t* datagram, size_t len, uint8_t keyId, uint64_t counter);
  // datagram: a whole sealed datagram of len bytes (len >= kOverhead, header already read).
  // Decrypts in place (the inner datagram is then at datagram + kHeader, len - kOverhead bytes).
  // Returns false when the tag does not verify: the datagram was forged, damaged or sealed under
  // another key; its bytes are then unspecified.
  bool Open(uint8_t* datagram, size_t len);

 private:
  void* ctx_;  // EVP_CIPHER_CTX
  Cipher cipher_;
};

// Which counters a receiver has taken under one key: the highest seen and a window of kSize
// before it (RFC 6479's bitmap). A datagram is opened first and only then accepted, so a forgery
// moves nothing. With H the highest accepted: counters above H (any, before the first) are fresh,
// H - kSize .. H fresh unless taken, those below H - kSize too old. 2^64-1 is never fresh (kReplay:
// top_ could not go past it), so a sender must rekey before it.
class ReplayWindow {
 public:
  static constexpr uint64_t kSize = 4096;
  enum Verdict { kFresh, kReplay, kTooOld };
  Verdict Check(uint64_t counter) const;
  // Records counter (which Check found fresh).
  void Accept(uint64_t counter);

 private:
  static constexpr size_t kWords = kSize / 64 + 1;  // one spare word, as RFC 6479 slides by words
  uint64_t bits_[kWords] = {};
  uint64_t top_ = 0;  // the highest counter accepted + 1 (0: none yet)
};

}  // namespace weave::seal
