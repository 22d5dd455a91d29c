#include "runtime/control.h"

#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <optional>

#include "base/log.h"

namespace conclave::runtime {

using asio::local::stream_protocol;
using nlohmann::json;

namespace {

json error_reply(const std::string& msg) { return json{{"ok", false}, {"error", msg}}; }

// The full parser, for what parse_flat_object() declines. Empty when `text` is one JSON
// value, else why not: the parser's reason, without its exception prefix and the text it
// last read (which may be megabytes, and need not be UTF-8).
std::string parse_json(std::string_view text, json& out) {
    // nlohmann's parser takes a NUL byte for the end of the input: what follows would be
    // ignored, and a request carried out that is not the one sent. (parse_flat_object()
    // declines any NUL byte.)
    if (auto nul = text.find('\0'); nul != std::string_view::npos)
        return "a NUL byte at offset " + std::to_string(nul);
    try {
        out = json::parse(text);
        return {};
    } catch (const json::exception& e) {
        std::string why = e.what();
        if (why.starts_with("[json.exception.")) why.erase(0, why.find("] ") + 2);
        if (auto last = why.find("; last read:"); last != std::string::npos) why.erase(last);
        constexpr std::size_t kMaxReason = 200;
        if (why.size() > kMaxReason) why = why.substr(0, kMaxReason) + "...";
        return why;
    }
}

bool fill_sockaddr(const std::string& path, sockaddr_un& sa) {
    if (path.size() >= sizeof sa.sun_path) return false;
    std::memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    return true;
}

// True when something accepts connections on the socket path.
bool someone_listens(const std::string& path) {
    sockaddr_un sa{};
    if (!fill_sockaddr(path, sa)) return false;
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ::close(fd);
    return live;
}

}  // namespace

class ControlServer::Session : public ControlSession, public std::enable_shared_from_this<ControlServer::Session> {
public:
    Session(ControlServer& server, stream_protocol::socket socket)
        : server_(server), clients_(server.clients_), socket_(std::move(socket)), id_(server.next_session_id_++) {}
    ~Session() override { --*clients_; }
    // The server is going away: end the connection and forget it.
    void detach() {
        detached_ = true;
        close();
    }

    void start() {
        ucred cred{};
        socklen_t len = sizeof cred;
        bool ok = ::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
                  (cred.uid == 0 || static_cast<long>(cred.uid) == server_.extra_uid_);
        if (!ok) ++server_.refused_;  // start() runs from the server's accept handler
        refused_ = !ok;
        read_line();
    }

    // ControlSession
    void upgrade(std::function<void(const wire::group::Send&)> on_send, std::function<void()> on_close) override {
        on_send_ = std::move(on_send);
        on_close_ = std::move(on_close);
        upgrading_ = true;
    }
    bool push(wire::ByteView frames) override {
        if (closed_) return false;
        if (pending_.size() + frames.size() > kMaxBacklog) {
            log::warning("control client " + std::to_string(id_) + " fell " + std::to_string(pending_.size()) +
                         " bytes behind; disconnecting it");
            close();
            return false;
        }
        // Frames pushed while the handler runs go out after its reply.
        auto& into = in_handler_ ? deferred_ : pending_;
        into.insert(into.end(), frames.begin(), frames.end());
        if (grouped_ && pending_.size() + out_.size() > kPauseBacklog) backlogged_ = true;
        if (!in_handler_) flush();
        return true;
    }
    void pause_reading() override { paused_ = true; }
    void resume_reading() override {
        if (!paused_) return;
        paused_ = false;
        read_on();
    }
    bool closed() const override { return closed_; }
    std::uint64_t id() const override { return id_; }

private:
    void close() {
        if (closed_) return;
        closed_ = true;
        auto keep = shared_from_this();  // the server's reference goes below
        if (!detached_) server_.sessions_.erase(id_);
        std::error_code ignore;
        socket_.close(ignore);
        if (on_close_) {
            auto cb = std::move(on_close_);
            on_close_ = nullptr;
            cb();
        }
    }

    // The next request line, after the previous one was answered: from what was read
    // already if it is all there, else read on. (asio's read_until zero-filled its 16 KiB
    // of room at every read and looked for the newline a byte at a time through a generic
    // iterator: a tenth of this thread's time per 1 KiB put.)
    void read_line() {
        if (std::memchr(in_.data() + scanned_, '\n', in_end_ - scanned_)) {
            // It came with an earlier one: handled on a later turn of the event loop, not
            // inside the handler of the one before.
            auto self = shared_from_this();
            asio::post(socket_.get_executor(), [this, self] {
                if (!closed_) take_line();
            });
            return;
        }
        read_more();
    }

    // Reads on: nothing after scanned_ holds a newline.
    void read_more() {
        scanned_ = in_end_;
        if (in_end_ - in_begin_ >= kMaxRequest) {
            reply_and_close(error_reply("request longer than " + std::to_string(kMaxRequest >> 20) + " MiB"));
            return;
        }
        // Room to read into: the start of a line moves to the front, a longer line grows
        // the buffer (up to kMaxRequest).
        if (in_begin_ > 0) {
            std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
            in_end_ -= in_begin_;
            scanned_ -= in_begin_;
            in_begin_ = 0;
        }
        if (in_end_ == in_.size()) in_.resize(std::min(2 * in_.size(), kMaxRequest));
        auto self = shared_from_this();
        socket_.async_read_some(asio::buffer(in_.data() + in_end_, in_.size() - in_end_),
                                [this, self](std::error_code ec, std::size_t n) {
                                    if (ec || closed_) {
                                        close();
                                        return;
                                    }
                                    in_end_ += n;
                                    take_line();
                                });
    }

    // Hands the first complete line in the buffer to handle(), or reads on for the rest.
    void take_line() {
        const auto* nl = static_cast<const char*>(std::memchr(in_.data() + scanned_, '\n', in_end_ - scanned_));
        if (!nl) return read_more();
        const char* begin = in_.data() + in_begin_;
        const std::string_view line(begin, static_cast<std::size_t>(nl - begin));
        in_begin_ = scanned_ = static_cast<std::size_t>(nl + 1 - in_.data());
        handle(line);
    }

    // `line` points into in_, which the handler's reply may move (read_more): it is read
    // only before the handler runs.
    void handle(std::string_view line) {
        // A refused peer still gets its request read before the answer, so the answer is
        // not lost to a connection reset on a socket closed with unread data.
        if (refused_) {
            reply_and_close(error_reply("permission denied: the control socket is for root only"));
            return;
        }
        json req;
        if (!parse_flat_object(line, req)) {
            if (auto why = parse_json(line, req); !why.empty()) {
                reply_and_close(error_reply("request is not valid JSON (" + why + ")"));
                return;
            }
        }
        if (!req.is_object()) {
            reply_and_close(error_reply("request is not a JSON object"));
            return;
        }
        json reply;
        if (detached_) return;
        in_handler_ = true;
        try {
            reply = server_.handler_(req, shared_from_this());
            in_handler_ = false;
        } catch (const std::exception& e) {
            in_handler_ = false;
            deferred_.clear();
            early_.reset();
            // A handler bug must not take the daemon down with it.
            log::error(std::string("control request failed: ") + e.what());
            reply = error_reply(std::string("internal error: ") + e.what());
            upgrading_ = false;
        }
        if (is_deferred(reply) && early_) reply = std::move(*early_);  // answered before it returned
        early_.reset();
        if (is_deferred(reply) && !upgrading_) {
            // The answer comes through reply(); the next request waits for it (in order).
            awaiting_ = true;
            watch_hangup();
            return;
        }
        if (is_deferred(reply)) reply = error_reply("internal error: a deferred reply to an upgrade");
        answered(reply);
    }

public:
    void reply(const json& reply) override {
        if (in_handler_) {
            early_ = reply;  // answered at once, inside the handler: sent when it returns
            return;
        }
        if (!awaiting_) return;  // not deferred, or already answered
        awaiting_ = false;
        if (closed_) return;     // the client has gone: the reply is dropped
        answered(reply);
    }

private:
    // While a deferred reply is outstanding nothing is read, but a client that hangs up
    // is noticed (readable with zero bytes to peek) and its session closed.
    void watch_hangup() {
        if (watching_ || closed_) return;
        watching_ = true;
        auto self = shared_from_this();
        socket_.async_wait(stream_protocol::socket::wait_read, [this, self](std::error_code ec) {
            watching_ = false;
            if (closed_ || !awaiting_) return;
            if (ec) {
                close();
                return;
            }
            char c;
            ssize_t n = ::recv(socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) close();
            // Otherwise the client sent its next request already: it is read after the reply.
        });
    }

    void answered(const json& reply) {
        push_json(reply);
        if (!deferred_.empty()) {
            wire::Bytes frames;
            frames.swap(deferred_);
            push(frames);
        }
        if (upgrading_) {
            upgrading_ = false;
            grouped_ = true;
            // Bytes the client sent right behind its request are already group frames.
            parser_.feed(wire::ByteView(reinterpret_cast<const std::uint8_t*>(in_.data() + in_begin_), in_end_ - in_begin_));
            in_begin_ = in_end_ = scanned_ = 0;
            process_frames();
            read_frames();
        } else if (!closed_) {
            read_line();
        }
    }

    void push_json(const json& reply) {
        std::string text = reply.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
        push(wire::ByteView(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
    }

    void reply_and_close(const json& reply) {
        close_after_flush_ = true;
        push_json(reply);
    }

    // Reading the client's frames stops while the ring's queue is full (paused_) or the
    // client is far behind with ours (backlogged_).
    bool may_read() const { return !paused_ && !backlogged_ && !closed_; }
    void read_on() {
        if (grouped_ && may_read()) {
            process_frames();
            read_frames();
        }
    }

    // At most one read in flight: resume_reading() may run inside the read handler's own
    // process_frames() (a submit that made room), and both want to read on.
    void read_frames() {
        if (reading_ || !may_read()) return;
        reading_ = true;
        auto self = shared_from_this();
        socket_.async_read_some(asio::buffer(rx_), [this, self](std::error_code ec, std::size_t n) {
            reading_ = false;
            if (ec || closed_) {
                close();
                return;
            }
            parser_.feed(wire::ByteView(rx_.data(), n));
            process_frames();
            read_frames();
        });
    }

    void process_frames() {
        wire::group::FrameType type;
        wire::ByteView body;
        while (may_read()) {
            auto st = parser_.next(type, body);
            if (st == wire::group::FrameParser::Status::need_more) return;
            wire::group::Send send;
            if (st == wire::group::FrameParser::Status::malformed || type != wire::group::FrameType::send ||
                !wire::group::decode_send(body, send)) {
                wire::Bytes err;
                wire::group::encode_error("malformed frame; closing the connection", err);
                close_after_flush_ = true;
                push(err);
                return;
            }
            on_send_(send);
        }
    }

    void flush() {
        if (writing_ || closed_) return;
        if (pending_.empty()) {
            if (close_after_flush_) close();
            return;
        }
        out_.swap(pending_);
        pending_.clear();
        writing_ = true;
        auto self = shared_from_this();
        asio::async_write(socket_, asio::buffer(out_), [this, self](std::error_code ec, std::size_t) {
            writing_ = false;
            out_.clear();
            if (ec) {
                close();
                return;
            }
            if (backlogged_ && pending_.size() < kResumeBacklog) {
                backlogged_ = false;
                read_on();
            }
            flush();
        });
    }

    ControlServer& server_;  // valid while !detached_
    std::shared_ptr<std::size_t> clients_;
    stream_protocol::socket socket_;
    std::uint64_t id_;
    bool detached_ = false;
    // Request lines: read and not yet handled in_[in_begin_, in_end_), without a newline
    // in [in_begin_, scanned_). 16 KiB to begin with: a 1 KiB put in one recv.
    std::vector<char> in_ = std::vector<char>(16384);
    std::size_t in_begin_ = 0, in_end_ = 0, scanned_ = 0;
    wire::Bytes pending_;  // queued for the client
    wire::Bytes out_;      // being written
    wire::Bytes deferred_; // pushed during the handler, sent after its reply
    bool in_handler_ = false;
    std::array<std::uint8_t, 65536> rx_{};
    wire::group::FrameParser parser_;
    std::function<void(const wire::group::Send&)> on_send_;
    std::function<void()> on_close_;
    bool refused_ = false;
    bool upgrading_ = false;
    bool grouped_ = false;
    bool paused_ = false;
    bool backlogged_ = false;  // the client is more than kPauseBacklog behind
    bool reading_ = false;
    bool writing_ = false;
    bool closed_ = false;
    bool close_after_flush_ = false;
    bool awaiting_ = false;  // a deferred reply is outstanding
    std::optional<json> early_;  // reply() called while the handler was still running
    bool watching_ = false;  // watch_hangup() has a wait in flight
};

ControlServer::ControlServer(asio::io_context& io, std::string path, Handler handler)
    : path_(std::move(path)), handler_(std::move(handler)), acceptor_(io), accept_retry_(io) {}

bool ControlServer::LogLimiter::allow(std::uint64_t& held_back) {
    const auto now = std::chrono::steady_clock::now();
    if (last && now - *last < std::chrono::minutes(1)) {
        ++held;
        return false;
    }
    last = now;
    held_back = held;
    held = 0;
    return true;
}

ControlServer::~ControlServer() { close(); }

Status ControlServer::open() {
    sockaddr_un probe{};
    if (!fill_sockaddr(path_, probe)) return Error{"control socket path " + path_ + " is too long"};
    auto slash = path_.find_last_of('/');
    if (slash != std::string::npos && slash > 0) {
        std::string dir = path_.substr(0, slash);
        if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
            return Error{"cannot create " + dir + ": " + std::strerror(errno)};
    }
    if (someone_listens(path_))
        return Error{"another daemon answers on " + path_ + "; stop it first, or use another socket path"};
    ::unlink(path_.c_str());  // stale socket of a daemon that died

    std::error_code ec;
    acceptor_.open(stream_protocol(), ec);
    if (!ec) acceptor_.bind(stream_protocol::endpoint(path_), ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Error{"cannot listen on " + path_ + ": " + ec.message()};
    ::chmod(path_.c_str(), 0600);
    open_ = true;
    accept();
    return Ok{};
}

void ControlServer::close() {
    if (!open_) return;
    open_ = false;
    std::error_code ec;
    acceptor_.close(ec);
    accept_retry_.cancel();
    ::unlink(path_.c_str());
    auto sessions = std::move(sessions_);
    sessions_.clear();
    for (auto& [id, s] : sessions) s->detach();
}

void ControlServer::accept() {
    acceptor_.async_accept([this](std::error_code ec, stream_protocol::socket socket) {
        if (ec == asio::error::operation_aborted || !open_) return;
        if (ec) {
            accept_failed(ec);
            return;
        }
        if (*clients_ >= kMaxClients) {
            turn_away(std::move(socket));
        } else {
            ++*clients_;
            auto session = std::make_shared<Session>(*this, std::move(socket));
            sessions_[session->id()] = session;
            session->start();
        }
        accept();
    });
}

// Bounded: a client flood cannot exhaust the daemon's descriptors. The client is told why
// at once, not after its request is read, which would hold the descriptor as long as it
// liked; one short line into the new socket's empty buffer does not block.
void ControlServer::turn_away(stream_protocol::socket socket) {
    const std::string connected = std::to_string(*clients_);
    const std::string line =
        error_reply("conclaved serves at most " + std::to_string(kMaxClients) + " clients at once (" + connected +
                    " connected); wait for one to finish and try again")
            .dump() +
        "\n";
    (void)::send(socket.native_handle(), line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    std::error_code ignore;
    socket.close(ignore);
    std::uint64_t held_back = 0;
    if (client_limit_log_.allow(held_back))
        log::warning("control socket: turned a client away: " + connected + " are connected, the most conclaved serves "
                     "at once. Look for clients that keep connections open (process-group clients, conclavectl watch, "
                     "scripts)" +
                     (held_back > 0 ? " (" + std::to_string(held_back) + " more turned away since the last message)"
                                    : std::string()));
}

// The connection waits in the listen queue meanwhile; it is taken once the cause is gone.
void ControlServer::accept_failed(const std::error_code& ec) {
    // asio's own system category: not comparable with std::errc.
    auto is = [&](int err) { return ec.category() == asio::error::get_system_category() && ec.value() == err; };
    std::uint64_t held_back = 0;
    if (accept_error_log_.allow(held_back)) {
        std::string what = "control socket: cannot accept a connection (" + ec.message() + "); clients wait, retrying "
                           "every " + std::to_string(kAcceptRetry.count()) + " ms";
        const std::string pid = std::to_string(::getpid());
        if (is(EMFILE)) {
            rlimit lim{};
            if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
                what += ". conclaved has all the " + std::to_string(lim.rlim_cur) + " files open it may";
            what += ": raise its limit (LimitNOFILE= in its systemd unit, or prlimit --pid " + pid +
                    " --nofile=N:N) or find what holds them in /proc/" + pid + "/fd";
        } else if (is(ENFILE)) {
            what += ". The system has all the files open it may: raise fs.file-max or stop what holds them";
        }
        if (held_back > 0) what += " (" + std::to_string(held_back) + " more failures since the last message)";
        log::error(what);
    }
    accept_retry_.expires_after(kAcceptRetry);
    accept_retry_.async_wait([this](std::error_code wait_ec) {
        if (wait_ec == asio::error::operation_aborted || !open_) return;
        accept();
    });
}

std::string base64_encode(const std::uint8_t* data, std::size_t size) {
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((size + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= size; i += 3) {
        std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) | data[i + 2];
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    if (std::size_t rest = size - i; rest > 0) {
        std::uint32_t v = std::uint32_t{data[i]} << 16;
        if (rest == 2) v |= std::uint32_t{data[i + 1]} << 8;
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

namespace {

// Each character's 6-bit value, 64 for anything outside the alphabet (padding included).
constexpr std::array<std::uint8_t, 256> kBase64Values = [] {
    std::array<std::uint8_t, 256> t{};
    t.fill(64);
    constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (std::uint8_t i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = i;
    return t;
}();

}  // namespace

bool parse_flat_object(std::string_view text, json& out) {
    const char* p = text.data();
    const char* const end = p + text.size();
    auto ws = [&] {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
    };
    // A string without escapes, control characters or non-ASCII bytes; p after its quotes.
    auto string = [&](std::string_view& s) {
        if (p == end || *p != '"') return false;
        ++p;
        const auto* q = static_cast<const char*>(std::memchr(p, '"', static_cast<std::size_t>(end - p)));
        if (!q) return false;
        for (const char* c = p; c < q; ++c) {
            const auto u = static_cast<unsigned char>(*c);
            if (u < 0x20 || u >= 0x80 || u == '\\') return false;
        }
        s = std::string_view(p, static_cast<std::size_t>(q - p));
        p = q + 1;
        return true;
    };
    auto literal = [&](std::string_view word) {
        if (static_cast<std::size_t>(end - p) < word.size() || std::string_view(p, word.size()) != word) return false;
        p += word.size();
        return true;
    };
    auto value = [&](json& v) {
        if (p == end) return false;
        if (*p == '"') {
            std::string_view s;
            if (!string(s)) return false;
            v = std::string(s);
            return true;
        }
        if (*p == 't') return literal("true") && (v = true, true);
        if (*p == 'f') return literal("false") && (v = false, true);
        if (*p == 'n') return literal("null") && (v = nullptr, true);
        // An integer: -?(0|[1-9][0-9]*), with no fraction or exponent, that fits.
        const bool negative = *p == '-';
        if (negative) ++p;
        const char* digits = p;
        std::uint64_t n = 0;
        while (p < end && *p >= '0' && *p <= '9') n = n * 10 + static_cast<std::uint64_t>(*p++ - '0');
        const auto count = p - digits;
        if (count == 0 || (count > 1 && *digits == '0') || count > (negative ? 18 : 19)) return false;
        if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) return false;
        if (negative)
            v = -static_cast<std::int64_t>(n);
        else
            v = n;
        return true;
    };
    out = json::object();
    ws();
    if (p == end || *p++ != '{') return false;
    ws();
    if (p < end && *p == '}') {
        ++p;
    } else {
        for (;;) {
            std::string_view key;
            if (!string(key)) return false;
            ws();
            if (p == end || *p++ != ':') return false;
            ws();
            json v;
            if (!value(v)) return false;
            out[std::string(key)] = std::move(v);
            ws();
            if (p == end) return false;
            const char c = *p++;
            if (c == '}') break;
            if (c != ',') return false;
            ws();
        }
    }
    ws();
    return p == end;
}

namespace {

// A put's whole file arrives through here: a table and direct writes, no per-byte append.
template <typename Out>
bool base64_decode_into(std::string_view text, Out& out) {
    out.clear();
    if (text.size() % 4 != 0) return false;
    const std::size_t groups = text.size() / 4;
    std::size_t pad = 0;
    if (groups > 0 && text.back() == '=') pad = text[text.size() - 2] == '=' ? 2 : 1;
    out.resize(groups * 3 - pad);
    auto* dst = reinterpret_cast<std::uint8_t*>(out.data());
    const auto* src = reinterpret_cast<const std::uint8_t*>(text.data());
    std::uint32_t bad = 0;
    for (std::size_t g = 0; g + (pad ? 1 : 0) < groups; ++g, src += 4, dst += 3) {
        const std::uint32_t a = kBase64Values[src[0]], b = kBase64Values[src[1]], c = kBase64Values[src[2]],
                            d = kBase64Values[src[3]];
        bad |= a | b | c | d;
        const std::uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
        dst[0] = static_cast<std::uint8_t>(v >> 16);
        dst[1] = static_cast<std::uint8_t>(v >> 8);
        dst[2] = static_cast<std::uint8_t>(v);
    }
    if (bad & 64) return false;  // a character outside the alphabet (or '=' inside)
    if (pad) {
        const std::uint32_t a = kBase64Values[src[0]], b = kBase64Values[src[1]];
        const std::uint32_t c = pad == 2 ? 0 : kBase64Values[src[2]];
        if ((a | b | c) & 64) return false;
        const std::uint32_t v = (a << 18) | (b << 12) | (c << 6);
        // Canonical form only: the bits under the padding are zero.
        if ((pad == 1 && (v & 0xff) != 0) || (pad == 2 && (v & 0xffff) != 0)) return false;
        dst[0] = static_cast<std::uint8_t>(v >> 16);
        if (pad == 1) dst[1] = static_cast<std::uint8_t>(v >> 8);
    }
    return true;
}

}  // namespace

bool base64_decode(std::string_view text, std::string& out) { return base64_decode_into(text, out); }
bool base64_decode(std::string_view text, std::vector<std::uint8_t>& out) { return base64_decode_into(text, out); }

std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned c = byte(i);
    if (c < 0x80) return 1;
    std::size_t n = 0;
    unsigned lo = 0x80, hi = 0xbf;  // the bounds of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;  // no overlong forms
        if (c == 0xed) hi = 0x9f;  // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
    } else {
        return 0;
    }
    if (i + n > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < n; ++k)
        if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
    return n;
}

bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_sequence(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

Result<json> control_request(const std::string& path, const json& request, std::chrono::milliseconds timeout) {
    sockaddr_un sa{};
    if (!fill_sockaddr(path, sa)) return Error{"control socket path " + path + " is too long"};
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error{std::string("cannot create a socket: ") + std::strerror(errno)};
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        int err = errno;
        if (err == ENOENT || err == ECONNREFUSED)
            return Error{"conclaved is not running (nothing answers on " + path + "); start it with 'systemctl start "
                         "conclave' or check its log"};
        if (err == EACCES) return Error{"permission denied on " + path + ": run as root"};
        return Error{"cannot connect to " + path + ": " + std::strerror(err)};
    }
    std::string out = request.dump() + "\n";
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto wait = [&](short events) -> bool {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd, events, 0};
        return ::poll(&p, 1, static_cast<int>(left.count())) > 0;
    };
    std::size_t sent = 0;
    while (sent < out.size()) {
        if (!wait(POLLOUT)) return Error{"conclaved did not take the request within the timeout"};
        ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            break;  // the daemon may have answered and closed already: read its answer
        }
        sent += static_cast<std::size_t>(n);
    }
    std::string in;
    char buf[65536];
    while (in.find('\n') == std::string::npos) {
        if (!wait(POLLIN)) return Error{"conclaved did not answer within the timeout"};
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return Error{"conclaved closed the connection without an answer"};
        in.append(buf, static_cast<std::size_t>(n));
        if (in.size() > (64u << 20)) return Error{"conclaved's answer is too large"};
    }
    json reply = json::parse(in.substr(0, in.find('\n')), nullptr, false);
    if (reply.is_discarded() || !reply.is_object()) return Error{"conclaved's answer is not JSON"};
    return reply;
}

}  // namespace conclave::runtime
