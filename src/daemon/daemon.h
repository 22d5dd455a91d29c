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

#include "base/result.h"
#include "config/config.h"
#include "crypto/channel.h"
#include "runtime/control.h"
#include "runtime/state_dir.h"
#include "runtime/transport.h"

namespace conclave::daemon {

class Daemon {
public:
    Daemon(config::Config cfg, crypto::AuthKey key, std::optional<crypto::AuthKey> next_key);
    ~Daemon();

    // Opens the state directory, sockets and signal handling.
    Status start();
    // Runs the protocol thread until SIGTERM/SIGINT (or stop()). Returns the exit code.
    int run();
    void stop();

    nlohmann::json status() const;

private:
    nlohmann::json handle(const nlohmann::json& request);
    void on_packet(std::uint32_t sender, wire::ByteView body);

    config::Config cfg_;
    crypto::AuthKey key_;
    std::optional<crypto::AuthKey> next_key_;
    asio::io_context io_;
    asio::signal_set signals_;
    std::optional<runtime::StateDir> state_;
    std::unique_ptr<crypto::Channel> channel_;
    std::unique_ptr<runtime::Transport> transport_;
    std::unique_ptr<runtime::ControlServer> control_;
    std::uint64_t boot_epoch_ = 0;
    std::chrono::steady_clock::time_point started_;
    std::uint64_t packets_from_peers_ = 0;
};

}  // namespace conclave::daemon
