// Effects: what the pure core asks its driver (runtime or simulator) to do after an
// event. The etcd-raft "Ready" model (STYLE.md): the core appends effects while it
// handles an event; the driver takes them with Ring::take_effects() and performs each
// vector in its order, multicasts before unicasts (a token never overtakes the frames it
// announces). Deliveries may go before or after the sends: the runtime delivers first
// (its local clients need not wait for the network stack), the simulators send first.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "totem/config.h"
#include "wire/bytes.h"

namespace conclave::totem {

enum class Guarantee : std::uint8_t { agreed = 0, safe = 1 };

enum class TimerId : std::uint8_t {
    token_retransmit = 0,  // resend the last forwarded token (or commit token)
    token_hold = 1,        // release a held token (a singleton ring's next visit too)
    hold_cancel_retry = 2, // re-multicast a hold-cancel
    token_loss = 3,        // no token for token_loss_us: form a new ring
    join = 4,              // re-multicast the join (GATHER)
    consensus = 5,         // fail the nodes that did not answer (GATHER)
    merge_detect = 6,      // the rep multicasts a merge-detect
    safe_stall = 7,        // a member still holds a safe frame it may not deliver: ask for the token
};
inline constexpr int kTimerCount = 8;

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
    // Delivered in a transitional configuration after a hole in the old ring's order
    // (only transitional members' own messages go past one): not part of the prefix of
    // the old ring's order that every member of the old ring delivers the same way.
    bool after_hole = false;
};

// A configuration change (Extended Virtual Synchrony, Moser et al. ICDCS'94; DESIGN.md
// §5). At every change a node delivers, in this order: the old ring's messages that are
// still deliverable in the old regular configuration, a TRANSITIONAL configuration
// (members of the new ring that come from the same old ring), the remaining old-ring
// messages of transitional members, then the REGULAR configuration of the new ring.
struct ConfigChange {
    enum class Kind : std::uint8_t { transitional = 0, regular = 1 };
    Kind kind = Kind::regular;
    wire::totem::RingId ring_id;   // the new ring's id (for both kinds)
    std::vector<NodeId> members;   // ascending
    std::vector<NodeId> left;      // transitional: old members not in it
    std::vector<NodeId> joined;    // regular: new members not in the transitional one
};

// Deliveries and configuration changes in one stream: their relative order is the EVS
// contract.
using Event = std::variant<Delivery, ConfigChange>;

struct Effects {
    std::vector<Unicast> unicasts;
    // To every node that may hear us: all configured nodes, not only ring members (joins,
    // merge-detect and foreign frames are how separate rings find each other).
    std::vector<wire::Bytes> multicasts;
    std::vector<TimerOp> timers;
    std::vector<Event> events;            // deliveries and configuration changes, in order
    std::optional<std::uint64_t> watermark;  // the ring watermark changed to this value
    std::vector<std::string> log;         // membership transitions, for the daemon's log
    bool empty() const {
        return unicasts.empty() && multicasts.empty() && timers.empty() && events.empty() &&
               !watermark && log.empty();
    }
};

}  // namespace conclave::totem
