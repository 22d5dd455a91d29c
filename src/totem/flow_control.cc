#include "totem/flow_control.h"

#include <algorithm>

namespace conclave::totem {
namespace {
std::uint32_t sub_floor0(std::uint32_t a, std::uint32_t b) { return a > b ? a - b : 0; }
}  // namespace

std::uint32_t FlowControl::allowance(std::uint32_t token_fcc, std::uint32_t token_backlog,
                                     std::uint32_t my_backlog) const {
    // My own last contribution is still inside token.fcc; it is being replaced now.
    const std::uint32_t others_sent = sub_floor0(token_fcc, prev_sent_);
    std::uint32_t allowed = std::min(max_messages_, sub_floor0(window_size_, others_sent));
    // The ring's backlog as of now: others' last contributions plus my current queue.
    const std::uint64_t ring_backlog =
        std::uint64_t{sub_floor0(token_backlog, prev_backlog_)} + my_backlog;
    if (ring_backlog > window_size_ && my_backlog > 0) {
        const std::uint64_t share = std::uint64_t{window_size_} * my_backlog / ring_backlog;
        allowed = std::min<std::uint32_t>(allowed, static_cast<std::uint32_t>(std::max<std::uint64_t>(share, 1)));
    }
    return allowed;
}

void FlowControl::update_token(std::uint32_t& token_fcc, std::uint32_t& token_backlog,
                               std::uint32_t sent, std::uint32_t my_backlog) {
    token_fcc = sub_floor0(token_fcc, prev_sent_) + sent;
    token_backlog = sub_floor0(token_backlog, prev_backlog_) + my_backlog;
    prev_sent_ = sent;
    prev_backlog_ = my_backlog;
}

}  // namespace conclave::totem
