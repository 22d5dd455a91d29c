#include "crypto/aead.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <cstring>
#include <utility>

namespace conclave::crypto {
namespace {

const EVP_CIPHER* evp_cipher(Cipher c) {
    return c == Cipher::aes_256_gcm ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();
}

void make_nonce(std::uint64_t counter, unsigned char iv[12]) {
    std::memset(iv, 0, 4);
    wire::store_u64(iv + 4, counter);
}

// OpenSSL takes int lengths; datagrams are far below INT_MAX, callers guarantee it.
int len(std::size_t n) { return static_cast<int>(n); }

}  // namespace

std::string_view cipher_name(Cipher c) {
    return c == Cipher::aes_256_gcm ? "aes-256-gcm" : "chacha20-poly1305";
}

std::optional<Cipher> cipher_from_name(std::string_view name) {
    if (name == "aes-256-gcm") return Cipher::aes_256_gcm;
    if (name == "chacha20-poly1305") return Cipher::chacha20_poly1305;
    return std::nullopt;
}

std::optional<Cipher> cipher_from_wire(std::uint8_t v) {
    if (v == 1) return Cipher::aes_256_gcm;
    if (v == 2) return Cipher::chacha20_poly1305;
    return std::nullopt;
}

AeadKey::AeadKey(Cipher cipher, const SessionKey& key, Direction dir) : cipher_(cipher) {
    ctx_ = EVP_CIPHER_CTX_new();
    unsigned char iv[12] = {};
    bool ok = ctx_ != nullptr;
    if (dir == Direction::seal)
        ok = ok && EVP_EncryptInit_ex(ctx_, evp_cipher(cipher), nullptr, key.data(), iv) == 1;
    else
        ok = ok && EVP_DecryptInit_ex(ctx_, evp_cipher(cipher), nullptr, key.data(), iv) == 1;
    // Both ciphers default to a 12-byte IV; an OpenSSL that cannot set up AES-GCM or
    // ChaCha20-Poly1305 cannot run conclave at all.
    if (!ok) std::abort();
}

AeadKey::~AeadKey() { EVP_CIPHER_CTX_free(ctx_); }

AeadKey::AeadKey(AeadKey&& o) noexcept : cipher_(o.cipher_), ctx_(std::exchange(o.ctx_, nullptr)) {}

AeadKey& AeadKey::operator=(AeadKey&& o) noexcept {
    if (this != &o) {
        EVP_CIPHER_CTX_free(ctx_);
        cipher_ = o.cipher_;
        ctx_ = std::exchange(o.ctx_, nullptr);
    }
    return *this;
}

bool AeadKey::seal(std::uint64_t counter, wire::ByteView aad, wire::ByteView plain, std::uint8_t* out,
                   std::uint8_t* tag) {
    unsigned char iv[12];
    make_nonce(counter, iv);
    int n = 0;
    if (EVP_EncryptInit_ex(ctx_, nullptr, nullptr, nullptr, iv) != 1) return false;
    if (EVP_EncryptUpdate(ctx_, nullptr, &n, aad.data(), len(aad.size())) != 1) return false;
    if (!plain.empty() && EVP_EncryptUpdate(ctx_, out, &n, plain.data(), len(plain.size())) != 1) return false;
    if (EVP_EncryptFinal_ex(ctx_, out + plain.size(), &n) != 1) return false;
    return EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, len(kTagSize), tag) == 1;
}

bool AeadKey::open(std::uint64_t counter, wire::ByteView aad, wire::ByteView cipher_text,
                   const std::uint8_t* tag, std::uint8_t* out) {
    unsigned char iv[12];
    make_nonce(counter, iv);
    int n = 0;
    if (EVP_DecryptInit_ex(ctx_, nullptr, nullptr, nullptr, iv) != 1) return false;
    if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, len(kTagSize), const_cast<std::uint8_t*>(tag)) != 1)
        return false;
    if (EVP_DecryptUpdate(ctx_, nullptr, &n, aad.data(), len(aad.size())) != 1) return false;
    if (!cipher_text.empty() &&
        EVP_DecryptUpdate(ctx_, out, &n, cipher_text.data(), len(cipher_text.size())) != 1)
        return false;
    return EVP_DecryptFinal_ex(ctx_, out + cipher_text.size(), &n) == 1;
}

}  // namespace conclave::crypto
