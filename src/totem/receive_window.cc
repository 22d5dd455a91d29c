#include "totem/receive_window.h"

#include "totem/check.h"

namespace conclave::totem {

namespace wt = wire::totem;

ReceiveWindow::ReceiveWindow(Seq initial_seq, std::uint32_t max_window)
    : max_window_(max_window),
      base_(initial_seq + 1),
      aru_(initial_seq),
      delivered_(initial_seq),
      high_(initial_seq) {}

void ReceiveWindow::check_invariants() const {
    CONCLAVE_CHECK(seq_diff(base_, high_) + 1 == static_cast<std::int32_t>(slots_.size()));
    CONCLAVE_CHECK(seq_le(base_ - 1, delivered_));
    CONCLAVE_CHECK(seq_le(delivered_, aru_));
    CONCLAVE_CHECK(seq_le(aru_, high_));
}

void ReceiveWindow::note_high(Seq seq) { extend(seq, true); }

void ReceiveWindow::extend(Seq seq, bool bounded) {
    if (!seq_gt(seq, high_)) return;
    // Never grow past max_window slots: such frames are re-requested later.
    const Seq limit = base_ + max_window_ - 1;
    const Seq target = bounded ? seq_min(seq, limit) : seq;
    while (seq_lt(high_, target)) {
        slots_.emplace_back();
        ++high_;
    }
}

ReceiveWindow::Store ReceiveWindow::store(wt::McastFrame frame) { return store_impl(std::move(frame), true); }

ReceiveWindow::Store ReceiveWindow::store_recovered(wt::McastFrame frame) {
    return store_impl(std::move(frame), false);
}

ReceiveWindow::Store ReceiveWindow::store_impl(wt::McastFrame frame, bool bounded) {
    const Seq s = frame.seq;
    if (seq_lt(s, base_)) return Store::too_old;
    if (bounded && seq_diff(base_, s) >= static_cast<std::int32_t>(max_window_)) return Store::too_far;
    if (!bounded && seq_diff(base_, s) >= (1 << 30)) return Store::too_far;
    extend(s, bounded);
    Slot& sl = slot(s);
    if (sl.frame) return Store::duplicate;
    sl.frame = std::move(frame);
    while (seq_lt(aru_, high_) && slot(aru_ + 1).frame) ++aru_;
    return Store::stored;
}

const wt::McastFrame* ReceiveWindow::find(Seq seq) const {
    if (seq_lt(seq, base_) || seq_gt(seq, high_)) return nullptr;
    const Slot& sl = slot(seq);
    return sl.frame ? &*sl.frame : nullptr;
}

void ReceiveWindow::on_token_aru(Seq token_aru) {
    // Once every member held s it holds s forever, so the safe point only moves forward.
    if (prev_token_aru_) {
        const Seq p = seq_min(*prev_token_aru_, token_aru);
        safe_point_ = safe_point_ ? seq_max(*safe_point_, p) : p;
        token_safe_point_ = token_safe_point_ ? seq_max(*token_safe_point_, p) : p;
    }
    prev_token_aru_ = token_aru;
}

void ReceiveWindow::collect_missing(std::uint32_t threshold, std::size_t max, std::vector<Seq>& out) {
    for (Seq s = aru_ + 1; seq_le(s, high_); ++s) {
        Slot& sl = slot(s);
        if (sl.frame) continue;
        ++sl.miss_count;
        if (sl.miss_count >= threshold && out.size() < max) out.push_back(s);
    }
}

bool ReceiveWindow::any_safe_frame(std::optional<Seq> low, Seq high, std::optional<std::uint32_t> originator) const {
    for (Seq s = low ? seq_max(*low + 1, base_) : base_; seq_le(s, high) && seq_le(s, high_); ++s) {
        const auto& f = slot(s).frame;
        if (f && (f->flags & wt::kFrameSafe) && (!originator || f->originator == *originator)) return true;
    }
    return false;
}

bool ReceiveWindow::has_own_safe_frame(std::optional<Seq> low, Seq high, std::uint32_t originator) const {
    return any_safe_frame(low, high, originator);
}

bool ReceiveWindow::has_safe_frame_in(std::optional<Seq> low, Seq high) const {
    return any_safe_frame(low, high, std::nullopt);
}

void ReceiveWindow::raise_safe_point(Seq s) {
    const Seq p = seq_min(s, aru_);
    safe_point_ = safe_point_ ? seq_max(*safe_point_, p) : p;
}

bool ReceiveWindow::has_safe_frame_above(std::optional<Seq> low) const {
    return any_safe_frame(low, high_, std::nullopt);
}

std::vector<wt::McastFrame> ReceiveWindow::frames_above(Seq low) const {
    std::vector<wt::McastFrame> out;
    for (Seq s = seq_max(low + 1, base_); seq_le(s, high_); ++s)
        if (slot(s).frame) out.push_back(*slot(s).frame);
    return out;
}

std::uint32_t ReceiveWindow::deliver(Reassembler& reassembler, bool ignore_safe,
                                     std::vector<Delivery>& out, bool recovering) {
    std::uint32_t inconsistent = 0;
    while (seq_lt(delivered_, aru_)) {
        const Seq next = delivered_ + 1;
        const wt::McastFrame& f = *slot(next).frame;
        if (f.flags & wt::kFrameEncapsulated) {  // consumed by recovery, not delivered
            delivered_ = next;
            continue;
        }
        if (recovering) break;
        if ((f.flags & wt::kFrameSafe) && !ignore_safe &&
            !(safe_point_ && seq_le(next, *safe_point_)))
            break;  // EVS: a safe frame blocks everything behind it
        if (!reassembler.on_frame(f, out)) ++inconsistent;
        delivered_ = next;
    }
    check_invariants();
    return inconsistent;
}

void ReceiveWindow::free_stable() {
    if (!safe_point_) return;
    const Seq upto = seq_min(*safe_point_, delivered_);
    while (seq_le(base_, upto)) {
        slots_.pop_front();
        ++base_;
    }
    check_invariants();
}

std::uint32_t ReceiveWindow::span_to(Seq seq) const {
    const std::int32_t d = seq_diff(base_, seq);
    return d < 0 ? 0u : static_cast<std::uint32_t>(d) + 1;
}

}  // namespace conclave::totem
