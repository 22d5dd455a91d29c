// The control socket: a Unix stream socket on which conclavectl (and later process-group
// clients) talk to conclaved in JSON, one object per line.
//
//   request:   {"cmd": "status", ...}\n
//   response:  {"ok": true, ...}\n   or   {"ok": false, "error": "what happened and what to do"}\n
//
// Requests on one connection are answered in order. The handler answers at once (its
// return value) or later: it returns deferred_reply() and calls ControlSession::reply()
// once, on the io_context's thread, when the answer is known (a write waiting for its
// acknowledgement, a read served by a reader thread). Until then the connection's next
// request is not read; a client that disconnects meanwhile is noticed, and the late
// reply is dropped. Binary data travels as base64 strings (base64_encode/decode).
//
// Only root may talk to it: the server checks the peer's credentials (SO_PEERCRED) on
// every connection, whatever the socket file's mode says. A request line longer than
// kMaxRequest, one that is not valid JSON (a NUL byte included) or not a JSON object gets
// an error reply and the connection is closed; the daemon carries on.
#pragma once

#include <asio.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "wire/group.h"

namespace conclave::runtime {

inline constexpr const char* kDefaultControlSocket = "/run/conclave/control.sock";
// conclavectl's default socket can be redirected (tools/cluster exec sets it per node).
inline constexpr const char* kControlSocketEnv = "CONCLAVE_SOCKET";
// Room for a file at the default 1 MiB limit in base64 plus the request around it.
inline constexpr std::size_t kMaxRequest = 4u << 20;
// More connections at once are answered with an error line and closed.
inline constexpr std::size_t kMaxClients = 64;

// One client connection, as the request handler sees it. A process-group client asks to
// join with a JSON request; the handler upgrades the connection, after which it carries
// binary group frames (wire/group.h) both ways.
class ControlSession {
public:
    virtual ~ControlSession() = default;
    // After the reply to the current request, the connection carries group frames:
    // on_send gets every SEND frame, on_close runs once when the connection ends.
    virtual void upgrade(std::function<void(const wire::group::Send&)> on_send, std::function<void()> on_close) = 0;
    // Queues whole frames for the client. A client more than kPauseBacklog bytes behind
    // has its own frames left unread until it is back under kResumeBacklog (one that
    // sends and receives slows its sending to what it can take in); one that falls more
    // than kMaxBacklog bytes behind is disconnected (false): a stuck reader must not
    // grow the daemon.
    virtual bool push(wire::ByteView frames) = 0;
    // Back-pressure: stop and restart reading the client's frames.
    virtual void pause_reading() = 0;
    virtual void resume_reading() = 0;
    virtual bool closed() const = 0;
    virtual std::uint64_t id() const = 0;
    // The answer to a request the handler deferred (see deferred_reply()). Exactly once
    // per deferred request; dropped if the client has gone. io_context thread only.
    virtual void reply(const nlohmann::json& reply) = 0;
};

// What a handler returns when it will answer later through ControlSession::reply().
inline nlohmann::json deferred_reply() { return nlohmann::json(nlohmann::json::value_t::discarded); }
inline bool is_deferred(const nlohmann::json& j) { return j.is_discarded(); }

// Standard base64 (RFC 4648, with padding). decode: false on any malformed input.
std::string base64_encode(const std::uint8_t* data, std::size_t size);
inline std::string base64_encode(std::string_view s) {
    return base64_encode(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}
bool base64_decode(std::string_view text, std::string& out);
bool base64_decode(std::string_view text, std::vector<std::uint8_t>& out);

// Whether `s` is well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code points
// above U+10FFFF; what nlohmann::json accepts). JSON strings must be; names in the tree
// need not be (Linux allows any byte but '/' and NUL), so JSON made from them is dumped
// with error_handler_t::replace and, where the exact bytes matter, carries them in base64
// too.
bool valid_utf8(std::string_view s);
// The length of the well-formed UTF-8 sequence at s[i] (i < s.size()), or 0.
std::size_t utf8_sequence(std::string_view s, std::size_t i);

// The fast path for a control request (a put's whole file passes through here): one
// JSON object whose values are strings without escapes, control characters or
// non-ASCII bytes, integers, true, false or null. Fills `out` with exactly what
// nlohmann::json::parse gives for it. False, with `out` unspecified: the text is not
// such an object (it may still be valid JSON: parse it in full).
bool parse_flat_object(std::string_view text, nlohmann::json& out);

class ControlServer {
public:
    static constexpr std::size_t kMaxBacklog = 64u << 20;
    static constexpr std::size_t kPauseBacklog = 8u << 20;
    static constexpr std::size_t kResumeBacklog = 2u << 20;
    // Returns the reply to one request, or deferred_reply(). Runs on the io_context's thread.
    using Handler =
        std::function<nlohmann::json(const nlohmann::json& request, const std::shared_ptr<ControlSession>& session)>;

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
    // At most one log line a minute for a condition that can repeat many times a second (a
    // client flood, a descriptor shortage): the log must not become the next problem.
    struct LogLimiter {
        std::optional<std::chrono::steady_clock::time_point> last;
        std::uint64_t held = 0;  // lines held back since the last one written
        // True when a line may be written now; `held_back` is how many were not, since.
        bool allow(std::uint64_t& held_back);
    };
    // How long accept() waits after an error before it tries again: a descriptor shortage
    // lasts until some are freed, and retrying at once would spin the protocol thread.
    static constexpr std::chrono::milliseconds kAcceptRetry{100};

    void accept();
    void accept_failed(const std::error_code& ec);
    void turn_away(asio::local::stream_protocol::socket socket);

    std::string path_;
    Handler handler_;
    asio::local::stream_protocol::acceptor acceptor_;
    asio::steady_timer accept_retry_;
    LogLimiter accept_error_log_;
    LogLimiter client_limit_log_;
    // Shared with the sessions, which may outlive the server inside pending handlers.
    std::shared_ptr<std::size_t> clients_ = std::make_shared<std::size_t>(0);
    // Owns every live session: a paused session has no read in flight to keep it alive.
    std::map<std::uint64_t, std::shared_ptr<Session>> sessions_;
    std::uint64_t next_session_id_ = 1;
    std::atomic<std::uint64_t> refused_{0};
    long extra_uid_ = -1;
    bool open_ = false;
};

// One request, one reply, synchronously (conclavectl). The error says whether the daemon
// is not running, the socket refused us, or the reply was bad.
Result<nlohmann::json> control_request(const std::string& path, const nlohmann::json& request,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace conclave::runtime
