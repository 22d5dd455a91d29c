// Sealing and opening of datagrams for one node (DESIGN.md §4).
//
// Session keys: every (sender, boot) pair has its own key
//     HKDF-SHA256(ikm = authkey, salt = boot id (16 bytes), info = cluster id (8 bytes LE))
// so the 64-bit packet counter can be the nonce: it never repeats under one key, and a
// restart gets a fresh key (a new boot id), never a reused nonce.
//
// Opening checks, cheapest first, and counts every rejection by reason:
//   malformed        too short, bad magic, reserved bits, sender 0, counter 0, unknown cipher
//   misdirected      a unicast for another node, or a datagram bearing this node's own id
//                    (a capture sent on, or another node configured with the same nodeid)
//   unknown_version  good magic, another wire version
//   other_cluster    cluster id is not ours (another cluster on the same group/port)
//   unknown_key      sealed with neither our current nor our next key
//   too_old          from an older boot of a sender whose newer boot we have seen, or a
//                    counter that fell behind the 2048-wide replay window
//   replay           a counter inside the window that was already accepted
//   bad_tag          the AEAD tag did not verify (wrong key material, tampering, corruption)
// Only a verified packet creates or advances per-sender state, so forged packets can
// neither move a replay window nor retire a boot.
//
// Not thread-safe: owned by the protocol thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "crypto/aead.h"
#include "crypto/authkey.h"
#include "crypto/replay_window.h"
#include "wire/datagram.h"

namespace conclave::crypto {

enum class Reject : std::uint8_t {
    bad_tag,
    replay,
    too_old,
    other_cluster,
    malformed,
    unknown_version,
    unknown_key,
    misdirected,
};
inline constexpr std::size_t kRejectReasons = 8;
std::string_view reject_name(Reject r);

struct RejectCounts {
    std::array<std::uint64_t, kRejectReasons> by_reason{};
    std::uint64_t operator[](Reject r) const { return by_reason[static_cast<std::size_t>(r)]; }
    std::uint64_t total() const;
};

struct ChannelConfig {
    std::uint64_t cluster_id = 0;
    std::uint32_t node_id = 0;  // this node, non-zero
    wire::BootId boot;          // this process start; epoch must grow across restarts
    Cipher cipher = Cipher::aes_256_gcm;
    AuthKey current;              // seals; opens
    std::optional<AuthKey> next;  // opens only (rolling key change)
};

SessionKey derive_session_key(const AuthKey& key, const wire::BootId& boot, std::uint64_t cluster_id);

class Channel {
public:
    // Senders whose state is kept at once; the least recently heard is dropped beyond it.
    static constexpr std::size_t kMaxPeers = 1024;

    explicit Channel(ChannelConfig config);

    // Seals `body` into `out` (replaced): header, ciphertext, tag, for `receiver` alone
    // (a unicast) or, with 0, for every member. False only when the packet counter is
    // exhausted (2^64 packets) or OpenSSL fails.
    bool seal(wire::ByteView body, wire::Bytes& out, std::uint32_t receiver = 0);

    struct Opened {
        std::uint32_t sender = 0;
        wire::BootId boot;
        std::uint64_t counter = 0;
        // The highest counter of this sender's boot so far: not a late copy. Only such a
        // datagram may tell where the sender is now (Transport's address learning).
        bool newest = false;
        wire::ByteView body;  // points into the scratch buffer passed to open()
    };
    // Verifies and decrypts. On success the body lives in `scratch`.
    std::variant<Opened, Reject> open(wire::ByteView datagram, wire::Bytes& scratch);

    // Rotation: replaces the key set. Sealing moves to `current` at once; packets under
    // either key are accepted.
    void set_keys(AuthKey current, std::optional<AuthKey> next);

    const RejectCounts& rejects() const { return rejects_; }
    std::uint64_t sealed() const { return counter_; }
    std::uint64_t opened() const { return opened_; }
    std::uint32_t node_id() const { return config_.node_id; }

private:
    struct SlotKey {
        std::uint32_t key_id;
        Cipher cipher;
        AeadKey aead;
    };
    struct Peer {
        wire::BootId boot;
        ReplayWindow window;
        std::vector<SlotKey> keys;  // at most (2 keys x 2 ciphers)
        std::uint64_t last_heard = 0;
    };

    const AuthKey* key_by_id(std::uint32_t id) const;
    Reject reject(Reject r) {
        ++rejects_.by_reason[static_cast<std::size_t>(r)];
        return r;
    }
    void make_room();

    ChannelConfig config_;
    AeadKey seal_key_;
    std::uint64_t counter_ = 0;  // last counter sealed; the first packet carries 1
    std::uint64_t opened_ = 0;
    std::uint64_t tick_ = 0;
    std::unordered_map<std::uint32_t, Peer> peers_;
    RejectCounts rejects_;
};

}  // namespace conclave::crypto
