// One AEAD key in an OpenSSL 3 EVP context, set up once and reused per packet.
//
// The key schedule is done once per session key (EVP_*Init with the key); each packet
// only sets its 96-bit nonce = 4 zero bytes + the 64-bit packet counter (little-endian),
// which never repeats under one session key (DESIGN.md §4).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "wire/bytes.h"

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace conclave::crypto {

enum class Cipher : std::uint8_t { aes_256_gcm = 1, chacha20_poly1305 = 2 };

inline constexpr std::size_t kKeySize = 32;
inline constexpr std::size_t kTagSize = 16;
using SessionKey = std::array<std::uint8_t, kKeySize>;

std::string_view cipher_name(Cipher c);
std::optional<Cipher> cipher_from_name(std::string_view name);
std::optional<Cipher> cipher_from_wire(std::uint8_t v);

enum class Direction { seal, open };

class AeadKey {
public:
    AeadKey(Cipher cipher, const SessionKey& key, Direction dir);
    ~AeadKey();
    AeadKey(const AeadKey&) = delete;
    AeadKey& operator=(const AeadKey&) = delete;
    AeadKey(AeadKey&& o) noexcept;
    AeadKey& operator=(AeadKey&& o) noexcept;

    Cipher cipher() const { return cipher_; }

    // Encrypts `plain` into `out` (same size; may alias) and writes the tag.
    // REQUIRES: constructed with Direction::seal. Returns false only on an OpenSSL failure.
    bool seal(std::uint64_t counter, wire::ByteView aad, wire::ByteView plain, std::uint8_t* out,
              std::uint8_t* tag);
    // Decrypts and verifies; false when the tag does not verify (out is then garbage).
    // REQUIRES: constructed with Direction::open.
    bool open(std::uint64_t counter, wire::ByteView aad, wire::ByteView cipher_text,
              const std::uint8_t* tag, std::uint8_t* out);

private:
    Cipher cipher_;
    EVP_CIPHER_CTX* ctx_ = nullptr;
};

}  // namespace conclave::crypto
