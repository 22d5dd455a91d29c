// Ordering on the active ring (Totem TOCS'95 §3): token acceptance, the visit
// (retransmissions, new frames, rtr list, aru, flow control), forwarding, token
// retransmission and hold, frame receipt and delivery, failure to receive (§4.1).
// The active ring is the installed one in OPERATIONAL and the new one in RECOVERY.
#include <algorithm>
#include <cstdio>

#include "totem/check.h"
#include "totem/ring.h"

namespace conclave::totem {

namespace wt = wire::totem;

void Ring::originate_token(RingInstance& r, Micros now) {
    // The first token (Totem §3; Corosync orf_token_send_initial): nothing sent yet.
    wt::Token t;
    t.header = {r.id, config_.self};
    t.token_seq = 0;
    t.seq = config_.initial_seq;
    t.aru = config_.initial_seq;
    t.aru_id = 0;
    // RECOVERY: nobody has closed a rotation yet, so re-sends may be pending.
    if (state_ == State::recovery) t.flags = wt::kTokenRecoveryPending | wt::kTokenRecoveryPartial;
    accept_token(r, std::move(t), now);
}

void Ring::on_token(RingInstance& r, wt::Token token, Micros now) {
    // Duplicate detection by token_seq (Totem §3.1): a retransmitted copy of a token
    // already processed is dropped. The held token counts as processed.
    if (r.last_token_seq && !seq_gt(token.token_seq, *r.last_token_seq)) {
        ++stats_.duplicate_tokens;
        return;
    }
    accept_token(r, std::move(token), now);
}

void Ring::accept_token(RingInstance& r, wt::Token t, Micros now) {
    r.last_token_seq = t.token_seq;
    arm(TimerId::token_loss, now + config_.token_loss_us);
    // The token came round: the copy I forwarded last time obviously arrived.
    cancel(TimerId::token_retransmit);
    r.last_sent_token.clear();
    r.last_sent_seq.reset();
    if (waiting_for_token_) {
        waiting_for_token_ = false;
        cancel(TimerId::hold_cancel_retry);
    }

    r.window.note_high(t.seq);
    r.last_fcc = t.fcc;
    r.receipt_allowed = true;
    r.last_visit = now;
    r.linger_until = now + config_.linger_us;
    if (state_ == State::operational) r.settled = true;
    const std::optional<Seq> safe_before = r.window.safe_point();
    r.window.on_token_aru(t.aru);
    send_safe_notice(r, safe_before);

    // Watermark (DESIGN.md §6.3): the rep closes one rotation's running min and opens the
    // next; everyone else folds in its value. The ring value is thus the min over one
    // full rotation, a valid lower bound as long as local values never decrease. The
    // token is the watermark's slow path: whoever waits for a value (the origins of what
    // it covers) gets every member's rise at once in a notice, so a moving watermark
    // does not keep the ring from holding the token.
    if (config_.self == r.rep()) {
        t.watermark_ring = t.watermark_partial;
        t.watermark_partial = local_watermark_;
    } else {
        t.watermark_partial = std::min(t.watermark_partial, local_watermark_);
    }
    if (state_ == State::operational) raise_ring_watermark(t.watermark_ring);

    // Idleness, counted by the rep once per rotation: no new frame since the rep passed
    // the token on, no pending request, everything received everywhere (aru = seq: every
    // member forwarded seq in the rotation just closed), nothing queued anywhere.
    if (config_.self == r.rep()) {
        const bool idle = r.rep_passed && t.seq == r.rep_last_seq && t.rtr.empty() && t.aru == t.seq &&
                          t.backlog == 0 && state_ == State::operational;
        t.idle_rotations = idle ? t.idle_rotations + 1 : 0;
        // A safe frame is delivered everywhere one rotation after the rep learnt that
        // every member holds it (that rotation brings each member its second visit): a
        // hold must wait for any safe frame above the safe point the rep had at its
        // previous visit, or it would strand that frame on the others until the hold ends.
        // Or, one rotation sooner, once every other member's receipt covers every safe
        // frame: each learnt the safe point from the others' receipts, and one whose
        // receipt of another was lost asks for the token (safe_stall) instead of waiting
        // out the hold. The token's own knowledge is what counts for the next visit.
        r.rep_may_hold =
            idle && (!r.window.has_safe_frame_above(r.rep_prev_safe) || receipts_cover_safe_frames(r));
        r.rep_prev_safe = r.window.token_safe_point();
    }
    r.last_seen_idle = t.idle_rotations;

    if (state_ == State::operational && check_fail_to_receive(r, t, now)) return;
    const bool recovering = state_ == State::recovery;
    visit(r, t, now, /*may_hold=*/true);
    // An originator's receipt covers its new frames; sent after the token is on its way.
    maybe_send_receipt(r);
    // Deliver after forwarding, to keep the token moving (Corosync does the same).
    deliver(r);
    r.window.free_stable();
    // The rep may hold the token before this node knows a safe frame it holds is safe
    // (a receipt lost): make sure it does not wait out the whole hold for it.
    const bool stall_armed = timer_armed_[static_cast<std::size_t>(TimerId::safe_stall)];
    if (state_ == State::operational && config_.receipts && !stall_armed && safe_frame_waiting(r))
        arm(TimerId::safe_stall, now + config_.hold_cancel_retry_us);
    if (recovering) maybe_install(r, t, now);
}

// Failure to receive (Totem §4.1): the token's aru stays at the same value, lowered by
// the same node, rotation after rotation although frames above it exist: that node
// cannot receive them. The OTHERS exclude it (Corosync makes the node exclude itself,
// which needs the faulty node to notice; the paper's rule does not).
bool Ring::check_fail_to_receive(RingInstance& r, const wt::Token& t, Micros now) {
    if (t.aru_id != 0 && t.aru_id != config_.self && t.aru == r.stuck_aru && t.aru_id == r.stuck_id &&
        seq_gt(t.seq, t.aru)) {
        ++r.stuck_rotations;
    } else {
        r.stuck_aru = t.aru;
        r.stuck_id = t.aru_id;
        r.stuck_rotations = 0;
    }
    if (r.stuck_rotations < config_.fail_to_receive_rotations || !r.is_member(r.stuck_id)) return false;
    ++stats_.fail_to_receive;
    char b[128];
    std::snprintf(b, sizeof b, "node %u failed to receive seq %u for %u rotations: excluded", r.stuck_id,
                  t.aru + 1, r.stuck_rotations);
    const NodeId culprit = r.stuck_id;
    enter_gather(b, now);
    insert_node(gather_.fail, culprit);
    send_join(now);
    return true;
}

void Ring::originate(wt::McastFrame f, RingInstance& r, wt::Token& t) {
    f.header = {r.id, config_.self};
    f.originator = config_.self;
    f.seq = ++t.seq;
    multicast_frame(f);
    const auto stored = r.window.store(std::move(f));
    CONCLAVE_CHECK(stored == ReceiveWindow::Store::stored);
}

void Ring::multicast_frame(const wt::McastFrame& frame) {
    wire::Bytes bytes;
    wt::encode(frame, bytes);
    CONCLAVE_CHECK(bytes.size() <= frame_budget());
    multicast(std::move(bytes));
}

void Ring::visit(RingInstance& r, wt::Token t, Micros now, bool may_hold) {
    const bool recovering = state_ == State::recovery;
    const std::uint32_t backlog = recovering ? static_cast<std::uint32_t>(to_resend_.size()) : queue_.frames_needed();
    // A lingering visit goes on: what it sent so far counts against the allowance and
    // stays in the token's fcc.
    const std::uint32_t before = r.lingering ? r.linger_sent : 0;
    const std::uint32_t full = r.flow.allowance(t.fcc, t.backlog, backlog);
    const std::uint32_t allowed = full > before ? full - before : 0;
    const bool others_quiet = t.fcc == r.flow.previous_sent() && t.backlog == r.flow.previous_backlog();
    std::uint32_t sent = 0;
    std::uint32_t fresh = 0;

    // 1. Retransmissions first (Totem §8): answer every request I can, within allowance.
    std::vector<Seq> rtr;
    rtr.reserve(t.rtr.size());
    for (Seq s : t.rtr) {
        const wt::McastFrame* f = r.window.find(s);
        if (f && sent < allowed && !config_.test_hooks.skip_retransmit) {
            wt::McastFrame copy = *f;
            copy.header.sender = config_.self;  // originator and seq stay as they were
            multicast_frame(copy);
            ++sent;
            ++stats_.retransmits_sent;
            continue;
        }
        // A seq below my store was covered by the safe point: every member has it.
        if (seq_ge(s, r.window.base())) rtr.push_back(s);
    }

    // 2. New frames, each taking seq = ++token.seq (Totem §3.1). Never run further than
    // max_window ahead of my own store (Corosync fcc_rtr_limit), so every receiver's
    // window stays bounded and seqs stay far inside the 2^31 comparison range. In
    // RECOVERY only old-ring frames are sent (new messages wait for the regular
    // configuration).
    if (recovering) {
        send_recovery_frames(r, t, sent, allowed);
    } else {
        const std::uint32_t span = r.window.span_to(t.seq);
        const std::uint32_t headroom = span + config_.window_size < config_.max_window
                                           ? config_.max_window - config_.window_size - span
                                           : 0;
        while (sent < allowed && fresh < headroom && !queue_.empty()) {
            originate(queue_.next_frame(), r, t);
            ++sent;
            ++fresh;
            ++stats_.frames_sent;
        }
    }
    update_recovery_flags(r, t);

    // 3. Ask for what I miss (Totem §3.2), after `miss_count` visits so frames still in
    // flight are not requested; the list stays sorted, unique and bounded.
    r.window.note_high(t.seq);
    std::vector<Seq> missing;
    r.window.collect_missing(config_.miss_count, wt::kMaxRtrEntries, missing);
    rtr.insert(rtr.end(), missing.begin(), missing.end());
    const Seq origin = r.window.base();
    std::sort(rtr.begin(), rtr.end(), [origin](Seq a, Seq b) { return seq_diff(origin, a) < seq_diff(origin, b); });
    rtr.erase(std::unique(rtr.begin(), rtr.end()), rtr.end());
    if (rtr.size() > wt::kMaxRtrEntries) rtr.resize(wt::kMaxRtrEntries);
    t.rtr = std::move(rtr);

    // 4. aru (Totem §3.2): lower it to mine if mine is lower; raise it only if I set it
    // last or nobody did. aru_id = 0 once aru caught up with seq.
    const Seq mine = r.window.my_aru();
    if (seq_lt(mine, t.aru) || t.aru_id == config_.self || t.aru_id == 0) {
        t.aru = mine;
        t.aru_id = t.aru == t.seq ? 0 : config_.self;
    }

    // 5. Flow control: replace my contribution to fcc and backlog.
    const std::uint32_t left = recovering ? static_cast<std::uint32_t>(to_resend_.size()) : queue_.frames_needed();
    r.flow.update_token(t.fcc, t.backlog, before + sent, left);
    r.writer_may_linger = config_.linger_us > 0 && before + sent == 0 && t.fcc > 0 && t.backlog == left;

    // 6. Token hold on an idle ring (Corosync deviation, kept: idle CPU near zero): once
    // every member has every frame and has delivered every safe one (accept_token), the
    // rep keeps the token instead of sending it round for nothing. A sender that finds
    // the token at home (the rep's own clients, or after a hold-cancel) sends at once.
    const bool cancelled = r.cancel_pending;
    r.cancel_pending = false;
    if (config_.self == r.rep()) {
        r.rep_last_seq = t.seq;  // after my own new frames
        r.rep_passed = true;
    }
    if (may_hold && !cancelled && config_.self == r.rep() && r.rep_may_hold &&
        t.idle_rotations >= config_.idle_rotations_before_hold && queue_.empty() && t.rtr.empty() && sent == 0 &&
        r.members.size() > 1) {
        ++stats_.tokens_held;
        r.held = std::move(t);
        arm(TimerId::token_hold, now + config_.hold_us);
        return;
    }
    // 7. Linger: my client's next message is likely on its way (see Config::linger_us).
    if (!cancelled && fresh > 0 && others_quiet && queue_.empty() && t.rtr.empty() && state_ == State::operational &&
        r.members.size() > 1 && now < r.linger_until &&
        !r.window.has_safe_frame_above(r.window.safe_point())) {
        if (!r.lingering) ++stats_.lingers;
        r.lingering = true;
        r.linger_sent = before + sent;
        r.held = std::move(t);
        arm(TimerId::token_hold, r.linger_until);
        return;
    }
    forward(r, std::move(t), now);
}

void Ring::forward(RingInstance& r, wt::Token t, Micros now) {
    r.lingering = false;
    r.linger_sent = 0;
    t.header = {r.id, config_.self};
    t.token_seq = *r.last_token_seq + 1;
    r.window.on_forwarded_aru(t.aru);
    if (r.successor == config_.self) {
        // A singleton ring passes the token to itself: keep it and visit again at once
        // while there is work (queued data, undelivered frames, recovery), else after
        // the hold time. A submit releases it early.
        const bool busy = !queue_.empty() || state_ == State::recovery ||
                          r.window.delivered() != r.window.high() ||
                          !(r.window.safe_point() && *r.window.safe_point() == t.seq);
        r.last_token_seq = t.token_seq - 1;  // the self-visit is accepted as new
        r.held = std::move(t);
        arm(TimerId::token_hold, busy ? now : now + config_.hold_us);
        return;
    }
    r.last_sent_token.clear();
    wt::encode(t, r.last_sent_token);
    CONCLAVE_CHECK(r.last_sent_token.size() <= frame_budget());
    r.last_sent_seq = t.seq;
    effects_.unicasts.push_back(Unicast{r.successor, r.last_sent_token});
    // Token loss downstream (Totem §3.1): resend until a sign the successor got it.
    arm(TimerId::token_retransmit, now + retransmit_after(t));
}

Micros Ring::retransmit_after(const wt::Token& t) const {
    // A token that shows an idle ring (idle rotations already counted, nothing sent,
    // queued or missing anywhere in the last rotation) is one the rep will most likely
    // hold for hold_us: no sign that it arrived can come before that, and resending it
    // after token_retransmit_us would cost every member a retransmission at every hold
    // (hold_us is above token_retransmit_us by default). Such a token is resent after the
    // hold as well, and early enough that the resent one can still arrive before
    // token_loss_us ends the ring. Busy rings keep the short timer.
    const bool quiet = state_ == State::operational && t.idle_rotations >= config_.idle_rotations_before_hold &&
                       t.fcc == 0 && t.backlog == 0 && t.rtr.empty() && t.aru == t.seq;
    if (!quiet) return config_.token_retransmit_us;
    const Micros held = config_.hold_us + config_.token_retransmit_us;
    const Micros latest = config_.token_loss_us - config_.token_retransmit_us;  // validate(): positive
    return std::max(config_.token_retransmit_us, std::min(held, latest));
}

void Ring::release_held_token(RingInstance& r, Micros now) {
    CONCLAVE_CHECK(r.held.has_value());
    wt::Token t = std::move(*r.held);
    r.held.reset();
    cancel(TimerId::token_hold);
    // Out of the rep's idle hold, the visit starts now (a linger's goes on).
    if (!r.lingering) r.linger_until = now + config_.linger_us;
    if (r.successor == config_.self) {
        // Singleton: the held token is the next visit.
        t.token_seq = *r.last_token_seq + 1;
        accept_token(r, std::move(t), now);
        return;
    }
    visit(r, std::move(t), now, /*may_hold=*/false);
    maybe_send_receipt(r);
    deliver(r);
    r.window.free_stable();
}

void Ring::on_mcast(RingInstance& r, wt::McastFrame frame, Micros now) {
    (void)now;
    // A newer frame multicast by my successor proves it holds a token newer than the one
    // I forwarded: stop retransmitting the token.
    if (frame.header.sender == r.successor && r.last_sent_seq && seq_gt(frame.seq, *r.last_sent_seq)) {
        cancel(TimerId::token_retransmit);
        r.last_sent_token.clear();
        r.last_sent_seq.reset();
    }
    const bool encapsulated = (frame.flags & wt::kFrameEncapsulated) != 0;
    if (encapsulated && state_ == State::recovery) on_recovery_frame(frame);
    switch (r.window.store(std::move(frame))) {
        case ReceiveWindow::Store::stored:
            maybe_send_receipt(r);
            fold_receipts(r);  // receipts of others may have come before the frame did
            deliver(r);
            break;
        case ReceiveWindow::Store::too_far:
            ++stats_.frames_too_far;
            break;
        default:
            ++stats_.duplicate_frames;
            break;
    }
}

void Ring::send_hold_cancel(Micros now) {
    wt::HoldCancel h{{installed_->id, config_.self}};
    wire::Bytes bytes;
    wt::encode(h, bytes);
    multicast(std::move(bytes));
    ++stats_.hold_cancels_sent;
    waiting_for_token_ = true;
    // Hold-cancels can be lost too; keep asking until the token shows up.
    arm(TimerId::hold_cancel_retry, now + config_.hold_cancel_retry_us);
}

// Few waiters get a unicast each; more share one multicast (a 64-node ring must not
// cost 63 datagrams per rise).
void Ring::send_watermark_notices(const std::vector<NodeId>& notify) {
    constexpr std::size_t kMaxUnicasts = 4;
    const RingInstance& r = *installed_;
    NodeSet to;
    for (NodeId n : notify)
        if (n != config_.self && r.is_member(n)) insert_node(to, n);
    if (to.empty()) return;
    wire::Bytes bytes;
    wt::encode(wt::WatermarkNotice{{r.id, config_.self}, local_watermark_}, bytes);
    ++stats_.watermark_notices_sent;
    if (to.size() > kMaxUnicasts) {
        multicast(std::move(bytes));
        return;
    }
    for (NodeId n : to) effects_.unicasts.push_back(Unicast{n, bytes});
}

// The originator of a safe frame is the first to learn it is safe (ReceiveWindow): the
// others learn it from this notice one hop later instead of at their next visit, which
// on a three-node ring is up to two hops later. Only for its own safe frames, so a busy
// ring sends at most one per visit of a sender of safe messages.
void Ring::send_safe_notice(RingInstance& r, std::optional<Seq> before) {
    const std::optional<Seq> now = r.window.safe_point();
    if (state_ != State::operational || !now || (before && !seq_gt(*now, *before)) || r.members.size() < 2) return;
    if (!r.window.has_own_safe_frame(before, *now, config_.self)) return;
    wire::Bytes bytes;
    wt::encode(wt::SafeNotice{{r.id, config_.self}, *now}, bytes);
    multicast(std::move(bytes));
    ++stats_.safe_notices_sent;
}

void Ring::on_safe_notice(RingInstance& r, Seq seq) {
    ++stats_.safe_notices_received;
    r.window.raise_safe_point(seq);
    deliver(r);
}

// Receipts (wire ReceiptNotice): only on a lightly loaded ring, only when my aru rose
// over a safe frame that is not known safe yet (nobody waits for anything else), and at
// most once between two token visits: one on the first new frame (a member far from
// the originator gets the token long after its frames), one after the visit (which
// follows the frames a predecessor sent before the token). A busy ring leaves it to the
// token, which carries the same knowledge each rotation at no extra packets.
void Ring::maybe_send_receipt(RingInstance& r) {
    // Unloaded: the rep counted the last rotation idle (the token it released from a hold
    // says so, and a hold now follows a single rotation), or few frames went round.
    if (!config_.receipts || state_ != State::operational || r.members.size() < 2 ||
        r.members.size() > config_.receipt_max_members || !r.receipt_allowed ||
        (r.last_seen_idle == 0 && r.last_fcc > config_.receipt_max_fcc))
        return;
    const Seq aru =
        is_bug_node() && config_.test_hooks.receipt_overclaim ? r.window.high() : r.window.my_aru();
    if (r.receipt_sent && !seq_gt(aru, *r.receipt_sent)) return;
    std::optional<Seq> low = r.window.safe_point();
    if (r.receipt_sent && (!low || seq_gt(*r.receipt_sent, *low))) low = r.receipt_sent;
    if (low && !seq_gt(aru, *low)) return;
    if (!r.window.has_safe_frame_in(low, aru)) return;
    r.receipt_sent = aru;
    r.receipt_allowed = false;
    wire::Bytes bytes;
    wt::encode(wt::ReceiptNotice{{r.id, config_.self}, aru}, bytes);
    multicast(std::move(bytes));
    ++stats_.receipts_sent;
}

void Ring::on_receipt(RingInstance& r, NodeId from, Seq aru) {
    ++stats_.receipts_received;
    const auto it = r.receipts.find(from);
    if (it != r.receipts.end() && !seq_gt(aru, it->second)) return;  // reordered or repeated
    r.receipts[from] = aru;
    if (fold_receipts(r)) deliver(r);
}

std::optional<Seq> Ring::lowest_receipt(const RingInstance& r) const {
    std::optional<Seq> low;
    for (NodeId m : r.members) {
        if (m == config_.self) continue;
        const auto it = r.receipts.find(m);
        if (it == r.receipts.end()) return std::nullopt;  // a member that sent none yet
        low = low ? seq_min(*low, it->second) : it->second;
    }
    return low;
}

bool Ring::receipts_cover_safe_frames(const RingInstance& r) const {
    if (!config_.receipts) return false;
    const std::optional<Seq> low = lowest_receipt(r);
    return low && !r.window.has_safe_frame_above(low);
}

bool Ring::safe_frame_waiting(const RingInstance& r) const {
    return seq_lt(r.window.delivered(), r.window.my_aru()) &&
           r.window.has_safe_frame_in(r.window.delivered(), r.window.my_aru());
}

// safe_stall fired: no token visit for hold_cancel_retry_us while this node held a safe
// frame it could not deliver. The rep is likely holding the token (it saw every receipt;
// this node missed one): a hold-cancel brings the token, whose visit brings the safe point.
void Ring::on_safe_stall(Micros now) {
    if (state_ != State::operational || !installed_) return;
    RingInstance& r = *installed_;
    if (!safe_frame_waiting(r)) return;
    if (now < r.last_visit + config_.hold_cancel_retry_us) {
        arm(TimerId::safe_stall, r.last_visit + config_.hold_cancel_retry_us);  // the token came meanwhile
        return;
    }
    if (r.held) return;  // I hold it myself: my own next visit is due at the hold's end
    if (!waiting_for_token_) send_hold_cancel(now);
}

bool Ring::fold_receipts(RingInstance& r) {
    if (r.receipts.empty()) return false;
    const std::optional<Seq> others = lowest_receipt(r);
    if (!others) return false;
    const Seq low = seq_min(r.window.my_aru(), *others);
    const std::optional<Seq> before = r.window.safe_point();
    if (before && !seq_gt(low, *before)) return false;
    r.window.raise_safe_point(low);
    return r.window.safe_point() != before;
}

void Ring::on_watermark_notice(RingInstance& r, NodeId from, std::uint64_t value) {
    ++stats_.watermark_notices_received;
    auto& a = r.announced[from];
    if (value <= a) return;  // reordered or duplicated: values only rise on a ring
    a = value;
    fold_notices(r);
}

// A member that sent nothing yet counts as 0, so nothing rises before all have.
void Ring::fold_notices(RingInstance& r) {
    std::uint64_t low = local_watermark_;
    for (NodeId m : r.members) {
        if (m == config_.self) continue;
        auto it = r.announced.find(m);
        low = std::min(low, it == r.announced.end() ? 0 : it->second);
    }
    raise_ring_watermark(low);
}

void Ring::raise_ring_watermark(std::uint64_t candidate) {
    if (candidate <= ring_watermark_) return;
    ring_watermark_ = candidate;
    effects_.watermark = ring_watermark_;
}

void Ring::deliver(RingInstance& r) {
    std::vector<Delivery> d;
    const bool recovering = state_ == State::recovery && &r == forming_.get();
    stats_.inconsistent_frames +=
        r.window.deliver(r.reassembler, config_.test_hooks.deliver_safe_early, d, recovering);
    if (is_bug_node() && config_.test_hooks.deliver_out_of_order && d.size() >= 2) std::reverse(d.begin(), d.end());
    if (is_bug_node() && config_.test_hooks.deliver_twice) {
        const std::size_t end = d.size();
        for (std::size_t i = 0; i < end; ++i)
            if ((delivered_messages_ + i) % 8 == 3) d.push_back(d[i]);
    }
    delivered_messages_ += d.size();
    emit(d);
}

void Ring::emit(std::vector<Delivery>& ds) {
    for (auto& d : ds) effects_.events.emplace_back(std::move(d));
    ds.clear();
}

}  // namespace conclave::totem
