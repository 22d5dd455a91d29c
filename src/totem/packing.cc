#include "totem/packing.h"

#include <algorithm>

#include "totem/check.h"

namespace conclave::totem {

namespace wt = wire::totem;

SendQueue::SendQueue(std::size_t chunk_budget, std::size_t max_bytes, std::size_t max_messages)
    : chunk_budget_(chunk_budget), max_bytes_(max_bytes), max_messages_(max_messages) {
    CONCLAVE_CHECK(chunk_budget_ > wt::kChunkHeaderSize);
}

SubmitResult SendQueue::push(wire::Bytes data, Guarantee guarantee) {
    if (data.size() > wt::kMaxMessageSize) return {SubmitStatus::too_large, 0};
    if (!queue_.empty() &&
        (queue_.size() >= max_messages_ || queued_bytes_ + data.size() > max_bytes_))
        return {SubmitStatus::try_again, 0};
    const std::uint64_t id = next_msg_id_++;
    queued_bytes_ += data.size();
    queue_.push_back(Pending{id, guarantee, std::move(data)});
    return {SubmitStatus::ok, id};
}

std::uint32_t SendQueue::frames_needed() const {
    if (queue_.empty()) return 0;
    const std::size_t per_frame = chunk_budget_ - wt::kChunkHeaderSize;
    const std::size_t n = (queued_bytes_ + per_frame - 1) / per_frame;
    return static_cast<std::uint32_t>(std::max<std::size_t>(n, 1));
}

void SendQueue::rewind_partial() {
    if (queue_.empty()) return;
    Pending& p = queue_.front();
    queued_bytes_ += p.sent;
    p.sent = 0;
}

void SendQueue::set_first_msg_id(std::uint64_t first) {
    CONCLAVE_CHECK(queue_.empty() && next_msg_id_ == 1 && first > 0);
    next_msg_id_ = first;
}

void SendQueue::clear_for_test() {
    queue_.clear();
    queued_bytes_ = 0;
}

wt::McastFrame SendQueue::next_frame() {
    CONCLAVE_CHECK(!queue_.empty());
    wt::McastFrame f;
    f.first_msg_id = queue_.front().msg_id;
    std::size_t room = chunk_budget_;
    while (!queue_.empty() && room >= wt::kChunkHeaderSize && f.chunks.size() < wt::kMaxChunks) {
        Pending& p = queue_.front();
        const std::size_t left = p.data.size() - p.sent;
        const std::size_t n = std::min(left, room - wt::kChunkHeaderSize);
        if (n == 0 && left > 0) break;  // only a header would fit
        // Do not open a large message with a sliver at the end of a packed frame: it
        // would cost a chunk header and a frame slot for a few bytes.
        if (p.sent == 0 && n < left && !f.chunks.empty() && n < 64) break;
        wt::Chunk c;
        c.flags = static_cast<std::uint8_t>((p.sent == 0 ? wt::kChunkFirst : 0) |
                                            (p.sent + n == p.data.size() ? wt::kChunkLast : 0) |
                                            (p.guarantee == Guarantee::safe ? wt::kChunkSafe : 0));
        c.total_size = static_cast<std::uint32_t>(p.data.size());
        c.data.assign(p.data.begin() + static_cast<std::ptrdiff_t>(p.sent),
                      p.data.begin() + static_cast<std::ptrdiff_t>(p.sent + n));
        if (p.guarantee == Guarantee::safe) f.flags |= wt::kFrameSafe;
        room -= wt::kChunkHeaderSize + n;
        p.sent += n;
        queued_bytes_ -= n;
        f.chunks.push_back(std::move(c));
        if (p.sent < p.data.size()) break;  // frame full in the middle of a message
        queue_.pop_front();
    }
    CONCLAVE_CHECK(!f.chunks.empty());
    return f;
}

bool Reassembler::on_frame(const wt::McastFrame& frame, std::vector<Delivery>& out) {
    bool consistent = true;
    for (std::size_t j = 0; j < frame.chunks.size(); ++j) {
        const wt::Chunk& c = frame.chunks[j];
        const std::uint64_t id = frame.first_msg_id + j;
        const Guarantee g = (c.flags & wt::kChunkSafe) ? Guarantee::safe : Guarantee::agreed;
        auto it = partial_.find(frame.originator);
        if (c.flags & wt::kChunkFirst) {
            if (it != partial_.end()) {  // previous message never finished
                consistent = false;
                partial_.erase(it);
            }
            if (c.flags & wt::kChunkLast) {  // whole message in one chunk: no copy kept
                out.push_back(Delivery{frame.originator, id, frame.seq, g, c.data});
                continue;
            }
            Partial p{id, c.total_size, g, {}};
            p.data.reserve(c.total_size);  // bounded by kMaxMessageSize (decoder checked)
            it = partial_.emplace(frame.originator, std::move(p)).first;
        } else if (it == partial_.end() || it->second.msg_id != id ||
                   it->second.total_size != c.total_size) {
            consistent = false;
            if (it != partial_.end()) partial_.erase(it);
            continue;
        }
        Partial& p = it->second;
        if (p.data.size() + c.data.size() > p.total_size) {
            consistent = false;
            partial_.erase(it);
            continue;
        }
        p.data.insert(p.data.end(), c.data.begin(), c.data.end());
        if (c.flags & wt::kChunkLast) {
            if (p.data.size() != p.total_size) {
                consistent = false;
            } else {
                out.push_back(Delivery{frame.originator, id, frame.seq, p.guarantee, std::move(p.data)});
            }
            partial_.erase(it);
        }
    }
    return consistent;
}

std::size_t Reassembler::partial_bytes() const {
    std::size_t n = 0;
    for (const auto& [node, p] : partial_) n += p.data.size();
    return n;
}

}  // namespace conclave::totem
