// State messages: what node/ multicasts on the ring (the totem payload), next to the
// process-group envelope (wire/group.h, kind 1). Little-endian, every length checked;
// the decoder is a fuzz target.
//   u8 kind = 2 (state), u8 type (1..6 in this order), body
//     TRANSITION  encoded store::Transition
//     SYNC_STATE  ring, head, meta, u8 all_seen, u64 lms_seq, u32 count, count x u32 lms member
//                 (ascending), u32 override, u64 yellow epoch, u32 yellow count, 32 yellow
//                 hash (both 0 or neither), u32 doubts, doubts x (u64 seq, u32 count,
//                 count x u32 member (ascending)) (each member, after a regular
//                 configuration, once its own applies are durable)
//     SYNC_PLAN   ring, u32 source, head, u32 count, count x (u32 node, u8 action)
//     SYNC_LOG    ring, u32 count, count x (u64 epoch, u64 version, 32 hash, i32 err,
//                 u32 length, transition bytes)
//     SYNC_CHUNK  ring, u64 total, u64 offset, u32 length, bytes   (a snapshot piece)
//     SYNC_DONE   ring, head
//     EXPECTED    ring, u32 expected votes      (an operator's override on this partition)
//     LMS         ring, u32 expected votes      (last_man_standing lowers expected votes)
//   ring = u32 rep + u64 seq; head = u64 epoch, u64 version, 32 hash;
//   meta = 16 cluster id, u64 max_file_size, u64 max_total_size, u32 max_name,
//          u32 count, count x (u32 id, u8 name length, name, u32 votes)  (store::encode_meta)
// The decoder also refuses: an action other than none/log/snapshot, a log record whose
// transition bytes do not decode, a chunk reaching past `total`.
#pragma once

#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include "quorum/votequorum.h"
#include "store/store.h"
#include "store/transition.h"
#include "wire/bytes.h"

namespace conclave::node {

inline constexpr std::uint8_t kStateKind = 2;  // first byte; group messages use 1

struct RingRef {
    std::uint32_t rep = 0;
    std::uint64_t seq = 0;
    bool operator==(const RingRef&) const = default;
};

enum class SyncAction : std::uint8_t { none = 0, log = 1, snapshot = 2 };

struct MsgTransition {
    store::Transition t;
};
struct MsgSyncState {
    RingRef ring;
    store::Head head;
    store::Meta meta;
    // The member's part of votequorum's state the configuration must agree on
    // (quorum::Votequorum::Agreed).
    bool all_seen = false;
    std::vector<std::uint32_t> lms_members;
    std::uint64_t lms_seq = 0;
    std::uint32_t override_expected = 0;
    // Transitions this member delivered in a transitional configuration after a quorate
    // regular one, which a member that left may have applied in that regular
    // configuration ("yellow", as in Amir's replication over EVS): held, not applied.
    // `yellow_count` of them would follow `head` in epoch `yellow_epoch`, ending at
    // H = `yellow_hash`. A quorate configuration's sync applies them before anything new.
    std::uint64_t yellow_epoch = 0;
    std::uint32_t yellow_count = 0;
    store::Hash yellow_hash{};
    // Unsettled last_man_standing lowerings (quorum::Votequorum::Agreed::lms_doubts).
    std::vector<quorum::Votequorum::LmsSet> lms_doubts{};
};
struct MsgSyncPlan {
    RingRef ring;
    std::uint32_t source = 0;
    store::Head head;  // the source's head: where everyone ends
    std::vector<std::pair<std::uint32_t, SyncAction>> actions;
};
struct MsgSyncLog {
    RingRef ring;
    std::vector<store::LogRecord> records;
};
struct MsgSyncChunk {
    RingRef ring;
    std::uint64_t total = 0;
    std::uint64_t offset = 0;
    wire::Bytes data;
};
struct MsgSyncDone {
    RingRef ring;
    store::Head head;
    // The source's cluster metadata at `head`. Its MsgSyncState's is from before the held
    // (yellow) transitions it applied in this sync, which may change ring settings or limits.
    store::Meta meta{};
};

// `conclavectl expected N` on a member: every member of the configuration lowers
// expected votes at the same point of the total order (never written to the state).
struct MsgExpected {
    RingRef ring;
    std::uint32_t expected = 0;
};
// last_man_standing: the window passed; the lowest member tells everyone to lower
// expected votes to what is present.
struct MsgLms {
    RingRef ring;
    std::uint32_t expected = 0;
};

using Message = std::variant<MsgTransition, MsgSyncState, MsgSyncPlan, MsgSyncLog, MsgSyncChunk, MsgSyncDone,
                             MsgExpected, MsgLms>;

void encode(const Message& m, wire::Bytes& out);
// nullopt for anything malformed (unknown kind/type, bad lengths, trailing bytes).
std::optional<Message> decode(wire::ByteView bytes);
// True when the payload's first byte says it is a state message.
inline bool is_state_message(wire::ByteView bytes) { return !bytes.empty() && bytes[0] == kStateKind; }

}  // namespace conclave::node
