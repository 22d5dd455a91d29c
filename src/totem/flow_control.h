// Token-based flow control (Totem §8; Corosync fcc_calculate / fcc_token_update).
//
// Why: every member buffers every frame until the safe point passes it, so the ring as a
// whole must not multicast faster than the slowest member drains. The token carries
// fcc (frames multicast during the last rotation) and backlog (sum of the members'
// queued frames). A visit may send at most
//     min(max_messages, window_size - fcc_of_others)
// and, when the ring's backlog exceeds window_size, at most its fair share
//     window_size * my_backlog / ring_backlog   (at least 1 so nobody starves).
// Retransmissions are sent first and count against the same allowance (Totem §8: a
// retransmit costs the receivers as much as a new frame). Each node then replaces its own
// previous contribution in fcc and backlog, so both fields describe one rotation.
// Pure arithmetic; the only state is this node's previous contributions.
#pragma once

#include <cstdint>

namespace conclave::totem {

class FlowControl {
public:
    FlowControl(std::uint32_t window_size, std::uint32_t max_messages)
        : window_size_(window_size), max_messages_(max_messages) {}

    // Frames (retransmits + new) this node may multicast on this token visit.
    std::uint32_t allowance(std::uint32_t token_fcc, std::uint32_t token_backlog,
                            std::uint32_t my_backlog) const;

    // After the visit: `sent` frames went out and `my_backlog` frames remain queued.
    // Rewrites the token's fcc and backlog with this node's new contribution.
    void update_token(std::uint32_t& token_fcc, std::uint32_t& token_backlog, std::uint32_t sent,
                      std::uint32_t my_backlog);

    std::uint32_t previous_sent() const { return prev_sent_; }
    std::uint32_t previous_backlog() const { return prev_backlog_; }

private:
    std::uint32_t window_size_;
    std::uint32_t max_messages_;
    std::uint32_t prev_sent_ = 0;     // my contribution to token.fcc
    std::uint32_t prev_backlog_ = 0;  // my contribution to token.backlog
};

}  // namespace conclave::totem
