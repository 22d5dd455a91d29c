// The ring protocol's packet bodies: token, multicast frame, hold-cancel.
//
// These bytes are what the crypto layer seals (DESIGN.md §4): this codec never sees the
// clear datagram header or the tag. Format: a common header, then a type-specific body;
// explicit little-endian, fixed width; every count checked against the remaining length
// and against a hard maximum before anything is allocated; no trailing bytes; unknown
// flag bits rejected. Decoding therefore is canonical: decode(x) succeeding implies
// encode(decode(x)) == x (the fuzz target checks this).
//
// Every packet carries the ring id {rep, seq64} already (the membership protocol of the
// next issue needs it to tell foreign rings apart; Totem TOCS'95 §4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

#include "wire/bytes.h"

namespace conclave::wire::totem {

// ---- Size budget (one place) ---------------------------------------------------------
// A datagram on the wire = IP/UDP header + sealed header + body + AEAD tag. The sealed
// clear header is 48 bytes and the tag 16 (crypto layer, DESIGN.md §4); IP+UDP is 28
// bytes on IPv4 and 48 on IPv6: we always budget for IPv6.
inline constexpr std::size_t kIpUdpOverhead = 48;
inline constexpr std::size_t kSealOverhead = 48 + 16;
inline constexpr std::size_t kDatagramOverhead = kIpUdpOverhead + kSealOverhead;  // 112
// The most bytes one encoded totem packet may have at a given path MTU.
constexpr std::size_t frame_budget(std::size_t mtu) {
    return mtu > kDatagramOverhead ? mtu - kDatagramOverhead : 0;
}

inline constexpr std::uint16_t kMagic = 0xC0C1;  // "COnClave ring"
inline constexpr std::uint8_t kVersion = 1;
// Application messages are at most 1 MiB (DESIGN.md §8 default file size limit).
inline constexpr std::uint32_t kMaxMessageSize = 1u << 20;
// Retransmit requests a token may carry; bounds the token's size (see kMaxTokenSize).
inline constexpr std::uint32_t kMaxRtrEntries = 64;
// Chunks a frame may carry (a frame of 0-byte messages is the worst case).
inline constexpr std::uint32_t kMaxChunks = 1024;

enum class PacketType : std::uint8_t { token = 1, mcast = 2, hold_cancel = 3 };

struct RingId {
    std::uint32_t rep = 0;  // representative: lowest node id of the ring
    std::uint64_t seq = 0;  // ring sequence (bumped by every new ring; next issue)
    friend bool operator==(const RingId&, const RingId&) = default;
};

struct Header {
    RingId ring_id;
    std::uint32_t sender = 0;  // node id that sent this packet (not the originator of a retransmit)
    friend bool operator==(const Header&, const Header&) = default;
};
inline constexpr std::size_t kHeaderSize = 2 + 1 + 1 + 4 + 8 + 4;  // 20

// The ordering token (Totem TOCS'95 §3, Corosync's orf_token; see src/totem/glossary.h).
struct Token {
    Header header;
    std::uint32_t token_seq = 0;   // copy counter: +1 per forward; duplicates dropped
    std::uint32_t seq = 0;         // highest frame seq assigned on this ring
    std::uint32_t aru = 0;         // all-received-up-to low-water mark
    std::uint32_t aru_id = 0;      // node that last set aru; 0 = none (aru == seq)
    std::uint32_t backlog = 0;     // sum of members' queued frames (flow control)
    std::uint32_t fcc = 0;         // frames sent during the last rotation (flow control)
    std::uint32_t idle_rotations = 0;  // rotations with nothing new (token hold)
    std::uint64_t watermark_ring = 0;     // min of members' values over the last full rotation
    std::uint64_t watermark_partial = 0;  // running min of the rotation in progress
    std::uint8_t flags = 0;        // reserved for recovery (retrans_flg); must be 0 today
    std::vector<std::uint32_t> rtr;  // retransmit requests (frame seqs), <= kMaxRtrEntries
    friend bool operator==(const Token&, const Token&) = default;
};
inline constexpr std::size_t kTokenFixedSize = kHeaderSize + 7 * 4 + 2 * 8 + 1 + 2;
inline constexpr std::size_t kMaxTokenSize = kTokenFixedSize + 4 * kMaxRtrEntries;

// Chunk flags: a chunk is one application message or a fragment of one.
inline constexpr std::uint8_t kChunkFirst = 1;  // first fragment (or the whole message)
inline constexpr std::uint8_t kChunkLast = 2;   // last fragment (or the whole message)
inline constexpr std::uint8_t kChunkSafe = 4;   // deliver with the safe guarantee
inline constexpr std::uint8_t kChunkFlagsMask = 7;

struct Chunk {
    std::uint8_t flags = 0;
    std::uint32_t total_size = 0;  // size of the whole message (<= kMaxMessageSize)
    Bytes data;                    // this fragment's bytes
    friend bool operator==(const Chunk&, const Chunk&) = default;
};
inline constexpr std::size_t kChunkHeaderSize = 1 + 4 + 4;

// Frame flags.
inline constexpr std::uint8_t kFrameSafe = 1;  // some chunk asks for safe delivery
inline constexpr std::uint8_t kFrameFlagsMask = 1;

// One sequenced multicast frame. The chunk at index j belongs to the originator's
// message number first_msg_id + j (only the first chunk can continue an earlier
// message and only the last can be unfinished, so chunks are distinct messages).
struct McastFrame {
    Header header;
    std::uint32_t originator = 0;  // node that assigned seq (differs from sender on retransmit)
    std::uint32_t seq = 0;
    std::uint64_t first_msg_id = 0;
    std::uint8_t flags = 0;
    std::vector<Chunk> chunks;
    friend bool operator==(const McastFrame&, const McastFrame&) = default;
};
inline constexpr std::size_t kMcastFixedSize = kHeaderSize + 4 + 4 + 8 + 1 + 2;

// Sent by a node with something to send while the ring may be idle: the representative
// holding the token forwards it at once (Corosync TOKEN_HOLD_CANCEL).
struct HoldCancel {
    Header header;
    friend bool operator==(const HoldCancel&, const HoldCancel&) = default;
};

using Packet = std::variant<Token, McastFrame, HoldCancel>;

// Encoders append to `out`.
void encode(const Token& t, Bytes& out);
void encode(const McastFrame& f, Bytes& out);
void encode(const HoldCancel& h, Bytes& out);
void encode(const Packet& p, Bytes& out);
std::size_t encoded_size(const Token& t);
std::size_t encoded_size(const McastFrame& f);

struct DecodeResult {
    Packet packet;
    const char* error = nullptr;  // nullptr on success, else a static reason
    bool ok() const { return error == nullptr; }
};
// Never throws; a malformed input gives error != nullptr.
DecodeResult decode(ByteView data);

}  // namespace conclave::wire::totem
