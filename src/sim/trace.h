// The recorded history of one simulated run: events per node, in execution order.
// Checkers read the structured events; render() makes the readable text (one event per
// line) written by --trace and quoted in violation reports. Nothing here depends on the
// host: integers only, so a seed gives the same bytes on every build.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace conclave::sim {

enum class Ev : std::uint8_t {
    submit,      // node submitted message (a=sender, b=msg id, size, mode)
    try_again,   // submit refused: queue full (retried later)
    mcast,       // node multicast a new frame (b=seq, size=chunks, c=first msg id, hash=ring key)
    rexmit,      // node re-multicast a frame on request (b=seq)
    token,       // node forwarded the token (a=to, b=seq, c=aru, size=token_seq, hash=rtr count)
    token_rexmit,// node re-sent its last token (a=to)
    recv,        // node received frame b from a (first receipt only; c=ring key)
    drop,        // the network lost a packet from a to node (b=seq or 0 for tokens)
    deliver,     // node delivered message (a=sender, b=msg id, c=frame seq, size, mode, hash)
    watermark,   // the ring watermark at node changed to b
    heal,        // faults stopped
    config,      // node delivered a configuration (a=rep, b=ring seq, mode 0 transitional / 1
                 // regular, hash=member bit mask, size=member count)
    start,       // node started (fresh volatile state; b=durable ring seq)
    crash,       // node crashed (volatile state lost)
    pause,       // node stops processing until b
    resume,      // node resumes processing its backlog
    cut,         // the network drops packets a -> node (one direction)
    uncut,       // link a -> node restored
    leave,       // node left cleanly
    log,         // node's core logged a membership transition (text in the trace's notes)
};

// Ring key used by frame events: unique per ring id (rep <= 64).
inline std::uint64_t ring_key(std::uint32_t rep, std::uint64_t seq) { return seq * 64 + rep; }

struct TraceEvent {
    std::uint64_t time = 0;  // virtual microseconds
    Ev kind{};
    std::uint32_t node = 0;  // 1-based node id
    std::uint32_t a = 0;
    std::uint64_t b = 0;
    std::uint64_t c = 0;
    std::uint32_t size = 0;
    std::uint8_t mode = 0;   // 0 agreed, 1 safe
    std::uint64_t hash = 0;
};

struct Trace {
    std::string header;  // first line: the run's parameters
    std::vector<TraceEvent> events;
    std::vector<std::string> notes;  // Ev::log texts, indexed by TraceEvent::b

    void add(const TraceEvent& e) { events.push_back(e); }
    // One line, without newline; prefixed by the event's index.
    std::string line(std::size_t index) const;
    // Whole trace, header first.
    std::string render() const;
};

}  // namespace conclave::sim
