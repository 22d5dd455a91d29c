// The clear header of every conclave datagram (DESIGN.md §4).
//
//   offset size field
//        0    4 magic "CNCL"
//        4    1 wire version (1)
//        5    1 cipher (1 = AES-256-GCM, 2 = ChaCha20-Poly1305)
//        6    2 reserved, zero
//        8    8 cluster id (first 8 bytes of SHA-256 of the cluster name, little-endian)
//       16    4 sender node id (non-zero)
//       20    4 key id (names which authkey sealed it: current or next, for rotation)
//       24   16 sender boot id: 8-byte boot epoch (grows with every start) + 8 random bytes
//       40    8 packet counter (the AEAD nonce; never repeats within one boot)
//       48    4 receiver node id: the one node a unicast is for, 0 for every member
//       52    - ciphertext of the body, then a 16-byte AEAD tag
//
// The whole header is the AEAD's associated data, so no field can be altered without
// the tag failing; nothing behind it is parsed before the tag verified (DESIGN §2.4).
// The receiver field binds a unicast to its node: the replay window is per sender, and
// a node never sees the counters of the unicasts its peers exchange, so without it a
// token from node 2 to node 3, captured and sent to node 1, would open there as new.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "wire/bytes.h"

namespace conclave::wire {

inline constexpr std::uint32_t kMagic = 0x4C434E43;  // "CNCL" read little-endian
inline constexpr std::uint8_t kWireVersion = 2;  // 1: without the receiver field
inline constexpr std::size_t kHeaderSize = 52;
inline constexpr std::size_t kTagSize = 16;
// Bytes a datagram adds around its body.
inline constexpr std::size_t kDatagramOverhead = kHeaderSize + kTagSize;

struct BootId {
    std::uint64_t epoch = 0;  // orders boots of one node: a newer boot has a larger epoch
    std::uint64_t nonce = 0;  // random, so two boots never share a session key
    friend bool operator==(const BootId&, const BootId&) = default;
};

struct DatagramHeader {
    std::uint8_t version = kWireVersion;
    std::uint8_t cipher = 0;
    std::uint64_t cluster_id = 0;
    std::uint32_t sender = 0;
    std::uint32_t key_id = 0;
    BootId boot;
    std::uint64_t counter = 0;
    std::uint32_t receiver = 0;  // 0: every member
};

enum class HeaderError { none, malformed, unknown_version };

// Writes exactly kHeaderSize bytes at out.
void encode_header(const DatagramHeader& h, std::uint8_t* out);

// Decodes the clear header of a datagram of any length. A datagram shorter than
// header + tag, with a wrong magic, non-zero reserved bits or sender 0 is malformed;
// a good magic with another version is unknown_version.
HeaderError decode_header(ByteView datagram, DatagramHeader& out);

// The 64-bit cluster id: first 8 bytes of SHA-256(cluster name), little-endian.
std::uint64_t cluster_id_of(std::string_view cluster_name);

}  // namespace conclave::wire
