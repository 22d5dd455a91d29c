// Drives the pure totem core from the protocol thread (DESIGN.md §3): datagrams from the
// Transport and steady_timer fires go in as events with `now`; the effects come out and
// are carried out here in order: sends first, then timers, then deliveries.
//
// Time: microseconds of CLOCK_MONOTONIC (steady_clock), the clock the core's deadlines
// are expressed in.
#pragma once

#include <asio.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>

#include "runtime/transport.h"
#include "totem/effects.h"
#include "totem/ring.h"

namespace conclave::runtime {

class RingDriver {
public:
    struct Callbacks {
        std::function<void(totem::Delivery&&)> deliver;
        std::function<void(std::uint64_t)> watermark;
    };

    RingDriver(asio::io_context& io, Transport& transport, totem::Config config, Callbacks callbacks);

    void start();
    // An authenticated datagram's body from the transport.
    void on_packet(std::uint32_t sender, wire::ByteView body);
    totem::SubmitResult submit(wire::Bytes message, totem::Guarantee guarantee);
    void set_local_watermark(std::uint64_t value) { ring_.set_local_watermark(value); }

    const totem::Ring& ring() const { return ring_; }
    static totem::Micros now();

private:
    void apply();
    void on_timer(totem::TimerId id, std::chrono::steady_clock::time_point expected);

    asio::io_context& io_;
    Transport& transport_;
    totem::Ring ring_;
    Callbacks callbacks_;
    std::array<std::unique_ptr<asio::steady_timer>, totem::kTimerCount> timers_;
};

}  // namespace conclave::runtime
