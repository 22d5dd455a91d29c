// Static parameters of one ring member. All times are in microseconds of the caller's
// monotonic clock (the core never reads a clock: time enters as `now`, DESIGN.md §2.2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "totem/seq.h"
#include "wire/totem.h"

namespace conclave::totem {

using NodeId = std::uint32_t;
using Micros = std::uint64_t;

// Test-only switches that plant known bugs, so the simulator's checkers can be shown to
// catch them (issue 3 item 4). Every field defaults to off; nothing but tests sets them.
// Issue 4 adds one bug per EVS checker; "the bug node" is the node with `bug_node` set.
struct TestHooks {
    bool skip_retransmit = false;       // never answer retransmit requests
    bool deliver_out_of_order = false;  // the highest node reverses the messages of a frame
    bool deliver_twice = false;         // the highest node delivers some messages twice
    bool deliver_safe_early = false;    // safe frames delivered as soon as agreed
    bool receipt_overclaim = false;     // the bug node's receipts claim every frame it knows of
    // Membership / EVS bugs. Each acts only where bug_node is true.
    bool bug_node = false;
    bool skip_transitional = false;      // never delivers the transitional configuration
    bool transitional_all_new = false;   // transitional configuration = all new members
    bool drop_recovered = false;         // drops others' old-ring messages at a change
    bool old_after_regular = false;      // delivers old-ring messages after the new regular
    bool drop_queue_on_change = false;   // forgets its queued messages at a change
    bool no_merge = false;               // never sends merge-detect, ignores foreign rings
};

struct Config {
    NodeId self = 0;
    // Normal start: empty. The node GATHERs with whoever it hears and forms a ring (a
    // singleton if nobody answers), as Totem does at start (Totem §4.3).
    // Unit tests only: a fixed ring to start in OPERATIONAL right away (every member
    // must be given the same list and ring id; rep = the lowest member).
    std::vector<NodeId> members;
    wire::totem::RingId ring_id{};
    Seq initial_seq = 0;             // every ring's first frame gets initial_seq + 1

    std::size_t mtu = 1500;          // path MTU; frames stay within frame_budget(mtu)

    // Flow control (Totem §8). Corosync's defaults are 50 / 17; on the 3-node bench
    // (tools/bench ring, one sender) 160 / 60 moves 1 KiB messages ~1.3-1.6x faster:
    // the cost of a token visit (wake-up, token open/seal/send, timers) is paid once per
    // 60 frames instead of 17. A burst of 60 frames is ~90 KB, far below the 8 MiB
    // socket buffers the transport asks for.
    std::uint32_t window_size = 160;
    std::uint32_t max_messages = 60;
    // Frames a node keeps between its oldest retained frame and the newest it accepts.
    // New frames are not multicast past this distance from the sender's own store.
    std::uint32_t max_window = 4096;

    // Retransmission (Totem §3.2): a missing seq goes on the token after this many visits.
    std::uint32_t miss_count = 2;

    // Bounded send queue (DESIGN.md §5 back-pressure): submit says TryAgain beyond these.
    std::size_t send_queue_bytes = 4u << 20;
    std::size_t send_queue_messages = 4096;

    // Timers.
    // Resend the last token if no sign it arrived; hold_us later for a token that shows
    // an idle ring, which the rep will likely hold (Ring::retransmit_after).
    Micros token_retransmit_us = 30'000;
    // How long an idle rep holds the token. Anyone with something to send takes it at
    // once (hold-cancel), and watermark rises go out in notices, so this only sets how
    // often an idle ring goes round (idle CPU: 0.043 cores for 3 nodes at 10 ms, 0.017
    // at 50 ms on the bench machine) and how late a watermark whose notice was lost is.
    Micros hold_us = 50'000;
    Micros hold_cancel_retry_us = 5'000;  // re-multicast hold-cancel while still waiting
    // Idle rotations (nothing new, everything everywhere) before the rep holds the token;
    // it never holds while a safe frame may still be undelivered somewhere.
    std::uint32_t idle_rotations_before_hold = 1;
    // Linger: a node that sent its own agreed messages on an otherwise quiet ring (no
    // other sender, nothing to retransmit, no safe frame waiting) keeps the token up to
    // this long from its arrival, so that its client's next message goes out at once
    // instead of a rotation later (a client that waits for each delivery before sending
    // the next: one token rotation per message without it). A hold-cancel or the
    // deadline sends the token on. Another member's message waits at most this long, and
    // usually one hop: a member whose last visit saw only others send multicasts a
    // hold-cancel with its next message (every member but the rep does anyway, for the
    // rep's idle hold; Ring::submit).
    // 0: off. Below token_retransmit_us.
    Micros linger_us = 500;
    // Receipts (wire ReceiptNotice): while the last token seen carried at most
    // `receipt_max_fcc` new frames or the rep's count of idle rotations, a member
    // multicasts its aru as soon as it rises over a safe frame not yet known safe, so
    // every member learns a safe point one hop after the frame reached everyone rather
    // than after the token's rotation. Default: only on an unloaded ring (a lone durable
    // write, where the hops are the latency). Busier rings leave it to the token, which
    // carries the same knowledge at no extra packets: on the bench machine (2 vCPUs for 3
    // daemons) receipts at 8 concurrent puts cost more in packets than they saved.
    bool receipts = true;
    std::uint32_t receipt_max_fcc = 0;
    // Every member multicasts a receipt for a lone safe message: N multicasts and
    // N x (N - 1) receptions, against the N token hops they save. On larger rings that
    // is more packets per message than everything else together, so they leave it to
    // the token.
    std::uint32_t receipt_max_members = 8;

    // Membership (Totem §4; DESIGN.md §5 "faster failover"). Defaults: a dead node is
    // excluded and the survivors operational in token_loss + consensus + a few round
    // trips (~1.2 s), while a node paused for 500 ms (plus a held token and a rotation)
    // never looks dead. None of them grows with the ring size: consensus ends as soon
    // as every node still heard from agrees, instead of waiting out a timer sized for
    // the largest ring (Corosync: token + 650 ms/node, consensus = 1.2 x token).
    Micros token_loss_us = 1'000'000;     // no token for this long: form a new ring
    Micros join_interval_us = 50'000;     // re-multicast the join while in GATHER
    // Nodes that sent no join this long after GATHER began are failed; a second expiry
    // without agreement fails every node that did not send a matching join (Totem §4.3).
    Micros consensus_us = 200'000;
    Micros merge_detect_us = 100'000;     // the rep's merge-detect period
    // Others exclude a node that kept the token's aru stuck for this many rotations
    // while frames above it existed (Totem §4.1 "failure to receive").
    std::uint32_t fail_to_receive_rotations = 50;
    // submit() while not OPERATIONAL queues into the same bounded send queue.

    TestHooks test_hooks{};
};

// Returns an empty string when the configuration is usable, else the reason.
std::string validate(const Config& c);

// The cluster-wide ring settings kept in the replicated state (`conclavectl totem set`;
// keys as store::totem_keys(): token, consensus, join, merge, hold, token_retransmit in
// milliseconds, window_size and max_messages as counts) laid over `base`. Keys this
// build does not know are ignored.
Config with_settings(Config base, const std::map<std::string, std::uint64_t>& settings);

}  // namespace conclave::totem
