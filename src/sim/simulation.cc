#include "sim/simulation.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <set>
#include <vector>

#include "sim/event_queue.h"
#include "sim/network.h"
#include "sim/prng.h"
#include "sim/store_sim.h"
#include "totem/durable.h"
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

enum class Action : std::uint8_t { start, crash, restart, pause, cut, uncut, partition, asym };

struct SimEvent {
    enum class Kind : std::uint8_t { packet, timer, submit, heal, action } kind{};
    std::uint32_t node = 0;  // 1-based destination / owner
    std::uint32_t from = 0;
    std::uint32_t epoch = 0;  // timers: the incarnation that armed it
    TimerId timer{};
    Action action{};
    std::uint64_t arg = 0;    // action argument (duration, mask)
    wire::Bytes bytes;
    std::uint32_t size = 0;
    bool safe = false;
    std::uint64_t content_seed = 0;
};

struct SimNode {
    std::unique_ptr<Ring> ring;        // null while down or not started
    totem::MemoryDurable durable;      // survives crashes
    std::uint32_t epoch = 0;
    std::uint64_t paused_until = 0;
    std::uint64_t delivered = 0;       // ever (local watermark: monotone across crashes)
    wire::Bytes last_token;
    std::set<std::pair<std::uint64_t, std::uint32_t>> received;  // (ring key, seq)
    bool up() const { return ring != nullptr; }
};

struct PendingFailover {
    std::uint64_t at = 0;
    std::uint32_t crashed = 0;
    std::vector<std::uint32_t> survivors;
    std::vector<std::uint64_t> done;  // per survivor: time of its regular config (0 = not yet)
};

class Simulation {
public:
    Simulation(const SimOptions& o, std::uint64_t seed)
        : o_(o), seed_(seed), n_(nodes_for_seed(o, seed)), rng_(seed), net_(n_), nodes_(n_ + 1) {}

    SeedResult run();

private:
    void apply_effects(std::uint32_t node, std::uint64_t now);
    void send_packet(std::uint32_t from, std::uint32_t to, const wire::Bytes& bytes, bool is_frame,
                     std::uint64_t frame_seq, std::uint64_t now, std::uint8_t kind_for_drop);
    void on_submit(SimEvent& e, std::uint64_t now);
    void on_action(SimEvent& e, std::uint64_t now);
    void start_node(std::uint32_t node, std::uint64_t now);
    void crash_node(std::uint32_t node, std::uint64_t now, bool clean);
    void schedule_faults();
    void push_action(std::uint64_t t, Action a, std::uint32_t node, std::uint64_t arg = 0) {
        SimEvent e;
        e.kind = SimEvent::Kind::action;
        e.action = a;
        e.node = node;
        e.arg = arg;
        queue_.push(t, std::move(e));
    }
    void other_fault() { failover_.reset(); }
    bool settled() const;
    totem::Config config_for(std::uint32_t node) const;
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
    std::vector<SimNode> nodes_;  // index = node id
    std::set<std::uint64_t> originated_;  // ring key ^ seq already announced as new frames
    std::uint64_t accepted_ = 0;
    std::uint64_t pending_submits_ = 0;
    std::uint64_t heal_us_ = kHealUs;
    std::uint64_t initial_seq_ = 0;
    bool healed_ = false;
    bool formed_ = false;  // all started nodes were once in one ring
    std::optional<PendingFailover> failover_;
    SeedResult result_;
};

totem::Config Simulation::config_for(std::uint32_t node) const {
    totem::Config c;
    c.self = node;
    c.initial_seq = static_cast<std::uint32_t>(initial_seq_);
    c.mtu = o_.mtu;
    // Small queues, so the workload meets TryAgain now and then.
    c.send_queue_bytes = 512u << 10;
    c.send_queue_messages = 32;
    c.token_retransmit_us = 10'000;  // one-way delay stays under ~7.2 ms here
    c.hold_us = 5'000;
    // Hops here take milliseconds, not the tens of microseconds of a LAN: a large ring's
    // commit token needs its two passes (up to two retransmission intervals a hop) to
    // fit the token timeout. An operator raises it for a slow network the same way
    // (Corosync scales it with the node count, token_coefficient).
    c.token_loss_us = std::max<totem::Micros>(c.token_loss_us, n_ * 4 * c.token_retransmit_us);
    draw_seed_settings(c, seed_);
    auto& h = c.test_hooks;
    const std::string& bug = o_.plant_bug;
    h.skip_retransmit = bug == "skip-retransmit";
    h.deliver_out_of_order = bug == "deliver-out-of-order";
    h.deliver_twice = bug == "deliver-twice";
    h.deliver_safe_early = bug == "deliver-safe-early";
    h.receipt_overclaim = bug == "receipt-overclaim";
    h.skip_transitional = bug == "skip-transitional";
    h.transitional_all_new = bug == "transitional-all-new";
    h.drop_recovered = bug == "drop-recovered";
    h.old_after_regular = bug == "old-after-regular";
    h.drop_queue_on_change = bug == "drop-queue-on-change";
    h.no_merge = bug == "no-merge";
    h.bug_node = node == 1;  // the membership bugs act on node 1 only (no_merge: everywhere)
    return c;
}

void Simulation::send_packet(std::uint32_t from, std::uint32_t to, const wire::Bytes& bytes, bool is_frame,
                             std::uint64_t frame_seq, std::uint64_t now, std::uint8_t kind_for_drop) {
    const auto arrivals = net_.route(from - 1, to - 1, now, rng_);
    if (arrivals.empty() && (is_frame || kind_for_drop == 0))
        add(now, Ev::drop, to, from, is_frame ? frame_seq : 0, kind_for_drop);
    for (std::uint64_t t : arrivals) {
        SimEvent e;
        e.kind = SimEvent::Kind::packet;
        e.node = to;
        e.from = from;
        e.bytes = bytes;
        queue_.push(t, std::move(e));
    }
}

void Simulation::apply_effects(std::uint32_t node, std::uint64_t now) {
    SimNode& sn = nodes_[node];
    if (!sn.up()) return;
    Ring& ring = *sn.ring;
    totem::Effects fx = ring.take_effects();
    // Frames before the token that announces them (Totem §3.1), as the runtime sends.
    for (auto& m : fx.multicasts) {
        wt::DecodeResult d = wt::decode(m);
        bool is_frame = false;
        std::uint64_t seq = 0;
        if (d.ok()) {
            if (const auto* f = std::get_if<wt::McastFrame>(&d.packet)) {
                is_frame = !(f->flags & wt::kFrameEncapsulated);
                seq = f->seq;
                const std::uint64_t key = ring_key(f->header.ring_id.rep, f->header.ring_id.seq);
                if (is_frame && f->originator == node && originated_.insert(key * 0x100000000ull + f->seq).second) {
                    add(now, Ev::mcast, node, 0, f->seq, f->first_msg_id,
                        static_cast<std::uint32_t>(f->chunks.size()), 0, key);
                    sn.received.insert({key, f->seq});
                } else if (is_frame) {
                    add(now, Ev::rexmit, node, 0, f->seq);
                }
            }
        }
        for (std::uint32_t y = 1; y <= n_; ++y)
            if (y != node) send_packet(node, y, m, is_frame, seq, now, is_frame ? 0 : 1);
    }
    for (auto& u : fx.unicasts) {
        // The simulator decodes what it carries only to write the trace.
        wt::DecodeResult d = wt::decode(u.bytes);
        if (d.ok()) {
            if (const auto* t = std::get_if<wt::Token>(&d.packet)) {
                if (u.bytes == sn.last_token) {
                    add(now, Ev::token_rexmit, node, u.to);
                } else {
                    add(now, Ev::token, node, u.to, t->seq, t->aru, t->token_seq, 0, t->rtr.size());
                    sn.last_token = u.bytes;
                }
            } else if (const auto* c = std::get_if<wt::CommitToken>(&d.packet)) {
                add(now, Ev::log, node, 0, result_.trace.notes.size());
                result_.trace.notes.push_back("commit token -> n" + std::to_string(u.to) + " ring " +
                                              std::to_string(c->header.ring_id.seq) + " filled " +
                                              std::to_string(c->filled) + "/" + std::to_string(c->members.size()));
            }
        }
        send_packet(node, u.to, u.bytes, false, 0, now, 0);
    }
    for (const auto& op : fx.timers) {
        if (!op.arm) continue;  // a cancelled timer's event fires and is ignored by the core
        SimEvent e;
        e.kind = SimEvent::Kind::timer;
        e.node = node;
        e.epoch = sn.epoch;
        e.timer = op.timer;
        queue_.push(op.deadline < now ? now : op.deadline, std::move(e));
    }
    for (auto& ev : fx.events) {
        if (auto* dl = std::get_if<totem::Delivery>(&ev)) {
            ++sn.delivered;
            ++result_.delivered;
            add(now, Ev::deliver, node, dl->sender, dl->msg_id, dl->seq, static_cast<std::uint32_t>(dl->payload.size()),
                dl->guarantee == Guarantee::safe ? 1 : 0, fnv1a(dl->payload));
        } else {
            const auto& cc = std::get<totem::ConfigChange>(ev);
            std::uint64_t mask = 0;
            for (auto m : cc.members) mask |= 1ull << (m - 1);
            const bool regular = cc.kind == totem::ConfigChange::Kind::regular;
            add(now, Ev::config, node, cc.ring_id.rep, cc.ring_id.seq, 0,
                static_cast<std::uint32_t>(cc.members.size()), regular ? 1 : 0, mask);
            if (regular && failover_) {
                auto& f = *failover_;
                for (std::size_t i = 0; i < f.survivors.size(); ++i)
                    if (f.survivors[i] == node && f.done[i] == 0) f.done[i] = now;
                if (std::all_of(f.done.begin(), f.done.end(), [](std::uint64_t t) { return t != 0; })) {
                    result_.failovers.push_back(*std::max_element(f.done.begin(), f.done.end()) - f.at);
                    failover_.reset();
                }
            }
        }
    }
    for (auto& line : fx.log) {
        add(now, Ev::log, node, 0, result_.trace.notes.size());
        result_.trace.notes.push_back(std::move(line));
    }
    if (fx.watermark) add(now, Ev::watermark, node, 0, *fx.watermark);
    // Local watermark = deliveries so far: monotone, and the checker knows it. The
    // senders of what was delivered are told at once (watermark notices), as the store
    // tells the origins of what it applied.
    std::vector<totem::NodeId> notify;
    for (const auto& ev : fx.events)
        if (const auto* dl = std::get_if<totem::Delivery>(&ev)) notify.push_back(dl->sender);
    ring.set_local_watermark(sn.delivered, now, notify);
    if (ring.has_effects()) apply_effects(node, now);
}

void Simulation::on_submit(SimEvent& e, std::uint64_t now) {
    const std::uint32_t node = e.node;
    SimNode& sn = nodes_[node];
    if (!sn.up()) {  // the sender is down: the message never existed
        --pending_submits_;
        return;
    }
    if (!formed_) {
        // The workload starts once the nodes first formed one ring together, so that
        // without membership faults every message is expected everywhere.
        bool all = true;
        std::vector<totem::NodeId> ids;
        for (std::uint32_t y = 1; y <= n_; ++y)
            if (nodes_[y].up()) ids.push_back(y);
        for (auto y : ids) all = all && nodes_[y].ring->state() == totem::State::operational &&
                                 nodes_[y].ring->members() == ids;
        if (!all) {
            queue_.push(now + 5'000, std::move(e));
            return;
        }
        formed_ = true;
    }
    wire::Bytes msg = content(e.content_seed, e.size);
    const std::uint64_t hash = fnv1a(msg);
    totem::SubmitResult r = sn.ring->submit(std::move(msg), e.safe ? Guarantee::safe : Guarantee::agreed, now);
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

void Simulation::start_node(std::uint32_t node, std::uint64_t now) {
    SimNode& sn = nodes_[node];
    if (sn.up()) return;
    ++sn.epoch;
    sn.paused_until = 0;
    sn.last_token.clear();
    sn.ring = std::make_unique<Ring>(config_for(node), &sn.durable);
    add(now, Ev::start, node, 0, sn.durable.load_ring_seq());
    sn.ring->start(now);
    apply_effects(node, now);
}

void Simulation::crash_node(std::uint32_t node, std::uint64_t now, bool clean) {
    SimNode& sn = nodes_[node];
    if (!sn.up()) return;
    if (clean) {
        sn.ring->leave(now);
        add(now, Ev::leave, node);
        apply_effects(node, now);
    }
    // Failover statistics: survivors = the other live members of its ring.
    other_fault();
    if (sn.ring->state() == totem::State::operational && sn.ring->members().size() > 1 && !clean) {
        PendingFailover f;
        f.at = now;
        f.crashed = node;
        for (auto m : sn.ring->members())
            if (m != node && nodes_[m].up()) f.survivors.push_back(m);
        f.done.assign(f.survivors.size(), 0);
        if (!f.survivors.empty()) failover_ = std::move(f);
    }
    sn.ring.reset();
    ++sn.epoch;
    add(now, Ev::crash, node);
}

void Simulation::on_action(SimEvent& e, std::uint64_t now) {
    const std::uint32_t node = e.node;
    switch (e.action) {
        case Action::start:
        case Action::restart:
            if (e.action == Action::restart && !nodes_[node].up()) other_fault();
            start_node(node, now);
            break;
        case Action::crash: {
            // The victim is drawn now among the live nodes.
            std::vector<std::uint32_t> live;
            for (std::uint32_t y = 1; y <= n_; ++y)
                if (nodes_[y].up() && nodes_[y].paused_until <= now) live.push_back(y);
            if (live.size() < 2) break;
            const std::uint32_t victim = live[rng_.below(live.size())];
            crash_node(victim, now, rng_.chance(0.5));
            const std::uint64_t back = std::min(now + e.arg, heal_us_);
            push_action(back, Action::restart, victim);
            break;
        }
        case Action::pause: {
            const std::uint32_t victim = static_cast<std::uint32_t>(rng_.range(1, n_));
            SimNode& sn = nodes_[victim];
            if (!sn.up() || sn.paused_until > now) break;
            other_fault();
            sn.paused_until = now + e.arg;
            add(now, Ev::pause, victim, 0, sn.paused_until);
            break;
        }
        case Action::partition: {
            // A random split into two non-empty sides, cut both ways.
            other_fault();
            const std::uint64_t mask = draw_split(rng_, n_);
            for (std::uint32_t x = 1; x <= n_; ++x)
                for (std::uint32_t y = 1; y <= n_; ++y)
                    if (((mask >> (x - 1)) & 1) != ((mask >> (y - 1)) & 1)) {
                        net_.set_cut(x - 1, y - 1, true);
                        add(now, Ev::cut, y, x);
                    }
            push_action(std::min(now + e.arg, heal_us_), Action::uncut, 0, mask);
            break;
        }
        case Action::asym: {
            // One node stops hearing another (one direction only).
            other_fault();
            const auto x = static_cast<std::uint32_t>(rng_.range(1, n_));
            auto y = static_cast<std::uint32_t>(rng_.range(1, n_ - 1));
            if (y >= x) ++y;
            net_.set_cut(x - 1, y - 1, true);
            add(now, Ev::cut, y, x);
            push_action(std::min(now + e.arg, heal_us_), Action::uncut, 0, (std::uint64_t{x} << 32) | y);
            break;
        }
        case Action::uncut:
        case Action::cut:
            // Restore every cut link (episodes may overlap; the heal restores all anyway).
            for (std::uint32_t x = 1; x <= n_; ++x)
                for (std::uint32_t y = 1; y <= n_; ++y)
                    if (net_.cut(x - 1, y - 1)) {
                        net_.set_cut(x - 1, y - 1, false);
                        add(now, Ev::uncut, y, x);
                    }
            other_fault();
            break;
    }
}

void Simulation::schedule_faults() {
    std::vector<Action> kinds;
    if (o_.fault_partition) kinds.push_back(Action::partition);
    if (o_.fault_asym) kinds.push_back(Action::asym);
    if (o_.fault_crash) kinds.push_back(Action::crash);
    if (o_.fault_pause) kinds.push_back(Action::pause);
    if (kinds.empty()) return;
    const std::uint64_t episodes = rng_.range(1, 3);
    for (std::uint64_t k = 0; k < episodes; ++k) {
        const Action a = kinds[rng_.below(kinds.size())];
        const std::uint64_t t = rng_.range(100'000, heal_us_ - 500'000);
        std::uint64_t d = rng_.range(200'000, 1'500'000);
        if (a == Action::pause) d = o_.pause_ms ? std::uint64_t{o_.pause_ms} * 1000 : rng_.range(50'000, 1'500'000);
        push_action(t, a, 0, d);
    }
}

bool Simulation::settled() const {
    if (pending_submits_ != 0) return false;
    std::vector<totem::NodeId> live;
    for (std::uint32_t y = 1; y <= n_; ++y)
        if (nodes_[y].up()) live.push_back(y);
    if (live.empty()) return true;
    const Ring& first = *nodes_[live.front()].ring;
    for (auto y : live) {
        const Ring& r = *nodes_[y].ring;
        // Same high everywhere too: a frame still in flight to some node is not settled.
        if (!r.quiescent() || !(r.ring_id() == first.ring_id()) || r.members() != live ||
            r.window().high() != first.window().high())
            return false;
    }
    return true;
}

SeedResult Simulation::run() {
    result_.seed = seed_;
    result_.nodes = n_;
    const bool membership = o_.membership_faults();
    heal_us_ = membership ? kMembershipHealUs : kHealUs;
    const std::uint64_t workload_us = membership ? kMembershipWorkloadUs : kWorkloadUs;
    // Half the seeds start the rings just below 2^32 so seqs wrap during the run.
    initial_seq_ = rng_.chance(0.5) ? static_cast<std::uint32_t>(0xFFFFFFFFu - rng_.below(400))
                                    : static_cast<std::uint32_t>(rng_.below(1000));
    char header[320];
    std::snprintf(header, sizeof header, "seed %" PRIu64 " nodes %" PRIu32 " initial_seq %" PRIu64
                  " faults %s msgs %" PRIu32 " plant-bug %s",
                  seed_, n_, initial_seq_, faults_string(o_).c_str(), o_.msgs,
                  o_.plant_bug.empty() ? "none" : o_.plant_bug.c_str());
    result_.trace.header = header;

    net_.set_all(link_faults(o_));

    // A joining node: the highest starts late, while the others run.
    const std::uint32_t late = o_.fault_join && n_ > 2 ? n_ : 0;
    for (std::uint32_t k = 0; k < o_.msgs; ++k) {
        SimEvent e;
        e.kind = SimEvent::Kind::submit;
        const std::uint64_t t = rng_.below(workload_us);
        e.node = static_cast<std::uint32_t>(rng_.range(1, n_));
        e.size = draw_size(rng_, o_.max_size);
        e.safe = rng_.chance(0.5);
        e.content_seed = rng_.next();
        queue_.push(t, std::move(e));
        ++pending_submits_;
    }
    schedule_faults();
    if (late) push_action(rng_.range(200'000, heal_us_ - 500'000), Action::start, late);
    {
        SimEvent e;
        e.kind = SimEvent::Kind::heal;
        queue_.push(heal_us_, std::move(e));
    }
    for (std::uint32_t i = 1; i <= n_; ++i)
        if (i != late) start_node(i, 0);

    const std::uint64_t deadline = heal_us_ + kLivenessBoundUs;
    std::uint64_t now = 0, last_check = 0;
    while (!queue_.empty()) {
        if (healed_ && now >= last_check + 1'000) {
            last_check = now;
            if (settled()) break;
        }
        if (queue_.next_time() > deadline) break;
        auto entry = queue_.pop();
        now = entry.time;
        SimEvent& e = entry.payload;
        if (e.kind == SimEvent::Kind::packet || e.kind == SimEvent::Kind::timer || e.kind == SimEvent::Kind::submit) {
            SimNode& sn = nodes_[e.node];
            if (sn.up() && sn.paused_until > now) {  // paused: it all waits in the backlog
                const std::uint64_t at = sn.paused_until;
                queue_.push(at, std::move(e));
                continue;
            }
            if (sn.paused_until != 0 && sn.paused_until <= now) {
                sn.paused_until = 0;
                add(now, Ev::resume, e.node);
            }
        }
        switch (e.kind) {
            case SimEvent::Kind::packet: {
                SimNode& sn = nodes_[e.node];
                if (!sn.up()) break;  // nobody listening
                wt::DecodeResult d = wt::decode(e.bytes);
                if (d.ok()) {
                    if (const auto* f = std::get_if<wt::McastFrame>(&d.packet)) {
                        const wt::McastFrame* inner = f;
                        wt::DecodeResult id;
                        if (f->flags & wt::kFrameEncapsulated) {
                            id = wt::decode(wire::ByteView(f->chunks.front().data));
                            inner = id.ok() ? std::get_if<wt::McastFrame>(&id.packet) : nullptr;
                        }
                        // An old-ring frame recovered by a member of that ring counts as held.
                        if (inner && inner->header.ring_id.seq != 0 &&
                            (inner == f || inner->header.ring_id == sn.ring->ring_id())) {
                            const std::uint64_t key = ring_key(inner->header.ring_id.rep, inner->header.ring_id.seq);
                            if (sn.received.insert({key, inner->seq}).second)
                                add(now, Ev::recv, e.node, e.from, inner->seq, key);
                        }
                    }
                }
                sn.ring->on_packet(e.from, e.bytes, now);
                apply_effects(e.node, now);
                break;
            }
            case SimEvent::Kind::timer: {
                SimNode& sn = nodes_[e.node];
                if (!sn.up() || sn.epoch != e.epoch) break;
                sn.ring->on_timer(e.timer, now);
                apply_effects(e.node, now);
                break;
            }
            case SimEvent::Kind::submit:
                on_submit(e, now);
                break;
            case SimEvent::Kind::action:
                on_action(e, now);
                break;
            case SimEvent::Kind::heal:
                healed_ = true;
                net_.heal();
                add(now, Ev::heal, 0);
                for (std::uint32_t y = 1; y <= n_; ++y)
                    if (!nodes_[y].up()) start_node(y, now);
                break;
        }
    }
    result_.end_time_us = now;
    result_.submitted = accepted_;
    for (std::uint32_t y = 1; y <= n_; ++y) {
        if (!nodes_[y].up()) continue;
        const auto& st = nodes_[y].ring->stats();
        result_.malformed += st.malformed;
        result_.tokens_held += st.tokens_held;
        result_.lingers += st.lingers;
        result_.hold_cancels += st.hold_cancels_sent;
        result_.token_retransmits += st.token_retransmits;
        result_.retransmits += st.retransmits_sent;
        result_.rings_installed += st.rings_installed;
        result_.gathers += st.gathers;
    }
    std::vector<std::uint32_t> live;
    for (std::uint32_t y = 1; y <= n_; ++y)
        if (nodes_[y].up()) live.push_back(y);
    result_.violation = check_all(result_.trace, n_, live, membership);
    if (!result_.violation && result_.malformed != 0)
        result_.violation = Violation{"wire", "a core refused to decode a packet the simulator carried", 0, 0};
    return std::move(result_);
}

}  // namespace

std::uint64_t draw_split(Prng& rng, std::uint32_t n) {
    // The same draws as always below 64 nodes (seeds replay); at 64, 1 << n would overflow
    // (it once made the loop below spin forever).
    const std::uint64_t all = n >= 64 ? ~0ull : (1ull << n) - 1;
    std::uint64_t mask = 0;
    while (mask == 0 || mask == all) mask = n >= 64 ? rng.next() : rng.below(1ull << n);
    return mask;
}

void draw_seed_settings(totem::Config& c, std::uint64_t seed) {
    if (seed % 2 == 1) c.receipt_max_fcc = UINT32_MAX;
    c.linger_us = seed % 3 == 0 ? 0 : seed % 3 == 1 ? c.linger_us : 2'000;
}

std::uint32_t nodes_for_seed(const SimOptions& o, std::uint64_t seed) {
    if (o.nodes_min == o.nodes_max) return o.nodes_min;
    Prng sizes(seed ^ 0x6E6F646573ull);  // "nodes": a stream of its own
    return static_cast<std::uint32_t>(sizes.range(o.nodes_min, o.nodes_max));
}

SeedResult run_seed(const SimOptions& o, std::uint64_t seed) {
    if (o.workload == "store") return run_store_seed(o, seed);
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
