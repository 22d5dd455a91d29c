#include "runtime/ring_driver.h"

namespace conclave::runtime {

using Clock = std::chrono::steady_clock;

totem::Micros RingDriver::now() {
    return static_cast<totem::Micros>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count());
}

RingDriver::RingDriver(asio::io_context& io, Transport& transport, totem::Config config, totem::Durable* durable,
                       Callbacks callbacks)
    : transport_(transport), ring_(std::move(config), durable), callbacks_(std::move(callbacks)) {
    for (auto& t : timers_) t.timer = std::make_unique<asio::steady_timer>(io);
    transport_.set_batch_hooks([this] { in_batch_ = true; },
                               [this] {
                                   in_batch_ = false;
                                   if (progress_pending_) {
                                       progress_pending_ = false;
                                       if (callbacks_.progress) callbacks_.progress();
                                   }
                               });
}

RingDriver::~RingDriver() { transport_.set_batch_hooks(nullptr, nullptr); }

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

void RingDriver::set_local_watermark(std::uint64_t value, const std::vector<std::uint32_t>& notify) {
    ring_.set_local_watermark(value, now(), notify);
    apply();
}

void RingDriver::leave() {
    ring_.leave(now());
    apply();
    for (auto& t : timers_) {
        t.want.reset();
        t.timer->cancel();
    }
}

void RingDriver::on_timer(totem::TimerId id) {
    ring_.on_timer(id, now());
    apply();
}

void RingDriver::arm_timer(totem::TimerId id, totem::Micros deadline) {
    Timer& t = timers_[static_cast<std::size_t>(id)];
    t.waiting = true;
    t.armed = deadline;
    const std::uint64_t generation = ++t.generation;
    // Replaces a wait in progress (its handler gets operation_aborted).
    t.timer->expires_at(Clock::time_point(std::chrono::microseconds(deadline)));
    t.timer->async_wait([this, id, generation](std::error_code ec) { on_timer_end(id, generation, ec); });
}

void RingDriver::on_timer_end(totem::TimerId id, std::uint64_t generation, std::error_code ec) {
    Timer& t = timers_[static_cast<std::size_t>(id)];
    if (generation != t.generation) return;  // a replaced wait
    t.waiting = false;
    if (ec || !t.want) return;
    if (*t.want > t.armed) {  // moved later meanwhile
        arm_timer(id, *t.want);
        return;
    }
    t.want.reset();
    on_timer(id);
}

void RingDriver::apply() {
    totem::Effects fx = ring_.take_effects();
    // Deliveries first: the core decided them already, and a sender's own message (or a
    // safe delivery that starts a commit) must not wait for the sends below, each of
    // which runs the bridge and the receivers' network stack on this CPU. Outside a
    // batch of received datagrams the clients get their frames at once, too.
    for (auto& e : fx.events)
        if (callbacks_.event) callbacks_.event(std::move(e));
    bool progressed = false;
    if (!fx.events.empty() && !in_batch_ && callbacks_.progress) {
        callbacks_.progress();
        progressed = true;
    }
    // Frames before the token that announces them (Totem §3.1): a token that overtakes
    // its frames makes the successor report them missing and costs a rotation.
    transport_.send_all_batch(fx.multicasts);
    for (auto& u : fx.unicasts) transport_.send_to(u.to, u.bytes);
    for (const auto& op : fx.timers) {
        Timer& t = timers_[static_cast<std::size_t>(op.timer)];
        if (!op.arm) {
            t.want.reset();  // a wait that ends finds nothing wanted
            continue;
        }
        t.want = op.deadline;
        if (!t.waiting || op.deadline < t.armed) arm_timer(op.timer, op.deadline);
    }
    if (fx.watermark && callbacks_.watermark) callbacks_.watermark(*fx.watermark);
    for (const auto& line : fx.log)
        if (callbacks_.log) callbacks_.log(line);
    if (in_batch_)
        progress_pending_ = true;
    else if (callbacks_.progress && !progressed)
        callbacks_.progress();
}

}  // namespace conclave::runtime
