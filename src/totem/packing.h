// Packing and fragmentation (the job of Corosync's totempg, DESIGN.md §4 last bullet).
//
// Send side (SendQueue): the bounded queue of submitted application messages, cut into
// frames: many small messages are packed into one frame, a large one is split into
// fragments over several frames; every encoded frame stays within the frame budget of
// the configured MTU. Receive side (Reassembler): frames delivered in seq order are
// turned back into whole messages, per originator.
//
// Why per-originator reassembly is enough: an originator multicasts its frames in queue
// order and the ring delivers frames in seq order, so the fragments of one message reach
// every member consecutive among that originator's frames (per-sender FIFO, Totem §2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <vector>

#include "totem/effects.h"
#include "wire/totem.h"

namespace conclave::totem {

enum class SubmitStatus : std::uint8_t {
    ok = 0,
    try_again = 1,  // the send queue is full: retry after deliveries drain it
    too_large = 2,  // larger than wire::totem::kMaxMessageSize: never accepted
};

struct SubmitResult {
    SubmitStatus status = SubmitStatus::ok;
    std::uint64_t msg_id = 0;  // valid when ok; the id deliveries will carry
};

class SendQueue {
public:
    // chunk_budget: bytes of chunks (headers + data) one frame may carry.
    SendQueue(std::size_t chunk_budget, std::size_t max_bytes, std::size_t max_messages);

    // An empty queue always takes one message (so max_bytes below 1 MiB cannot wedge a
    // big message); otherwise the bounds apply.
    SubmitResult push(wire::Bytes data, Guarantee guarantee);

    bool empty() const { return queue_.empty(); }
    std::size_t messages() const { return queue_.size(); }
    std::size_t queued_bytes() const { return queued_bytes_; }
    // Frames needed to send everything queued: this node's backlog for flow control.
    std::uint32_t frames_needed() const;

    // A configuration change interrupted the message being cut (some fragments went out
    // on the old ring, nobody can complete it there): start it over on the next ring,
    // same msg_id. Whole messages already sent are not touched.
    void rewind_partial();
    // Test hook only (drop_queue_on_change): forget everything queued.
    void clear_for_test();
    // Message ids continue from `first` (REQUIRES: nothing was ever queued). The core
    // derives it from the durable ring seq so ids stay unique across restarts.
    void set_first_msg_id(std::uint64_t first);

    // Cuts the next frame: fills chunks, first_msg_id and the safe flag.
    // REQUIRES: !empty().
    wire::totem::McastFrame next_frame();

private:
    struct Pending {
        std::uint64_t msg_id;
        Guarantee guarantee;
        wire::Bytes data;
        std::size_t sent = 0;  // bytes already cut into frames
    };
    std::size_t chunk_budget_;
    std::size_t max_bytes_;
    std::size_t max_messages_;
    std::deque<Pending> queue_;
    std::size_t queued_bytes_ = 0;  // unsent bytes
    std::uint64_t next_msg_id_ = 1;
};

class Reassembler {
public:
    // Feeds one delivered frame. Completed messages are appended to `out` in order.
    // Returns false when the chunk sequence is inconsistent (a bug or a hostile peer):
    // the originator's partial message is dropped and counted by the caller.
    bool on_frame(const wire::totem::McastFrame& frame, std::vector<Delivery>& out);

    std::size_t partial_bytes() const;

private:
    struct Partial {
        std::uint64_t msg_id = 0;
        std::uint32_t total_size = 0;
        Guarantee guarantee = Guarantee::agreed;
        wire::Bytes data;
    };
    std::map<NodeId, Partial> partial_;  // ordered: nothing here reaches the wire anyway
};

}  // namespace conclave::totem
