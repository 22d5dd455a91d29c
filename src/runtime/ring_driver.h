// Drives the pure totem core from the protocol thread (DESIGN.md §3): datagrams from the
// Transport and steady_timer fires go in as events with `now`; the effects come out and
// are carried out here in order: deliveries and configuration changes (one ordered
// stream: the EVS contract), then sends, then timers, then log lines.
//
// Time: microseconds of CLOCK_MONOTONIC (steady_clock), the clock the core's deadlines
// are expressed in.
#pragma once

#include <asio.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "runtime/transport.h"
#include "totem/durable.h"
#include "totem/effects.h"
#include "totem/ring.h"

namespace conclave::runtime {

class RingDriver {
public:
    struct Callbacks {
        std::function<void(totem::Event&&)> event;           // delivery or configuration change
        std::function<void(std::uint64_t)> watermark;
        std::function<void(const std::string&)> log;          // membership transitions
        std::function<void()> progress;                       // after every batch of effects
    };

    RingDriver(asio::io_context& io, Transport& transport, totem::Config config, totem::Durable* durable,
               Callbacks callbacks);
    ~RingDriver();
    RingDriver(const RingDriver&) = delete;
    RingDriver& operator=(const RingDriver&) = delete;

    void start();
    // An authenticated datagram's body from the transport.
    void on_packet(std::uint32_t sender, wire::ByteView body);
    totem::SubmitResult submit(wire::Bytes message, totem::Guarantee guarantee);
    // The application's durable value for the ring watermark; a rise is sent at once to
    // the nodes in `notify` (Ring::set_local_watermark; its effects are carried out
    // here, as for submit()).
    void set_local_watermark(std::uint64_t value, const std::vector<std::uint32_t>& notify = {});
    // Cluster-wide ring settings from the replicated state; returns why they were
    // refused (empty: applied).
    std::string update_settings(const totem::Config& c) { return ring_.update_settings(c); }
    // Clean shutdown: the leave goes out at once; the others reform without waiting.
    void leave();

    const totem::Ring& ring() const { return ring_; }
    static totem::Micros now();

private:
    void apply();
    void on_timer(totem::TimerId id);

    Transport& transport_;
    totem::Ring ring_;
    Callbacks callbacks_;
    // While the transport hands over a batch of datagrams, `progress` runs once at its
    // end instead of after each datagram (the clients get one write per batch).
    bool in_batch_ = false;
    bool progress_pending_ = false;
    // The core re-arms its timers at almost every event (the token-loss timer at every
    // token visit), each time later than before. A steady_timer is moved only when the
    // new deadline is earlier than the one it waits for (or it waits for none): a later
    // one is noted in `want` and the wait, when it ends, waits again until then. That
    // saves a timerfd_settime and a cancelled handler per token visit. `generation`
    // tells the current wait's end from a replaced one's.
    struct Timer {
        std::unique_ptr<asio::steady_timer> timer;
        bool waiting = false;
        totem::Micros armed = 0;  // the deadline the steady_timer waits for (while waiting)
        std::optional<totem::Micros> want;
        std::uint64_t generation = 0;
    };
    void arm_timer(totem::TimerId id, totem::Micros deadline);
    void on_timer_end(totem::TimerId id, std::uint64_t generation, std::error_code ec);
    std::array<Timer, totem::kTimerCount> timers_;
};

}  // namespace conclave::runtime
