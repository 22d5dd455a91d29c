// Ring: construction, packet dispatch by state, timers, submit, leave.
#include "totem/ring.h"

#include <algorithm>
#include <cstdio>

#include "totem/check.h"

namespace conclave::totem {

namespace wt = wire::totem;

const char* state_name(State s) {
    switch (s) {
        case State::gather: return "gather";
        case State::commit: return "commit";
        case State::recovery: return "recovery";
        case State::operational: return "operational";
        case State::left: return "left";
    }
    return "?";
}

Config with_settings(Config c, const std::map<std::string, std::uint64_t>& settings) {
    for (const auto& [key, v] : settings) {
        const Micros us = v * 1000;
        if (key == "token") c.token_loss_us = us;
        else if (key == "consensus") c.consensus_us = us;
        else if (key == "join") c.join_interval_us = us;
        else if (key == "merge") c.merge_detect_us = us;
        else if (key == "hold") c.hold_us = us;
        else if (key == "token_retransmit") c.token_retransmit_us = us;
        else if (key == "window_size") c.window_size = static_cast<std::uint32_t>(v);
        else if (key == "max_messages") c.max_messages = static_cast<std::uint32_t>(v);
    }
    if (c.max_window < 2 * c.window_size + 2) c.max_window = 2 * c.window_size + 2;
    return c;
}

std::string validate(const Config& c) {
    if (c.self == 0) return "node id 0 is reserved";
    if (!c.members.empty()) {
        if (c.members.size() < 2) return "a fixed ring needs at least 2 members";
        std::vector<NodeId> m = c.members;
        std::sort(m.begin(), m.end());
        if (std::adjacent_find(m.begin(), m.end()) != m.end()) return "duplicate member id";
        if (m.front() == 0) return "node id 0 is reserved";
        if (!std::binary_search(m.begin(), m.end(), c.self)) return "self is not a member";
        if (c.ring_id.rep != m.front()) return "ring id rep must be the lowest member";
    }
    const std::size_t budget = wt::frame_budget(c.mtu);
    if (budget < wt::kMaxTokenSize ||
        budget < wt::kMcastFixedSize + wt::kEncapsulationOverhead + wt::kChunkHeaderSize + 64 ||
        budget < wt::commit_token_size(8))
        return "mtu too small for the token, a frame and an 8-member commit token";
    if (c.window_size == 0 || c.max_messages == 0) return "window_size and max_messages must be > 0";
    if (c.max_window < 2 * c.window_size + 2 || c.max_window > (1u << 30))
        return "max_window must be in [2 * window_size + 2, 2^30]";
    if (c.send_queue_messages == 0) return "send_queue_messages must be > 0";
    if (c.token_retransmit_us == 0 || c.hold_us == 0 || c.hold_cancel_retry_us == 0 ||
        c.join_interval_us == 0 || c.consensus_us == 0 || c.merge_detect_us == 0)
        return "timer intervals must be > 0";
    if (c.linger_us >= c.token_retransmit_us) return "linger_us must be below token_retransmit_us";
    if (c.token_loss_us <= c.token_retransmit_us || c.token_loss_us <= c.hold_us)
        return "token_loss_us must exceed token_retransmit_us and hold_us";
    if (c.consensus_us < c.join_interval_us) return "consensus_us must be >= join_interval_us";
    if (c.idle_rotations_before_hold == 0) return "idle_rotations_before_hold must be > 0";
    if (c.fail_to_receive_rotations == 0) return "fail_to_receive_rotations must be > 0";
    return {};
}

RingInstance::RingInstance(wt::RingId id_, NodeSet members_, NodeId self, const Config& c)
    : id(id_),
      members(std::move(members_)),
      window(c.initial_seq, c.max_window),
      flow(c.window_size, c.max_messages),
      rep_last_seq(c.initial_seq) {
    CONCLAVE_CHECK(!members.empty() && std::is_sorted(members.begin(), members.end()));
    CONCLAVE_CHECK(is_member(self) && id.rep == members.front());
    // Ring order is ascending node id, wrapping from the highest to the lowest (Totem §3).
    auto it = std::upper_bound(members.begin(), members.end(), self);
    successor = it == members.end() ? members.front() : *it;
}

Ring::Ring(Config config, Durable* durable)
    : config_(std::move(config)),
      durable_(durable ? durable : &own_durable_),
      queue_(wt::frame_budget(config_.mtu) - wt::kMcastFixedSize - wt::kEncapsulationOverhead,
             config_.send_queue_bytes, config_.send_queue_messages) {
    CONCLAVE_CHECK(validate(config_).empty());
    std::sort(config_.members.begin(), config_.members.end());
    // Bumped at every start (reference/corosync.md §1.5): a restarted node never reuses
    // a ring id, even one it stored just before crashing.
    highest_ring_seq_ = durable_->load_ring_seq() + 1;
    durable_->store_ring_seq(highest_ring_seq_);
    // Message ids unique across restarts: the start's seq in the high half.
    if (config_.members.empty()) queue_.set_first_msg_id((highest_ring_seq_ << 32) + 1);
    if (!config_.members.empty()) {
        installed_ = std::make_unique<RingInstance>(config_.ring_id, config_.members, config_.self, config_);
        highest_ring_seq_ = std::max(highest_ring_seq_, config_.ring_id.seq);
        state_ = State::operational;
    }
}

const NodeSet& Ring::members() const {
    static const NodeSet none;
    return installed_ ? installed_->members : none;
}

const ReceiveWindow& Ring::window() const {
    CONCLAVE_CHECK(installed_ != nullptr);
    return installed_->window;
}

bool Ring::quiescent() const {
    if (state_ != State::operational || !queue_.empty()) return false;
    const ReceiveWindow& w = installed_->window;
    return w.delivered() == w.high() && w.my_aru() == w.high();
}

// The issue-3 hooks act on the highest member of the installed ring.
bool Ring::is_bug_node() const {
    return installed_ && config_.self == installed_->members.back() && installed_->members.size() > 1;
}

RingInstance* Ring::active() {
    if (state_ == State::operational) return installed_.get();
    if (state_ == State::recovery) return forming_.get();
    return nullptr;
}

Effects Ring::take_effects() {
    Effects out = std::move(effects_);
    effects_ = Effects{};
    return out;
}

void Ring::arm(TimerId timer, Micros deadline) {
    const auto i = static_cast<std::size_t>(timer);
    timer_armed_[i] = true;
    timer_deadline_[i] = deadline;
    effects_.timers.push_back(TimerOp{timer, true, deadline});
}

void Ring::cancel(TimerId timer) {
    const auto i = static_cast<std::size_t>(timer);
    if (!timer_armed_[i]) return;
    timer_armed_[i] = false;
    effects_.timers.push_back(TimerOp{timer, false, 0});
}

void Ring::cancel_all_timers() {
    for (int i = 0; i < kTimerCount; ++i) cancel(static_cast<TimerId>(i));
}

void Ring::start(Micros now) {
    CONCLAVE_CHECK(!started_);
    started_ = true;
    if (installed_) {
        if (config_.self == installed_->rep()) originate_token(*installed_, now);
        arm(TimerId::token_loss, now + config_.token_loss_us);
        return;
    }
    gather_.proc = {config_.self};
    enter_gather("starting: looking for a ring to join", now);
}

void Ring::on_packet(NodeId from, wire::ByteView bytes, Micros now) {
    wt::DecodeResult r = wt::decode(bytes);
    if (!r.ok()) {
        ++stats_.malformed;
        return;
    }
    const wt::Header& h = wt::header_of(r.packet);
    if (h.sender != from || from == config_.self || from == 0) {
        ++stats_.not_member;
        return;
    }
    last_heard_[from] = now;
    if (state_ == State::left || !started_) return;
    if (auto* j = std::get_if<wt::Join>(&r.packet)) {
        on_join(from, *j, now);
    } else if (auto* c = std::get_if<wt::CommitToken>(&r.packet)) {
        on_commit_token(std::move(*c), now);
    } else if (std::holds_alternative<wt::Leave>(r.packet)) {
        on_leave(from, now);
    } else if (std::holds_alternative<wt::MergeDetect>(r.packet)) {
        const wt::RingId mine = installed_ ? installed_->id : wt::RingId{};
        if (!(h.ring_id == mine)) on_foreign(from, h.ring_id, "merge-detect", now);
    } else {
        on_ring_packet(from, r.packet, now);
    }
}

// Token, frame or hold-cancel: belongs to the active ring, to the old ring, or to a
// ring we do not know (Totem §4.1: a foreign ring id starts the membership protocol).
void Ring::on_ring_packet(NodeId from, wt::Packet& p, Micros now) {
    const wt::Header& h = wt::header_of(p);
    RingInstance* r = active();
    if (r && h.ring_id == r->id) {
        if (!r->is_member(from)) {
            ++stats_.not_member;
            return;
        }
        if (auto* t = std::get_if<wt::Token>(&p)) {
            on_token(*r, std::move(*t), now);
        } else if (auto* f = std::get_if<wt::McastFrame>(&p)) {
            on_mcast(*r, std::move(*f), now);
        } else if (auto* n = std::get_if<wt::WatermarkNotice>(&p)) {
            if (state_ == State::operational) on_watermark_notice(*r, from, n->value);
        } else if (auto* sn = std::get_if<wt::SafeNotice>(&p)) {
            if (state_ == State::operational) on_safe_notice(*r, sn->seq);
        } else if (auto* rn = std::get_if<wt::ReceiptNotice>(&p)) {
            if (state_ == State::operational) on_receipt(*r, from, rn->aru);
        } else if (r->held) {
            // Hold-cancel: only the holder acts on it, and passes the token on.
            r->cancel_pending = true;
            release_held_token(*r, now);
        } else {
            // It may have overtaken the token on its way to me: neither hold nor linger
            // at the next visit.
            r->cancel_pending = true;
        }
        return;
    }
    if (installed_ && h.ring_id == installed_->id) {
        // The old ring while forming a new one. In GATHER its frames are still
        // received (and delivered if they may be); from COMMIT on the old ring is frozen,
        // so that the set re-sent in RECOVERY is the set each member holds.
        auto* f = std::get_if<wt::McastFrame>(&p);
        if (state_ == State::gather && f && installed_->is_member(from) &&
            !(f->flags & wt::kFrameEncapsulated)) {
            if (installed_->window.store(std::move(*f)) == ReceiveWindow::Store::stored) deliver(*installed_);
        } else {
            ++stats_.stale;
        }
        return;
    }
    if (forming_ && h.ring_id == forming_->id) return;  // COMMIT: the new ring's first packets
    if (std::holds_alternative<wt::WatermarkNotice>(p) || std::holds_alternative<wt::SafeNotice>(p) ||
        std::holds_alternative<wt::ReceiptNotice>(p)) {
        ++stats_.stale;  // a notice of a ring we left (or never had) starts nothing
        return;
    }
    const char* what = std::holds_alternative<wt::Token>(p) ? "token" : std::holds_alternative<wt::McastFrame>(p) ? "frame" : "hold-cancel";
    on_foreign(from, h.ring_id, what, now);
}

void Ring::on_timer(TimerId timer, Micros now) {
    const auto i = static_cast<std::size_t>(timer);
    if (!timer_armed_[i] || now < timer_deadline_[i]) return;
    timer_armed_[i] = false;
    if (state_ == State::left) return;
    RingInstance* r = active();
    switch (timer) {
        case TimerId::token_retransmit: {
            RingInstance* t = r ? r : forming_.get();  // COMMIT resends the commit token
            if (t && !t->last_sent_token.empty()) {
                ++stats_.token_retransmits;
                effects_.unicasts.push_back(Unicast{t->successor, t->last_sent_token});
                arm(TimerId::token_retransmit, now + config_.token_retransmit_us);
            }
            break;
        }
        case TimerId::token_hold:
            if (r && r->held) release_held_token(*r, now);
            break;
        case TimerId::hold_cancel_retry:
            if (state_ == State::operational && waiting_for_token_) send_hold_cancel(now);
            break;
        case TimerId::token_loss: {
            ++stats_.token_losses;
            char b[96];
            std::snprintf(b, sizeof b, "token lost after %llu ms in %s, forming a new ring",
                          static_cast<unsigned long long>(config_.token_loss_us / 1000), state_name(state_));
            if (state_ != State::gather) enter_gather(b, now);
            break;
        }
        case TimerId::join:
            if (state_ == State::gather) {
                send_join(now);
                arm(TimerId::join, now + config_.join_interval_us);
            }
            break;
        case TimerId::consensus:
            if (state_ == State::gather) on_consensus_timeout(now);
            break;
        case TimerId::safe_stall:
            on_safe_stall(now);
            break;
        case TimerId::merge_detect:
            if (state_ == State::operational && installed_->rep() == config_.self) {
                if (!config_.test_hooks.no_merge) {
                    wire::Bytes b;
                    wt::encode(wt::MergeDetect{{installed_->id, config_.self}}, b);
                    multicast(std::move(b));
                    ++stats_.merge_detects_sent;
                }
                arm(TimerId::merge_detect, now + config_.merge_detect_us);
            }
            break;
    }
}

SubmitResult Ring::submit(wire::Bytes message, Guarantee guarantee, Micros now) {
    const bool was_empty = queue_.empty();
    SubmitResult r = queue_.push(std::move(message), guarantee);
    if (r.status != SubmitStatus::ok || state_ != State::operational) return r;
    RingInstance& ring = *installed_;
    if (ring.held) {
        // I hold the token (the rep's idle hold, a linger, or a singleton ring): send
        // right away.
        release_held_token(ring, now);
    } else if (was_empty && !waiting_for_token_ &&
               ((config_.self != ring.rep() && ring.last_seen_idle + 1 >= config_.idle_rotations_before_hold) ||
                ring.writer_may_linger)) {
        // The ring looked idle at my last visit, so the rep may be holding the token, or
        // only others sent, so one of them may be lingering: a new message must not wait
        // for the hold timer (DESIGN.md §5 idle ring) nor for the linger's deadline.
        send_hold_cancel(now);
    }
    return r;
}

void Ring::set_local_watermark(std::uint64_t value, Micros now, const std::vector<NodeId>& notify) {
    (void)now;
    const bool rose = value > local_watermark_;
    local_watermark_ = value;
    if (!rose || state_ != State::operational) return;
    RingInstance& ring = *installed_;
    send_watermark_notices(notify);
    fold_notices(ring);
    // Only I have seen the rotation a held token opened: it opens with my new value.
    if (ring.held && config_.self == ring.rep()) ring.held->watermark_partial = local_watermark_;
}

void Ring::leave(Micros now) {
    (void)now;
    if (state_ == State::left) return;
    const wt::RingId id = installed_ ? installed_->id : wt::RingId{};
    wire::Bytes b;
    wt::encode(wt::Leave{{id, config_.self}}, b);
    // Twice: a lost leave costs the others a token-loss timeout.
    multicast(b);
    multicast(std::move(b));
    cancel_all_timers();
    state_ = State::left;
    log("leaving the ring (clean shutdown)");
}

}  // namespace conclave::totem

namespace conclave::totem {

std::string Ring::update_settings(const Config& c) {
    Config next = config_;
    next.token_loss_us = c.token_loss_us;
    next.consensus_us = c.consensus_us;
    next.join_interval_us = c.join_interval_us;
    next.merge_detect_us = c.merge_detect_us;
    next.hold_us = c.hold_us;
    next.token_retransmit_us = c.token_retransmit_us;
    next.window_size = c.window_size;
    next.max_messages = c.max_messages;
    next.max_window = std::max(next.max_window, c.max_window);
    if (auto why = validate(next); !why.empty()) return why;
    config_ = next;  // timers take effect when next armed; flow control from the next ring
    return {};
}

}  // namespace conclave::totem
