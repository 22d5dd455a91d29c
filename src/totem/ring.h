// One node of the Totem single-ring protocol: ordering (token, retransmission, flow
// control, hold, watermark) and membership (GATHER, COMMIT, RECOVERY) with Extended
// Virtual Synchrony at every configuration change. The pure core of DESIGN.md §2.2, §5.
//
// Events in: start, on_packet (decoded bytes from the driver), on_timer, submit,
// leave, set_local_watermark — each with `now` where time matters. Effects out: collected
// in an Effects value the driver takes with take_effects() after every event (etcd-raft
// Ready). No sockets, threads, clocks, randomness or globals; the same event sequence
// always yields the same effects, byte for byte.
//
// States (Totem TOCS'95 §4):
//   GATHER       exchanging joins until consensus (membership.cc)
//   COMMIT       the commit token's first pass collects every member's old-ring state
//   RECOVERY     old-ring messages re-sent on the new ring so that every member of the
//                same old ring ends with the same set (recovery.cc)
//   OPERATIONAL  ordering on the installed ring (token.cc)
//   LEFT         after leave(): inert
//
// State is split by concept (STYLE.md): RingInstance (one ring's id, members, receive
// window, reassembler, token state), GatherState (membership.h), SendQueue (packing),
// FlowControl. Member functions live in four files: ring.cc (events, timers, submit),
// token.cc, membership.cc, recovery.cc.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "totem/config.h"
#include "totem/durable.h"
#include "totem/effects.h"
#include "totem/flow_control.h"
#include "totem/glossary.h"
#include "totem/membership.h"
#include "totem/packing.h"
#include "totem/receive_window.h"
#include "wire/totem.h"

namespace conclave::totem {

enum class State : std::uint8_t { gather = 0, commit = 1, recovery = 2, operational = 3, left = 4 };
const char* state_name(State s);

// Counters of everything dropped, repeated or changed (DESIGN.md §2.6: a counted drop).
struct RingStats {
    std::uint64_t malformed = 0;       // decoder refused the bytes
    std::uint64_t foreign_ring = 0;    // ring id not ours
    std::uint64_t stale = 0;           // packets of an older ring (ignored)
    std::uint64_t not_member = 0;      // sender not in the ring / transport id mismatch
    std::uint64_t duplicate_tokens = 0;
    std::uint64_t duplicate_frames = 0;
    std::uint64_t frames_too_far = 0;  // beyond max_window: will be re-requested
    std::uint64_t frames_sent = 0;     // new frames this node originated
    std::uint64_t retransmits_sent = 0;
    std::uint64_t token_retransmits = 0;
    std::uint64_t tokens_held = 0;
    std::uint64_t lingers = 0;          // visits that kept the token for more own messages
    std::uint64_t hold_cancels_sent = 0;
    std::uint64_t watermark_notices_sent = 0;
    std::uint64_t watermark_notices_received = 0;
    std::uint64_t safe_notices_sent = 0;
    std::uint64_t safe_notices_received = 0;
    std::uint64_t receipts_sent = 0;
    std::uint64_t receipts_received = 0;
    std::uint64_t inconsistent_frames = 0;  // reassembly found a broken chunk sequence
    // Membership.
    std::uint64_t gathers = 0;          // entries into GATHER
    std::uint64_t joins_sent = 0;
    std::uint64_t commit_tokens = 0;    // commit tokens created (as the lowest node)
    std::uint64_t rings_installed = 0;  // regular configurations delivered
    std::uint64_t recovery_frames_sent = 0;
    std::uint64_t merge_detects_sent = 0;
    std::uint64_t fail_to_receive = 0;  // nodes this node excluded for failing to receive
    std::uint64_t token_losses = 0;
};

// One ring: its id, members and everything tied to its seq space.
struct RingInstance {
    RingInstance(wire::totem::RingId id, NodeSet members, NodeId self, const Config& c);
    wire::totem::RingId id;
    NodeSet members;
    NodeId successor = 0;
    ReceiveWindow window;
    Reassembler reassembler;
    FlowControl flow;
    std::optional<std::uint32_t> last_token_seq;  // newest token_seq accepted
    wire::Bytes last_sent_token;        // encoded copy kept for token retransmission
    std::optional<Seq> last_sent_seq;   // its seq: a newer frame from the successor acks it
    std::optional<wire::totem::Token> held;  // the rep's held token on an idle ring, or a linger's
    // Linger (Config::linger_us): until when this visit may keep the token for more of
    // this node's messages; whether `held` is a linger; frames sent so far in this visit.
    Micros linger_until = 0;
    bool lingering = false;
    std::uint32_t linger_sent = 0;
    // At my last visit I sent nothing, others had sent frames and none had more queued:
    // a lone writer, which may be lingering now, so a message of mine asks for the token
    // (submit's hold-cancel) instead of waiting up to the linger's deadline.
    bool writer_may_linger = false;
    // Rep only: token.seq as it passed the token on (or held it) at its previous visit;
    // whether it did yet on this ring; its safe point at its previous visit; whether this
    // visit may hold (accept_token).
    Seq rep_last_seq = 0;
    bool rep_passed = false;
    std::optional<Seq> rep_prev_safe;
    bool rep_may_hold = false;
    bool cancel_pending = false;        // a hold-cancel came while the token was away
    // A visit since this node installed the ring: every member has installed it by then
    // (they all do in the same rotation), so a merge no longer cuts a RECOVERY short.
    bool settled = false;
    std::uint32_t last_seen_idle = 0;   // idle_rotations on the last token seen
    // Watermark notices: the highest value each other member sent me on this ring.
    std::map<NodeId, std::uint64_t> announced;
    // Receipts: the highest aru each other member announced on this ring; the aru this
    // node announced last; whether it may send one before its next visit; fcc on the
    // last token seen (how loaded the ring is).
    std::map<NodeId, Seq> receipts;
    std::optional<Seq> receipt_sent;
    bool receipt_allowed = true;
    std::uint32_t last_fcc = 0;
    Micros last_visit = 0;  // when this node last accepted the token
    // Failure to receive (Totem §4.1): the same aru and aru_id seen visit after visit.
    Seq stuck_aru = 0;
    NodeId stuck_id = 0;
    std::uint32_t stuck_rotations = 0;
    NodeId rep() const { return members.front(); }
    bool is_member(NodeId n) const { return contains(members, n); }
};

class Ring {
public:
    // REQUIRES: validate(config).empty(). `durable` must outlive the Ring; nullptr uses
    // an in-memory store (tests). Loads the durable ring seq and stores it bumped.
    explicit Ring(Config config, Durable* durable = nullptr);

    // Normal start: GATHER with whoever answers (a singleton ring if nobody does within
    // the consensus timeout). With a fixed ring (tests) the rep originates the token.
    void start(Micros now);
    // One received packet (the sealed body, already opened); `from` is the node id the
    // crypto layer authenticated.
    void on_packet(NodeId from, wire::ByteView bytes, Micros now);
    // A timer armed through Effects::timers fired. Stale fires are ignored.
    void on_timer(TimerId timer, Micros now);
    // Queue an application message (in any state; sent once OPERATIONAL). TryAgain when
    // the bounded queue is full. Accepted messages are delivered under the EVS rules.
    SubmitResult submit(wire::Bytes message, Guarantee guarantee, Micros now);
    // Clean shutdown: multicasts a leave so the others reform at once. Afterwards the
    // node is inert (State::left) and may be destroyed once the effects are sent.
    void leave(Micros now);
    // New cluster-wide settings (with_settings() of the replicated state's): timers take
    // effect when next armed, flow control from the next ring. Returns why it refused
    // them (validate()), empty when applied.
    std::string update_settings(const Config& c);
    // This node's application value for the ring watermark (DESIGN.md §6.3).
    // REQUIRES: it never decreases on one ring (the ring resets it to 0 at a change).
    void set_local_watermark(std::uint64_t value) { local_watermark_ = value; }
    // The same, and a rise is sent at once to the members in `notify` (those that wait
    // for it; a WatermarkNotice, unicast to a few, multicast to more), who fold it into
    // their ring watermark without waiting for the token; the token carries it to
    // everyone else when it next goes round. Take the effects afterwards.
    void set_local_watermark(std::uint64_t value, Micros now, const std::vector<NodeId>& notify = {});

    Effects take_effects();
    bool has_effects() const { return !effects_.empty(); }

    // Introspection (conclavectl status, the simulator's trace, tests).
    NodeId self() const { return config_.self; }
    State state() const { return state_; }
    // The installed (regular) ring; {0,0} and no members before the first one.
    wire::totem::RingId ring_id() const { return installed_ ? installed_->id : wire::totem::RingId{}; }
    const NodeSet& members() const;
    NodeId successor() const { return installed_ ? installed_->successor : 0; }
    NodeId rep() const { return installed_ ? installed_->rep() : 0; }
    bool holding_token() const { return installed_ && installed_->held.has_value(); }
    // Who hears whom: when this node last received any packet from each peer.
    const std::map<NodeId, Micros>& last_heard() const { return last_heard_; }
    const GatherState& gather_state() const { return gather_; }
    std::uint64_t ring_watermark() const { return ring_watermark_; }
    const ReceiveWindow& window() const;  // REQUIRES: a ring is installed
    const SendQueue& send_queue() const { return queue_; }
    const RingStats& stats() const { return stats_; }
    const Config& config() const { return config_; }
    std::size_t frame_budget() const { return wire::totem::frame_budget(config_.mtu); }
    std::uint64_t highest_ring_seq() const { return highest_ring_seq_; }
    // OPERATIONAL with nothing queued, nothing undelivered and no token in doubt.
    bool quiescent() const;

private:
    // ring.cc
    RingInstance* active();  // the ring whose token circulates now (OPERATIONAL/RECOVERY)
    void arm(TimerId timer, Micros deadline);
    void cancel(TimerId timer);
    void cancel_all_timers();
    void log(std::string line) { effects_.log.push_back(std::move(line)); }
    void multicast(wire::Bytes bytes) { effects_.multicasts.push_back(std::move(bytes)); }
    void on_ring_packet(NodeId from, wire::totem::Packet& p, Micros now);
    bool is_bug_node() const;

    // token.cc — ordering on the active ring (Totem §3)
    void originate_token(RingInstance& r, Micros now);
    void on_token(RingInstance& r, wire::totem::Token token, Micros now);
    void accept_token(RingInstance& r, wire::totem::Token token, Micros now);
    void on_mcast(RingInstance& r, wire::totem::McastFrame frame, Micros now);
    void visit(RingInstance& r, wire::totem::Token token, Micros now, bool may_hold);
    void release_held_token(RingInstance& r, Micros now);
    void forward(RingInstance& r, wire::totem::Token token, Micros now);
    // How long after forwarding `token` this node resends it without a sign it arrived.
    Micros retransmit_after(const wire::totem::Token& token) const;
    void send_hold_cancel(Micros now);
    void send_watermark_notices(const std::vector<NodeId>& notify);
    void send_safe_notice(RingInstance& r, std::optional<Seq> before);
    void on_safe_notice(RingInstance& r, Seq seq);
    void maybe_send_receipt(RingInstance& r);
    void on_safe_stall(Micros now);
    void on_receipt(RingInstance& r, NodeId from, Seq aru);
    // Raises the safe point to the lowest aru of all members' receipts and mine; true if
    // it rose.
    bool fold_receipts(RingInstance& r);
    // The lowest aru in the other members' receipts; none until every one sent one.
    std::optional<Seq> lowest_receipt(const RingInstance& r) const;
    // Whether every other member's receipt covers every safe frame I hold (rep, idle).
    bool receipts_cover_safe_frames(const RingInstance& r) const;
    // A safe frame I hold but may not deliver yet.
    bool safe_frame_waiting(const RingInstance& r) const;
    void on_watermark_notice(RingInstance& r, NodeId from, std::uint64_t value);
    // The ring watermark only rises on one ring: to the min over the members of what the
    // token or their notices showed (DESIGN.md §6.3).
    void raise_ring_watermark(std::uint64_t candidate);
    void fold_notices(RingInstance& r);
    void deliver(RingInstance& r);
    void multicast_frame(const wire::totem::McastFrame& frame);
    // Gives a frame of mine the next seq of this ring (Totem §3.1: seq = ++token.seq),
    // multicasts it and keeps it in my own window for retransmission.
    void originate(wire::totem::McastFrame frame, RingInstance& r, wire::totem::Token& t);
    bool check_fail_to_receive(RingInstance& r, const wire::totem::Token& t, Micros now);

    // membership.cc — GATHER and COMMIT (Totem §4.3, §4.4)
    void enter_gather(const std::string& reason, Micros now);
    void send_join(Micros now);
    void on_join(NodeId from, const wire::totem::Join& j, Micros now);
    void on_foreign(NodeId from, const wire::totem::RingId& id, const char* what, Micros now);
    void on_leave(NodeId from, Micros now);
    void on_consensus_timeout(Micros now);
    void check_consensus(Micros now);
    void create_commit_token(Micros now);
    void on_commit_token(wire::totem::CommitToken c, Micros now);
    void enter_commit(wire::totem::CommitToken c, Micros now);
    void forward_commit_token(wire::totem::CommitToken c, Micros now);
    std::string describe(const NodeSet& s) const;

    // recovery.cc — RECOVERY and EVS delivery (Totem §4.5; EVS)
    void enter_recovery(const wire::totem::CommitToken& c, Micros now);
    void send_recovery_frames(RingInstance& r, wire::totem::Token& t, std::uint32_t& sent,
                              std::uint32_t allowed);
    void on_recovery_frame(const wire::totem::McastFrame& frame);
    void update_recovery_flags(RingInstance& r, wire::totem::Token& t);
    void maybe_install(RingInstance& r, const wire::totem::Token& t, Micros now);
    void install(Micros now);
    void deliver_old_ring(RingInstance& old);
    void emit(std::vector<Delivery>& ds);

    Config config_;
    MemoryDurable own_durable_;
    Durable* durable_;
    State state_ = State::gather;
    bool started_ = false;
    std::uint64_t highest_ring_seq_ = 0;  // highest ring seq known (durable-backed)

    std::unique_ptr<RingInstance> installed_;  // the regular configuration (old ring while forming)
    std::unique_ptr<RingInstance> forming_;    // COMMIT/RECOVERY: the new ring
    // Rings whose COMMIT/RECOVERY this node abandoned (the last few): copies of their
    // commit token still being retransmitted are stale, never a round to enter again.
    std::vector<wire::totem::RingId> abandoned_;
    GatherState gather_;

    // COMMIT/RECOVERY (recovery.cc).
    wire::totem::CommitToken commit_;     // the latest commit token accepted
    NodeSet transitional_;                // new members from my old ring
    Seq group_safe_ = 0;                  // max old safe point over the transitional members
    std::deque<wire::totem::McastFrame> to_resend_;  // encapsulated old frames still to send
    std::optional<Seq> install_seq_;      // recovery frames all sent by this seq
    bool first_token_sent_ = false;       // rep: the new ring's first token originated
    std::vector<Delivery> held_back_;     // test hook old_after_regular only

    SendQueue queue_;
    Effects effects_;
    RingStats stats_;
    std::map<NodeId, Micros> last_heard_;
    bool waiting_for_token_ = false;      // queued data and a hold-cancel outstanding

    // Watermark (DESIGN.md §6.3).
    std::uint64_t local_watermark_ = 0;
    std::uint64_t ring_watermark_ = 0;

    std::array<bool, kTimerCount> timer_armed_{};
    std::array<Micros, kTimerCount> timer_deadline_{};
    std::uint64_t delivered_messages_ = 0;  // for the deliver_twice test hook
};

// Returns an empty string when the configuration is usable, else the reason.
std::string validate(const Config& c);

}  // namespace conclave::totem
