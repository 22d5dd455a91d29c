#include "totem/ring.h"

#include <algorithm>

#include "totem/check.h"

namespace conclave::totem {

namespace wt = wire::totem;

std::string validate(const Config& c) {
    if (c.members.size() < 2) return "a ring needs at least 2 members";
    std::vector<NodeId> m = c.members;
    std::sort(m.begin(), m.end());
    if (std::adjacent_find(m.begin(), m.end()) != m.end()) return "duplicate member id";
    if (m.front() == 0) return "node id 0 is reserved";
    if (!std::binary_search(m.begin(), m.end(), c.self)) return "self is not a member";
    if (c.ring_id.rep != m.front()) return "ring id rep must be the lowest member";
    const std::size_t budget = wt::frame_budget(c.mtu);
    if (budget < wt::kMaxTokenSize || budget < wt::kMcastFixedSize + wt::kChunkHeaderSize + 64)
        return "mtu too small for the token and a frame";
    if (c.window_size == 0 || c.max_messages == 0) return "window_size and max_messages must be > 0";
    if (c.max_window < 2 * c.window_size + 2 || c.max_window > (1u << 30))
        return "max_window must be in [2 * window_size + 2, 2^30]";
    if (c.send_queue_messages == 0) return "send_queue_messages must be > 0";
    if (c.token_retransmit_us == 0 || c.hold_us == 0 || c.hold_cancel_retry_us == 0)
        return "timer intervals must be > 0";
    if (c.idle_rotations_before_hold == 0) return "idle_rotations_before_hold must be > 0";
    return {};
}

namespace {
Config normalized(Config c) {
    std::sort(c.members.begin(), c.members.end());
    return c;
}
}  // namespace

Ring::Ring(Config config)
    : config_(normalized(std::move(config))),
      window_(config_.initial_seq, config_.max_window),
      queue_(wt::frame_budget(config_.mtu) - wt::kMcastFixedSize, config_.send_queue_bytes,
             config_.send_queue_messages),
      flow_(config_.window_size, config_.max_messages) {
    CONCLAVE_CHECK(validate(config_).empty());
    // Ring order is ascending node id, wrapping from the highest to the lowest (Totem §3).
    auto it = std::upper_bound(config_.members.begin(), config_.members.end(), config_.self);
    successor_ = it == config_.members.end() ? config_.members.front() : *it;
    rep_last_seq_ = config_.initial_seq;
}

bool Ring::is_member(NodeId n) const {
    return std::binary_search(config_.members.begin(), config_.members.end(), n);
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

void Ring::start(Micros now) {
    if (config_.self != rep()) return;
    // The first token (Totem §3; Corosync orf_token_send_initial): nothing sent yet.
    wt::Token t;
    t.header = {config_.ring_id, config_.self};
    t.token_seq = 0;
    t.seq = config_.initial_seq;
    t.aru = config_.initial_seq;
    t.aru_id = 0;
    accept_token(std::move(t), now);
}

void Ring::on_packet(NodeId from, wire::ByteView bytes, Micros now) {
    wt::DecodeResult r = wt::decode(bytes);
    if (!r.ok()) {
        ++stats_.malformed;
        return;
    }
    const wt::Header& h = std::visit([](const auto& p) -> const wt::Header& { return p.header; },
                                     r.packet);
    if (h.sender != from || !is_member(from) || from == config_.self) {
        ++stats_.not_member;
        return;
    }
    if (!(h.ring_id == config_.ring_id)) {
        // A foreign ring: the membership protocol (next issue) enters GATHER here.
        ++stats_.foreign_ring;
        return;
    }
    if (auto* t = std::get_if<wt::Token>(&r.packet)) {
        on_token(std::move(*t), now);
    } else if (auto* f = std::get_if<wt::McastFrame>(&r.packet)) {
        on_mcast(std::move(*f));
    } else {
        // Hold-cancel: only the holder acts on it.
        if (held_) release_held_token(now);
    }
}

void Ring::on_token(wt::Token token, Micros now) {
    // Duplicate detection by token_seq (Totem §3.1): a retransmitted copy of a token
    // already processed is dropped. The held token counts as processed.
    if (last_token_seq_ && !seq_gt(token.token_seq, *last_token_seq_)) {
        ++stats_.duplicate_tokens;
        return;
    }
    accept_token(std::move(token), now);
}

void Ring::accept_token(wt::Token t, Micros now) {
    last_token_seq_ = t.token_seq;
    // The token came round: the copy I forwarded last time obviously arrived.
    cancel(TimerId::token_retransmit);
    last_sent_token_.clear();
    last_sent_seq_.reset();
    if (waiting_for_token_) {
        waiting_for_token_ = false;
        cancel(TimerId::hold_cancel_retry);
    }

    window_.note_high(t.seq);
    window_.on_token_aru(t.aru);

    // Watermark (DESIGN.md §6.3): the rep closes one rotation's running min and opens the
    // next; everyone else folds in its value. The ring value is thus the min over one
    // full rotation, a valid lower bound as long as local values never decrease.
    if (config_.self == rep()) {
        t.watermark_ring = t.watermark_partial;
        t.watermark_partial = local_watermark_;
    } else {
        t.watermark_partial = std::min(t.watermark_partial, local_watermark_);
    }
    if (t.watermark_ring != ring_watermark_) {
        ring_watermark_ = t.watermark_ring;
        effects_.watermark = ring_watermark_;
    }

    // Idleness, counted by the rep once per rotation: no new frame, no pending request,
    // everything received everywhere, nothing queued anywhere.
    if (config_.self == rep()) {
        const bool idle = t.seq == rep_last_seq_ && t.rtr.empty() && t.aru == t.seq && t.backlog == 0;
        t.idle_rotations = idle ? t.idle_rotations + 1 : 0;
        rep_last_seq_ = t.seq;
    }
    last_seen_idle_ = t.idle_rotations;

    visit(std::move(t), now, /*may_hold=*/true);
    // Deliver after forwarding, to keep the token moving (Corosync does the same).
    deliver();
    window_.free_stable();
}

void Ring::multicast_frame(const wt::McastFrame& frame) {
    wire::Bytes bytes;
    wt::encode(frame, bytes);
    CONCLAVE_CHECK(bytes.size() <= frame_budget());
    effects_.multicasts.push_back(std::move(bytes));
}

void Ring::visit(wt::Token t, Micros now, bool may_hold) {
    const std::uint32_t allowed = flow_.allowance(t.fcc, t.backlog, queue_.frames_needed());
    std::uint32_t sent = 0;

    // 1. Retransmissions first (Totem §8): answer every request I can, within allowance.
    std::vector<Seq> rtr;
    rtr.reserve(t.rtr.size());
    for (Seq s : t.rtr) {
        const wt::McastFrame* f = window_.find(s);
        if (f && sent < allowed && !config_.test_hooks.skip_retransmit) {
            wt::McastFrame copy = *f;
            copy.header.sender = config_.self;  // originator and seq stay as they were
            multicast_frame(copy);
            ++sent;
            ++stats_.retransmits_sent;
            continue;
        }
        // A seq below my store was covered by the safe point: every member has it.
        if (seq_ge(s, window_.base())) rtr.push_back(s);
    }

    // 2. New frames, each taking seq = ++token.seq (Totem §3.1). Never run further than
    // max_window ahead of my own store (Corosync fcc_rtr_limit), so every receiver's
    // window stays bounded and seqs stay far inside the 2^31 comparison range.
    const std::uint32_t span = window_.span_to(t.seq);
    const std::uint32_t headroom =
        span + config_.window_size < config_.max_window ? config_.max_window - config_.window_size - span : 0;
    std::uint32_t fresh = 0;
    while (sent < allowed && fresh < headroom && !queue_.empty()) {
        wt::McastFrame f = queue_.next_frame();
        f.header = {config_.ring_id, config_.self};
        f.originator = config_.self;
        f.seq = ++t.seq;
        multicast_frame(f);
        const auto stored = window_.store(std::move(f));
        CONCLAVE_CHECK(stored == ReceiveWindow::Store::stored);
        ++sent;
        ++fresh;
        ++stats_.frames_sent;
    }

    // 3. Ask for what I miss (Totem §3.2), after `miss_count` visits so frames still in
    // flight are not requested; the list stays sorted, unique and bounded.
    window_.note_high(t.seq);
    std::vector<Seq> missing;
    window_.collect_missing(config_.miss_count, wt::kMaxRtrEntries, missing);
    rtr.insert(rtr.end(), missing.begin(), missing.end());
    const Seq origin = window_.base();
    std::sort(rtr.begin(), rtr.end(), [origin](Seq a, Seq b) { return seq_diff(origin, a) < seq_diff(origin, b); });
    rtr.erase(std::unique(rtr.begin(), rtr.end()), rtr.end());
    if (rtr.size() > wt::kMaxRtrEntries) rtr.resize(wt::kMaxRtrEntries);
    t.rtr = std::move(rtr);

    // 4. aru (Totem §3.2): lower it to mine if mine is lower; raise it only if I set it
    // last or nobody did. aru_id = 0 once aru caught up with seq.
    const Seq mine = window_.my_aru();
    if (seq_lt(mine, t.aru) || t.aru_id == config_.self || t.aru_id == 0) {
        t.aru = mine;
        t.aru_id = t.aru == t.seq ? 0 : config_.self;
    }

    // 5. Flow control: replace my contribution to fcc and backlog.
    flow_.update_token(t.fcc, t.backlog, sent, queue_.frames_needed());

    // 6. Token hold on an idle ring (Corosync deviation, kept: idle CPU near zero).
    if (may_hold && config_.self == rep() && t.idle_rotations >= config_.idle_rotations_before_hold &&
        queue_.empty() && t.rtr.empty() && sent == 0) {
        ++stats_.tokens_held;
        held_ = std::move(t);
        arm(TimerId::token_hold, now + config_.hold_us);
        return;
    }
    forward(std::move(t), now);
}

void Ring::forward(wt::Token t, Micros now) {
    t.header = {config_.ring_id, config_.self};
    t.token_seq = *last_token_seq_ + 1;
    last_sent_token_.clear();
    wt::encode(t, last_sent_token_);
    CONCLAVE_CHECK(last_sent_token_.size() <= frame_budget());
    last_sent_seq_ = t.seq;
    effects_.unicasts.push_back(Unicast{successor_, last_sent_token_});
    // Token loss downstream (Totem §3.1): resend until a sign the successor got it.
    arm(TimerId::token_retransmit, now + config_.token_retransmit_us);
}

void Ring::release_held_token(Micros now) {
    CONCLAVE_CHECK(held_.has_value());
    wt::Token t = std::move(*held_);
    held_.reset();
    cancel(TimerId::token_hold);
    visit(std::move(t), now, /*may_hold=*/false);
    deliver();
    window_.free_stable();
}

void Ring::on_mcast(wt::McastFrame frame) {
    // A newer frame multicast by my successor proves it holds a token newer than the one
    // I forwarded: stop retransmitting the token.
    if (frame.header.sender == successor_ && last_sent_seq_ && seq_gt(frame.seq, *last_sent_seq_)) {
        cancel(TimerId::token_retransmit);
        last_sent_token_.clear();
        last_sent_seq_.reset();
    }
    switch (window_.store(std::move(frame))) {
        case ReceiveWindow::Store::stored:
            deliver();
            break;
        case ReceiveWindow::Store::too_far:
            ++stats_.frames_too_far;
            break;
        default:
            ++stats_.duplicate_frames;
            break;
    }
}

void Ring::on_timer(TimerId timer, Micros now) {
    const auto i = static_cast<std::size_t>(timer);
    if (!timer_armed_[i] || now < timer_deadline_[i]) return;
    timer_armed_[i] = false;
    switch (timer) {
        case TimerId::token_retransmit:
            if (!last_sent_token_.empty()) {
                ++stats_.token_retransmits;
                effects_.unicasts.push_back(Unicast{successor_, last_sent_token_});
                arm(TimerId::token_retransmit, now + config_.token_retransmit_us);
            }
            // The membership protocol adds the token-loss timeout beside this one.
            break;
        case TimerId::token_hold:
            if (held_) release_held_token(now);
            break;
        case TimerId::hold_cancel_retry:
            if (waiting_for_token_ && !queue_.empty()) send_hold_cancel(now);
            break;
    }
}

void Ring::send_hold_cancel(Micros now) {
    wt::HoldCancel h{{config_.ring_id, config_.self}};
    wire::Bytes bytes;
    wt::encode(h, bytes);
    effects_.multicasts.push_back(std::move(bytes));
    ++stats_.hold_cancels_sent;
    waiting_for_token_ = true;
    // Hold-cancels can be lost too; keep asking until the token shows up.
    arm(TimerId::hold_cancel_retry, now + config_.hold_cancel_retry_us);
}

SubmitResult Ring::submit(wire::Bytes message, Guarantee guarantee, Micros now) {
    const bool was_empty = queue_.empty();
    SubmitResult r = queue_.push(std::move(message), guarantee);
    if (r.status != SubmitStatus::ok) return r;
    if (held_) {
        // I am the rep holding the idle token: send right away.
        release_held_token(now);
    } else if (was_empty && !waiting_for_token_ && config_.self != rep() &&
               last_seen_idle_ + 1 >= config_.idle_rotations_before_hold) {
        // The ring looked idle at my last visit, so the rep may be holding the token: a
        // new message must not wait for the hold timer (DESIGN.md §5 idle ring).
        send_hold_cancel(now);
    }
    return r;
}

void Ring::deliver() {
    const std::size_t first = effects_.deliveries.size();
    stats_.inconsistent_frames +=
        window_.deliver(reassembler_, config_.test_hooks.deliver_safe_early, effects_.deliveries);
    auto& d = effects_.deliveries;
    if (is_bug_node() && config_.test_hooks.deliver_out_of_order && d.size() - first >= 2)
        std::reverse(d.begin() + static_cast<std::ptrdiff_t>(first), d.end());
    if (is_bug_node() && config_.test_hooks.deliver_twice) {
        const std::size_t end = d.size();
        for (std::size_t i = first; i < end; ++i)
            if ((delivered_messages_ + (i - first)) % 8 == 3) d.push_back(d[i]);
    }
    delivered_messages_ += d.size() - first;
}

}  // namespace conclave::totem
