// Static parameters of one ring member. All times are in microseconds of the caller's
// monotonic clock (the core never reads a clock: time enters as `now`, DESIGN.md §2.2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "totem/seq.h"
#include "wire/totem.h"

namespace conclave::totem {

using NodeId = std::uint32_t;
using Micros = std::uint64_t;

// Test-only switches that plant known bugs, so the simulator's checkers can be shown to
// catch them (issue 3 item 4). Every field defaults to off; nothing but tests sets them.
struct TestHooks {
    bool skip_retransmit = false;       // never answer retransmit requests
    bool deliver_out_of_order = false;  // the highest node reverses the messages of a frame
    bool deliver_twice = false;         // the highest node delivers some messages twice
    bool deliver_safe_early = false;    // safe frames delivered as soon as agreed
};

struct Config {
    NodeId self = 0;
    std::vector<NodeId> members;     // the fixed ring (any order; sorted by the core)
    wire::totem::RingId ring_id{};   // rep must be the lowest member
    Seq initial_seq = 0;             // first frame gets initial_seq + 1 (tests start near 2^32)

    std::size_t mtu = 1500;          // path MTU; frames stay within frame_budget(mtu)

    // Flow control (Totem §8; Corosync defaults 50 / 17).
    std::uint32_t window_size = 50;
    std::uint32_t max_messages = 17;
    // Frames a node keeps between its oldest retained frame and the newest it accepts.
    // New frames are not multicast past this distance from the sender's own store.
    std::uint32_t max_window = 4096;

    // Retransmission (Totem §3.2): a missing seq goes on the token after this many visits.
    std::uint32_t miss_count = 2;

    // Bounded send queue (DESIGN.md §5 back-pressure): submit says TryAgain beyond these.
    std::size_t send_queue_bytes = 4u << 20;
    std::size_t send_queue_messages = 4096;

    // Timers.
    Micros token_retransmit_us = 30'000;  // resend the last token if no sign it arrived
    Micros hold_us = 10'000;              // how long an idle rep holds the token
    Micros hold_cancel_retry_us = 5'000;  // re-multicast hold-cancel while still waiting
    std::uint32_t idle_rotations_before_hold = 3;

    TestHooks test_hooks{};
};

// Returns an empty string when the configuration is usable, else the reason.
std::string validate(const Config& c);

}  // namespace conclave::totem
