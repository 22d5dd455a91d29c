#include "daemon/daemon.h"

#include <openssl/rand.h>
#include <systemd/sd-daemon.h>

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "base/log.h"
#include "base/thread_name.h"
#include "node/messages.h"
#include "runtime/request_fields.h"
#include "wire/datagram.h"
#include "wire/totem.h"

static_assert(conclave::store::kMaxClusterNodes == conclave::wire::totem::kMaxMembers,
              "the node list may hold what one ring holds, no more");

namespace conclave::daemon {

using nlohmann::json;

namespace {

// The ring core asked for a durable fact this node cannot keep: it must not take one more
// step (DESIGN.md §6.7). Exit at once, without unwinding into the core; the error is logged,
// and the next start cleans the mount left behind.
[[noreturn]] void fail_stop() { std::_Exit(1); }

}  // namespace

std::uint64_t DurableRingSeq::load_ring_seq() {
    auto v = dir_.load("ring");
    if (!v) {
        // Reusing a ring id could mix two configurations up (EVS): refuse to go on.
        log::error("cannot read the ring seq: " + v.error() + "; stopping. Fix the state directory and restart.");
        fail_stop();
    }
    return v.value();
}

void DurableRingSeq::store_ring_seq(std::uint64_t seq) {
    auto st = dir_.store("ring", seq);
    if (!st) {
        log::error("cannot store the ring seq (" + st.error() + "); stopping: a node that cannot persist ring "
                   "ids must not take part in the ring. Fix the state directory and restart.");
        fail_stop();
    }
}

namespace {

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
    return buf;
}

std::uint64_t wall_clock_us() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}

json errno_reply(int err, const std::string& why = {}) {
    json j{{"ok", false}, {"errno", err}, {"error", why.empty() ? std::string(std::strerror(err)) : why}};
    if (!why.empty()) j["why"] = why;
    return j;
}

json entry_json(const store::EntryInfo& e) {
    return json{{"name", e.name},   {"dir", e.dir},           {"mode", e.mode},       {"size", e.size},
                {"ino", e.ino},     {"mtime_us", e.mtime_us}, {"version", e.version}, {"writer", e.writer}};
}

// A request field that is missing, of the wrong type or out of range
// (runtime/request_fields.h).
json invalid_field(const std::string& why) { return errno_reply(EINVAL, why); }

// A latency summary in status: samples in the window, p50, p99, max (µs).
json latency_json(const LatencyWindow::Summary& s) {
    return json{{"samples", s.samples}, {"p50", s.p50}, {"p99", s.p99}, {"max", s.max}};
}

// A file's or directory's mode: permission bits only, the type is the request's.
constexpr const char* kModeNote = "07777 at most: permission bits";

// A request's path field: present, a string, and valid for a transition.
std::optional<std::string> path_field(const json& request, const char* key, json& error) {
    auto field = runtime::required_string(request, key);
    if (!field) {
        error = invalid_field(field.error());
        return std::nullopt;
    }
    std::string p(field.value());
    if (!store::valid_path(p)) {
        error = errno_reply(EINVAL, "'" + p + "' is not a valid path (absolute, no '.', '..', '//' or trailing '/', at most " +
                                        std::to_string(store::kMaxPath) + " bytes)");
        return std::nullopt;
    }
    return p;
}

std::string join_ids(const std::vector<std::uint32_t>& ids) {
    std::string s;
    for (auto id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
    return s.empty() ? "none" : s;
}

// "token=2000 window_size=100" (or "defaults").
std::string settings_text(const std::map<std::string, std::uint64_t>& settings) {
    std::string s;
    for (const auto& [k, v] : settings) s += (s.empty() ? "" : " ") + k + "=" + std::to_string(v);
    return s.empty() ? "defaults" : s;
}

std::string bounds_text(const store::SettingKey& k) {
    return std::to_string(k.min) + " to " + std::to_string(k.max) + " (" + k.what + ")";
}

const char* tie_breaker_name(std::uint8_t v) {
    switch (v) {
        case 0: return "off";
        case 1: return "lowest";
        case 2: return "highest";
        case 3: return "list";
    }
    return "?";
}

// The ring's own consistency rules (totem::validate), said in `conclavectl totem set`'s
// terms; empty when the ring takes `c`.
std::string ring_settings_problem(const totem::Config& c) {
    auto ms = [](totem::Micros us) { return std::to_string(us / 1000) + " ms"; };
    if (c.token_loss_us <= c.token_retransmit_us || c.token_loss_us <= c.hold_us)
        return "token (" + ms(c.token_loss_us) + ") must be longer than token_retransmit (" + ms(c.token_retransmit_us) +
               ") and hold (" + ms(c.hold_us) + ")";
    if (c.consensus_us < c.join_interval_us)
        return "consensus (" + ms(c.consensus_us) + ") must be at least join (" + ms(c.join_interval_us) + ")";
    return totem::validate(c);
}

std::string utc_text(std::uint64_t us) {
    std::time_t t = static_cast<std::time_t>(us / 1000000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lluZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<unsigned long long>(us % 1000000));
    return buf;
}

}  // namespace

Daemon::Daemon(config::Config cfg, crypto::AuthKey key, std::optional<crypto::AuthKey> next_key, bool local)
    : cfg_(std::move(cfg)),
      key_(key),
      next_key_(next_key),
      signals_(io_, SIGTERM, SIGINT),
      lms_timer_(io_),
      groups_([this](wire::Bytes m, totem::Guarantee g) { return driver_->submit(std::move(m), g); }),
      local_(local) {}

Daemon::~Daemon() {
    if (control_) control_->close();
    if (transport_) transport_->close();
    // The disk threads end before the store closes: queued jobs are finished (drained);
    // the tree (which the worker's hooks call) after the worker, before the store.
    if (worker_) worker_->stop();
    if (reader_) reader_->join();
    tree_.reset();
    driver_.reset();
    node_.reset();
    worker_.reset();
    reader_.reset();
    store_.reset();
}

std::string Daemon::ring_id_text() const {
    auto id = driver_->ring().ring_id();
    return hex(id.rep) + "." + hex(id.seq);
}

Status Daemon::start() {
    started_ = std::chrono::steady_clock::now();
    auto state = runtime::StateDir::open(cfg_.state_dir);
    if (!state) return Error{state.error()};
    state_.emplace(std::move(state.value()));

    auto epoch = state_->next_boot_epoch(wall_clock_us());
    if (!epoch) return Error{epoch.error()};
    boot_epoch_ = epoch.value();
    // Read once here so that a damaged file is a clean start-up error, not an abort
    // inside the core (DurableRingSeq stops the node if the file fails later).
    if (auto ring = state_->load("ring"); !ring) return Error{ring.error()};

    // The replicated state: LMDB in <state_dir>/store.
    std::string store_dir = cfg_.state_dir + "/store";
    if (::mkdir(store_dir.c_str(), 0700) != 0 && errno != EEXIST)
        return Error{"cannot create " + store_dir + ": " + std::strerror(errno)};
    auto opened = store::Store::open(store_dir);
    if (!opened) return Error{"cannot open the replicated state in " + store_dir + ": " + opened.error()};
    store_ = std::move(opened.value());
    auto head = store_->head();
    auto meta = store_->meta();

    crypto::ChannelConfig cc;
    cc.cluster_id = wire::cluster_id_of(cfg_.cluster_name);
    cc.node_id = cfg_.node_id;
    std::uint8_t nonce[8];
    if (RAND_bytes(nonce, sizeof nonce) != 1) return Error{"cannot get random bytes for the boot id"};
    cc.boot = {boot_epoch_, wire::load_u64(nonce)};
    cc.cipher = cfg_.cipher;
    cc.current = key_;
    cc.next = next_key_;
    channel_ = std::make_unique<crypto::Channel>(cc);

    transport_ = std::make_unique<runtime::Transport>(io_, cfg_, *channel_, [this](std::uint32_t sender, wire::ByteView body) {
        if (driver_) driver_->on_packet(sender, body);
    });
    if (auto st = transport_->open(); !st) return st;

    totem::Config tc;
    tc.self = cfg_.node_id;
    tc.mtu = cfg_.mtu;
    tc.linger_us = cfg_.token_linger;
    if (auto why = totem::validate(tc); !why.empty()) return Error{"ring settings: " + why};
    ring_base_ = tc;
    // The cluster-wide ring settings live in the replicated state (`conclavectl totem set`).
    if (!meta.totem.empty()) {
        auto with = totem::with_settings(tc, meta.totem);
        if (auto why = ring_settings_problem(with); why.empty()) {
            tc = with;
            log::notice("ring settings from the replicated state: " + settings_text(meta.totem));
        } else {
            log::warning("the replicated state's ring settings (" + settings_text(meta.totem) +
                         ") do not suit this node (" + why + "); starting with the defaults");
        }
    }
    discarded_path_ = cfg_.state_dir + "/discarded.log";

    node::Config nc;
    nc.self = cfg_.node_id;
    nc.request_base = boot_epoch_;
    nc.local = local_;
    node_ = std::make_unique<node::Node>(nc, head, meta, [this](wire::Bytes m, totem::Guarantee g) {
        // Inside the driver's own dispatch a submit would run the ring's effects in the
        // middle of it: the node re-offers the message at the next pump() instead.
        if (driver_dispatch_ > 0 || stopping_ || !driver_)
            return totem::SubmitResult{totem::SubmitStatus::try_again, 0};
        return driver_->submit(std::move(m), g);
    });
    // The configuration tree (mounted at the end of start-up): the apply worker tells it
    // what changed, so that the kernel's caches never outlive an applied change.
    ApplyHooks hooks;
    if (cfg_.mount) {
        auto gid = fuse::resolve_group(cfg_.group);
        if (!gid) return Error{gid.error()};
        fuse::Options fo;
        fo.mount_point = cfg_.mount_point;
        fo.gid = gid.value();
        fo.lock_timeout = std::chrono::seconds(cfg_.lock_timeout);
        fo.self = cfg_.node_id;
        tree_ = std::make_unique<fuse::Tree>(*store_, *this, fo);
        tree_->set_start_time(wall_clock_us() / 1'000'000);
        auto* tree = tree_.get();
        hooks.after = [tree](const auto& batch, const auto& results) { tree->after_apply(batch, results); };
        hooks.installed = [tree] { tree->after_install(); };
    }
    worker_ = std::make_unique<ApplyWorker>(
        *store_, cfg_.node_id,
        [this](std::vector<node::JobResult> results) { jobs_done(std::move(results)); },
        std::move(hooks));
    reader_ = std::make_unique<asio::thread_pool>(1);
    asio::post(*reader_, [] { name_this_thread("cv-reader"); });
    if (meta.empty())
        log::notice("no cluster state yet: create one with 'conclavectl create', or add this node on a cluster "
                    "member with 'conclavectl node add " + cfg_.node_name + " --id " + std::to_string(cfg_.node_id) +
                    "'");
    else
        log::notice("state: cluster " + store::hex(meta.cluster_id) + ", version " + std::to_string(head.version) +
                    ", epoch " + std::to_string(head.epoch) + ", " + std::to_string(meta.nodes.size()) + " nodes");

    durable_ = std::make_unique<DurableRingSeq>(*state_);
    driver_ = std::make_unique<runtime::RingDriver>(
        io_, *transport_, tc, durable_.get(),
        runtime::RingDriver::Callbacks{
            [this](totem::Event&& e) { on_event(std::move(e)); },
            [this](std::uint64_t w) {
                if (stopping_) return;
                ++driver_dispatch_;
                with_node([this, w] { node_->on_ring_watermark(w); });
                --driver_dispatch_;
            },
            [](const std::string& line) { log::notice(line); },
            [this] { on_progress(); },
        });

    control_ = std::make_unique<runtime::ControlServer>(
        io_, cfg_.control_socket,
        [this](const json& req, const std::shared_ptr<runtime::ControlSession>& s) { return handle(req, s); });
    if (auto st = control_->open(); !st) return st;
    if (tree_) {
        publish_tree();
        if (auto st = tree_->mount(); !st) return st;
    }

    signals_.async_wait([this](std::error_code ec, int sig) {
        if (ec) return;
        log::notice(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", leaving the ring");
        stop();
    });
    return Ok{};
}

namespace {

// Corosync's default (system.sched_rr): the thread that passes the token runs SCHED_RR at
// the highest priority, so a token or a frame is handled as soon as it arrives, not after
// whatever else this CPU runs. Falls back to the highest nice value. Threads made later by
// this one would inherit the policy; the daemon makes all of them before.
void set_protocol_thread_priority(bool sched_rr) {
    if (!sched_rr) return;
    sched_param sp{};
    sp.sched_priority = sched_get_priority_max(SCHED_RR);
    const int err = pthread_setschedparam(pthread_self(), SCHED_RR, &sp);
    if (err == 0) {
        log::info("protocol thread: SCHED_RR priority " + std::to_string(sp.sched_priority));
        return;
    }
    const bool niced = setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), -20) == 0;
    log::warning(std::string("cannot run the protocol thread with SCHED_RR: ") + std::strerror(err) +
                 (niced ? "; running it at nice -20 instead" : "; running it at normal priority") +
                 " (latency suffers when the CPUs are busy; 'system { sched_rr: no }' or -p says not to try)");
}

void reset_thread_priority() {
    sched_param sp{};
    pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
}

}  // namespace

int Daemon::run() {
    auto ep = transport_->local_endpoint();
    log::notice("started: cluster " + cfg_.cluster_name + ", node " + cfg_.node_name + ", " +
                std::string(config::transport_name(cfg_.transport)) + " on port " + std::to_string(ep.port()) +
                ", boot " + std::to_string(boot_epoch_));
    // A hello teaches the others our address at once (addresses are learned from
    // authenticated packets only), then the ring forms.
    transport_->send_all({});
    driver_->start();
    sd_notify(0, "READY=1\nSTATUS=forming the ring");
    set_protocol_thread_priority(cfg_.sched_rr);
    io_.run();
    // The rest (the worker's last commits, the unmount, the store's close) at normal priority.
    reset_thread_priority();
    sd_notify(0, "STOPPING=1");
    // Finish what the apply worker has queued (durable before we go; it tells the tree
    // what changed), then unmount: requests still waiting for the cluster get EIO.
    worker_->stop();
    reader_->join();
    if (tree_) tree_->unmount();
    // A clean stop: the next start needs no journal replay, on any boot.
    if (auto st = store_->close(); !st)
        log::warning(st.error() + "; the next start replays the journal");
    log::notice(exit_code_ == 0 ? "stopped" : "stopped on an error");
    return exit_code_;
}

void Daemon::stop() {
    if (stopping_) return;
    stopping_ = true;
    if (control_) control_->close();
    if (driver_) driver_->leave();  // the leave is sent synchronously
    if (transport_) transport_->close();
    signals_.cancel();
    lms_timer_.cancel();
    io_.stop();
}

// ---- The node, driven from the ring and the disk threads ----

template <class F>
void Daemon::with_node(F&& f) {
    if (in_node_) {
        queued_.emplace_back(std::forward<F>(f));
        return;
    }
    in_node_ = true;
    f();
    // Events the node's own submits produced meanwhile, in ring order; then (a bounded
    // number of times) the messages the ring refused while it was busy.
    for (int pumps = 0;;) {
        while (!queued_.empty()) {
            auto g = std::move(queued_.front());
            queued_.pop_front();
            g();
        }
        if (!repump_ || pumps == 2 || stopping_) break;
        repump_ = false;
        ++pumps;
        node_->pump();
    }
    repump_ = false;
    in_node_ = false;
    drain_effects();
}

void Daemon::drain_effects() {
    node::Effects fx = node_->take_effects();
    for (const auto& line : fx.log) {
        // An operator override and a history replaced by a sync are what an operator must
        // not miss.
        if (line.starts_with("OPERATOR OVERRIDE") || line.starts_with("sync: this node's history had forked"))
            log::warning(line);
        else
            log::notice(line);
    }
    if (!fx.jobs.empty()) worker_->push(std::move(fx.jobs));
    // A rise reaches the nodes whose requests it covers at once (watermark notices): an
    // acknowledgement waits for no token rotation.
    if (fx.local_watermark) driver_->set_local_watermark(*fx.local_watermark, fx.watermark_notify);
    for (const auto& r : fx.replies) {
        auto it = waiting_.find(r.tag);
        if (it == waiting_.end()) continue;
        auto w = std::move(it->second);
        waiting_.erase(it);
        if (w.done) {
            // A program's own errors (EEXIST, ENOTEMPTY, ...) are its to report.
            if (r.err != 0) log::debug(w.what + ": " + std::strerror(r.err));
            w.done(r.err, r.version);
            continue;
        }
        std::string why = r.why;
        if (why.empty() && r.err == EINVAL) why = w.einval;
        json reply = r.err == 0 ? json{{"ok", true}, {"version", r.version}} : errno_reply(r.err, why);
        if (r.err == 0 && !w.warning.empty()) {
            log::warning(w.what + ": " + w.warning);
            reply["warning"] = w.warning;
        }
        if (r.err != 0) log::info(w.what + ": " + reply["error"].get<std::string>());
        w.session->reply(reply);  // dropped if the client has gone
    }
    if (fx.lms_timer_us) {
        // last_man_standing's window (the core has no clock: the delay is ours to keep).
        lms_timer_.expires_after(std::chrono::microseconds(*fx.lms_timer_us));
        lms_timer_.async_wait([this](std::error_code ec) {
            if (ec || stopping_) return;
            with_node([this] { node_->on_lms_timer(); });
        });
    }
    if (fx.totem_settings) apply_ring_settings(*fx.totem_settings);
    if (!fx.discarded.empty()) record_discarded(std::move(fx.discarded));
    // Logged when it decides something: while a sync runs, writes wait (no EROFS).
    // (A quorate configuration whose sync is still installing a snapshot is not a loss.)
    bool q = node_->quorate();
    if (q != was_quorate_ && (q || (node_->phase() == node::Phase::synced && !node_->in_quorate_config()))) {
        was_quorate_ = q;
        const auto& qs = node_->quorum_status();
        auto votes = std::to_string(qs.total_votes) + " of " + std::to_string(qs.expected_votes) + " votes";
        log::notice(q ? "this partition is quorate (" + votes + "); writes are accepted"
                      : "this partition is not quorate (" + votes + "); writes get EROFS");
    }
    if (tree_) publish_tree();
    if (fx.stop) {
        log::error(*fx.stop);
        exit_code_ = 1;
        stop();
    }
}

void Daemon::submit(store::Transition t, Done done) {
    asio::post(io_, [this, t = std::move(t), done = std::move(done)]() mutable {
        if (stopping_) {
            done(EIO, 0);
            return;
        }
        std::string what = std::string("tree: ") + store::op_name(t.op) + " " + t.path;
        submit_waiting(std::move(t), Waiting{nullptr, std::move(what), {}, std::move(done), {}});
    });
}

void Daemon::publish_tree() {
    bool q = node_->quorate();
    tree_->set_quorate(q);
    const auto& meta = node_->meta();
    const auto& qs = node_->quorum_status();
    if (published_.config_changes != config_changes_ || published_.quorate != q || published_.nodes != meta.nodes ||
        published_.total_votes != qs.total_votes || published_.expected_votes != qs.expected_votes) {
        published_.config_changes = config_changes_;
        published_.quorate = q;
        published_.nodes = meta.nodes;
        published_.total_votes = qs.total_votes;
        published_.expected_votes = qs.expected_votes;
        // .members: pmxcfs's shape, so that tools reading /etc/pve/.members keep working.
        const auto& ring = driver_->ring();
        const auto& members = ring.members();
        json nodelist = json::object();
        for (const auto& n : meta.nodes) {
            bool online = std::find(members.begin(), members.end(), n.id) != members.end();
            json e{{"id", n.id}, {"online", online ? 1 : 0}, {"votes", n.votes}};
            if (n.id == cfg_.node_id) {
                if (!cfg_.bind_address.empty()) e["ip"] = cfg_.bind_address;
            } else if (auto a = transport_->addresses().find(n.id); a != transport_->addresses().end()) {
                e["ip"] = a->second.address().to_string();
            }
            nodelist[n.name] = e;
        }
        json m{{"nodename", cfg_.node_name},
               {"version", config_changes_},
               {"cluster", {{"name", cfg_.cluster_name}, {"nodes", meta.nodes.size()}, {"quorate", q ? 1 : 0}}},
               {"nodelist", nodelist}};
        tree_->set_members(m.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
        json qj = quorum_json();
        qj["quorate"] = q;
        qj["node_id"] = cfg_.node_id;
        auto id = ring.ring_id();
        qj["ring_id"] = id.seq == 0 && id.rep == 0 ? json(nullptr) : json(ring_id_text());
        json ids = json::array();
        for (auto n : members) ids.push_back(n);
        qj["members"] = ids;
        qj["local_mode"] = local_;
        tree_->set_quorum(qj.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
    }
    // Local mode on a node without state: a one-node cluster, as pmxcfs -l on a fresh node.
    if (local_ && !local_genesis_sent_ && meta.empty() && node_->phase() == node::Phase::synced) {
        local_genesis_sent_ = true;
        auto t = genesis();
        if (!t) {
            log::warning("local mode: cannot get random bytes for a cluster id; create one with 'conclavectl create'");
            return;
        }
        log::notice("local mode: no cluster state yet; creating a one-node cluster " + store::hex(t->cluster_id));
        submit_waiting(std::move(*t), Waiting{nullptr, "create (local mode)", {}, [](int err, std::uint64_t) {
                                                  if (err != 0)
                                                      log::warning(std::string("local mode: creating the one-node "
                                                                               "cluster failed: ") + std::strerror(err));
                                              }, {}});
    }
}

std::optional<store::Transition> Daemon::genesis() const {
    store::Transition t;
    t.op = store::Op::genesis;
    if (RAND_bytes(t.cluster_id.data(), static_cast<int>(t.cluster_id.size())) != 1) return std::nullopt;
    t.node_id = cfg_.node_id;
    t.node_name = cfg_.node_name;
    t.votes = 1;
    return t;
}

void Daemon::apply_ring_settings(const std::map<std::string, std::uint64_t>& settings) {
    if (!driver_) return;
    auto c = totem::with_settings(ring_base_, settings);
    std::string why = ring_settings_problem(c);
    if (why.empty()) why = driver_->update_settings(c);
    if (why.empty())
        log::notice("ring settings now " + settings_text(settings) + " (from the replicated state)");
    else
        log::warning("the ring refused the replicated state's settings " + settings_text(settings) + ": " + why +
                     "; it keeps its previous ones. Fix them with 'conclavectl totem set KEY VALUE'");
}

void Daemon::record_discarded(std::vector<store::LogRecord> records) {
    log::warning(std::to_string(records.size()) + " change(s) this node had applied (under an expected-votes override "
                 "or a two_node split) are not in the cluster's history: the history with the higher (epoch, "
                 "version) won. Each is recorded in " + discarded_path_ + "; nothing of it is in the tree now");
    std::uint64_t now = wall_clock_us();
    std::string lines;
    for (const auto& rec : records) {
        nlohmann::ordered_json j{{"time", utc_text(now)}, {"epoch", rec.epoch}, {"version", rec.version}};
        auto t = store::decode(rec.transition);
        if (!t) {
            j["error"] = "undecodable transition: " + t.error();
        } else {
            j["origin"] = t->origin;
            j["op"] = store::op_name(t->op);
            // A name in the tree may be any bytes; JSON holds UTF-8. Such a path is shown
            // with U+FFFD in place of the bad bytes, and exactly in base64 beside it.
            j["path"] = t->path;
            if (!runtime::valid_utf8(t->path)) j["path_base64"] = runtime::base64_encode(t->path);
            j["request"] = t->request;
            j["errno"] = rec.err;  // the change's result where it was applied (0: it took effect)
            if (!t->path2.empty()) j["path2"] = t->path2;
            if (!runtime::valid_utf8(t->path2)) j["path2_base64"] = runtime::base64_encode(t->path2);
            j["written"] = utc_text(t->timestamp_us);
            if (!t->node_name.empty()) j["name"] = t->node_name;
            if (t->node_id != 0) j["node_id"] = t->node_id;
            if (t->op == store::Op::node_add || t->op == store::Op::node_votes) j["votes"] = t->votes;
            if (t->op == store::Op::quorum_set || t->op == store::Op::totem_set ||
                t->op == store::Op::limits_set || t->op == store::Op::truncate ||
                t->op == store::Op::set_mtime)
                j["value"] = t->size;
            if (t->op == store::Op::set_mode || t->op == store::Op::mkdir || (t->flags & store::kSetMode))
                j["mode"] = t->mode;
            if (t->op == store::Op::write || t->op == store::Op::create) {
                j["size"] = t->data.size();
                // The bytes themselves, so that the change can be made again by hand.
                j["data"] = runtime::base64_encode(t->data.data(), t->data.size());
            }
        }
        lines += j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
    }
    // Appended on the reader thread (one thread: the lines of two batches never mix).
    asio::post(*reader_, [path = discarded_path_, lines = std::move(lines)] {
        std::FILE* f = std::fopen(path.c_str(), "a");
        bool ok = f && std::fwrite(lines.data(), 1, lines.size(), f) == lines.size();
        ok = f && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0 && ok;
        int err = errno;
        if (f) std::fclose(f);
        if (!ok) log::error("cannot append to " + path + ": " + std::strerror(err) + "; the replaced changes are in the log above only");
    });
}

void Daemon::jobs_done(std::vector<node::JobResult> results) {
    bool post = false;
    {
        std::lock_guard lock(done_mu_);
        for (auto& r : results) done_queue_.push_back(std::move(r));
        post = !done_posted_;
        done_posted_ = true;
    }
    if (post) asio::post(io_, [this] { on_jobs_done(); });
}

void Daemon::on_jobs_done() {
    std::vector<node::JobResult> done;
    {
        std::lock_guard lock(done_mu_);
        done.swap(done_queue_);
        done_posted_ = false;
    }
    if (stopping_) return;
    // One round of the node's effects for all of them: one watermark rise (and one set
    // of notices) per commit, not per job.
    with_node([this, done = std::move(done)]() mutable {
        for (auto& r : done) node_->on_job_done(std::move(r));
    });
}

void Daemon::on_progress() {
    if (stopping_) return;
    if (in_node_) {
        // The node's own submit ran the ring: offer the refused messages again once
        // the node returns (with_node).
        repump_ = true;
    } else {
        with_node([this] { node_->pump(); });
    }
    groups_.retry();
}

void Daemon::on_event(totem::Event&& e) {
    if (stopping_) return;
    if (auto* d = std::get_if<totem::Delivery>(&e))
        groups_.deliver(*d);  // ignores state messages
    else
        on_config(std::get<totem::ConfigChange>(e));
    ++driver_dispatch_;
    with_node([this, e = std::move(e)] { node_->on_event(e); });  // ignores group messages
    --driver_dispatch_;
}

void Daemon::on_config(const totem::ConfigChange& c) {
    ++config_changes_;
    bool regular = c.kind == totem::ConfigChange::Kind::regular;
    if (regular) {
        log::set_ring(hex(c.ring_id.rep) + "." + hex(c.ring_id.seq));
        sd_notify(0, ("STATUS=ring " + ring_id_text() + ", " + std::to_string(c.members.size()) + " members").c_str());
    } else {
        log::info("transitional configuration: members " + join_ids(c.members) + "; left " + join_ids(c.left));
    }
    groups_.configuration(regular ? 2 : 1, c.ring_id.rep, c.ring_id.seq, c.members);
}

// ---- Status ----

// votequorum's view (status "quorum" and the tree's .quorum).
json Daemon::quorum_json() const {
    const auto& q = node_->quorum_status();
    const auto& qo = node_->meta().quorum;
    json tie_breakers = json::array();
    for (auto n : qo.tie_breaker_nodes) tie_breakers.push_back(n);
    return json{{"provider", "conclave: votequorum over the replicated node list"},
          {"configured_expected", q.configured_expected},
          {"expected_votes", q.expected_votes},
          {"highest_expected", q.highest_expected},
          {"total_votes", q.total_votes},
          {"quorum", q.quorum},
          {"waiting_for_all", q.waiting_for_all},
          {"last_man_standing_unsettled", q.lms_unsettled},
          {"flags",
           {{"two_node", q.flags.two_node},
            {"wait_for_all", q.flags.wait_for_all},
            {"last_man_standing", q.flags.last_man_standing},
            {"auto_tie_breaker", q.flags.auto_tie_breaker},
            {"override_expected", q.flags.override_expected}}},
          {"options",
           {{"two_node", qo.two_node},
            {"wait_for_all", qo.wait_for_all},
            {"last_man_standing", qo.last_man_standing},
            {"last_man_standing_window", qo.last_man_standing_window_ms},
            {"auto_tie_breaker", tie_breaker_name(qo.auto_tie_breaker)},
            {"auto_tie_breaker_nodes", tie_breakers}}}};
}

json Daemon::status(const StoreView& view) const {
    json rejected = json::object();
    for (std::size_t i = 0; i < crypto::kRejectReasons; ++i)
        rejected[std::string(crypto::reject_name(static_cast<crypto::Reject>(i)))] = channel_->rejects().by_reason[i];
    const auto& ts = transport_->stats();
    const auto& ring = driver_->ring();
    const auto& meta = node_->meta();
    auto now = runtime::RingDriver::now();
    json links = json::array();
    for (const auto& [node, at] : ring.last_heard()) {
        json l{{"node", node},
               {"last_heard_ms_ago", static_cast<double>(now - at) / 1000.0},
               {"in_ring", totem::contains(ring.members(), node)}};
        auto a = transport_->addresses().find(node);
        if (a != transport_->addresses().end()) l["address"] = a->second.address().to_string();
        links.push_back(l);
    }
    auto in_list = [&](std::uint32_t id) -> const store::NodeEntry* {
        for (const auto& n : meta.nodes)
            if (n.id == id) return &n;
        return nullptr;
    };
    json members = json::array();
    for (auto m : ring.members()) {
        const auto* entry = in_list(m);
        json n{{"node_id", m}, {"votes", entry ? entry->votes : 0}, {"local", m == cfg_.node_id}};
        if (entry) n["name"] = entry->name;
        auto a = transport_->addresses().find(m);
        if (m == cfg_.node_id)
            n["address"] = cfg_.bind_address.empty() ? cfg_.node_name : cfg_.bind_address;
        else if (a != transport_->addresses().end())
            n["address"] = a->second.address().to_string();
        members.push_back(n);
    }
    json nodes = json::array();
    for (const auto& n : meta.nodes) nodes.push_back({{"id", n.id}, {"name", n.name}, {"votes", n.votes}});
    const auto& h = node_->durable_head();
    auto src = node_->sync_source();
    auto ws = worker_->stats();
    json state{
        {"phase", node::phase_name(node_->phase())},
        {"epoch", h.epoch},
        {"version", h.version},
        {"hash", store::hex(h.hash)},
        {"content_hash", store::hex(view.content_hash)},
        {"content_version", view.head.version},
        {"cluster_id", meta.empty() ? json(nullptr) : json(store::hex(meta.cluster_id))},
        {"nodes", nodes},
        {"limits",
         {{"max_file_size", meta.limits.max_file_size},
          {"max_total_size", meta.limits.max_total_size},
          {"max_name", meta.limits.max_name}}},
        {"pending", node_->pending_requests()},
        {"outstanding_jobs", node_->outstanding_jobs()},
        {"sync_source", src ? json(*src) : json(nullptr)},
        {"ring_watermark", node_->ring_watermark()},
        {"in_quorate_config", node_->in_quorate_config()},
        {"malformed", node_->malformed()},
        {"waiting_clients", waiting_.size()},
        {"usage", {{"entries", view.usage.entries}, {"bytes", view.usage.bytes}, {"log_records", view.usage.log_records}}},
        {"apply",
         {{"jobs", ws.jobs},
          {"commits", ws.commits},
          {"merged_jobs", ws.merged_jobs},
          {"largest_commit", ws.largest_commit},
          {"latency_us",
           {{"window", daemon::ApplyWorker::kLatencyWindow},
            {"queued", latency_json(ws.queued)},
            {"commit", latency_json(ws.commit)},
            {"fsync", latency_json(ws.fsync)}}}}},
    };
    const auto& rs = ring.stats();
    auto id = ring.ring_id();
    // The ring's settings in force (ms, or counts), and which the replicated state sets.
    const auto& rc = ring.config();
    json totem_now{{"token", rc.token_loss_us / 1000},
                   {"consensus", rc.consensus_us / 1000},
                   {"join", rc.join_interval_us / 1000},
                   {"merge", rc.merge_detect_us / 1000},
                   {"hold", rc.hold_us / 1000},
                   {"token_retransmit", rc.token_retransmit_us / 1000},
                   {"window_size", rc.window_size},
                   {"max_messages", rc.max_messages}};
    json totem_set = json::object();
    for (const auto& [k, v] : meta.totem) totem_set[k] = v;
    return json{
        {"ok", true},
        {"cluster", cfg_.cluster_name},
        {"node_id", cfg_.node_id},
        {"node_name", cfg_.node_name},
        {"transport", config::transport_name(cfg_.transport)},
        {"port", cfg_.port},
        {"boot_epoch", boot_epoch_},
        {"uptime_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count()},
        {"ring_state", totem::state_name(ring.state())},
        {"tree", {{"mounted", tree_ != nullptr}, {"mount_point", cfg_.mount_point}, {"local_mode", local_}}},
        {"ring", id.seq == 0 && id.rep == 0 ? json(nullptr) : json(ring_id_text())},
        {"ring_rep", id.rep},
        {"ring_seq", id.seq},
        {"members", members},
        {"quorate", node_->quorate()},
        {"quorum", quorum_json()},
        {"totem", {{"settings", totem_set}, {"in_force", totem_now}}},
        {"discarded", {{"total", node_->discarded_total()}, {"log", discarded_path_}}},
        {"state", state},
        {"configuration_changes", config_changes_},
        {"links", links},
        {"datagrams",
         {{"sent", ts.datagrams_sent},
          {"received", ts.datagrams_received},
          {"authenticated", channel_->opened()},
          {"send_errors", ts.send_errors},
          {"unroutable", ts.unroutable}}},
        {"rejected", rejected},
        {"ring_counters",
         {{"frames_sent", rs.frames_sent},
          {"retransmits_sent", rs.retransmits_sent},
          {"token_retransmits", rs.token_retransmits},
          {"malformed", rs.malformed},
          {"foreign_ring", rs.foreign_ring},
          {"duplicate_frames", rs.duplicate_frames},
          {"stale", rs.stale},
          {"watermark_notices_sent", rs.watermark_notices_sent},
          {"watermark_notices_received", rs.watermark_notices_received},
          {"safe_notices_sent", rs.safe_notices_sent},
          {"safe_notices_received", rs.safe_notices_received},
          {"receipts_sent", rs.receipts_sent},
          {"receipts_received", rs.receipts_received},
          {"tokens_held", rs.tokens_held},
          {"lingers", rs.lingers}}},
        {"groups", {{"clients", groups_.sessions()}, {"delivered", groups_.delivered()}, {"blocked", groups_.blocked()}}},
    };
}

// ---- Control requests ----

json Daemon::submit_request(store::Transition t, const std::shared_ptr<runtime::ControlSession>& session,
                            std::string what, std::string einval, std::string warning) {
    submit_waiting(std::move(t), Waiting{session, std::move(what), std::move(einval), {}, std::move(warning)});
    return runtime::deferred_reply();  // the node's reply answers (drain_effects)
}

void Daemon::submit_waiting(store::Transition t, Waiting w) {
    t.timestamp_us = wall_clock_us();
    std::uint64_t tag = next_tag_++;
    waiting_[tag] = std::move(w);
    with_node([this, tag, t = std::move(t)]() mutable { node_->submit(tag, std::move(t)); });
}

// The cluster's configuration: every change is a transition (one book, DESIGN.md §2.1),
// except `expected`, a runtime override of this partition (§7). Values are checked here
// first so that a refusal names the key and its bounds; the store checks them again
// when it applies the transition (EINVAL), every replica alike.
json Daemon::cluster_request(const std::string& cmd, const json& request,
                             const std::shared_ptr<runtime::ControlSession>& session) {
    const auto& meta = node_->meta();
    auto invalid = [](const std::string& why) { return errno_reply(EINVAL, why); };
    store::Transition t;

    if (cmd == "expected") {
        auto expected = runtime::required_uint(request, "expected", 1, 0xffffffffu, "votes");
        if (!expected) return invalid(expected.error());
        const std::uint64_t n = expected.value();
        std::uint64_t tag = next_tag_++;
        waiting_[tag] = Waiting{session, "expected " + std::to_string(n), {}, {}, {}};
        log::warning("operator request: expected votes " + std::to_string(n) + " on this partition "
                     "(`conclavectl expected`)");
        with_node([this, tag, n] { node_->set_expected(tag, static_cast<std::uint32_t>(n)); });
        return runtime::deferred_reply();
    }

    if (cmd == "quorum.set" || cmd == "totem.set" || cmd == "limits.set") {
        bool q = cmd == "quorum.set", limits = cmd == "limits.set";
        const auto& keys = q ? store::quorum_keys() : limits ? store::limits_keys() : store::totem_keys();
        const char* what = q ? "quorum option" : limits ? "cluster limit" : "ring setting";
        auto k = runtime::required_string(request, "key");
        if (!k) return invalid(k.error());
        std::string key(k.value());
        const store::SettingKey* sk = store::find_setting(keys, key);
        if (!sk) return invalid("unknown " + std::string(what) + " '" + key + "' (known: " + store::setting_names(keys) + ")");
        std::string range = std::string(what) + " " + key + " is " + (q ? "" : "0 (the default) or ") + bounds_text(*sk);
        auto number = runtime::required_uint(request, "value", q ? sk->min : 0, sk->max);
        if (!number) return invalid(range + ": " + number.error());
        const std::uint64_t value = number.value();
        if (!q && value != 0 && value < sk->min) return invalid(range + ", not " + std::to_string(value));
        t.node_name = key;
        t.size = value;
        if (q) {
            t.op = store::Op::quorum_set;
            store::QuorumSettings next = meta.quorum;
            std::vector<std::uint32_t> ids;
            auto nodes = runtime::optional_uint_list(request, "nodes", config::kMinNodeId, config::kMaxNodeId, "node ids");
            if (!nodes) return invalid(nodes.error());
            for (auto id : nodes.value().value_or(std::vector<std::uint64_t>{})) {
                const auto v = static_cast<std::uint32_t>(id);
                if (std::find(ids.begin(), ids.end(), v) != ids.end())
                    return invalid("node " + std::to_string(v) + " is listed twice; give each node once");
                ids.push_back(v);
            }
            if (key == "auto_tie_breaker" && value == 3) {
                if (ids.empty() || ids.size() > store::kMaxTieBreakers)
                    return invalid("auto_tie_breaker list needs 1 to " + std::to_string(store::kMaxTieBreakers) +
                                   " node ids (--nodes ID,ID,...)");
                wire::Writer w(t.data);
                for (auto id : ids) w.u32(id);
            } else if (!ids.empty()) {
                return invalid("node ids go only with auto_tie_breaker list");
            }
            // What the option would make of the cluster, checked as the quorum code will.
            if (key == "two_node") next.two_node = value != 0;
            if (key == "wait_for_all") next.wait_for_all = value != 0;
            if (key == "last_man_standing") next.last_man_standing = value != 0;
            if (key == "last_man_standing_window") next.last_man_standing_window_ms = static_cast<std::uint32_t>(value);
            if (key == "auto_tie_breaker") {
                next.auto_tie_breaker = static_cast<std::uint8_t>(value);
                next.tie_breaker_nodes = ids;
            }
            if (auto why = quorum::validate(node::quorum_options(next), node::quorum_nodes(meta)); !why.empty())
                return invalid(why +
                               (key == "last_man_standing" ? "; change them with 'conclavectl votes NODE 1' first" : ""));
            std::string shown = key == "auto_tie_breaker" ? tie_breaker_name(static_cast<std::uint8_t>(value))
                                                          : std::to_string(value);
            return submit_request(std::move(t), session, "quorum set " + key + " " + shown,
                                  range + (key == "last_man_standing" ? "; last_man_standing needs one vote per node" : ""));
        }
        if (limits) {
            t.op = store::Op::limits_set;
            return submit_request(std::move(t), session, "limits set " + key + " " + std::to_string(value), range);
        }
        t.op = store::Op::totem_set;
        auto next = meta.totem;
        if (value == 0)
            next.erase(key);
        else
            next[key] = value;
        if (auto why = ring_settings_problem(totem::with_settings(ring_base_, next)); !why.empty())
            return invalid(why);
        return submit_request(std::move(t), session, "totem set " + key + " " + std::to_string(value), range);
    }

    // node.add / node.remove / node.votes. A node is named by "id" (a number) or "node"
    // (an id, or a name in the node list, as a string); a name in "node" wins over "id".
    const std::string id_range = "node ids, conclave.conf's range";
    auto by_id = runtime::optional_uint(request, "id", config::kMinNodeId, config::kMaxNodeId, id_range);
    if (!by_id) return invalid(by_id.error());
    auto n = request.find("node");
    const bool by_name = n != request.end() && n->is_string();
    auto by_node = by_name ? Result<std::optional<std::uint64_t>>(std::nullopt)
                           : runtime::optional_uint(request, "node", config::kMinNodeId, config::kMaxNodeId,
                                                    "an id; a name is a string");
    if (!by_node) return invalid(by_node.error());
    std::uint64_t id = 0;
    if (by_name) {
        const std::string& name = n->get_ref<const std::string&>();
        bool found = false;
        for (const auto& e : meta.nodes)
            if (e.name == name) {
                id = e.id;
                found = true;
            }
        if (!found) {
            bool digits = !name.empty() && name.size() <= 10 &&
                          std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
            if (!digits) return errno_reply(ENOENT, "no node named '" + name + "' in the node list");
            id = std::stoull(name);
        }
    } else if (by_id.value() || by_node.value()) {
        id = by_id.value() ? *by_id.value() : *by_node.value();
    } else {
        return invalid("a node is named by \"id\" (1 to " + std::to_string(config::kMaxNodeId) +
                       ") or \"node\" (its id, or its name as a string)");
    }
    // conclave.conf's range: no daemon can run with another id.
    if (id < config::kMinNodeId || id > config::kMaxNodeId)
        return invalid("a node id is a number from 1 to " + std::to_string(config::kMaxNodeId));
    t.node_id = static_cast<std::uint32_t>(id);
    std::string einval;
    if (cmd == "node.add") {
        t.op = store::Op::node_add;
        auto name = runtime::required_string(request, "name");
        if (!name) return invalid(name.error());
        // conclave.conf's rule for node.name (the node's own config must be able to say
        // it), which also keeps a name from being read as another node's id.
        if (auto why = config::node_name_problem(std::string(name.value())); !why.empty()) return invalid(why);
        t.node_name = std::string(name.value());
        einval = "invalid node id, name or votes";
        if (meta.nodes.size() >= store::kMaxClusterNodes)
            return errno_reply(ENOSPC, "the node list has " + std::to_string(meta.nodes.size()) +
                                           " nodes, the most one ring holds; remove a node first");
    } else {
        t.op = cmd == "node.remove" ? store::Op::node_remove : store::Op::node_votes;
        // A node still in the ring would stay in it without a vote, and expected votes
        // would drop below what the ring holds: stop it first (README, conclavectl(8)).
        const auto& members = driver_->ring().members();
        if (t.op == store::Op::node_remove && std::find(members.begin(), members.end(), t.node_id) != members.end())
            return errno_reply(EBUSY, "node " + std::to_string(t.node_id) +
                                          (t.node_id == cfg_.node_id ? " is this node" : " is in the ring now") +
                                          ": stop conclaved on it first, then remove it from another node");
    }
    if (cmd != "node.remove") {
        // A node gets one vote unless told otherwise (node.add); node.votes must say.
        auto votes = runtime::optional_uint(request, "votes", 1, 255);
        if (!votes) return invalid(votes.error());
        if (!votes.value() && cmd == "node.votes") return invalid(runtime::required_uint(request, "votes", 1, 255).error());
        const std::uint64_t v = votes.value().value_or(1);
        t.votes = static_cast<std::uint32_t>(v);
        if (meta.quorum.last_man_standing && v != 1)
            return invalid("last_man_standing needs one vote per node; turn it off first "
                           "('conclavectl quorum set last_man_standing 0')");
        if (einval.empty()) einval = "votes are 1 to 255";
    }
    std::string what = cmd == "node.add"      ? "node add " + t.node_name + " --id " + std::to_string(t.node_id)
                       : cmd == "node.remove" ? "node remove " + std::to_string(t.node_id)
                                              : "votes " + std::to_string(t.node_id) + " " + std::to_string(t.votes);
    // Old and new majorities overlap for a change of one vote (the single-server rule);
    // a larger step is accepted, as votequorum does, and said (conclavectl(8)).
    std::uint32_t before = 0;
    if (t.op != store::Op::node_add)
        for (const auto& e : meta.nodes)
            if (e.id == t.node_id) before = e.votes;
    const std::uint32_t after = t.op == store::Op::node_remove ? 0 : t.votes;
    std::string warning;
    if (before + 1 < after || after + 1 < before) {
        warning = "the node list's votes change by " + std::to_string(after > before ? after - before : before - after) +
                  " at once: old and new majorities overlap only for a change of one vote, so until it is durable "
                  "on every member a power failure of most nodes could leave two partitions quorate; change votes "
                  "by one where that matters (conclavectl(8), node list changes)";
    }
    return submit_request(std::move(t), session, std::move(what), std::move(einval), std::move(warning));
}

json Daemon::read_request(const std::string& cmd, const json& request,
                          const std::shared_ptr<runtime::ControlSession>& session) {
    json error;
    std::string path;
    if (cmd != "status") {
        auto p = path_field(request, "path", error);
        if (!p) return error;
        path = *p;
    }
    // On the reader thread: LMDB read transactions, never on the protocol thread.
    asio::post(*reader_, [this, cmd, path, session]() mutable {
        json reply;
        std::optional<StoreView> view;
        if (cmd == "status") {
            StoreView v;
            v.usage = store_->usage();
            v.head = store_->head();
            if (content_cache_.valid && content_cache_.head == v.head) {
                v.content_hash = content_cache_.hash;
            } else {
                // The hash and the version it is of, from one read transaction (a write
                // may land between head() and here: the answer names the version hashed).
                v.content_hash = store_->content_hash(&v.head);
                content_cache_ = {v.head, v.content_hash, true};
            }
            view = v;
        } else if (cmd == "get") {
            wire::Bytes data;
            store::EntryInfo info;
            int err = store_->read(path, data, &info);
            if (err != 0) {
                reply = errno_reply(err);
            } else {
                reply = entry_json(info);
                reply["ok"] = true;
                reply["data"] = runtime::base64_encode(data.data(), data.size());
            }
        } else if (cmd == "ls") {
            std::vector<store::EntryInfo> entries;
            int err = store_->list(path, entries);
            if (err == ENOTDIR) {
                store::EntryInfo info;
                err = store_->stat(path, info);
                entries = {info};
            }
            if (err != 0) {
                reply = errno_reply(err);
            } else {
                json list = json::array();
                for (const auto& e : entries) list.push_back(entry_json(e));
                reply = json{{"ok", true}, {"entries", list}};
            }
        } else {  // stat
            store::EntryInfo info;
            int err = store_->stat(path, info);
            if (err != 0) {
                reply = errno_reply(err);
            } else {
                reply = entry_json(info);
                reply["ok"] = true;
            }
        }
        // The session is handed over, not copied: its last reference must not drop here.
        asio::post(io_, [this, session = std::move(session), reply = std::move(reply), view]() {
            if (view) {
                if (stopping_) return;
                session->reply(status(*view));
            } else {
                session->reply(reply);
            }
        });
    });
    return runtime::deferred_reply();
}

json Daemon::handle(const json& request, const std::shared_ptr<runtime::ControlSession>& session) {
    auto it = request.find("cmd");
    if (it == request.end() || !it->is_string())
        return json{{"ok", false}, {"error", "the request has no \"cmd\" string"}};
    const std::string& cmd = it->get_ref<const std::string&>();
    if (cmd == "status" || cmd == "get" || cmd == "ls" || cmd == "stat") return read_request(cmd, request, session);
    if (cmd == "group.join") {
        auto g = runtime::required_string(request, "group");
        if (!g) return invalid_field(g.error());
        return groups_.join(std::string(g.value()), session);
    }

    json error;
    store::Transition t;
    if (cmd == "put" || cmd == "rm" || cmd == "mkdir" || cmd == "rmdir") {
        auto p = path_field(request, "path", error);
        if (!p) return error;
        t.path = *p;
        if (cmd == "put") {
            t.op = store::Op::write;
            auto d = runtime::required_string(request, "data");
            if (!d) return invalid_field(d.error() + " (the file's bytes in base64)");
            if (!runtime::base64_decode(d.value(), t.data))
                return invalid_field("data is not base64 (RFC 4648, with padding)");
            auto mode = runtime::optional_uint(request, "mode", 0, store::kModeMask, kModeNote);
            if (!mode) return invalid_field(mode.error());
            if (mode.value()) {
                t.mode = static_cast<std::uint32_t>(*mode.value());
                t.flags |= store::kSetMode;
            }
        } else if (cmd == "rm") {
            t.op = store::Op::unlink;
        } else if (cmd == "mkdir") {
            t.op = store::Op::mkdir;
            auto mode = runtime::optional_uint(request, "mode", 0, store::kModeMask, kModeNote);
            if (!mode) return invalid_field(mode.error());
            t.mode = static_cast<std::uint32_t>(mode.value().value_or(0755));
        } else {
            t.op = store::Op::rmdir;
        }
        return submit_request(std::move(t), session, cmd + " " + *p);
    }
    if (cmd == "mv") {
        auto from = path_field(request, "from", error);
        if (!from) return error;
        auto to = path_field(request, "to", error);
        if (!to) return error;
        t.op = store::Op::rename;
        t.path = *from;
        t.path2 = *to;
        auto no_replace = runtime::optional_bool(request, "no_replace", false);
        if (!no_replace) return invalid_field(no_replace.error());
        auto exchange = runtime::optional_bool(request, "exchange", false);
        if (!exchange) return invalid_field(exchange.error());
        if (no_replace.value()) t.flags |= store::kNoReplace;
        if (exchange.value()) t.flags |= store::kExchange;
        return submit_request(std::move(t), session, "mv " + *from + " " + *to);
    }
    if (cmd == "create") {
        const auto& meta = node_->meta();
        if (!meta.empty())
            return json{{"ok", false},
                        {"error", "this node already belongs to cluster " + store::hex(meta.cluster_id) +
                                      " (" + std::to_string(meta.nodes.size()) + " nodes); nothing was changed"}};
        auto g = genesis();
        if (!g) return json{{"ok", false}, {"error", "cannot get random bytes for the cluster id"}};
        log::notice("creating a new cluster " + store::hex(g->cluster_id) + " with this node (" + cfg_.node_name + ")");
        return submit_request(std::move(*g), session, "create");
    }
    if (cmd == "node.add" || cmd == "node.remove" || cmd == "node.votes" || cmd == "quorum.set" ||
        cmd == "totem.set" || cmd == "limits.set" || cmd == "expected")
        return cluster_request(cmd, request, session);
    return json{{"ok", false}, {"error", "unknown command '" + cmd + "'"}};
}

}  // namespace conclave::daemon
