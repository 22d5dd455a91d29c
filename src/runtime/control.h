// The control socket: a Unix stream socket on which conclavectl (and later process-group
// clients) talk to conclaved in JSON, one object per line.
//
//   request:   {"cmd": "status", ...}\n
//   response:  {"ok": true, ...}\n   or   {"ok": false, "error": "what happened and what to do"}\n
//
// Only root may talk to it: the server checks the peer's credentials (SO_PEERCRED) on
// every connection, whatever the socket file's mode says. A request line longer than
// kMaxRequest, or one that is not a JSON object, gets an error reply and the
// connection is closed; the daemon carries on.
#pragma once

#include <asio.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "base/result.h"

namespace conclave::runtime {

inline constexpr const char* kDefaultControlSocket = "/run/conclave/control.sock";
// conclavectl's default socket can be redirected (tools/cluster exec sets it per node).
inline constexpr const char* kControlSocketEnv = "CONCLAVE_SOCKET";
inline constexpr std::size_t kMaxRequest = 1 << 20;
inline constexpr std::size_t kMaxClients = 64;

class ControlServer {
public:
    // Returns the reply to one request. Runs on the io_context's thread.
    using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;

    ControlServer(asio::io_context& io, std::string path, Handler handler);
    ~ControlServer();

    // Creates the parent directory (0755) if missing; replaces a stale socket left by a
    // dead daemon, but refuses when a live daemon answers on it.
    Status open();
    void close();
    const std::string& path() const { return path_; }
    std::uint64_t refused_peers() const { return refused_; }

    // Lets tests admit a non-root peer (uid); the daemon never calls it.
    void allow_uid_for_tests(unsigned uid) { extra_uid_ = static_cast<long>(uid); }

private:
    class Session;
    void accept();

    std::string path_;
    Handler handler_;
    asio::local::stream_protocol::acceptor acceptor_;
    std::size_t clients_ = 0;
    std::atomic<std::uint64_t> refused_{0};
    long extra_uid_ = -1;
    bool open_ = false;
};

// One request, one reply, synchronously (conclavectl). The error says whether the daemon
// is not running, the socket refused us, or the reply was bad.
Result<nlohmann::json> control_request(const std::string& path, const nlohmann::json& request,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace conclave::runtime
