// conclaved's process: the protocol thread's io_context and everything it drives.
//
// Start-up order matters for the error a user sees: config and keys (in main), then the
// state directory lock (one daemon per node), then the boot epoch, the UDP socket and
// the control socket; each failure is one line saying what to fix, exit 1.
#pragma once

#include <asio.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <set>

#include "base/result.h"
#include "config/config.h"
#include "crypto/channel.h"
#include "daemon/groups.h"
#include "quorum/votequorum.h"
#include "runtime/control.h"
#include "runtime/ring_driver.h"
#include "runtime/state_dir.h"
#include "runtime/transport.h"

namespace conclave::daemon {

// The ring seq in the state directory, fsync'd before the core uses it.
class DurableRingSeq final : public totem::Durable {
public:
    explicit DurableRingSeq(runtime::StateDir& dir) : dir_(dir) {}
    std::uint64_t load_ring_seq() override;
    void store_ring_seq(std::uint64_t seq) override;

private:
    runtime::StateDir& dir_;
};

class Daemon {
public:
    Daemon(config::Config cfg, crypto::AuthKey key, std::optional<crypto::AuthKey> next_key);
    ~Daemon();

    // Opens the state directory, sockets and signal handling, and starts the ring.
    Status start();
    // Runs the protocol thread until SIGTERM/SIGINT (or stop()). Returns the exit code.
    int run();
    void stop();

    nlohmann::json status() const;

private:
    nlohmann::json handle(const nlohmann::json& request, const std::shared_ptr<runtime::ControlSession>& session);
    void on_event(totem::Event&& e);
    void update_quorum();
    std::string ring_id_text() const;

    config::Config cfg_;
    crypto::AuthKey key_;
    std::optional<crypto::AuthKey> next_key_;
    asio::io_context io_;
    asio::signal_set signals_;
    std::optional<runtime::StateDir> state_;
    std::unique_ptr<DurableRingSeq> durable_;
    std::unique_ptr<crypto::Channel> channel_;
    std::unique_ptr<runtime::Transport> transport_;
    std::unique_ptr<runtime::RingDriver> driver_;
    std::unique_ptr<runtime::ControlServer> control_;
    Groups groups_;
    // Interim quorum until the node list lives in the replicated state (issue 6/7): every
    // node seen in a regular configuration since start has one vote.
    quorum::Votequorum quorum_{quorum::Options{}};
    std::set<std::uint32_t> seen_nodes_;
    std::uint64_t boot_epoch_ = 0;
    std::uint64_t config_changes_ = 0;
    std::chrono::steady_clock::time_point started_;
    bool stopping_ = false;
};

}  // namespace conclave::daemon
