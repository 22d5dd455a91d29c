// Effects: what the pure core asks its driver (runtime or simulator) to do after an
// event. The etcd-raft "Ready" model (STYLE.md): the core appends effects while it
// handles an event; the driver takes them with Ring::take_effects() and performs them in
// the listed order of each vector (sends first, then timers, then deliveries).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "totem/config.h"
#include "wire/bytes.h"

namespace conclave::totem {

enum class Guarantee : std::uint8_t { agreed = 0, safe = 1 };

enum class TimerId : std::uint8_t {
    token_retransmit = 0,  // resend the last forwarded token
    token_hold = 1,        // release a held token
    hold_cancel_retry = 2, // re-multicast a hold-cancel
};
inline constexpr int kTimerCount = 3;

struct Unicast {
    NodeId to = 0;
    wire::Bytes bytes;  // an encoded totem packet, to be sealed and sent
};

struct TimerOp {
    TimerId timer{};
    bool arm = false;      // false: cancel
    Micros deadline = 0;   // absolute, in the driver's clock (valid when arm)
};

struct Delivery {
    NodeId sender = 0;       // originator of the message
    std::uint64_t msg_id = 0;  // originator's submission number (1, 2, ...)
    Seq seq = 0;             // seq of the frame that completed the message
    Guarantee guarantee = Guarantee::agreed;
    wire::Bytes payload;
};

struct Effects {
    std::vector<Unicast> unicasts;
    std::vector<wire::Bytes> multicasts;  // to every other member
    std::vector<TimerOp> timers;
    std::vector<Delivery> deliveries;     // in total order
    std::optional<std::uint64_t> watermark;  // the ring watermark changed to this value
    bool empty() const {
        return unicasts.empty() && multicasts.empty() && timers.empty() && deliveries.empty() &&
               !watermark;
    }
};

}  // namespace conclave::totem
