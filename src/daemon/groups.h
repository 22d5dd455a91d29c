// Process groups in the daemon (issue 5 item 4): which local control-socket clients joined
// which group, carrying their messages onto the ring and the ring's deliveries and
// configuration changes back to them, in the ring's total order.
//
// Back-pressure: when the ring's send queue refuses a message (TryAgain), the sending
// client's connection stops being read and the message waits; retry() (called after the
// ring made progress) offers it again. Nothing a client handed over is dropped while its
// connection lives.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/control.h"
#include "totem/effects.h"
#include "totem/packing.h"

namespace conclave::daemon {

class Groups {
public:
    using Submit = std::function<totem::SubmitResult(wire::Bytes, totem::Guarantee)>;
    explicit Groups(Submit submit) : submit_(std::move(submit)) {}

    // The "group.join" control request: upgrades the session. Returns the JSON reply.
    nlohmann::json join(const std::string& group, const std::shared_ptr<runtime::ControlSession>& session);

    // A delivery from the ring (any payload; non-group messages are ignored).
    void deliver(const totem::Delivery& d);
    // A configuration change, to every group member (kind 1 transitional, 2 regular).
    void configuration(std::uint8_t kind, std::uint32_t rep, std::uint64_t ring_seq,
                       const std::vector<std::uint32_t>& members);
    // deliver() and configuration() queue their frames per client; flush() hands each
    // client's queue to its connection in one piece (one write, one wake-up of the client
    // for a whole batch of deliveries instead of one per message). retry() flushes too,
    // and the daemon calls retry() after every batch of ring effects.
    void flush();
    // Offers messages held back by TryAgain once more, then flushes.
    void retry();

    std::size_t sessions() const;
    std::size_t blocked() const { return blocked_.size(); }
    std::uint64_t delivered() const { return number_; }

private:
    struct Member {
        std::weak_ptr<runtime::ControlSession> session;
        std::string group;
        wire::Bytes out;  // frames queued since the last flush()
    };
    struct Held {
        std::uint64_t session_id;
        wire::Bytes message;
        totem::Guarantee guarantee;
    };
    void on_send(std::uint64_t session_id, const std::string& group, const wire::group::Send& send);
    void drop(std::uint64_t session_id);
    void queue(std::uint64_t session_id, Member& m, wire::ByteView frame);

    Submit submit_;
    std::map<std::uint64_t, Member> members_;             // by session id
    std::map<std::string, std::vector<std::uint64_t>> by_group_;
    std::deque<Held> blocked_;  // at most one per session: its reading is paused
    std::uint64_t number_ = 0;  // deliveries of group messages on this node
    std::vector<std::uint32_t> last_members_;
    std::uint32_t last_rep_ = 0;
    std::uint64_t last_ring_seq_ = 0;
    bool have_config_ = false;
    bool retrying_ = false;
    wire::Bytes scratch_;
    std::vector<std::uint64_t> dirty_;   // sessions with queued frames
};

}  // namespace conclave::daemon
