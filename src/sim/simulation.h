// One simulated run per seed: N rings (src/totem, the real core) on one thread with a
// virtual clock, the seeded network of network.h, a random workload, a recorded trace
// and the checkers of checkers.h.
//
// Run shape: every node starts at t=0 with no member list (a `join` fault starts one
// later) and forms the ring through the membership protocol; `msgs` messages (1 B ..
// max_size, skewed small, agreed and safe mixed) are submitted at random times by random
// live senders during the workload phase, retried after a pause when the core says
// TryAgain. Faults are on until the heal time: packet faults all along, and with
// membership faults 1..3 episodes of partition, one-way links, crash (half of them a
// clean leave first) with restart, and pause. At the heal time every link comes back
// and crashed nodes restart; the run ends when every live node is quiescent in one ring
// of all live nodes, or at the liveness bound (heal + kLivenessBoundUs).
//
// Timers are the core's defaults except token retransmit and hold, which the simulated
// network's delays (<= ~7 ms) allow to be shorter.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "sim/checkers.h"
#include "sim/options.h"
#include "sim/prng.h"
#include "sim/trace.h"
#include "totem/config.h"

namespace conclave::sim {

inline constexpr std::uint64_t kWorkloadUs = 200'000;
inline constexpr std::uint64_t kHealUs = 400'000;
// With membership faults: a longer fault phase (a crash takes ~1.2 s to be excluded).
inline constexpr std::uint64_t kMembershipWorkloadUs = 2'500'000;
inline constexpr std::uint64_t kMembershipHealUs = 3'000'000;
inline constexpr std::uint64_t kLivenessBoundUs = 10'000'000;

struct SeedResult {
    std::uint64_t seed = 0;
    std::uint32_t nodes = 0;
    std::uint64_t submitted = 0;  // messages accepted by the cores
    std::uint64_t delivered = 0;  // deliveries summed over nodes
    std::uint64_t end_time_us = 0;
    std::uint64_t malformed = 0;  // packets any core refused to decode (must stay 0)
    std::uint64_t try_again = 0;  // submits refused by a full queue (then retried)
    std::uint64_t tokens_held = 0, lingers = 0, hold_cancels = 0, token_retransmits = 0, retransmits = 0;
    std::uint64_t rings_installed = 0, gathers = 0;
    // Failover: microseconds from a crash to the last survivor's next regular
    // configuration (crashes with no other fault in between).
    std::vector<std::uint64_t> failovers;
    std::optional<Violation> violation;
    Trace trace;
};

// The ring size a seed runs with (drawn from its own stream, so replaying a seed with
// --nodes fixed to that size reproduces the run exactly).
std::uint32_t nodes_for_seed(const SimOptions& o, std::uint64_t seed);

SeedResult run_seed(const SimOptions& o, std::uint64_t seed);

// The ring settings drawn per seed, the same in both simulators, so that faults meet each
// variant often: receipts at any load on odd seeds (the default sends them only on an
// unloaded ring, rare under these workloads), and the token linger off, at its default
// or long (2 ms, a hop's delay here) by seed modulo 3.
void draw_seed_settings(totem::Config& c, std::uint64_t seed);

// A partition's random split of nodes 1..n (bit i-1 = node i on one side), both sides
// non-empty; n up to 64.
std::uint64_t draw_split(Prng& rng, std::uint32_t n);

// A few readable lines of the trace around a violation.
std::string excerpt(const SeedResult& r, std::size_t max_lines = 12);

}  // namespace conclave::sim
