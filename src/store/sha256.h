// SHA-256 (OpenSSL EVP) for the history hash chain, content hashes and snapshot trailers.
#pragma once

#include <openssl/evp.h>

#include <cstdlib>

#include "store/transition.h"
#include "wire/bytes.h"

namespace conclave::store {

// The SHA-256 implementation, fetched from the default provider once. EVP_sha256()
// would make every EVP_DigestInit_ex fetch it again (OpenSSL 3), which costs more than
// hashing a small transition: the apply worker hashes one per version.
inline const EVP_MD* sha256_md() {
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return md;
}

// Incremental SHA-256. OpenSSL failures here mean a broken library (no input can cause
// them), so they abort rather than produce a hash that silently differs between replicas.
class Sha256 {
public:
    Sha256() : ctx_(EVP_MD_CTX_new()) {
        const EVP_MD* md = sha256_md();
        if (!ctx_ || !md || EVP_DigestInit_ex(ctx_, md, nullptr) != 1) std::abort();
    }
    ~Sha256() { EVP_MD_CTX_free(ctx_); }
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(wire::ByteView b) {
        if (!b.empty() && EVP_DigestUpdate(ctx_, b.data(), b.size()) != 1) std::abort();
    }
    void u64(std::uint64_t v) {
        std::uint8_t b[8];
        wire::store_u64(b, v);
        update(wire::ByteView(b, 8));
    }
    Hash finish() {
        Hash h{};
        unsigned int len = 0;
        if (EVP_DigestFinal_ex(ctx_, h.data(), &len) != 1 || len != h.size()) std::abort();
        return h;
    }

private:
    EVP_MD_CTX* ctx_;
};

inline Hash sha256(wire::ByteView b) {
    Sha256 s;
    s.update(b);
    return s.finish();
}

}  // namespace conclave::store
