// conclave's client API: process groups over the local daemon's control socket.
//
// A client joins a named group on its node's conclaved and then sends messages to the
// group and receives, in the ring's total order, every message sent to it by any member
// on any node, together with configuration changes (extended virtual synchrony:
// transitional, then regular). This is the seed of the application API; conclave-bench
// and the cluster tests use it.
//
//   conclave::GroupClient c;
//   if (!c.join("/run/conclave/control.sock", "my-group")) die(c.error());
//   c.send("hello", 5, /*safe=*/false);
//   conclave::GroupEvent ev;
//   while (c.next(1000, ev) == conclave::GroupEvent::Kind::message) use(ev.payload);
//
// Blocking calls, one thread per client object. Not copyable.
//
// Flow: a client that keeps more than 8 MiB of deliveries unread has its own messages
// left unread by the daemon until it is back under 2 MiB (its sends queue here
// meanwhile); one more than 64 MiB behind is disconnected (Kind::closed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace conclave {

namespace wire::group {
class FrameParser;  // the daemon's frame parser, shared with the client (opaque here)
}

struct GroupEvent {
    enum class Kind { none, message, config, closed };
    Kind kind = Kind::none;
    // message
    std::uint32_t sender = 0;   // node id of the sender
    bool safe = false;          // delivered with the safe guarantee
    std::uint64_t number = 0;   // this node's delivery number (grows by one per delivery)
    std::vector<std::uint8_t> payload;
    // config
    bool transitional = false;
    std::uint32_t ring_rep = 0;
    std::uint64_t ring_seq = 0;
    std::vector<std::uint32_t> members;
};

class GroupClient {
public:
    GroupClient();
    ~GroupClient();
    GroupClient(const GroupClient&) = delete;
    GroupClient& operator=(const GroupClient&) = delete;

    // Connects to conclaved's control socket and joins `group` (letters, digits, - _ . :,
    // at most 64). False with error() set when the daemon is not running, refuses, etc.
    bool join(const std::string& socket_path, const std::string& group);
    // Queues one message (at most 1 MiB) for the group. Queued bytes go out in batches:
    // once kFlushBytes are queued, at flush(), and at every next() (so a request/reply
    // pattern waits for nothing). Batching saves a system call and a daemon wake-up per
    // message. send blocks only while more than kMaxUnsent bytes wait (the daemon's
    // back-pressure), reading incoming events meanwhile so that neither side can stall
    // the other. False when the connection is gone.
    bool send(const void* data, std::size_t size, bool safe);
    // Writes what the socket takes now, without blocking. False when the connection is
    // gone. Call it after a burst of send()s that is not followed by next().
    bool flush();
    static constexpr std::size_t kFlushBytes = 64u << 10;
    static constexpr std::size_t kMaxUnsent = 4u << 20;
    std::size_t unsent() const { return out_.size() - out_pos_; }
    // Waits at most timeout_ms (-1: forever) for the next event. Kind::none on timeout,
    // Kind::closed when the daemon went away or refused a frame (error() says why).
    GroupEvent::Kind next(int timeout_ms, GroupEvent& event);

    int fd() const { return fd_; }
    const std::string& error() const { return error_; }

private:
    bool write_all(const std::uint8_t* p, std::size_t n);
    bool take_frame(GroupEvent& event, bool& malformed);
    // One poll round: reads what is there, writes what it can. False on a dead connection.
    bool pump(int timeout_ms, bool& readable);
    // Reads what the socket holds without blocking: 1 bytes read, 0 none there, -1 gone.
    int read_some();
    static constexpr std::size_t kReadChunk = 64u << 10;

    int fd_ = -1;
    std::string error_;
    std::unique_ptr<wire::group::FrameParser> parser_;
    std::vector<std::uint8_t> out_;
    std::size_t out_pos_ = 0;
};

}  // namespace conclave
