// Delivery and ordering: the frames a node holds, its aru, and the delivery rules.
//
// The window covers seqs [base, high]: base is the oldest frame still retained (the
// retransmit store), high the highest seq known to exist (from a frame or token.seq).
// my_aru is the highest seq with every frame <= it held; delivered <= my_aru.
//
// Delivery is in seq order only (Totem §3.3, EVS): the frame after `delivered` goes out
// when present and, if it asks for the safe guarantee, when the safe point covers it. A
// safe frame thus holds back the agreed frames behind it, exactly as in EVS.
//
// The safe point is min(token.aru as I forwarded it on my previous visit, token.aru on
// this visit): after a full rotation in which aru stayed >= s, every member held s
// (Totem §3.3; the token's aru rule only lets the node that lowered aru raise it again,
// so a member without s would have kept it below s until the token came back to me).
// Counting the aru I forwarded, not the one I received, matters to an originator: it
// raises aru over its own new frames, so they are safe for it one rotation after it
// sent them instead of two. The same point frees the retransmit store (DESIGN.md §5:
// freed only after aru covered it on two visits).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "totem/effects.h"
#include "totem/packing.h"
#include "totem/seq.h"
#include "wire/totem.h"

namespace conclave::totem {

class ReceiveWindow {
public:
    ReceiveWindow(Seq initial_seq, std::uint32_t max_window);

    enum class Store : std::uint8_t { stored, duplicate, too_old, too_far };
    Store store(wire::totem::McastFrame frame);
    // RECOVERY: an old-ring frame re-sent by another member. Not bounded by max_window
    // (the old ring's flow control already bounded what exists).
    Store store_recovered(wire::totem::McastFrame frame);

    // token.seq says frames up to `seq` exist; extends the window (within max_window).
    void note_high(Seq seq);
    const wire::totem::McastFrame* find(Seq seq) const;

    // Called with the token's aru on each accepted token visit, and with its aru as this
    // node forwards it (after the visit changed it).
    void on_token_aru(Seq token_aru);
    void on_forwarded_aru(Seq token_aru) { prev_token_aru_ = token_aru; }

    // For each missing seq in (my_aru, high] bumps its miss count; appends (ascending)
    // those missed on at least `threshold` visits, up to out.size() == max.
    void collect_missing(std::uint32_t threshold, std::size_t max, std::vector<Seq>& out);

    // Delivers every frame that may go now, in seq order, through the reassembler.
    // Returns the number of frames the reassembler found inconsistent.
    // Encapsulated (recovery) frames are never given to the reassembler; while
    // `recovering`, delivery passes over them only and stops at the first ordinary frame
    // (new-ring messages wait for the regular configuration, EVS).
    std::uint32_t deliver(Reassembler& reassembler, bool ignore_safe, std::vector<Delivery>& out,
                          bool recovering = false);

    // Whether a retained frame with seq > `low` (every retained frame if nullopt) asks
    // for safe delivery; the same for frames in (low, high] originated by `originator`.
    bool has_safe_frame_above(std::optional<Seq> low) const;
    bool has_own_safe_frame(std::optional<Seq> low, Seq high, std::uint32_t originator) const;
    // Whether a retained frame in (low, high] asks for safe delivery, whoever sent it.
    bool has_safe_frame_in(std::optional<Seq> low, Seq high) const;
    // Another member's safe point (a SafeNotice): every member held every frame up to
    // it. Never beyond my own aru (I am a member: I held them too).
    void raise_safe_point(Seq s);

    // Frames held with seq > `low`, ascending (RECOVERY re-sends them).
    std::vector<wire::totem::McastFrame> frames_above(Seq low) const;

    // Frees the retransmit store up to min(safe point, delivered).
    void free_stable();

    Seq base() const { return base_; }
    Seq my_aru() const { return aru_; }
    Seq delivered() const { return delivered_; }
    Seq high() const { return high_; }
    std::optional<Seq> safe_point() const { return safe_point_; }
    // The part of the safe point the token's aru gave this node by itself (without the
    // notices and receipts of others): what every member learns within one rotation.
    std::optional<Seq> token_safe_point() const { return token_safe_point_; }
    std::size_t retained() const { return slots_.size(); }
    // Distance from the oldest retained frame to `seq` (for flow control's headroom).
    std::uint32_t span_to(Seq seq) const;

private:
    struct Slot {
        std::optional<wire::totem::McastFrame> frame;
        std::uint32_t miss_count = 0;
    };
    Store store_impl(wire::totem::McastFrame frame, bool bounded);
    // A retained safe frame in (low, high], from `originator` if given.
    bool any_safe_frame(std::optional<Seq> low, Seq high, std::optional<std::uint32_t> originator) const;
    void extend(Seq seq, bool bounded);
    Slot& slot(Seq s) { return slots_[static_cast<std::size_t>(seq_diff(base_, s))]; }
    const Slot& slot(Seq s) const { return slots_[static_cast<std::size_t>(seq_diff(base_, s))]; }
    void check_invariants() const;

    std::uint32_t max_window_;
    std::deque<Slot> slots_;  // slots_[i] holds seq base_ + i
    Seq base_;
    Seq aru_;
    Seq delivered_;
    Seq high_;
    std::optional<Seq> prev_token_aru_;
    std::optional<Seq> safe_point_;
    std::optional<Seq> token_safe_point_;
};

}  // namespace conclave::totem
