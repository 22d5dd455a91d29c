#include "runtime/ring_driver.h"

namespace conclave::runtime {

using Clock = std::chrono::steady_clock;

totem::Micros RingDriver::now() {
    return static_cast<totem::Micros>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count());
}

RingDriver::RingDriver(asio::io_context& io, Transport& transport, totem::Config config, Callbacks callbacks)
    : io_(io), transport_(transport), ring_(std::move(config)), callbacks_(std::move(callbacks)) {
    for (auto& t : timers_) t = std::make_unique<asio::steady_timer>(io_);
}

void RingDriver::start() {
    ring_.start(now());
    apply();
}

void RingDriver::on_packet(std::uint32_t sender, wire::ByteView body) {
    if (body.empty()) return;  // a transport hello: it only taught the transport an address
    ring_.on_packet(sender, body, now());
    apply();
}

totem::SubmitResult RingDriver::submit(wire::Bytes message, totem::Guarantee guarantee) {
    auto r = ring_.submit(std::move(message), guarantee, now());
    apply();
    return r;
}

void RingDriver::on_timer(totem::TimerId id, Clock::time_point) {
    ring_.on_timer(id, now());
    apply();
}

void RingDriver::apply() {
    totem::Effects fx = ring_.take_effects();
    for (auto& u : fx.unicasts) transport_.send_to(u.to, u.bytes);
    for (auto& m : fx.multicasts) transport_.send_all(m);
    for (const auto& op : fx.timers) {
        auto& timer = *timers_[static_cast<std::size_t>(op.timer)];
        timer.cancel();
        if (!op.arm) continue;
        auto at = Clock::time_point(std::chrono::microseconds(op.deadline));
        timer.expires_at(at);
        totem::TimerId id = op.timer;
        timer.async_wait([this, id, at](std::error_code ec) {
            if (!ec) on_timer(id, at);
        });
    }
    for (auto& d : fx.deliveries)
        if (callbacks_.deliver) callbacks_.deliver(std::move(d));
    if (fx.watermark && callbacks_.watermark) callbacks_.watermark(*fx.watermark);
}

}  // namespace conclave::runtime
