#include "sim/simulation.h"

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <set>
#include <vector>

#include "sim/event_queue.h"
#include "sim/network.h"
#include "sim/prng.h"
#include "totem/ring.h"
#include "wire/totem.h"

namespace conclave::sim {
namespace {

namespace wt = wire::totem;
using totem::Guarantee;
using totem::Ring;
using totem::TimerId;

std::uint64_t fnv1a(const wire::Bytes& b) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::uint8_t c : b) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

// Message sizes: 1 B .. max, skewed toward small so a seed stays cheap, with a tail of
// large ones that exercise fragmentation.
std::uint32_t draw_size(Prng& rng, std::uint32_t max) {
    const std::uint64_t r = rng.below(100);
    std::uint64_t hi = r < 70 ? 256 : r < 92 ? 8192 : r < 98 ? 65536 : max;
    if (hi > max) hi = max;
    return static_cast<std::uint32_t>(rng.range(1, hi));
}

wire::Bytes content(std::uint64_t content_seed, std::uint32_t size) {
    wire::Bytes b(size);
    std::uint64_t s = content_seed;
    for (std::uint32_t i = 0; i < size; i += 8) {
        const std::uint64_t w = splitmix64(s);
        for (std::uint32_t k = 0; k < 8 && i + k < size; ++k) b[i + k] = static_cast<std::uint8_t>(w >> (8 * k));
    }
    return b;
}

struct SimEvent {
    enum class Kind : std::uint8_t { packet, timer, submit, heal } kind{};
    std::uint32_t node = 0;  // 1-based destination / owner
    std::uint32_t from = 0;
    TimerId timer{};
    wire::Bytes bytes;
    std::uint64_t frame_seq = 0;  // for recv trace events; 0 = not a frame
    bool is_frame = false;
    std::uint32_t size = 0;
    bool safe = false;
    std::uint64_t content_seed = 0;
};

class Simulation {
public:
    Simulation(const SimOptions& o, std::uint64_t seed)
        : o_(o), seed_(seed), n_(nodes_for_seed(o, seed)), rng_(seed), net_(n_) {}

    SeedResult run();

private:
    void apply_effects(std::uint32_t node, std::uint64_t now);
    void send_packet(std::uint32_t from, std::uint32_t to, const wire::Bytes& bytes, bool is_frame,
                     std::uint64_t frame_seq, std::uint64_t now, std::uint8_t kind_for_drop);
    void on_submit(SimEvent& e, std::uint64_t now);
    bool all_delivered() const;
    void add(std::uint64_t t, Ev kind, std::uint32_t node, std::uint32_t a = 0, std::uint64_t b = 0,
             std::uint64_t c = 0, std::uint32_t size = 0, std::uint8_t mode = 0, std::uint64_t hash = 0) {
        result_.trace.add(TraceEvent{t, kind, node, a, b, c, size, mode, hash});
    }

    const SimOptions& o_;
    std::uint64_t seed_;
    std::uint32_t n_;
    Prng rng_;
    Network net_;
    EventQueue<SimEvent> queue_;
    std::vector<std::unique_ptr<Ring>> rings_;  // index node-1
    std::vector<std::uint64_t> delivered_;      // per node (index node)
    std::vector<std::set<std::uint32_t>> received_;  // frames seen per node (first-receipt trace)
    std::set<std::uint32_t> originated_;        // seqs already announced as new frames
    std::vector<wire::Bytes> last_token_;       // per node: last token bytes sent
    std::uint64_t accepted_ = 0;
    std::uint64_t pending_submits_ = 0;
    bool healed_ = false;
    SeedResult result_;
};

void Simulation::send_packet(std::uint32_t from, std::uint32_t to, const wire::Bytes& bytes, bool is_frame,
                             std::uint64_t frame_seq, std::uint64_t now, std::uint8_t kind_for_drop) {
    const auto arrivals = net_.route(from - 1, to - 1, now, rng_);
    if (arrivals.empty()) add(now, Ev::drop, to, from, is_frame ? frame_seq : 0, kind_for_drop);
    for (std::uint64_t t : arrivals) {
        SimEvent e;
        e.kind = SimEvent::Kind::packet;
        e.node = to;
        e.from = from;
        e.bytes = bytes;
        e.is_frame = is_frame;
        e.frame_seq = frame_seq;
        queue_.push(t, std::move(e));
    }
}

void Simulation::apply_effects(std::uint32_t node, std::uint64_t now) {
    Ring& ring = *rings_[node - 1];
    totem::Effects fx = ring.take_effects();
    for (auto& u : fx.unicasts) {
        // The simulator decodes what it carries only to write the trace.
        wt::DecodeResult d = wt::decode(u.bytes);
        if (d.ok()) {
            if (const auto* t = std::get_if<wt::Token>(&d.packet)) {
                if (u.bytes == last_token_[node]) {
                    add(now, Ev::token_rexmit, node, u.to);
                } else {
                    add(now, Ev::token, node, u.to, t->seq, t->aru, t->token_seq, 0, t->rtr.size());
                    last_token_[node] = u.bytes;
                }
            }
        }
        send_packet(node, u.to, u.bytes, false, 0, now, 0);
    }
    for (auto& m : fx.multicasts) {
        wt::DecodeResult d = wt::decode(m);
        bool is_frame = false;
        std::uint64_t seq = 0;
        if (d.ok()) {
            if (const auto* f = std::get_if<wt::McastFrame>(&d.packet)) {
                is_frame = true;
                seq = f->seq;
                if (f->originator == node && originated_.insert(f->seq).second) {
                    add(now, Ev::mcast, node, 0, f->seq, f->first_msg_id,
                        static_cast<std::uint32_t>(f->chunks.size()));
                    received_[node].insert(f->seq);
                } else {
                    add(now, Ev::rexmit, node, 0, f->seq);
                }
            }
        }
        for (std::uint32_t y = 1; y <= n_; ++y)
            if (y != node) send_packet(node, y, m, is_frame, seq, now, is_frame ? 0 : 1);
    }
    for (const auto& op : fx.timers) {
        if (!op.arm) continue;  // a cancelled timer's event fires and is ignored by the core
        SimEvent e;
        e.kind = SimEvent::Kind::timer;
        e.node = node;
        e.timer = op.timer;
        queue_.push(op.deadline < now ? now : op.deadline, std::move(e));
    }
    for (auto& dl : fx.deliveries) {
        ++delivered_[node];
        ++result_.delivered;
        add(now, Ev::deliver, node, dl.sender, dl.msg_id, dl.seq, static_cast<std::uint32_t>(dl.payload.size()),
            dl.guarantee == Guarantee::safe ? 1 : 0, fnv1a(dl.payload));
    }
    if (fx.watermark) add(now, Ev::watermark, node, 0, *fx.watermark);
    // Local watermark = deliveries so far: monotone, and the checker knows it.
    ring.set_local_watermark(delivered_[node]);
}

void Simulation::on_submit(SimEvent& e, std::uint64_t now) {
    const std::uint32_t node = e.node;
    Ring& ring = *rings_[node - 1];
    wire::Bytes msg = content(e.content_seed, e.size);
    const std::uint64_t hash = fnv1a(msg);
    totem::SubmitResult r = ring.submit(std::move(msg), e.safe ? Guarantee::safe : Guarantee::agreed, now);
    if (r.status == totem::SubmitStatus::ok) {
        --pending_submits_;
        ++accepted_;
        add(now, Ev::submit, e.node, e.node, r.msg_id, 0, e.size, e.safe ? 1 : 0, hash);
    } else {
        // TryAgain: the bounded queue pushes back; retry a little later.
        ++result_.try_again;
        add(now, Ev::try_again, e.node, e.node, 0, 0, e.size);
        queue_.push(now + 2'000, std::move(e));
    }
    apply_effects(node, now);
}

bool Simulation::all_delivered() const {
    if (pending_submits_ != 0) return false;
    for (std::uint32_t y = 1; y <= n_; ++y)
        if (delivered_[y] < accepted_) return false;
    return true;
}

SeedResult Simulation::run() {
    result_.seed = seed_;
    result_.nodes = n_;
    // Half the seeds start the ring just below 2^32 so seqs wrap during the run.
    const auto initial_seq = rng_.chance(0.5) ? static_cast<std::uint32_t>(0xFFFFFFFFu - rng_.below(400))
                                              : static_cast<std::uint32_t>(rng_.below(1000));
    char header[256];
    std::snprintf(header, sizeof header, "seed %" PRIu64 " nodes %" PRIu32 " initial_seq %" PRIu32
                  " faults %s msgs %" PRIu32 " plant-bug %s",
                  seed_, n_, initial_seq, faults_string(o_).c_str(), o_.msgs,
                  o_.plant_bug.empty() ? "none" : o_.plant_bug.c_str());
    result_.trace.header = header;

    LinkFaults lf;
    lf.delay_us = o_.fault_delay ? 100 : 200;
    lf.jitter_us = o_.fault_delay ? 2'000 : 0;
    lf.loss = o_.fault_loss ? o_.loss : 0;
    lf.dup = o_.fault_dup ? o_.dup : 0;
    lf.reorder = o_.fault_reorder ? o_.reorder : 0;
    lf.reorder_extra_us = 5'000;
    net_.set_all(lf);

    std::vector<totem::NodeId> members;
    for (std::uint32_t i = 1; i <= n_; ++i) members.push_back(i);
    for (std::uint32_t i = 1; i <= n_; ++i) {
        totem::Config c;
        c.self = i;
        c.members = members;
        c.ring_id = {1, seed_};
        c.initial_seq = initial_seq;
        c.mtu = o_.mtu;
        // Small queues, so the workload meets TryAgain now and then.
        c.send_queue_bytes = 512u << 10;
        c.send_queue_messages = 32;
        c.token_retransmit_us = 10'000;  // one-way delay stays under ~7.2 ms here
        c.hold_us = 5'000;
        c.test_hooks.skip_retransmit = o_.plant_bug == "skip-retransmit";
        c.test_hooks.deliver_out_of_order = o_.plant_bug == "deliver-out-of-order";
        c.test_hooks.deliver_twice = o_.plant_bug == "deliver-twice";
        c.test_hooks.deliver_safe_early = o_.plant_bug == "deliver-safe-early";
        rings_.push_back(std::make_unique<Ring>(c));
    }
    delivered_.assign(n_ + 1, 0);
    received_.resize(n_ + 1);
    last_token_.resize(n_ + 1);

    for (std::uint32_t k = 0; k < o_.msgs; ++k) {
        SimEvent e;
        e.kind = SimEvent::Kind::submit;
        const std::uint64_t t = rng_.below(kWorkloadUs);
        e.node = static_cast<std::uint32_t>(rng_.range(1, n_));
        e.size = draw_size(rng_, o_.max_size);
        e.safe = rng_.chance(0.5);
        e.content_seed = rng_.next();
        queue_.push(t, std::move(e));
        ++pending_submits_;
    }
    {
        SimEvent e;
        e.kind = SimEvent::Kind::heal;
        queue_.push(kHealUs, std::move(e));
    }
    for (std::uint32_t i = 1; i <= n_; ++i) {
        rings_[i - 1]->start(0);
        apply_effects(i, 0);
    }

    const std::uint64_t deadline = kHealUs + kLivenessBoundUs;
    std::uint64_t now = 0;
    while (!queue_.empty()) {
        if (healed_ && all_delivered()) break;
        if (queue_.next_time() > deadline) break;
        auto entry = queue_.pop();
        now = entry.time;
        SimEvent& e = entry.payload;
        switch (e.kind) {
            case SimEvent::Kind::packet:
                if (e.is_frame && received_[e.node].insert(static_cast<std::uint32_t>(e.frame_seq)).second)
                    add(now, Ev::recv, e.node, e.from, e.frame_seq);
                rings_[e.node - 1]->on_packet(e.from, e.bytes, now);
                apply_effects(e.node, now);
                break;
            case SimEvent::Kind::timer:
                rings_[e.node - 1]->on_timer(e.timer, now);
                apply_effects(e.node, now);
                break;
            case SimEvent::Kind::submit:
                on_submit(e, now);
                break;
            case SimEvent::Kind::heal:
                healed_ = true;
                net_.heal();
                add(now, Ev::heal, 0);
                break;
        }
    }
    result_.end_time_us = now;
    result_.submitted = accepted_;
    for (const auto& r : rings_) {
        result_.malformed += r->stats().malformed;
        result_.tokens_held += r->stats().tokens_held;
        result_.hold_cancels += r->stats().hold_cancels_sent;
        result_.token_retransmits += r->stats().token_retransmits;
        result_.retransmits += r->stats().retransmits_sent;
    }
    result_.violation = check_all(result_.trace, n_);
    if (!result_.violation && result_.malformed != 0)
        result_.violation = Violation{"wire", "a core refused to decode a packet the simulator carried", 0, 0};
    return std::move(result_);
}

}  // namespace

std::uint32_t nodes_for_seed(const SimOptions& o, std::uint64_t seed) {
    if (o.nodes_min == o.nodes_max) return o.nodes_min;
    Prng sizes(seed ^ 0x6E6F646573ull);  // "nodes": a stream of its own
    return static_cast<std::uint32_t>(sizes.range(o.nodes_min, o.nodes_max));
}

SeedResult run_seed(const SimOptions& o, std::uint64_t seed) {
    Simulation sim(o, seed);
    return sim.run();
}

std::string excerpt(const SeedResult& r, std::size_t max_lines) {
    if (!r.violation || r.trace.events.empty()) return {};
    const Violation& v = *r.violation;
    const std::size_t at = v.index < r.trace.events.size() ? v.index : r.trace.events.size() - 1;
    // The latest events of the node concerned (all nodes if none), ending at the violation.
    std::vector<std::size_t> picked;
    for (std::size_t i = at + 1; i-- > 0 && picked.size() < max_lines;) {
        const TraceEvent& e = r.trace.events[i];
        if (v.node == 0 || e.node == v.node || i == at) picked.push_back(i);
    }
    std::string out;
    for (auto it = picked.rbegin(); it != picked.rend(); ++it) out += "    " + r.trace.line(*it) + "\n";
    return out;
}

}  // namespace conclave::sim
