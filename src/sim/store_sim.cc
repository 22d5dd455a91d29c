#include "sim/store_sim.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <span>
#include <tuple>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "node/jobs.h"
#include "node/node.h"
#include "sim/event_queue.h"
#include "sim/network.h"
#include "sim/prng.h"
#include "store/store.h"
#include "totem/durable.h"
#include "totem/ring.h"

namespace conclave::sim {
namespace {

namespace fs = std::filesystem;
using totem::Ring;
using totem::TimerId;

inline constexpr std::uint64_t kStoreWorkloadUs = 2'500'000;
inline constexpr std::uint64_t kStoreHealUs = 3'000'000;
inline constexpr std::uint64_t kStoreLivenessUs = 15'000'000;

enum class Action : std::uint8_t { start, crash, restart, pause, partition, asym, uncut, power, override };

struct Ev2 {
    enum class Kind : std::uint8_t { packet, timer, job, request, action, heal, lms } kind{};
    std::uint32_t node = 0;
    std::uint32_t from = 0;
    std::uint32_t inc = 0;  // incarnation that armed a timer / started a job
    TimerId timer{};
    Action action{};
    std::uint64_t arg = 0;
    wire::Bytes bytes;
    std::uint64_t req = 0;  // request index
};

struct SNode {
    std::unique_ptr<Ring> ring;
    std::unique_ptr<node::Node> node;
    std::unique_ptr<store::Store> store;
    totem::MemoryDurable durable;
    std::uint32_t inc = 0;
    std::uint64_t paused_until = 0;
    std::deque<node::Job> jobs;
    bool job_scheduled = false;
    bool slow_disk = false;  // drawn per seed: every commit takes 2..30 ms
    std::uint32_t boots = 0;  // power failures so far: the store sees a new boot after each
    std::uint64_t lms_generation = 0;
    // The configuration this node is in (for the quorum checker).
    std::string config_key;
    std::uint64_t config_mask = 0;
    std::uint64_t config_since = 0;
    std::map<std::uint64_t, std::uint64_t> tags;  // driver tag -> request index
    bool up() const { return ring != nullptr; }
};

struct Request {
    std::uint32_t node = 0;
    store::Transition t;
    bool submitted = false;
    bool acked = false;
    int err = 0;
    std::uint64_t version = 0;
    std::uint64_t acked_at = 0;
};

struct ConfigUse {
    std::uint64_t mask = 0;
    std::uint64_t from = 0, to = 0;
    bool exempt = false;  // quorate by an operator's override or two_node (both may split)
};

class StoreSim {
public:
    StoreSim(const SimOptions& o, std::uint64_t seed)
        : o_(o), seed_(seed), n_(nodes_for_seed(o, seed)), rng_(seed), limits_rng_(seed ^ 0x6C696D6974735F5Full), totem_rng_(seed ^ 0x746F74656D5F5F5Full),
          quorum_rng_(seed ^ 0x71756F72756D5F5Full), net_(n_), nodes_(n_ + 1) {}
    ~StoreSim() {
        for (auto& sn : nodes_) {
            sn.node.reset();
            sn.store.reset();
        }
        std::error_code ec;
        if (!dir_.empty()) fs::remove_all(dir_, ec);
    }
    SeedResult run();

private:
    void note(std::uint64_t t, std::uint32_t node, std::string text) {
        result_.trace.add(TraceEvent{t, Ev::log, node, 0, result_.trace.notes.size()});
        result_.trace.notes.push_back(std::move(text));
    }
    void violate(std::string property, std::string detail, std::uint32_t node = 0) {
        if (result_.violation) return;
        result_.violation = Violation{std::move(property), std::move(detail), result_.trace.events.size(), node};
        note(now_, node, "VIOLATION: " + result_.violation->property + ": " + result_.violation->detail);
    }
    totem::Config ring_config(std::uint32_t node) const;
    node::Bugs bugs() const {
        node::Bugs b;
        b.apply_inquorate_transitional = o_.plant_bug == "apply-inquorate-transitional";
        b.source_highest_version = o_.plant_bug == "source-highest-version";
        b.no_yellow = o_.plant_bug == "no-yellow";
        b.lms_settled_transitional = o_.plant_bug == "lms-settled-transitional";
        return b;
    }
    std::string node_dir(std::uint32_t node) const { return dir_ + "/n" + std::to_string(node); }
    // The node's store in its temp dir, without fsync and with the whole history retained
    // (the final check reads it back to genesis). False (and a violation) if it fails.
    bool open_store(std::uint32_t node) {
        store::Options so;
        so.sync = false;
        so.map_size = 64ull << 20;
        so.retain = 1'000'000;
        so.retain_bytes = ~std::uint64_t{0};
        // Small journal files: rotations and checkpoints happen every few dozen commits.
        so.journal_capacity = 256u << 10;
        so.background_checkpoint = false;
        so.boot_id = "sim-boot-" + std::to_string(nodes_[node].boots);
        auto st = store::Store::open(node_dir(node), so);
        if (!st) {
            violate("node stopped", "cannot open the store: " + st.error(), node);
            return false;
        }
        nodes_[node].store = std::move(st.value());
        return true;
    }
    void create_state(std::uint32_t node);
    void start_node(std::uint32_t node);
    void crash_node(std::uint32_t node, bool clean);
    // A power failure: a crash, and what only the page cache held is gone. LMDB commits
    // are not synced (the journal is), so its file is lost here outright: the store
    // must rebuild it from its checkpoint and journal on the next (new) boot.
    void lose_power(std::uint32_t node);
    void drive(std::uint32_t node);
    bool drain_node(std::uint32_t node);
    void run_job(std::uint32_t node);
    void schedule_job(std::uint32_t node);
    void record_applied(std::uint32_t node, const node::JobResult& r);
    void on_request(Ev2& e);
    void on_action(Ev2& e);
    void push_action(std::uint64_t t, Action a, std::uint32_t node, std::uint64_t arg = 0) {
        Ev2 e;
        e.kind = Ev2::Kind::action;
        e.action = a;
        e.node = node;
        e.arg = arg;
        queue_.push(t, std::move(e));
    }
    store::Transition random_transition();
    bool settled();
    void final_checks();
    // Every write transaction stayed within the disk blocks the store gave it beforehand
    // (Store::reserve_overruns): else a full file system could kill the node by SIGBUS.
    void check_reserve(std::uint32_t node) {
        const auto& st = nodes_[node].store;
        if (const std::uint64_t n = st ? st->reserve_overruns() : 0)
            violate("store reservation",
                    std::to_string(n) + " transaction(s) used pages past the blocks reserved for them", node);
    }
    std::string node_status(std::uint32_t y);

    const SimOptions& o_;
    std::uint64_t seed_;
    std::uint32_t n_;
    Prng rng_;
    // Draws cluster limit changes from a stream of its own, so that adding them kept every
    // other draw of a seed (and the planted-bug seeds) where it was.
    Prng limits_rng_;
    Prng totem_rng_;  // and ring setting changes from another
    Prng quorum_rng_;  // and quorum option changes from a third
    Network net_;
    EventQueue<Ev2> queue_;
    std::vector<SNode> nodes_;
    std::string dir_;
    std::uint64_t now_ = 0;
    std::uint64_t next_tag_ = 0;
    std::vector<Request> requests_;
    std::map<std::pair<std::uint64_t, std::uint64_t>, store::Hash> heads_seen_;  // (epoch, version) -> H
    // (version, origin, request) -> epoch: one transition applied at one version by
    // several nodes belongs to one configuration's history, whichever configuration
    // (regular, or the transitional one after it) each node delivered it in. With the
    // nodes that applied it there: a copy whose every holder installed a snapshot since
    // is gone (a branch of unacknowledged transitions that a majority lost in a power
    // failure), and the origin's retry may land at the same version in another epoch.
    struct EpochSeen {
        std::uint64_t epoch = 0;
        std::set<std::uint32_t> holders;
    };
    std::map<std::tuple<std::uint64_t, std::uint32_t, std::uint64_t>, EpochSeen> epochs_seen_;
    std::map<std::string, ConfigUse> quorate_uses_;
    std::uint32_t empty_node_ = 0;  // starts with no state: joins by sync
    std::vector<std::pair<std::string, std::uint64_t>> quorum_settings_;  // drawn per seed
    std::vector<std::pair<std::string, std::uint64_t>> totem_settings_;   // drawn per seed
    bool forks_allowed_ = false;  // an override or a two_node split happened: forks are legitimate
    std::set<std::pair<std::uint64_t, std::uint32_t>> discarded_;  // (version, origin) reported discarded
    bool healed_ = false;
    SeedResult result_;
};

totem::Config StoreSim::ring_config(std::uint32_t node) const {
    totem::Config c;
    c.self = node;
    c.mtu = o_.mtu;
    c.send_queue_bytes = 4u << 20;
    c.send_queue_messages = 64;
    c.token_retransmit_us = 10'000;
    c.hold_us = 5'000;
    draw_seed_settings(c, seed_);
    return c;
}

// Every node but one (sometimes) starts with the same created cluster: genesis by node 1
// and every node added, as `conclavectl create` and `node add` would have left it.
void StoreSim::create_state(std::uint32_t node) {
    auto& st = *nodes_[node].store;
    std::vector<store::Item> items;
    store::Transition g;
    g.op = store::Op::genesis;
    g.origin = 1;
    g.request = 1;
    g.timestamp_us = 1;
    g.node_id = 1;
    g.node_name = "node1";
    g.votes = 1;
    for (std::size_t i = 0; i < g.cluster_id.size(); ++i) g.cluster_id[i] = static_cast<std::uint8_t>(0xC0 + i);
    items.push_back({1, g, std::nullopt});
    for (std::uint32_t y = 2; y <= n_; ++y) {
        store::Transition a;
        a.op = store::Op::node_add;
        a.origin = 1;
        a.request = y;
        a.timestamp_us = y;
        a.node_id = y;
        a.node_name = "node" + std::to_string(y);
        a.votes = 1;
        items.push_back({1, a, std::nullopt});
    }
    std::uint64_t request = 100;
    auto setting = [&](store::Op op, const std::string& key, std::uint64_t value) {
        store::Transition q;
        q.op = op;
        q.origin = 1;
        q.request = ++request;
        q.timestamp_us = request;
        q.node_name = key;
        q.size = value;
        items.push_back({1, q, std::nullopt});
    };
    for (const auto& [key, value] : quorum_settings_) setting(store::Op::quorum_set, key, value);
    for (const auto& [key, value] : totem_settings_) setting(store::Op::totem_set, key, value);
    auto r = st.apply(items);
    if (!r) violate("node stopped", "cannot create the initial state: " + r.error(), node);
}

void StoreSim::start_node(std::uint32_t node) {
    SNode& sn = nodes_[node];
    if (sn.up()) return;
    ++sn.inc;
    sn.paused_until = 0;
    sn.jobs.clear();
    sn.job_scheduled = false;
    sn.tags.clear();
    if (!open_store(node)) return;
    sn.ring = std::make_unique<Ring>(ring_config(node), &sn.durable);
    node::Config nc;
    nc.self = node;
    nc.request_base = std::uint64_t{sn.inc} << 32;
    nc.log_batch_bytes = 16 * 1024;
    nc.chunk_bytes = 8 * 1024;
    Ring* ring = sn.ring.get();
    sn.node = std::make_unique<node::Node>(
        nc, sn.store->head(), sn.store->meta(),
        [this, ring](wire::Bytes m, totem::Guarantee g) { return ring->submit(std::move(m), g, now_); }, bugs());
    result_.trace.add(TraceEvent{now_, Ev::start, node, 0, sn.durable.load_ring_seq()});
    {
        const auto h = sn.store->head();
        note(now_, node, "store at (" + std::to_string(h.epoch) + ", " + std::to_string(h.version) + ")");
    }
    sn.ring->start(now_);
    drive(node);
}

void StoreSim::crash_node(std::uint32_t node, bool clean) {
    SNode& sn = nodes_[node];
    if (!sn.up()) return;
    if (clean) {
        // A clean stop drains the apply worker, then leaves.
        while (!sn.jobs.empty() && sn.up()) run_job(node);
        if (!sn.up()) return;
        sn.ring->leave(now_);
        result_.trace.add(TraceEvent{now_, Ev::leave, node});
        drive(node);
        if (auto st = sn.store->close(); !st) violate("node stopped", "cannot close the store: " + st.error(), node);
    } else if (!sn.jobs.empty()) {
        note(now_, node, std::to_string(sn.jobs.size()) + " store job(s) lost in the crash (not yet committed)");
    }
    check_reserve(node);
    sn.jobs.clear();
    sn.node.reset();
    sn.ring.reset();
    sn.store.reset();
    ++sn.inc;
    result_.trace.add(TraceEvent{now_, Ev::crash, node});
}

void StoreSim::lose_power(std::uint32_t node) {
    if (!nodes_[node].up()) return;
    crash_node(node, false);
    ++nodes_[node].boots;
    std::error_code ec;
    std::filesystem::remove(node_dir(node) + "/data.mdb", ec);
}

void StoreSim::schedule_job(std::uint32_t node) {
    SNode& sn = nodes_[node];
    if (sn.job_scheduled || sn.jobs.empty()) return;
    sn.job_scheduled = true;
    Ev2 e;
    e.kind = Ev2::Kind::job;
    e.node = node;
    e.inc = sn.inc;
    // A slow disk, or mostly a fast one with a slow fsync now and then: the window in
    // which a crash loses applied but uncommitted transitions.
    const std::uint64_t delay = sn.slow_disk      ? rng_.range(2'000, 30'000)
                                : rng_.chance(0.1) ? rng_.range(5'000, 50'000)
                                                   : rng_.range(20, 3'000);
    queue_.push(now_ + delay, std::move(e));
}

void StoreSim::record_applied(std::uint32_t node, const node::JobResult& r) {
    auto check = [&](std::uint64_t epoch, std::uint64_t version, const store::Hash& h) {
        if (version == 0) return;
        auto [it, fresh] = heads_seen_.emplace(std::make_pair(epoch, version), h);
        if (!fresh && it->second != h && !forks_allowed_)
            violate("histories never fork",
                    "(epoch " + std::to_string(epoch) + ", version " + std::to_string(version) + ") has H " +
                        store::hex(h).substr(0, 16) + " here but " + store::hex(it->second).substr(0, 16) +
                        " elsewhere",
                    node);
    };
    if (const auto* a = std::get_if<node::ResultApplied>(&r)) {
        for (const auto& ap : a->applied) {
            check(ap.epoch, ap.version, ap.hash);
            auto [it, fresh] =
                epochs_seen_.emplace(std::make_tuple(ap.version, ap.origin, ap.request), EpochSeen{ap.epoch, {}});
            it->second.holders.insert(node);
            if (!fresh && it->second.epoch != ap.epoch && !forks_allowed_)
                violate("one transition, one epoch",
                        "version " + std::to_string(ap.version) + " (request " + std::to_string(ap.request) +
                            " of node " + std::to_string(ap.origin) + ") applied in epoch " +
                            std::to_string(ap.epoch) + " here but " + std::to_string(it->second.epoch) +
                            " elsewhere: its history looks forked to a sync",
                        node);
        }
    } else if (const auto* in = std::get_if<node::ResultInstalled>(&r)) {
        // This node's history is the installed one now.
        for (auto it = epochs_seen_.begin(); it != epochs_seen_.end();) {
            it->second.holders.erase(node);
            it = it->second.holders.empty() ? epochs_seen_.erase(it) : std::next(it);
        }
        check(in->head.epoch, in->head.version, in->head.hash);
        note(now_, node, "installed a snapshot at version " + std::to_string(in->head.version));
    }
}

void StoreSim::run_job(std::uint32_t node) {
    SNode& sn = nodes_[node];
    if (sn.jobs.empty()) return;
    node::Job job = std::move(sn.jobs.front());
    sn.jobs.pop_front();
    node::JobResult r = node::execute(*sn.store, job, node);
    record_applied(node, r);
    sn.node->on_job_done(std::move(r));
    drive(node);
}

// Carries out the node's effects; true if there were none.
bool StoreSim::drain_node(std::uint32_t node) {
    SNode& sn = nodes_[node];
    node::Effects nx = sn.node->take_effects();
    for (auto& line : nx.log) note(now_, node, std::move(line));
    for (auto& j : nx.jobs) {
        if (const auto* a = std::get_if<node::JobApply>(&j)) {
            // A decision to apply in the current configuration (sync-by-log items carry
            // their expected hash and belong to older configurations).
            if (!a->items.empty() && !a->items.front().expect) {
                if (o_.fault_stall && now_ < kStoreHealUs && sn.paused_until <= now_ && rng_.chance(0.03)) {
                    sn.paused_until = now_ + rng_.range(50'000, 1'500'000);
                    result_.trace.add(TraceEvent{now_, Ev::pause, node, 0, sn.paused_until});
                }
                auto& use = quorate_uses_[sn.config_key];
                if (use.mask == 0) {
                    use.mask = sn.config_mask;
                    use.from = sn.config_since;
                }
                const auto& flags = sn.node->quorum_status().flags;
                if (flags.override_expected || flags.two_node) {
                    use.exempt = true;
                    forks_allowed_ = true;
                }
                use.from = std::min(use.from, sn.config_since);
                use.to = std::max(use.to, now_);
            }
        }
        sn.jobs.push_back(std::move(j));
    }
    schedule_job(node);
    for (const auto& rep : nx.replies) {
        auto it = sn.tags.find(rep.tag);
        if (it == sn.tags.end()) continue;
        const std::uint64_t index = it->second;
        Request& rq = requests_[index];
        sn.tags.erase(it);
        if (rep.version != 0) {
            rq.acked = true;
            rq.err = rep.err;
            rq.version = rep.version;
            rq.acked_at = now_;
            ++result_.delivered;
            note(now_, node, "ack: request " + std::to_string(index) + " " + store::op_name(rq.t.op) + " " +
                                 (rq.t.path.empty() ? rq.t.node_name : rq.t.path) + " -> version " + std::to_string(rep.version) + " errno " +
                                 std::to_string(rep.err));
        } else {
            note(now_, node, "refused: request " + std::to_string(index) + " errno " + std::to_string(rep.err) +
                                 " (" + rep.why + ")");
        }
    }
    if (nx.local_watermark) sn.ring->set_local_watermark(*nx.local_watermark, now_, nx.watermark_notify);
    if (nx.totem_settings) {
        auto why = sn.ring->update_settings(totem::with_settings(ring_config(node), *nx.totem_settings));
        if (!why.empty()) note(now_, node, "ring settings refused: " + why);
    }
    for (const auto& rec : nx.discarded)
        if (auto t = store::decode(rec.transition)) discarded_.insert({rec.version, t->origin});
    if (nx.lms_timer_us) {
        Ev2 e;
        e.kind = Ev2::Kind::lms;
        e.node = node;
        e.inc = sn.inc;
        e.arg = ++sn.lms_generation;
        queue_.push(now_ + *nx.lms_timer_us, std::move(e));
    }
    if (nx.stop) {
        violate("node stopped", *nx.stop, node);
        crash_node(node, false);
        return false;
    }
    return nx.empty();
}

// Carries out the ring's and the node's effects until both are quiet.
void StoreSim::drive(std::uint32_t node) {
    SNode& sn = nodes_[node];
    for (int round = 0; round < 1000 && sn.up(); ++round) {
        totem::Effects fx = sn.ring->take_effects();
        // Frames before the token that announces them (Totem §3.1), as the runtime sends.
        for (auto& m : fx.multicasts)
            for (std::uint32_t y = 1; y <= n_; ++y) {
                if (y == node) continue;
                for (auto t : net_.route(node - 1, y - 1, now_, rng_)) {
                    Ev2 e;
                    e.kind = Ev2::Kind::packet;
                    e.node = y;
                    e.from = node;
                    e.bytes = m;
                    queue_.push(t, std::move(e));
                }
            }
        for (auto& u : fx.unicasts)
            for (auto t : net_.route(node - 1, u.to - 1, now_, rng_)) {
                Ev2 e;
                e.kind = Ev2::Kind::packet;
                e.node = u.to;
                e.from = node;
                e.bytes = u.bytes;
                queue_.push(t, std::move(e));
            }
        for (const auto& op : fx.timers) {
            if (!op.arm) continue;
            Ev2 e;
            e.kind = Ev2::Kind::timer;
            e.node = node;
            e.inc = sn.inc;
            e.timer = op.timer;
            queue_.push(op.deadline < now_ ? now_ : op.deadline, std::move(e));
        }
        for (auto& line : fx.log) note(now_, node, std::move(line));
        for (auto& ev : fx.events) {
            if (const auto* cc = std::get_if<totem::ConfigChange>(&ev)) {
                std::uint64_t mask = 0;
                for (auto m : cc->members) mask |= 1ull << (m - 1);
                const bool regular = cc->kind == totem::ConfigChange::Kind::regular;
                sn.config_key = std::string(regular ? "R" : "T") + std::to_string(cc->ring_id.rep) + "." +
                                std::to_string(cc->ring_id.seq) + "/" + std::to_string(mask);
                sn.config_mask = mask;
                sn.config_since = now_;
                result_.trace.add(TraceEvent{now_, Ev::config, node, cc->ring_id.rep, cc->ring_id.seq, 0,
                                             static_cast<std::uint32_t>(cc->members.size()),
                                             static_cast<std::uint8_t>(regular ? 1 : 0), mask});
            }
            sn.node->on_event(ev);
            // Node effects right away: an apply decision belongs to the configuration
            // the node is in when it makes it.
            drain_node(node);
            if (!sn.up()) return;
        }
        if (fx.watermark) sn.node->on_ring_watermark(*fx.watermark);
        sn.node->pump();
        bool node_quiet = drain_node(node);
        if (!sn.up()) return;
        if (fx.empty() && node_quiet) return;
    }
}

store::Transition StoreSim::random_transition() {
    static const char* files[] = {"/f0", "/f1", "/f2", "/f3", "/d0/g0", "/d0/g1", "/d1/g0"};
    static const char* dirs[] = {"/d0", "/d1", "/d0/e"};
    auto file = [&] { return std::string(files[rng_.below(7)]); };
    auto dir = [&] { return std::string(dirs[rng_.below(3)]); };
    store::Transition t;
    t.timestamp_us = now_ + 1'000'000'000ull;
    const auto r = rng_.below(100);
    if (r < 40) {
        t.op = store::Op::write;
        t.path = file();
        t.data.resize(rng_.below(100) < 90 ? rng_.range(0, 200) : rng_.range(1000, 20'000));
        for (auto& b : t.data) b = static_cast<std::uint8_t>(rng_.next());
    } else if (r < 50) {
        t.op = store::Op::create;
        t.flags = store::kExclusive | store::kSetMode;
        t.mode = 0640;
        t.path = file();
    } else if (r < 60) {
        t.op = store::Op::unlink;
        t.path = file();
    } else if (r < 70) {
        t.op = store::Op::mkdir;
        t.mode = 0755;
        t.path = dir();
    } else if (r < 75) {
        t.op = store::Op::rmdir;
        t.path = dir();
    } else if (r < 90) {
        t.op = store::Op::rename;
        t.path = file();
        t.path2 = file();
        if (rng_.chance(0.3)) t.flags = store::kNoReplace;
    } else if (r < 95) {
        t.op = store::Op::truncate;
        t.path = file();
        t.size = rng_.below(300);
    } else {
        t.op = store::Op::set_mode;
        t.path = file();
        t.mode = rng_.chance(0.5) ? 0600 : 0644;
    }
    return t;
}

// One way a setting transition is drawn: the key, the value's range (0 to 0: a reset to
// the default) and its weight among the others.
struct SettingDraw {
    const char* key;
    std::uint64_t lo, hi;
    std::uint64_t weight;
};

store::Transition draw_setting(store::Op op, Prng& rng, std::span<const SettingDraw> draws) {
    std::uint64_t total = 0;
    for (const auto& d : draws) total += d.weight;
    std::uint64_t r = rng.below(total);
    std::size_t i = 0;
    while (r >= draws[i].weight) r -= draws[i++].weight;
    store::Transition t;
    t.op = op;
    t.node_name = draws[i].key;
    t.size = rng.range(draws[i].lo, draws[i].hi);
    return t;
}

// `conclavectl limits set`: mostly max_file_size within the sizes random_transition writes
// (so that writes start and stop failing with EFBIG), resets, and values below the
// minimums (EINVAL on every node alike).
constexpr SettingDraw kLimitDraws[] = {
    {"max_file_size", 4096, 24'000, 60}, {"max_file_size", 0, 0, 10}, {"max_name", 0, 0, 10},
    {"max_name", 16, 255, 10},           {"max_file_size", 1, 4095, 5}, {"max_total_size", 1, 4095, 5},
};
// `conclavectl totem set` while the ring runs: the token timeout, the flow control or the
// join timing change on every node as it applies the change (and back at a reset).
constexpr SettingDraw kTotemDraws[] = {
    {"token", 800, 1500, 30},      {"window_size", 10, 200, 20}, {"max_messages", 1, 50, 15},
    {"consensus", 100, 400, 10},   {"token", 0, 0, 7},           {"window_size", 0, 0, 6},
    {"max_messages", 0, 0, 6},     {"consensus", 0, 0, 6},
};

// `conclavectl quorum set` while the ring runs: quorum of the ring that applies it, and of
// every ring after, is decided again with the new option.
constexpr SettingDraw kQuorumDraws[] = {
    {"wait_for_all", 0, 1, 30}, {"last_man_standing", 0, 1, 30}, {"auto_tie_breaker", 0, 2, 30},
    {"last_man_standing_window", 1'000, 1'500, 10},
};

void StoreSim::on_request(Ev2& e) {
    Request& rq = requests_[e.req];
    SNode& sn = nodes_[rq.node];
    if (!sn.up()) return;  // the client's node is down: the request never existed
    rq.submitted = true;
    rq.t.timestamp_us = now_ + 1'000'000'000ull;
    const std::uint64_t tag = ++next_tag_;
    sn.tags[tag] = e.req;
    ++result_.submitted;
    sn.node->submit(tag, rq.t);
    drive(rq.node);
}

void StoreSim::on_action(Ev2& e) {
    switch (e.action) {
        case Action::start:
        case Action::restart:
            start_node(e.node);
            break;
        case Action::crash: {
            std::vector<std::uint32_t> live;
            for (std::uint32_t y = 1; y <= n_; ++y)
                if (nodes_[y].up() && nodes_[y].paused_until <= now_) live.push_back(y);
            if (live.size() < 2) break;
            if (rng_.chance(0.3)) {
                // A power failure of several nodes at once (a rack, or the whole cluster):
                // each loses what it had not committed, and they come back one by one.
                const auto k = rng_.chance(0.5) ? live.size() : static_cast<std::size_t>(rng_.range(2, live.size()));
                for (std::size_t i = 0; i < k; ++i) {
                    const auto j = i + static_cast<std::size_t>(rng_.below(live.size() - i));
                    std::swap(live[i], live[j]);
                    lose_power(live[i]);
                    push_action(std::min(now_ + rng_.range(20'000, e.arg), kStoreHealUs), Action::restart, live[i]);
                }
                note(now_, 0, std::to_string(k) + " nodes lost power at once");
                break;
            }
            const std::uint32_t victim = live[rng_.below(live.size())];
            crash_node(victim, rng_.chance(0.3));
            push_action(std::min(now_ + e.arg, kStoreHealUs), Action::restart, victim);
            break;
        }
        case Action::power: {
            // Every node loses power at once and comes back after its own delay.
            std::uint32_t k = 0;
            for (std::uint32_t y = 1; y <= n_; ++y) {
                if (!nodes_[y].up()) continue;
                lose_power(y);
                push_action(std::min(now_ + rng_.range(20'000, e.arg), kStoreHealUs), Action::restart, y);
                ++k;
            }
            note(now_, 0, "power failure: " + std::to_string(k) + " nodes down");
            break;
        }
        case Action::pause: {
            const auto victim = static_cast<std::uint32_t>(rng_.range(1, n_));
            SNode& sn = nodes_[victim];
            if (!sn.up() || sn.paused_until > now_) break;
            sn.paused_until = now_ + e.arg;
            result_.trace.add(TraceEvent{now_, Ev::pause, victim, 0, sn.paused_until});
            break;
        }
        case Action::partition: {
            const std::uint64_t mask = draw_split(rng_, n_);
            for (std::uint32_t x = 1; x <= n_; ++x)
                for (std::uint32_t y = 1; y <= n_; ++y)
                    if (((mask >> (x - 1)) & 1) != ((mask >> (y - 1)) & 1)) net_.set_cut(x - 1, y - 1, true);
            note(now_, 0, "partition " + std::to_string(mask));
            push_action(std::min(now_ + e.arg, kStoreHealUs), Action::uncut, 0);
            // Now and then an operator makes an inquorate side writable (`expected`).
            if (rng_.chance(0.25)) push_action(now_ + rng_.range(100'000, 400'000), Action::override, 0);
            break;
        }
        case Action::override: {
            // On a node of an inquorate but synced configuration, if there is one:
            // expected votes = the votes present.
            for (std::uint32_t y = 1; y <= n_; ++y) {
                SNode& sn = nodes_[y];
                if (!sn.up() || sn.node->phase() != node::Phase::synced || sn.node->quorate()) continue;
                const auto& st = sn.node->quorum_status();
                if (st.total_votes == 0) continue;
                note(now_, y, "operator: expected " + std::to_string(st.total_votes));
                sn.node->set_expected(++next_tag_, st.total_votes);
                forks_allowed_ = true;
                drive(y);
                break;
            }
            break;
        }
        case Action::asym: {
            const auto x = static_cast<std::uint32_t>(rng_.range(1, n_));
            auto y = static_cast<std::uint32_t>(rng_.range(1, n_ - 1));
            if (y >= x) ++y;
            net_.set_cut(x - 1, y - 1, true);
            note(now_, 0, "one-way cut " + std::to_string(x) + " -> " + std::to_string(y));
            push_action(std::min(now_ + e.arg, kStoreHealUs), Action::uncut, 0);
            break;
        }
        case Action::uncut:
            for (std::uint32_t x = 0; x < n_; ++x)
                for (std::uint32_t y = 0; y < n_; ++y) net_.set_cut(x, y, false);
            note(now_, 0, "links restored");
            break;
    }
}

std::string StoreSim::node_status(std::uint32_t y) {
    SNode& sn = nodes_[y];
    if (!sn.up()) return "n" + std::to_string(y) + " down";
    const auto& nd = *sn.node;
    return "n" + std::to_string(y) + " " + totem::state_name(sn.ring->state()) + " ring " +
           std::to_string(sn.ring->ring_id().seq) + " members " + std::to_string(sn.ring->members().size()) + " " +
           node::phase_name(nd.phase()) + (nd.quorate() ? " quorate" : " inquorate") + " version " +
           std::to_string(nd.durable_head().version) + " pending " + std::to_string(nd.pending_requests()) +
           " jobs " + std::to_string(sn.jobs.size());
}

bool StoreSim::settled() {
    std::vector<std::uint32_t> live;
    for (std::uint32_t y = 1; y <= n_; ++y)
        if (nodes_[y].up()) live.push_back(y);
    if (live.empty()) return true;
    const SNode& first = nodes_[live.front()];
    for (auto y : live) {
        const SNode& sn = nodes_[y];
        const auto& nd = *sn.node;
        if (!sn.ring->quiescent() || !(sn.ring->ring_id() == first.ring->ring_id()) || sn.ring->members() != live)
            return false;
        if (nd.phase() != node::Phase::synced || !nd.quorate() || !sn.jobs.empty() || nd.pending_requests() != 0 ||
            nd.outstanding_jobs() != 0 || !(nd.durable_head() == first.node->durable_head()))
            return false;
    }
    return true;
}

void StoreSim::final_checks() {
    std::vector<std::uint32_t> live;
    for (std::uint32_t y = 1; y <= n_; ++y)
        if (nodes_[y].up()) live.push_back(y);
    if (live.empty()) return;
    for (auto y : live) check_reserve(y);
    // Replicas identical.
    const auto h0 = nodes_[live.front()].store->head();
    const auto c0 = nodes_[live.front()].store->content_hash();
    for (auto y : live) {
        auto h = nodes_[y].store->head();
        auto c = nodes_[y].store->content_hash();
        if (!(h == h0) || c != c0) {
            violate("replicas identical",
                    "n" + std::to_string(y) + " has version " + std::to_string(h.version) + " content " +
                        store::hex(c).substr(0, 16) + ", n" + std::to_string(live.front()) + " version " +
                        std::to_string(h0.version) + " content " + store::hex(c0).substr(0, 16),
                    y);
            return;
        }
    }
    // Each node decides quorum and its ring settings from its own copy of the cluster
    // metadata: it must be the store's, whichever way the node came to its head.
    for (auto y : live) {
        const store::Meta m = nodes_[y].store->meta();
        if (!(nodes_[y].node->meta() == m)) {
            violate("replicas identical",
                    "n" + std::to_string(y) + "'s node holds other cluster metadata than its store at version " +
                        std::to_string(h0.version) + " (node list, quorum options, ring settings or limits)",
                    y);
            return;
        }
    }
    // The final history: some live node's retained log from genesis.
    std::optional<std::vector<store::LogRecord>> history;
    for (auto y : live) {
        history = nodes_[y].store->log_after(0, store::Hash{});
        if (history) break;
    }
    if (!history) {
        violate("acknowledged write lost", "no live node retains the history back to genesis (cannot check)");
        return;
    }
    std::map<std::uint64_t, const store::LogRecord*> by_version;
    for (const auto& r : *history) by_version[r.version] = &r;
    for (std::size_t i = 0; i < requests_.size(); ++i) {
        const Request& rq = requests_[i];
        if (!rq.acked) continue;
        auto it = by_version.find(rq.version);
        std::string why;
        if (it == by_version.end()) {
            why = "the final history has no version " + std::to_string(rq.version);
        } else {
            auto t = store::decode(it->second->transition);
            if (!t) {
                why = "the record does not decode";
            } else if (t->origin != rq.node || t->op != rq.t.op || t->path != rq.t.path || t->path2 != rq.t.path2 ||
                       t->data != rq.t.data || t->flags != rq.t.flags || t->mode != rq.t.mode || t->size != rq.t.size ||
                       t->expect != rq.t.expect || t->node_name != rq.t.node_name) {
                why = "version " + std::to_string(rq.version) + " holds " + store::op_name(t->op) + " " + t->path +
                      " from n" + std::to_string(t->origin);
            } else if (it->second->err != rq.err) {
                why = "the final history's errno is " + std::to_string(it->second->err) + ", the client got " +
                      std::to_string(rq.err);
            }
        }
        // Under an override (or a two_node split) a side's acknowledged writes may be
        // replaced when partitions merge, but never silently: the node reports them
        // (failed requests changed nothing and are not reported).
        if (!why.empty() && forks_allowed_ && (rq.err != 0 || discarded_.count({rq.version, rq.node}))) continue;
        if (!why.empty()) {
            violate("acknowledged write lost",
                    "request " + std::to_string(i) + " (" + store::op_name(rq.t.op) + " " + rq.t.path + " on n" +
                        std::to_string(rq.node) + ", acknowledged at " + std::to_string(rq.acked_at) + " us as version " +
                        std::to_string(rq.version) + "): " + why,
                    rq.node);
            return;
        }
    }
}

SeedResult StoreSim::run() {
    result_.seed = seed_;
    result_.nodes = n_;
    char header[320];
    std::snprintf(header, sizeof header, "seed %" PRIu64 " nodes %" PRIu32 " workload store faults %s requests %" PRIu32
                  " plant-bug %s",
                  seed_, n_, faults_string(o_).c_str(), o_.msgs, o_.plant_bug.empty() ? "none" : o_.plant_bug.c_str());
    result_.trace.header = header;

    const char* tmp = std::getenv("TMPDIR");
    std::string base = (tmp && *tmp) ? tmp : "/tmp";
    std::string templ = base + "/conclave-sim-XXXXXX";
    if (!mkdtemp(templ.data())) {
        violate("node stopped", "cannot create a temporary directory under " + base);
        return std::move(result_);
    }
    dir_ = templ;
    for (std::uint32_t y = 1; y <= n_; ++y) {
        fs::create_directories(node_dir(y));
        nodes_[y].slow_disk = rng_.chance(0.4);
    }

    net_.set_all(link_faults(o_));

    // Quorum options, drawn per seed (DESIGN.md §7).
    if (n_ == 2 && rng_.chance(0.7)) quorum_settings_.push_back({"two_node", 1});
    if (rng_.chance(0.25)) quorum_settings_.push_back({"wait_for_all", 1});
    if (rng_.chance(0.25)) {
        quorum_settings_.push_back({"last_man_standing", 1});
        quorum_settings_.push_back({"last_man_standing_window", rng_.range(1'000, 1'500)});
    }
    if (rng_.chance(0.25)) quorum_settings_.push_back({"auto_tie_breaker", rng_.range(1, 2)});
    // Cluster-wide ring settings from the replicated state (`conclavectl totem set`).
    if (rng_.chance(0.2)) totem_settings_.push_back({"token", rng_.range(800, 1500)});
    if (rng_.chance(0.2)) totem_settings_.push_back({"window_size", rng_.range(50, 200)});
    {
        std::string q;
        for (const auto& [k, v] : quorum_settings_) q += " " + k + "=" + std::to_string(v);
        for (const auto& [k, v] : totem_settings_) q += " totem." + k + "=" + std::to_string(v);
        note(0, 0, "quorum options:" + (q.empty() ? std::string(" none") : q));
    }
    // Initial state: created on every node except, with `join`, one that starts empty
    // and late and must sync it all.
    empty_node_ = o_.fault_join && rng_.chance(0.5) ? static_cast<std::uint32_t>(rng_.range(2, n_)) : 0;
    for (std::uint32_t y = 1; y <= n_; ++y) {
        if (y == empty_node_) continue;
        if (!open_store(y)) return std::move(result_);
        create_state(y);
        nodes_[y].store.reset();
    }

    // Requests come in bursts (a tool writing several files at once) from one node.
    for (std::uint32_t k = 0; k < o_.msgs;) {
        const std::uint64_t at = rng_.range(50'000, kStoreWorkloadUs);
        const auto node = static_cast<std::uint32_t>(rng_.range(1, n_));
        const std::uint64_t burst = rng_.chance(0.3) ? rng_.range(2, 16) : 1;
        for (std::uint64_t b = 0; b < burst && k < o_.msgs; ++b, ++k) {
            Request rq;
            rq.node = node;
            rq.t = random_transition();
            if (limits_rng_.chance(0.03)) rq.t = draw_setting(store::Op::limits_set, limits_rng_, kLimitDraws);
            if (totem_rng_.chance(0.01)) rq.t = draw_setting(store::Op::totem_set, totem_rng_, kTotemDraws);
            if (quorum_rng_.chance(0.01)) rq.t = draw_setting(store::Op::quorum_set, quorum_rng_, kQuorumDraws);
            requests_.push_back(std::move(rq));
            Ev2 e;
            e.kind = Ev2::Kind::request;
            e.req = k;
            queue_.push(at + b, std::move(e));
        }
    }
    // Faults, as in the message workload: 1..3 episodes.
    std::vector<Action> kinds;
    if (o_.fault_partition) kinds.push_back(Action::partition);
    if (o_.fault_asym) kinds.push_back(Action::asym);
    if (o_.fault_crash) kinds.push_back(Action::crash);
    if (o_.fault_pause) kinds.push_back(Action::pause);
    if (o_.fault_power) kinds.push_back(Action::power);
    if (!kinds.empty()) {
        const std::uint64_t episodes = rng_.range(1, 3);
        for (std::uint64_t k = 0; k < episodes; ++k) {
            const Action a = kinds[rng_.below(kinds.size())];
            const std::uint64_t t = rng_.range(100'000, kStoreHealUs - 500'000);
            std::uint64_t d = rng_.range(200'000, 1'500'000);
            if (a == Action::pause) d = o_.pause_ms ? std::uint64_t{o_.pause_ms} * 1000 : rng_.range(50'000, 1'500'000);
            push_action(t, a, 0, d);
        }
    }
    if (empty_node_) push_action(rng_.range(200'000, kStoreHealUs - 500'000), Action::start, empty_node_);
    {
        Ev2 e;
        e.kind = Ev2::Kind::heal;
        queue_.push(kStoreHealUs, std::move(e));
    }
    for (std::uint32_t y = 1; y <= n_; ++y)
        if (y != empty_node_) start_node(y);

    const std::uint64_t deadline = kStoreHealUs + kStoreLivenessUs;
    std::uint64_t last_check = 0;
    bool done = false;
    while (!queue_.empty() && !result_.violation) {
        if (healed_ && now_ >= last_check + 1'000) {
            last_check = now_;
            if (settled()) {
                done = true;
                break;
            }
        }
        if (queue_.next_time() > deadline) break;
        auto entry = queue_.pop();
        now_ = entry.time;
        Ev2& e = entry.payload;
        if (e.kind == Ev2::Kind::packet || e.kind == Ev2::Kind::timer || e.kind == Ev2::Kind::job ||
            e.kind == Ev2::Kind::request || e.kind == Ev2::Kind::lms) {
            const std::uint32_t y = e.kind == Ev2::Kind::request ? requests_[e.req].node : e.node;
            SNode& sn = nodes_[y];
            if (sn.up() && sn.paused_until > now_) {
                queue_.push(sn.paused_until, std::move(e));
                continue;
            }
            if (sn.paused_until != 0 && sn.paused_until <= now_) sn.paused_until = 0;
        }
        switch (e.kind) {
            case Ev2::Kind::packet: {
                SNode& sn = nodes_[e.node];
                if (!sn.up()) break;
                sn.ring->on_packet(e.from, e.bytes, now_);
                drive(e.node);
                break;
            }
            case Ev2::Kind::timer: {
                SNode& sn = nodes_[e.node];
                if (!sn.up() || sn.inc != e.inc) break;
                sn.ring->on_timer(e.timer, now_);
                drive(e.node);
                break;
            }
            case Ev2::Kind::job: {
                SNode& sn = nodes_[e.node];
                if (!sn.up() || sn.inc != e.inc) break;
                sn.job_scheduled = false;
                run_job(e.node);
                if (sn.up()) schedule_job(e.node);
                break;
            }
            case Ev2::Kind::request:
                on_request(e);
                break;
            case Ev2::Kind::lms: {
                SNode& sn = nodes_[e.node];
                if (!sn.up() || sn.inc != e.inc || sn.lms_generation != e.arg) break;
                sn.node->on_lms_timer();
                drive(e.node);
                break;
            }
            case Ev2::Kind::action:
                on_action(e);
                break;
            case Ev2::Kind::heal:
                healed_ = true;
                net_.heal();
                result_.trace.add(TraceEvent{now_, Ev::heal, 0});
                for (std::uint32_t y = 1; y <= n_; ++y)
                    if (!nodes_[y].up()) start_node(y);
                break;
        }
    }
    result_.end_time_us = now_;
    if (!result_.violation && !done) {
        std::string s;
        for (std::uint32_t y = 1; y <= n_; ++y) s += (s.empty() ? "" : "; ") + node_status(y);
        violate("store liveness", "not settled " + std::to_string((now_ - kStoreHealUs) / 1000) +
                                      " ms after the heal: " + s);
    }
    // One quorate configuration at a time.
    if (!result_.violation) {
        for (auto a = quorate_uses_.begin(); a != quorate_uses_.end() && !result_.violation; ++a)
            for (auto b = std::next(a); b != quorate_uses_.end(); ++b) {
                const ConfigUse &x = a->second, &y = b->second;
                if ((x.mask & y.mask) == 0 && x.from <= y.to && y.from <= x.to && !x.exempt && !y.exempt) {
                    violate("one quorate configuration",
                            "configurations " + a->first + " and " + b->first +
                                " have no member in common and both applied transitions between " +
                                std::to_string(std::max(x.from, y.from)) + " and " + std::to_string(std::min(x.to, y.to)) +
                                " us");
                    break;
                }
            }
    }
    if (!result_.violation) final_checks();
    for (std::uint32_t y = 1; y <= n_; ++y)
        if (nodes_[y].up()) {
            result_.rings_installed += nodes_[y].ring->stats().rings_installed;
            result_.malformed += nodes_[y].node->malformed();
        }
    if (!result_.violation && result_.malformed != 0)
        violate("wire", "a node refused to decode a state message the simulator carried");
    return std::move(result_);
}

}  // namespace

SeedResult run_store_seed(const SimOptions& o, std::uint64_t seed) {
    StoreSim sim(o, seed);
    return sim.run();
}

}  // namespace conclave::sim
