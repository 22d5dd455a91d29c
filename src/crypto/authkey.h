// The cluster's shared authkey: 256 random bytes in a file readable by its owner only.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "base/result.h"

namespace conclave::crypto {

inline constexpr std::size_t kAuthKeySize = 256;
inline constexpr const char* kDefaultAuthKeyPath = "/etc/conclave/authkey";

struct AuthKey {
    std::array<std::uint8_t, kAuthKeySize> bytes{};
    // Names the key on the wire so a receiver picks current or next without trying both:
    // the first 4 bytes of SHA-256("conclave key id" || key). Not secret-revealing.
    std::uint32_t id = 0;
};

// Computes id from bytes.
void compute_key_id(AuthKey& key);

// Reads a key file. Refuses, saying which and how to fix it: a missing/unreadable file,
// anything but a regular file (a FIFO included, without waiting on it), a size other than
// 256 bytes, and a file that group or others may access (mode & 077).
Result<AuthKey> load_auth_key(const std::string& path);

// Writes 256 fresh random bytes (OpenSSL's DRBG, seeded by the kernel) with mode 0400.
// Without force, an existing file is never touched (error). With force the new key
// replaces the old atomically (written beside it, fsync'd, renamed), but only a regular
// file: a device node, FIFO, directory or symbolic link at `path` is an error either way.
// Creates missing parent directories, every level, with mode 0700.
Status write_auth_key(const std::string& path, bool force);

}  // namespace conclave::crypto
