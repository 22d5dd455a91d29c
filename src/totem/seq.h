// Serial-number arithmetic on 32-bit frame seqs (RFC 1982 style).
//
// Why: seq is 32 bits on the wire (like Corosync) and may wrap past 2^32 on a long-lived
// ring; every comparison of two seqs goes through these helpers, which are correct as
// long as the two values are less than 2^31 apart. The core keeps every live window far
// below that (flow control bounds how far token.seq may run ahead of a node's store).
#pragma once

#include <cstdint>

namespace conclave::totem {

using Seq = std::uint32_t;

// Signed distance from a to b (b - a), valid when |b - a| < 2^31.
constexpr std::int32_t seq_diff(Seq a, Seq b) {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(b - a));
}
constexpr bool seq_lt(Seq a, Seq b) { return seq_diff(a, b) > 0; }
constexpr bool seq_le(Seq a, Seq b) { return seq_diff(a, b) >= 0; }
constexpr bool seq_gt(Seq a, Seq b) { return seq_lt(b, a); }
constexpr bool seq_ge(Seq a, Seq b) { return seq_le(b, a); }
constexpr Seq seq_min(Seq a, Seq b) { return seq_lt(a, b) ? a : b; }
constexpr Seq seq_max(Seq a, Seq b) { return seq_lt(a, b) ? b : a; }

}  // namespace conclave::totem
