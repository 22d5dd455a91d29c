// Safety and liveness checkers over a recorded trace (DESIGN.md §9). Each checker is a
// function of the trace alone (plus who is alive at the end), so a new property is one
// more function in the list.
//
// A node's history restarts at each `start` event (a crash loses volatile state). A
// configuration is named by (kind, ring id); the messages a node delivers between two
// configuration events are delivered "in" the earlier one.
//
// Properties, checked in this order (the first violated one is reported):
//   "no creation"           every delivered message was submitted, with the same bytes
//                           and guarantee
//   "no duplicate delivery" no node delivers a message twice
//   "total order agreement" any two nodes deliver the messages they both deliver in the
//                           same relative order
//   "per-sender FIFO"       a node delivers one sender's messages in submission order
//   "safe delivery"         a safe message delivered in a regular configuration was held
//                           (every frame of it) by every member of that configuration
//   "watermark bound"       the ring watermark never exceeds the local value of any
//                           member of the node's configuration
//   "transitional configuration"  a transitional configuration between regular P and
//                           regular R is P ∩ R restricted to the nodes whose previous
//                           regular configuration was P (old ∩ new of those that move
//                           together)
//   "configuration agreement"  one configuration id always has one member list; nodes
//                           that move together from P to R deliver the same
//                           transitional configuration in between
//   "one configuration per message"  a message is delivered in the regular
//                           configuration of the ring that sequenced it, or in a
//                           transitional configuration following that one; never in two
//                           regular configurations
//   "same message set"      members of a configuration that deliver the same next
//                           configuration delivered the same set of messages in it
//   "self delivery"         a message accepted from a node that neither crashes nor
//                           leaves afterwards is delivered to that node
//   "membership liveness"   at the end (a bounded time after faults stop) every live node
//                           is in one regular configuration of exactly the live nodes
//   "liveness"              without membership faults: every submitted message is
//                           delivered on every node
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sim/trace.h"

namespace conclave::sim {

struct Violation {
    std::string property;
    std::string detail;
    std::size_t index = 0;  // trace event where it shows (the end for liveness)
    std::uint32_t node = 0;
};

std::optional<Violation> check_no_creation(const Trace& t);
std::optional<Violation> check_no_duplicate(const Trace& t);
std::optional<Violation> check_total_order(const Trace& t, std::uint32_t nodes);
std::optional<Violation> check_fifo(const Trace& t);
std::optional<Violation> check_safe(const Trace& t, std::uint32_t nodes);
std::optional<Violation> check_watermark(const Trace& t, std::uint32_t nodes);
std::optional<Violation> check_transitional(const Trace& t, std::uint32_t nodes);
std::optional<Violation> check_config_agreement(const Trace& t, std::uint32_t nodes);
std::optional<Violation> check_one_config_per_message(const Trace& t, std::uint32_t nodes);
std::optional<Violation> check_same_message_set(const Trace& t, std::uint32_t nodes);
std::optional<Violation> check_self_delivery(const Trace& t);
std::optional<Violation> check_membership_liveness(const Trace& t, const std::vector<std::uint32_t>& live);
std::optional<Violation> check_liveness(const Trace& t, std::uint32_t nodes);

// All of the above, in order. `live`: nodes up at the end; `membership_faults`: the run
// had partitions, crashes, pauses or joins (then "liveness" is not expected).
std::optional<Violation> check_all(const Trace& t, std::uint32_t nodes, const std::vector<std::uint32_t>& live,
                                   bool membership_faults);

}  // namespace conclave::sim
