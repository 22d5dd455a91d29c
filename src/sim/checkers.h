// Safety and liveness checkers over a recorded trace (DESIGN.md §9). Each checker is a
// function of the trace alone, so a new property (EVS configurations, one quorate
// configuration at a time, ... next issue) is one more function in the list.
//
// Properties, checked in this order (the first violated one is reported):
//   "no creation"           every delivered message was submitted, with the same bytes
//                           and guarantee
//   "no duplicate delivery" no node delivers a message twice
//   "total order agreement" the same position holds the same message on every node
//   "per-sender FIFO"       a node delivers one sender's messages in submission order
//   "safe delivery"         a safe message is delivered only once every member holds
//                           every frame of it
//   "watermark bound"       the ring watermark never exceeds any member's local value
//   "liveness"              every submitted message is delivered on every node by the end
//                           of the run (the run ends a bounded time after faults stop)
#pragma once

#include <cstdint>
#include <optional>
#include <string>

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
std::optional<Violation> check_liveness(const Trace& t, std::uint32_t nodes);

// All of the above, in order.
std::optional<Violation> check_all(const Trace& t, std::uint32_t nodes);

}  // namespace conclave::sim
