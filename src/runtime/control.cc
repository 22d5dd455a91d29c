#include "runtime/control.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace conclave::runtime {

using asio::local::stream_protocol;
using nlohmann::json;

namespace {

json error_reply(const std::string& msg) { return json{{"ok", false}, {"error", msg}}; }

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

class ControlServer::Session : public std::enable_shared_from_this<ControlServer::Session> {
public:
    Session(ControlServer& server, stream_protocol::socket socket) : server_(server), socket_(std::move(socket)) {}
    ~Session() { --server_.clients_; }

    void start() {
        ucred cred{};
        socklen_t len = sizeof cred;
        bool ok = ::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
                  (cred.uid == 0 || static_cast<long>(cred.uid) == server_.extra_uid_);
        if (!ok) ++server_.refused_;
        refused_ = !ok;
        read();
    }

private:
    void read() {
        auto self = shared_from_this();
        asio::async_read_until(socket_, asio::dynamic_buffer(buffer_, kMaxRequest), '\n',
                               [this, self](std::error_code ec, std::size_t n) {
                                   if (ec == asio::error::not_found) {
                                       reply_and_close(error_reply("request longer than 1 MiB"));
                                       return;
                                   }
                                   if (ec) return;  // peer closed
                                   std::string line = buffer_.substr(0, n - 1);
                                   buffer_.erase(0, n);
                                   handle(line);
                               });
    }

    void handle(const std::string& line) {
        // A refused peer still gets its request read before the answer, so the answer is
        // not lost to a connection reset on a socket closed with unread data.
        if (refused_) {
            reply_and_close(error_reply("permission denied: the control socket is for root only"));
            return;
        }
        json req = json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (req.is_discarded() || !req.is_object()) {
            reply_and_close(error_reply("request is not a JSON object"));
            return;
        }
        json reply;
        try {
            reply = server_.handler_(req);
        } catch (const std::exception& e) {
            // A handler bug must not take the daemon down with it.
            log::error(std::string("control request failed: ") + e.what());
            reply = error_reply(std::string("internal error: ") + e.what());
        }
        write(reply, /*close_after=*/false);
    }

    void reply_and_close(const json& reply) { write(reply, true); }

    void write(const json& reply, bool close_after) {
        out_ = reply.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
        auto self = shared_from_this();
        asio::async_write(socket_, asio::buffer(out_), [this, self, close_after](std::error_code ec, std::size_t) {
            if (ec || close_after) {
                std::error_code ignore;
                socket_.close(ignore);
                return;
            }
            read();
        });
    }

    ControlServer& server_;
    stream_protocol::socket socket_;
    std::string buffer_;
    std::string out_;
    bool refused_ = false;
};

ControlServer::ControlServer(asio::io_context& io, std::string path, Handler handler)
    : path_(std::move(path)), handler_(std::move(handler)), acceptor_(io) {}

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
    ::unlink(path_.c_str());
}

void ControlServer::accept() {
    acceptor_.async_accept([this](std::error_code ec, stream_protocol::socket socket) {
        if (ec == asio::error::operation_aborted || !open_) return;
        if (!ec) {
            ++clients_;
            auto session = std::make_shared<Session>(*this, std::move(socket));
            if (clients_ > kMaxClients) {
                // Bounded: a client flood cannot exhaust the daemon's descriptors.
                session.reset();
            } else {
                session->start();
            }
        }
        accept();
    });
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
