// One member of a Totem ring with a fixed membership: token handling, retransmission,
// token hold, and the application watermark. The pure core of DESIGN.md §2.2 and §5.
//
// Events in: start, on_packet (encoded bytes from the driver), on_timer, submit,
// set_local_watermark — each with `now` where time matters. Effects out: collected in an
// Effects value the driver takes with take_effects() after every event (etcd-raft
// Ready). No sockets, threads, clocks, randomness or globals; the same event sequence
// always yields the same effects, byte for byte.
//
// State is split by concept (STYLE.md): ReceiveWindow (delivery, ordering, retransmit
// store, safe point), SendQueue/Reassembler (packing, fragmentation), FlowControl (window
// arithmetic). This file owns only the token: its acceptance, the visit, forwarding,
// token retransmission and hold. Membership (GATHER/COMMIT/RECOVERY) arrives next issue
// and will enter through the foreign-ring and token-loss paths marked below.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "totem/config.h"
#include "totem/effects.h"
#include "totem/flow_control.h"
#include "totem/glossary.h"
#include "totem/packing.h"
#include "totem/receive_window.h"
#include "wire/totem.h"

namespace conclave::totem {

// Counters of everything dropped or repeated (DESIGN.md §2.6: a counted drop).
struct RingStats {
    std::uint64_t malformed = 0;       // decoder refused the bytes
    std::uint64_t foreign_ring = 0;    // ring id not ours (membership, next issue)
    std::uint64_t not_member = 0;      // sender not in the ring / transport id mismatch
    std::uint64_t duplicate_tokens = 0;
    std::uint64_t duplicate_frames = 0;
    std::uint64_t frames_too_far = 0;  // beyond max_window: will be re-requested
    std::uint64_t frames_sent = 0;     // new frames this node originated
    std::uint64_t retransmits_sent = 0;
    std::uint64_t token_retransmits = 0;
    std::uint64_t tokens_held = 0;
    std::uint64_t hold_cancels_sent = 0;
    std::uint64_t inconsistent_frames = 0;  // reassembly found a broken chunk sequence
};

class Ring {
public:
    // REQUIRES: validate(config).empty().
    explicit Ring(Config config);

    // The rep originates the first token; the others only wait. Call once.
    void start(Micros now);
    // One received packet (the sealed body, already opened); `from` is the node id the
    // crypto layer authenticated.
    void on_packet(NodeId from, wire::ByteView bytes, Micros now);
    // A timer armed through Effects::timers fired. Stale fires are ignored.
    void on_timer(TimerId timer, Micros now);
    // Queue an application message. TryAgain when the bounded queue is full.
    SubmitResult submit(wire::Bytes message, Guarantee guarantee, Micros now);
    // This node's application value for the ring watermark (DESIGN.md §6.3).
    void set_local_watermark(std::uint64_t value) { local_watermark_ = value; }

    Effects take_effects();

    // Introspection (tests, the simulator's trace, conclavectl later).
    NodeId self() const { return config_.self; }
    NodeId successor() const { return successor_; }
    NodeId rep() const { return config_.members.front(); }
    bool holding_token() const { return held_.has_value(); }
    std::uint64_t ring_watermark() const { return ring_watermark_; }
    const ReceiveWindow& window() const { return window_; }
    const SendQueue& send_queue() const { return queue_; }
    const RingStats& stats() const { return stats_; }
    const Config& config() const { return config_; }
    std::size_t frame_budget() const { return wire::totem::frame_budget(config_.mtu); }

private:
    void on_token(wire::totem::Token token, Micros now);
    void accept_token(wire::totem::Token token, Micros now);
    void on_mcast(wire::totem::McastFrame frame);
    void visit(wire::totem::Token token, Micros now, bool may_hold);
    void release_held_token(Micros now);
    void forward(wire::totem::Token token, Micros now);
    void send_hold_cancel(Micros now);
    void deliver();
    bool is_member(NodeId n) const;
    bool is_bug_node() const { return config_.self == config_.members.back(); }
    void multicast_frame(const wire::totem::McastFrame& frame);
    void arm(TimerId timer, Micros deadline);
    void cancel(TimerId timer);

    Config config_;
    NodeId successor_ = 0;
    ReceiveWindow window_;
    SendQueue queue_;
    Reassembler reassembler_;
    FlowControl flow_;
    Effects effects_;
    RingStats stats_;

    // Token state.
    std::optional<std::uint32_t> last_token_seq_;  // newest token_seq accepted
    wire::Bytes last_sent_token_;        // encoded copy kept for token retransmission
    std::optional<Seq> last_sent_seq_;   // its seq: a newer frame from the successor acks it
    std::optional<wire::totem::Token> held_;  // the rep's held token on an idle ring
    Seq rep_last_seq_ = 0;               // rep only: token.seq at its previous visit
    std::uint32_t last_seen_idle_ = 0;   // idle_rotations on the last token seen
    bool waiting_for_token_ = false;     // queued data and a hold-cancel outstanding

    // Watermark (DESIGN.md §6.3).
    std::uint64_t local_watermark_ = 0;
    std::uint64_t ring_watermark_ = 0;

    std::array<bool, kTimerCount> timer_armed_{};
    std::array<Micros, kTimerCount> timer_deadline_{};
    std::uint64_t delivered_messages_ = 0;  // for the deliver_twice test hook
};

}  // namespace conclave::totem
