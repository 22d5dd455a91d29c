// The ring protocol's packet bodies: token, multicast frame, hold-cancel, and the
// membership packets (join, commit token, merge-detect, leave; Totem TOCS'95 §4).
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
// Ring messages are at most 4 MiB: a whole-file transition of the largest allowed file
// (1 MiB by default, DESIGN.md §8) plus its header, or a sync message carrying one.
inline constexpr std::uint32_t kMaxMessageSize = 4u << 20;
// Retransmit requests a token may carry; bounds the token's size (see kMaxTokenSize).
inline constexpr std::uint32_t kMaxRtrEntries = 64;
// Chunks a frame may carry (a frame of 0-byte messages is the worst case).
inline constexpr std::uint32_t kMaxChunks = 1024;

// Members a ring may have; bounds join and commit token sizes (kMaxCommitTokenSize).
inline constexpr std::uint32_t kMaxMembers = 64;

enum class PacketType : std::uint8_t {
    token = 1,
    mcast = 2,
    hold_cancel = 3,
    join = 4,
    commit_token = 5,
    merge_detect = 6,
    leave = 7,
    watermark = 8,
    safe = 9,
    receipt = 10,
};

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
    std::uint8_t flags = 0;        // kToken* bits (recovery progress, see below)
    std::vector<std::uint32_t> rtr;  // retransmit requests (frame seqs), <= kMaxRtrEntries
    friend bool operator==(const Token&, const Token&) = default;
};
inline constexpr std::size_t kTokenFixedSize = kHeaderSize + 7 * 4 + 2 * 8 + 1 + 2;
// Token flags, used during RECOVERY (Corosync's retrans_flg, made rotation-exact): a
// member that still has old-ring messages to re-send after its visit sets PARTIAL; the
// rep closes each rotation by moving PARTIAL to PENDING. PENDING clear means nobody had
// anything left to re-send during the last full rotation.
inline constexpr std::uint8_t kTokenRecoveryPending = 1;
inline constexpr std::uint8_t kTokenRecoveryPartial = 2;
inline constexpr std::uint8_t kTokenFlagsMask = 3;
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
// RECOVERY (Totem §4.5; Corosync MESSAGE_ENCAPSULATED): the frame's single chunk is a
// whole encoded McastFrame of the sender's old ring, re-sent in the new ring's order so
// every member of that old ring ends with the same set. Never nested, never safe.
inline constexpr std::uint8_t kFrameEncapsulated = 2;
inline constexpr std::uint8_t kFrameFlagsMask = 3;

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
// What encapsulation adds around an old frame. Ordinary frames are cut this much below
// the frame budget so their encapsulated copy still fits it (Corosync reserves 90 bytes
// for the same reason, and then forgets to: see reference/corosync.md §1.8).
inline constexpr std::size_t kEncapsulationOverhead = kMcastFixedSize + kChunkHeaderSize;  // 48

// Sent by a node with something to send while the ring may be idle: the representative
// holding the token forwards it at once (Corosync TOKEN_HOLD_CANCEL).
struct HoldCancel {
    Header header;
    friend bool operator==(const HoldCancel&, const HoldCancel&) = default;
};

// GATHER (Totem §4.3): the sender's view of who may form the next ring. proc and fail
// are sorted, unique, at most kMaxMembers each. ring_seq is the highest ring seq the
// sender knows (the next ring takes the highest of all + 4, so ring ids never repeat).
struct Join {
    Header header;  // ring_id: the sender's installed ring ({0,0} before the first)
    std::uint64_t ring_seq = 0;
    std::vector<std::uint32_t> proc;
    std::vector<std::uint32_t> fail;
    friend bool operator==(const Join&, const Join&) = default;
};
inline constexpr std::size_t kJoinFixedSize = kHeaderSize + 8 + 2 + 2;

// One member's old-ring state, filled in by that member on the commit token's first
// pass (Totem §4.4).
struct CommitEntry {
    RingId old_ring_id;             // the member's last installed ring ({0,0}: none)
    std::uint32_t old_aru = 0;      // its aru on that ring
    std::uint32_t old_high = 0;     // highest seq it knew of on that ring
    std::uint32_t high_delivered = 0;
    std::uint32_t old_safe = 0;     // its safe point (every old member held <= this)
    friend bool operator==(const CommitEntry&, const CommitEntry&) = default;
};
inline constexpr std::size_t kCommitEntrySize = 4 + 8 + 4 * 4;  // 28

// COMMIT (Totem §4.4): created by the lowest member once consensus holds, unicast
// around the new ring twice. header.ring_id is the NEW ring id. members ascending (ring
// order); entries[i] belongs to members[i]; the first `filled` entries are valid.
struct CommitToken {
    Header header;
    std::uint32_t token_seq = 0;  // +1 per forward (duplicates are harmless but counted)
    std::uint16_t filled = 0;
    std::vector<std::uint32_t> members;
    std::vector<CommitEntry> entries;  // same length as members
    friend bool operator==(const CommitToken&, const CommitToken&) = default;
};
inline constexpr std::size_t kCommitFixedSize = kHeaderSize + 4 + 2 + 2;
constexpr std::size_t commit_token_size(std::size_t members) {
    return kCommitFixedSize + members * (4 + kCommitEntrySize);
}
// The one packet allowed above the frame budget: a commit token takes 32 bytes per member,
// so at MTU 1500 a budget holds 42 members. A larger ring's commit token (2076 bytes at
// 64) goes as one datagram above the path MTU, which IP fragments and reassembles; it is
// sent twice round the ring per membership change, so that costs nothing that matters.
inline constexpr std::size_t kMaxCommitTokenSize = commit_token_size(kMaxMembers);

// Multicast by the rep of an operational ring every merge-detect interval, so rings
// that can hear each other again (a healed partition) notice and merge (Totem §4.1).
struct MergeDetect {
    Header header;
    friend bool operator==(const MergeDetect&, const MergeDetect&) = default;
};

// A clean shutdown: the others exclude the sender at once instead of waiting for the
// token to be lost.
struct Leave {
    Header header;
    friend bool operator==(const Leave&, const Leave&) = default;
};

// A member's application watermark (DESIGN.md §6.3), sent straight to the nodes waiting
// for it (the origins of what it covers) as soon as it rises, so that they need not wait
// for the token to carry it round the ring. Unsequenced and unreliable: the token still
// carries every member's value, and a lost notice only costs that wait. Never starts a
// membership change: a notice of another ring is stale and ignored.
struct WatermarkNotice {
    Header header;
    std::uint64_t value = 0;
    friend bool operator==(const WatermarkNotice&, const WatermarkNotice&) = default;
};
inline constexpr std::size_t kWatermarkNoticeSize = kHeaderSize + 8;

// An originator learnt at its token visit that every member holds every frame up to
// `seq` (its safe point rose over frames it sent with the safe guarantee): the others
// may deliver them now instead of at their own next visit (Totem's safe delivery, its
// knowledge shared one hop sooner). Unsequenced and unreliable: the token still brings
// each member the same knowledge at its next visit.
struct SafeNotice {
    Header header;
    std::uint32_t seq = 0;
    friend bool operator==(const SafeNotice&, const SafeNotice&) = default;
};
inline constexpr std::size_t kSafeNoticeSize = kHeaderSize + 4;

// A member's receipt on a lightly loaded ring: the sender holds every frame of this ring
// up to `aru`. A member that has every other member's receipt at or above s knows that
// every member holds s: the safe point, one hop after the frames reached everyone
// instead of when the token has gone round (DESIGN.md §5). Unsequenced and unreliable:
// the token still brings the same knowledge.
struct ReceiptNotice {
    Header header;
    std::uint32_t aru = 0;
    friend bool operator==(const ReceiptNotice&, const ReceiptNotice&) = default;
};
inline constexpr std::size_t kReceiptNoticeSize = kHeaderSize + 4;

using Packet = std::variant<Token, McastFrame, HoldCancel, Join, CommitToken, MergeDetect, Leave, WatermarkNotice,
                            SafeNotice, ReceiptNotice>;

// Encoders append to `out`.
void encode(const Token& t, Bytes& out);
void encode(const McastFrame& f, Bytes& out);
void encode(const HoldCancel& h, Bytes& out);
void encode(const Join& j, Bytes& out);
void encode(const CommitToken& c, Bytes& out);
void encode(const MergeDetect& m, Bytes& out);
void encode(const Leave& l, Bytes& out);
void encode(const WatermarkNotice& n, Bytes& out);
void encode(const SafeNotice& n, Bytes& out);
void encode(const ReceiptNotice& n, Bytes& out);
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

// The sender of any packet (the header is common to all).
const Header& header_of(const Packet& p);

}  // namespace conclave::wire::totem
