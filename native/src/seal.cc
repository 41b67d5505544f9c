// Sealed datagrams: the header, the AEAD over libcrypto's EVP interface, and the replay window; see
// seal.h.
#include "seal.h"

#include <openssl/evp.h>

#include <climits>
#include <stdexcept>

namespace weave::seal {

namespace detail {

// Both exposed for the known-answer tests (native/test/seal-test.cc), which need a nonce and
// associated data of their own through the same calls Aead makes.
void* NewContext(Cipher cipher, const uint8_t key[32]);
bool Crypt(void* ctx, bool seal, const uint8_t nonce[12], const uint8_t* aad, size_t aadLen, uint8_t* data,
           size_t len, uint8_t tag[kTag]);

void* NewContext(Cipher cipher, const uint8_t key[32]) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return nullptr;
  const EVP_CIPHER* c = cipher == Cipher::kAes256Gcm ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();
  // The key schedule happens here, once; both ciphers default to the 12-byte nonce we use, and a
  // later init with only a nonce keeps the key whichever direction it switches to.
  if (EVP_EncryptInit_ex(ctx, c, nullptr, key, nullptr) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

bool Crypt(void* vctx, bool seal, const uint8_t nonce[12], const uint8_t* aad, size_t aadLen, uint8_t* data,
           size_t len, uint8_t tag[kTag]) {
  auto* ctx = static_cast<EVP_CIPHER_CTX*>(vctx);
  if (len > INT_MAX || aadLen > INT_MAX) return false;
  int n = 0;
  if (seal) {
    if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) != 1) return false;
    // A null output makes the update associated data.
    if (aadLen && EVP_EncryptUpdate(ctx, nullptr, &n, aad, int(aadLen)) != 1) return false;
    // Skipped when empty: libcrypto's handling of a zero-length update is not worth depending on.
    if (len && EVP_EncryptUpdate(ctx, data, &n, data, int(len)) != 1) return false;
    if (EVP_EncryptFinal_ex(ctx, data + len, &n) != 1) return false;
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, int(kTag), tag) == 1;
  }
  if (EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) != 1) return false;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, int(kTag), tag) != 1) return false;
  if (aadLen && EVP_DecryptUpdate(ctx, nullptr, &n, aad, int(aadLen)) != 1) return false;
  if (len && EVP_DecryptUpdate(ctx, data, &n, data, int(len)) != 1) return false;
  // Final is where the tag is checked; the plaintext is already written, hence "unspecified".
  return EVP_DecryptFinal_ex(ctx, data + len, &n) == 1;
}

}  // namespace detail

namespace {

// The nonce is 4 zero bytes then the header's counter bytes as they are on the wire.
void NonceOf(const uint8_t header[kHeader], uint8_t nonce[12]) {
  nonce[0] = nonce[1] = nonce[2] = nonce[3] = 0;
  for (int i = 0; i < 8; i++) nonce[4 + i] = header[8 + i];
}

}  // namespace

bool HasAesGcmHardware() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();  // in case this runs from a static initializer, before libgcc's own
  return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
#else
  return false;
#endif
}

void WriteHeader(uint8_t header[kHeader], uint8_t keyId, uint64_t counter) {
  header[0] = kType;
  header[1] = keyId;
  for (int i = 2; i < 8; i++) header[i] = 0;
  for (int i = 0; i < 8; i++) header[8 + i] = uint8_t(counter >> (56 - 8 * i));
}

bool ReadHeader(const uint8_t* data, size_t len, uint8_t* keyId, uint64_t* counter) {
  if (len < kOverhead || data[0] != kType) return false;
  for (int i = 2; i < 8; i++)
    if (data[i]) return false;
  uint64_t c = 0;
  for (int i = 0; i < 8; i++) c = c << 8 | data[8 + i];
  *keyId = data[1];
  *counter = c;
  return true;
}

Aead::Aead(Cipher cipher, const uint8_t key[32]) : ctx_(detail::NewContext(cipher, key)), cipher_(cipher) {
  if (!ctx_) throw std::runtime_error("seal: cannot set up the cipher context");
}

Aead::~Aead() { EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(ctx_)); }

bool Aead::Seal(uint8_t* datagram, size_t len, uint8_t keyId, uint64_t counter) {
  WriteHeader(datagram, keyId, counter);
  uint8_t nonce[12];
  NonceOf(datagram, nonce);
  return detail::Crypt(ctx_, true, nonce, datagram, kHeader, datagram + kHeader, len, datagram + kHeader + len);
}

bool Aead::Open(uint8_t* datagram, size_t len) {
  if (len < kOverhead) return false;
  uint8_t nonce[12];
  NonceOf(datagram, nonce);
  return detail::Crypt(ctx_, false, nonce, datagram, kHeader, datagram + kHeader, len - kOverhead,
                       datagram + len - kTag);
}

// RFC 6479: bit (c % 64) of word (c / 64) % kWords stands for counter c. The window, the highest
// counter and the kSize before it, spans kSize / 64 + 1 = kWords consecutive words, all different
// mod kWords; a word is cleared as the top moves into it, so no bit outlives its counter's window.

ReplayWindow::Verdict ReplayWindow::Check(uint64_t counter) const {
  // top_ could not say that 2^64-1 was taken (it would wrap to "none yet"), so it never is fresh.
  if (counter == UINT64_MAX) return kReplay;
  if (counter >= top_) return kFresh;
  if (top_ - 1 - counter > kSize) return kTooOld;
  return bits_[(counter / 64) % kWords] >> (counter % 64) & 1 ? kReplay : kFresh;
}

void ReplayWindow::Accept(uint64_t counter) {
  if (counter == UINT64_MAX) return;
  if (counter >= top_) {
    if (top_) {
      // Clear the words the top moves into; past kWords of them that is all there are.
      const uint64_t from = (top_ - 1) / 64, to = counter / 64;
      const uint64_t n = to - from < kWords ? to - from : kWords;
      for (uint64_t i = 1; i <= n; i++) bits_[(from + i) % kWords] = 0;
    }
    top_ = counter + 1;
  } else if (top_ - 1 - counter > kSize) {
    return;  // its word may now stand for a live counter: marking it would reject that one
  }
  bits_[(counter / 64) % kWords] |= uint64_t(1) << (counter % 64);
}

}  // namespace weave::seal
