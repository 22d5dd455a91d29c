// RECOVERY and Extended Virtual Synchrony delivery at a configuration change
// (Totem TOCS'95 §4.5; Moser, Amir, Melliar-Smith, Agarwal, "Extended Virtual
// Synchrony", ICDCS 1994; DESIGN.md §5).
//
// The transitional members of a node are the new ring's members whose old ring is its
// old ring (read from the commit token). Every member re-sends, encapsulated in the new
// ring's total order, every old-ring frame it holds above the lowest old aru of its
// transitional group (nothing below it can be missing anywhere: it was received by all).
// The new ring's reliable delivery then gives every member of a group the union of what
// the group held. Only then is the change delivered, identically on every member of the
// group because it is computed from identical data:
//   A. old frames in order while present and, if safe, covered by the group's safe point
//      (max over the group of each member's old safe point: every old member held them)
//      — still in the old regular configuration;
//   B. the TRANSITIONAL configuration;
//   C. the rest of the old frames: all of them up to the first hole, then those
//      originated by transitional members (they hold all of their own, so nothing of
//      theirs is dropped — unlike Corosync, which drops everything after the last gap);
//   D. the REGULAR configuration.
#include <algorithm>
#include <cstdio>

#include "totem/check.h"
#include "totem/ring.h"

namespace conclave::totem {

namespace wt = wire::totem;

void Ring::enter_recovery(const wt::CommitToken& c, Micros now) {
    (void)now;
    state_ = State::recovery;
    commit_ = c;
    // The watermark is per ring (DESIGN.md §6.3): the application reports its value for
    // the new ring anew, so nothing from the old one can leak into the new ring's min.
    local_watermark_ = 0;
    ring_watermark_ = 0;
    transitional_.clear();
    to_resend_.clear();
    install_seq_.reset();
    const wt::RingId old = installed_ ? installed_->id : wt::RingId{};
    Seq low_aru = 0, high = 0;
    bool first = true, all_complete = true;
    group_safe_ = 0;
    for (std::size_t i = 0; i < c.members.size(); ++i) {
        const wt::CommitEntry& e = c.entries[i];
        const bool same = installed_ ? e.old_ring_id == old : c.members[i] == config_.self;
        if (!same) continue;
        transitional_.push_back(c.members[i]);
        if (first) {
            low_aru = e.old_aru;
            high = e.old_high;
            group_safe_ = e.old_safe;
            first = false;
        } else {
            low_aru = seq_min(low_aru, e.old_aru);
            high = seq_max(high, e.old_high);
            group_safe_ = seq_max(group_safe_, e.old_safe);
        }
    }
    CONCLAVE_CHECK(contains(transitional_, config_.self));
    if (!installed_) return;
    // Every frame at or below a member's safe point was held by every old member.
    CONCLAVE_CHECK(seq_le(group_safe_, low_aru));
    for (std::size_t i = 0; i < c.members.size(); ++i) {
        const wt::CommitEntry& e = c.entries[i];
        if (e.old_ring_id == old && (e.old_aru != high || e.old_high != high)) all_complete = false;
    }
    if (all_complete) return;  // every member of the group holds everything already
    char b[160];
    std::snprintf(b, sizeof b, "recovery: re-sending old ring frames above %u (group %s)", low_aru,
                  describe(transitional_).c_str());
    log(b);
    for (wt::McastFrame& f : installed_->window.frames_above(low_aru)) {
        if (f.flags & wt::kFrameEncapsulated) continue;  // an earlier recovery's: consumed
        wt::McastFrame outer;
        outer.flags = wt::kFrameEncapsulated;
        wt::Chunk ch;
        ch.flags = wt::kChunkFirst | wt::kChunkLast;
        wt::encode(f, ch.data);
        ch.total_size = static_cast<std::uint32_t>(ch.data.size());
        outer.chunks.push_back(std::move(ch));
        to_resend_.push_back(std::move(outer));
    }
}

void Ring::send_recovery_frames(RingInstance& r, wt::Token& t, std::uint32_t& sent, std::uint32_t allowed) {
    while (sent < allowed && !to_resend_.empty()) {
        originate(std::move(to_resend_.front()), r, t);
        to_resend_.pop_front();
        ++sent;
        ++stats_.recovery_frames_sent;
    }
}

// An old-ring frame another member re-sent: keep it if it is of my old ring.
void Ring::on_recovery_frame(const wt::McastFrame& outer) {
    if (!installed_) return;
    wt::DecodeResult d = wt::decode(wire::ByteView(outer.chunks.front().data));
    auto* f = std::get_if<wt::McastFrame>(&d.packet);
    if (!d.ok() || !f || !(f->header.ring_id == installed_->id)) return;
    installed_->window.store_recovered(std::move(*f));
}

// Rotation-exact "retrans_flg" (see wire/totem.h kTokenRecovery*): the rep closes each
// rotation; everyone with re-sends left after its visit marks the rotation.
void Ring::update_recovery_flags(RingInstance& r, wt::Token& t) {
    const bool left = state_ == State::recovery && !to_resend_.empty();
    if (config_.self == r.rep()) {
        const bool partial = (t.flags & wt::kTokenRecoveryPartial) != 0;
        t.flags = static_cast<std::uint8_t>((partial ? wt::kTokenRecoveryPending : 0) |
                                            (left ? wt::kTokenRecoveryPartial : 0));
    } else if (left) {
        t.flags |= wt::kTokenRecoveryPartial;
    }
}

// RECOVERY → OPERATIONAL (Totem §4.5): once a full rotation passed in which nobody had
// anything left to re-send, every re-sent frame has a seq <= token.seq; once the safe
// point covers that seq, every member holds every re-sent frame.
void Ring::maybe_install(RingInstance& r, const wt::Token& t, Micros now) {
    if (state_ != State::recovery || &r != forming_.get()) return;
    if (!install_seq_ && !(t.flags & wt::kTokenRecoveryPending) && to_resend_.empty()) install_seq_ = t.seq;
    const auto sp = r.window.safe_point();
    if (install_seq_ && sp && seq_ge(*sp, *install_seq_) && seq_ge(r.window.delivered(), *install_seq_))
        install(now);
}

void Ring::install(Micros now) {
    CONCLAVE_CHECK(state_ == State::recovery && forming_);
    const TestHooks& hooks = config_.test_hooks;
    const NodeSet& members = forming_->members;
    NodeSet trans = transitional_;
    if (installed_) {
        // A–C: the old ring's messages and the transitional configuration.
        deliver_old_ring(*installed_);
    }
    ConfigChange reg;
    reg.kind = ConfigChange::Kind::regular;
    reg.ring_id = forming_->id;
    reg.members = members;
    reg.joined = set_minus(members, trans);
    effects_.events.emplace_back(std::move(reg));
    emit(held_back_);  // empty unless the old_after_regular test hook is on

    NodeSet left = installed_ ? set_minus(installed_->members, trans) : NodeSet{};
    char b[256];
    std::snprintf(b, sizeof b, "ring %x.%llx formed: members %s, joined %s, left %s", forming_->id.rep,
                  static_cast<unsigned long long>(forming_->id.seq), describe(members).c_str(),
                  describe(set_minus(members, trans)).c_str(), describe(left).c_str());
    log(b);

    installed_ = std::move(forming_);
    state_ = State::operational;
    ++stats_.rings_installed;
    gather_.fail.clear();
    gather_.joins.clear();
    gather_.wait_for_others = false;
    gather_.proc = installed_->members;
    to_resend_.clear();
    install_seq_.reset();
    // A message cut in the middle by the change starts over on the new ring.
    queue_.rewind_partial();
    if (hooks.bug_node && hooks.drop_queue_on_change) queue_.clear_for_test();
    if (installed_->rep() == config_.self) arm(TimerId::merge_detect, now + config_.merge_detect_us);
    // New-ring frames that arrived during RECOVERY may go now.
    deliver(*installed_);
    if (!queue_.empty() && installed_->successor != config_.self && installed_->rep() != config_.self)
        send_hold_cancel(now);
}

void Ring::deliver_old_ring(RingInstance& old) {
    const TestHooks& hooks = config_.test_hooks;
    const bool bug = hooks.bug_node;
    ReceiveWindow& w = old.window;
    std::vector<Delivery> out;
    Seq s = w.delivered() + 1;
    // A: still in the old regular configuration.
    for (; seq_le(s, w.high()); ++s) {
        const wt::McastFrame* f = w.find(s);
        if (!f || (f->flags & wt::kFrameEncapsulated)) break;
        if ((f->flags & wt::kFrameSafe) && !seq_le(s, group_safe_)) break;
        if (!old.reassembler.on_frame(*f, out)) ++stats_.inconsistent_frames;
    }
    // Every member of the group delivered at most this far already (their own delivery
    // stopped at a hole or an unsafe frame, which the union does not have either).
    for (std::size_t i = 0; i < commit_.members.size(); ++i)
        if (commit_.entries[i].old_ring_id == old.id)
            CONCLAVE_CHECK(seq_lt(commit_.entries[i].high_delivered, s));
    const bool late = bug && hooks.old_after_regular;
    if (late) {
        for (auto& d : out) held_back_.push_back(std::move(d));
        out.clear();
    }
    emit(out);

    // B: the transitional configuration.
    ConfigChange tc;
    tc.kind = ConfigChange::Kind::transitional;
    tc.ring_id = forming_->id;
    tc.members = (bug && hooks.transitional_all_new) ? forming_->members : transitional_;
    tc.left = set_minus(old.members, transitional_);
    if (!(bug && hooks.skip_transitional)) effects_.events.emplace_back(std::move(tc));

    // C: the rest, safe within the transitional configuration (every transitional member
    // holds the same frames now).
    bool hole = false;
    for (; seq_le(s, w.high()); ++s) {
        const wt::McastFrame* f = w.find(s);
        if (!f) {
            hole = true;
            continue;
        }
        if (f->flags & wt::kFrameEncapsulated) continue;
        if (hole && !contains(transitional_, f->originator)) continue;
        if (bug && hooks.drop_recovered && f->originator != config_.self) continue;
        const std::size_t before = out.size();
        if (!old.reassembler.on_frame(*f, out)) ++stats_.inconsistent_frames;
        if (hole)
            for (std::size_t i = before; i < out.size(); ++i) out[i].after_hole = true;
    }
    if (late) {
        for (auto& d : out) held_back_.push_back(std::move(d));
        out.clear();
    }
    emit(out);
}

}  // namespace conclave::totem
