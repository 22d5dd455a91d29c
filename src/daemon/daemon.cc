#include "daemon/daemon.h"

#include <openssl/rand.h>
#include <systemd/sd-daemon.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "base/log.h"
#include "wire/datagram.h"

namespace conclave::daemon {

using nlohmann::json;

std::uint64_t DurableRingSeq::load_ring_seq() {
    auto v = dir_.load("ring");
    if (!v) {
        // Reusing a ring id could mix two configurations up (EVS): refuse to go on.
        log::error("cannot read the ring seq: " + v.error());
        std::abort();
    }
    return v.value();
}

void DurableRingSeq::store_ring_seq(std::uint64_t seq) {
    auto st = dir_.store("ring", seq);
    if (!st) {
        log::error("cannot store the ring seq (" + st.error() + "); stopping: a node that cannot persist ring "
                   "ids must not take part in the ring. Fix the state directory and restart.");
        std::abort();
    }
}

namespace {

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string join_ids(const std::vector<std::uint32_t>& ids) {
    std::string s;
    for (auto id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
    return s.empty() ? "none" : s;
}

}  // namespace

Daemon::Daemon(config::Config cfg, crypto::AuthKey key, std::optional<crypto::AuthKey> next_key)
    : cfg_(std::move(cfg)),
      key_(key),
      next_key_(next_key),
      signals_(io_, SIGTERM, SIGINT),
      groups_([this](wire::Bytes m, totem::Guarantee g) { return driver_->submit(std::move(m), g); }) {}

Daemon::~Daemon() {
    if (control_) control_->close();
    if (transport_) transport_->close();
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

    auto now_us = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    auto epoch = state_->next_boot_epoch(now_us);
    if (!epoch) return Error{epoch.error()};
    boot_epoch_ = epoch.value();
    // Read once here so that a damaged file is a clean start-up error, not an abort
    // inside the core (DurableRingSeq stops the node if the file fails later).
    if (auto ring = state_->load("ring"); !ring) return Error{ring.error()};

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
    if (auto why = totem::validate(tc); !why.empty()) return Error{"ring settings: " + why};
    durable_ = std::make_unique<DurableRingSeq>(*state_);
    driver_ = std::make_unique<runtime::RingDriver>(
        io_, *transport_, tc, durable_.get(),
        runtime::RingDriver::Callbacks{
            [this](totem::Event&& e) { on_event(std::move(e)); },
            nullptr,
            [](const std::string& line) { log::notice(line); },
            [this] { groups_.retry(); },
        });

    control_ = std::make_unique<runtime::ControlServer>(
        io_, cfg_.control_socket,
        [this](const json& req, const std::shared_ptr<runtime::ControlSession>& s) { return handle(req, s); });
    if (auto st = control_->open(); !st) return st;

    signals_.async_wait([this](std::error_code ec, int sig) {
        if (ec) return;
        log::notice(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", leaving the ring");
        stop();
    });
    return Ok{};
}

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
    io_.run();
    sd_notify(0, "STOPPING=1");
    log::notice("stopped");
    return 0;
}

void Daemon::stop() {
    if (stopping_) return;
    stopping_ = true;
    if (control_) control_->close();
    if (driver_) driver_->leave();  // the leave is sent synchronously
    if (transport_) transport_->close();
    signals_.cancel();
    io_.stop();
}

void Daemon::on_event(totem::Event&& e) {
    if (auto* d = std::get_if<totem::Delivery>(&e)) {
        groups_.deliver(*d);
        return;
    }
    auto& c = std::get<totem::ConfigChange>(e);
    ++config_changes_;
    bool regular = c.kind == totem::ConfigChange::Kind::regular;
    if (regular) {
        log::set_ring(hex(c.ring_id.rep) + "." + hex(c.ring_id.seq));
        for (auto m : c.members) seen_nodes_.insert(m);
        update_quorum();
        sd_notify(0, ("STATUS=ring " + ring_id_text() + ", " + std::to_string(c.members.size()) + " members").c_str());
    } else {
        log::info("transitional configuration: members " + join_ids(c.members) + "; left " + join_ids(c.left));
    }
    groups_.configuration(regular ? 2 : 1, c.ring_id.rep, c.ring_id.seq, c.members);
}

void Daemon::update_quorum() {
    std::vector<quorum::Node> nodes;
    for (auto id : seen_nodes_) nodes.push_back({id, 1});
    const auto& members = driver_->ring().members();
    auto before = quorum_.status().quorate;
    auto s = quorum_.update(nodes, std::vector<quorum::NodeId>(members.begin(), members.end()), runtime::RingDriver::now());
    if (s.quorate != before)
        log::notice(s.quorate ? "this partition is quorate (" + std::to_string(s.total_votes) + " of " +
                                    std::to_string(s.expected_votes) + " votes)"
                              : "this partition lost quorum (" + std::to_string(s.total_votes) + " of " +
                                    std::to_string(s.expected_votes) + " votes; quorum " + std::to_string(s.quorum) + ")");
}

json Daemon::status() const {
    json rejected = json::object();
    for (std::size_t i = 0; i < crypto::kRejectReasons; ++i)
        rejected[std::string(crypto::reject_name(static_cast<crypto::Reject>(i)))] = channel_->rejects().by_reason[i];
    const auto& ts = transport_->stats();
    const auto& ring = driver_->ring();
    auto now = runtime::RingDriver::now();
    json links = json::array();
    for (const auto& [node, at] : ring.last_heard()) {
        json l{{"node", node}, {"last_heard_ms_ago", static_cast<double>(now - at) / 1000.0}};
        auto a = transport_->addresses().find(node);
        if (a != transport_->addresses().end()) l["address"] = a->second.address().to_string();
        links.push_back(l);
    }
    json members = json::array();
    for (auto m : ring.members()) {
        json n{{"node_id", m}, {"votes", 1}, {"local", m == cfg_.node_id}};
        auto a = transport_->addresses().find(m);
        if (m == cfg_.node_id)
            n["address"] = cfg_.bind_address.empty() ? cfg_.node_name : cfg_.bind_address;
        else if (a != transport_->addresses().end())
            n["address"] = a->second.address().to_string();
        members.push_back(n);
    }
    const auto& q = quorum_.status();
    const auto& rs = ring.stats();
    auto id = ring.ring_id();
    return json{
        {"ok", true},
        {"cluster", cfg_.cluster_name},
        {"node_id", cfg_.node_id},
        {"node_name", cfg_.node_name},
        {"transport", config::transport_name(cfg_.transport)},
        {"port", cfg_.port},
        {"boot_epoch", boot_epoch_},
        {"uptime_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count()},
        {"state", totem::state_name(ring.state())},
        {"ring", id.seq == 0 && id.rep == 0 ? json(nullptr) : json(ring_id_text())},
        {"ring_rep", id.rep},
        {"ring_seq", id.seq},
        {"members", members},
        {"quorate", q.quorate},
        {"quorum",
         {{"provider", "interim: every node seen in a ring since start has one vote"},
          {"expected_votes", q.expected_votes},
          {"highest_expected", q.highest_expected},
          {"total_votes", q.total_votes},
          {"quorum", q.quorum}}},
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
          {"duplicate_frames", rs.duplicate_frames}}},
        {"groups", {{"clients", groups_.sessions()}, {"delivered", groups_.delivered()}, {"blocked", groups_.blocked()}}},
    };
}

json Daemon::handle(const json& request, const std::shared_ptr<runtime::ControlSession>& session) {
    auto it = request.find("cmd");
    if (it == request.end() || !it->is_string())
        return json{{"ok", false}, {"error", "the request has no \"cmd\" string"}};
    const std::string& cmd = it->get_ref<const std::string&>();
    if (cmd == "status") return status();
    if (cmd == "group.join") {
        auto g = request.find("group");
        if (g == request.end() || !g->is_string()) return json{{"ok", false}, {"error", "group.join needs \"group\""}};
        return groups_.join(g->get<std::string>(), session);
    }
    return json{{"ok", false}, {"error", "unknown command '" + cmd + "'"}};
}

}  // namespace conclave::daemon
