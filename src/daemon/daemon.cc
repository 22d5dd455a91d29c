#include "daemon/daemon.h"

#include <openssl/rand.h>
#include <systemd/sd-daemon.h>

#include <csignal>

#include "base/log.h"
#include "wire/datagram.h"

namespace conclave::daemon {

using nlohmann::json;

Daemon::Daemon(config::Config cfg, crypto::AuthKey key, std::optional<crypto::AuthKey> next_key)
    : cfg_(std::move(cfg)), key_(key), next_key_(next_key), signals_(io_, SIGTERM, SIGINT) {}

Daemon::~Daemon() {
    if (control_) control_->close();
    if (transport_) transport_->close();
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

    transport_ = std::make_unique<runtime::Transport>(
        io_, cfg_, *channel_, [this](std::uint32_t sender, wire::ByteView body) { on_packet(sender, body); });
    if (auto st = transport_->open(); !st) return st;

    control_ = std::make_unique<runtime::ControlServer>(io_, cfg_.control_socket,
                                                        [this](const json& req, const std::shared_ptr<runtime::ControlSession>&) { return handle(req); });
    if (auto st = control_->open(); !st) return st;

    signals_.async_wait([this](std::error_code ec, int sig) {
        if (ec) return;
        log::notice(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", shutting down");
        stop();
    });
    return Ok{};
}

int Daemon::run() {
    auto ep = transport_->local_endpoint();
    log::notice("started: cluster " + cfg_.cluster_name + ", node " + cfg_.node_name + ", " +
                std::string(config::transport_name(cfg_.transport)) + " on port " + std::to_string(ep.port()) +
                ", boot " + std::to_string(boot_epoch_));
    sd_notify(0, "READY=1\nSTATUS=running");
    io_.run();
    sd_notify(0, "STOPPING=1");
    log::notice("stopped");
    return 0;
}

void Daemon::stop() {
    if (control_) control_->close();
    if (transport_) transport_->close();
    signals_.cancel();
    io_.stop();
}

void Daemon::on_packet(std::uint32_t, wire::ByteView) {
    // The ring protocol is not wired in yet; authenticated packets are only counted.
    ++packets_from_peers_;
}

json Daemon::status() const {
    json rejected = json::object();
    for (std::size_t i = 0; i < crypto::kRejectReasons; ++i)
        rejected[std::string(crypto::reject_name(static_cast<crypto::Reject>(i)))] =
            channel_->rejects().by_reason[i];
    const auto& ts = transport_->stats();
    json heard = json::object();
    for (const auto& [node, ep] : transport_->addresses())
        heard[std::to_string(node)] = ep.address().to_string() + ":" + std::to_string(ep.port());
    return json{
        {"ok", true},
        {"cluster", cfg_.cluster_name},
        {"node_id", cfg_.node_id},
        {"node_name", cfg_.node_name},
        {"transport", config::transport_name(cfg_.transport)},
        {"port", cfg_.port},
        {"boot_epoch", boot_epoch_},
        {"uptime_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count()},
        {"ring", nullptr},
        {"quorate", false},
        {"datagrams",
         {{"sent", ts.datagrams_sent},
          {"received", ts.datagrams_received},
          {"authenticated", channel_->opened()},
          {"send_errors", ts.send_errors},
          {"unroutable", ts.unroutable}}},
        {"rejected", rejected},
        {"heard_from", heard},
    };
}

json Daemon::handle(const json& request) {
    auto it = request.find("cmd");
    if (it == request.end() || !it->is_string())
        return json{{"ok", false}, {"error", "the request has no \"cmd\" string"}};
    const std::string& cmd = it->get_ref<const std::string&>();
    if (cmd == "status") return status();
    return json{{"ok", false}, {"error", "unknown command '" + cmd + "'"}};
}

}  // namespace conclave::daemon
