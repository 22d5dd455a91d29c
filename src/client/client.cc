#include "conclave/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "wire/group.h"

namespace conclave {

namespace wg = wire::group;

GroupClient::GroupClient() : parser_(std::make_unique<wg::FrameParser>()) {}

GroupClient::~GroupClient() {
    if (fd_ >= 0) ::close(fd_);
}

bool GroupClient::write_all(const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            error_ = std::string("connection to conclaved lost: ") + std::strerror(errno);
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

bool GroupClient::join(const std::string& socket_path, const std::string& group) {
    if (!wg::valid_group_name(group)) {
        error_ = "invalid group name '" + group + "' (letters, digits, - _ . :, at most 64)";
        return false;
    }
    sockaddr_un sa{};
    if (socket_path.size() >= sizeof sa.sun_path) {
        error_ = "socket path too long";
        return false;
    }
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, socket_path.c_str(), socket_path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        error_ = "conclaved is not running (nothing answers on " + socket_path + ")";
        return false;
    }
    std::string req = nlohmann::json{{"cmd", "group.join"}, {"group", group}}.dump() + "\n";
    if (!write_all(reinterpret_cast<const std::uint8_t*>(req.data()), req.size())) return false;
    // The JSON reply line; bytes after it are already group frames.
    std::string line;
    std::vector<std::uint8_t> in;
    std::uint8_t buf[4096];
    for (;;) {
        auto nl = std::find(in.begin(), in.end(), '\n');
        if (nl != in.end()) {
            line.assign(in.begin(), nl);
            parser_->feed(wire::ByteView(&*nl + 1, static_cast<std::size_t>(in.end() - nl - 1)));
            break;
        }
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            error_ = "conclaved closed the connection while joining";
            return false;
        }
        in.insert(in.end(), buf, buf + n);
        if (in.size() > (1u << 20)) {
            error_ = "conclaved's answer is too long";
            return false;
        }
    }
    auto reply = nlohmann::json::parse(line, nullptr, false);
    if (reply.is_discarded() || !reply.is_object()) {
        error_ = "conclaved's answer is not JSON";
        return false;
    }
    if (!reply.value("ok", false)) {
        error_ = reply.value("error", std::string("conclaved refused the join"));
        return false;
    }
    return true;
}

int GroupClient::read_some() {
    // Straight into the parser's buffer: no intermediate copy.
    auto room = parser_->prepare(kReadChunk);
    ssize_t n = ::recv(fd_, room.data(), room.size(), MSG_DONTWAIT);
    if (n > 0) {
        parser_->commit(static_cast<std::size_t>(n));
        return 1;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (error_.empty())
        error_ = n == 0 ? std::string("conclaved closed the connection")
                        : std::string("connection to conclaved lost: ") + std::strerror(errno);
    return -1;
}

bool GroupClient::flush() {
    while (unsent() > 0) {
        ssize_t w = ::send(fd_, out_.data() + out_pos_, unsent(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            error_ = std::string("connection to conclaved lost: ") + std::strerror(errno);
            return false;
        }
        out_pos_ += static_cast<std::size_t>(w);
    }
    if (out_pos_ == out_.size()) {
        out_.clear();
        out_pos_ = 0;
    } else if (out_pos_ >= out_.size() / 2) {
        out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(out_pos_));
        out_pos_ = 0;
    }
    return true;
}

bool GroupClient::pump(int timeout_ms, bool& readable) {
    readable = false;
    pollfd p{fd_, static_cast<short>(POLLIN | (unsent() ? POLLOUT : 0)), 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0) return errno == EINTR;
    if (r == 0) return true;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        readable = true;
        if (read_some() < 0) return false;
    }
    if (p.revents & POLLOUT) return flush();
    return true;
}

bool GroupClient::send(const void* data, std::size_t size, bool safe) {
    if (fd_ < 0) {
        error_ = "not joined";
        return false;
    }
    if (size > wg::kMaxPayload) {
        error_ = "message larger than 1 MiB";
        return false;
    }
    wg::encode_send(safe ? 1 : 0, wire::ByteView(static_cast<const std::uint8_t*>(data), size), out_);
    // A batch goes out once it is worth a system call; next() and flush() send the rest.
    if (unsent() >= kFlushBytes && !flush()) return false;
    // Wait (reading meanwhile) only past the limit.
    bool readable = false;
    while (unsent() > kMaxUnsent)
        if (!pump(-1, readable)) return false;
    return true;
}

bool GroupClient::take_frame(GroupEvent& ev, bool& malformed) {
    malformed = false;
    wg::FrameType type;
    wire::ByteView body;
    auto st = parser_->next(type, body);
    if (st != wg::FrameParser::Status::frame) {
        malformed = st == wg::FrameParser::Status::malformed;
        return false;
    }
    if (type == wg::FrameType::deliver) {
        wg::Deliver d;
        if (!wg::decode_deliver(body, d)) return malformed = true, false;
        // Field by field, not ev = {}: the payload keeps its capacity from one event to the next.
        ev.kind = GroupEvent::Kind::message;
        ev.sender = d.sender;
        ev.safe = d.guarantee == 1;
        ev.number = d.number;
        ev.payload.assign(d.payload.begin(), d.payload.end());
        ev.transitional = false;
        ev.ring_rep = 0;
        ev.ring_seq = 0;
        ev.members.clear();
    } else if (type == wg::FrameType::config) {
        wg::Config c;
        if (!wg::decode_config(body, c)) return malformed = true, false;
        ev = GroupEvent{};
        ev.kind = GroupEvent::Kind::config;
        ev.transitional = c.kind == 1;
        ev.ring_rep = c.rep;
        ev.ring_seq = c.ring_seq;
        ev.members = std::move(c.members);
    } else if (type == wg::FrameType::error) {
        error_ = "conclaved: " + std::string(body.begin(), body.end());
        ev = GroupEvent{};
        ev.kind = GroupEvent::Kind::closed;
    } else {
        malformed = true;  // the daemon never sends SEND frames
        return false;
    }
    return true;
}

GroupEvent::Kind GroupClient::next(int timeout_ms, GroupEvent& ev) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        bool malformed = false;
        if (take_frame(ev, malformed)) return ev.kind;
        if (malformed) {
            error_ = "malformed frame from conclaved";
            return GroupEvent::Kind::closed;
        }
        // Queued sends go out first; then whatever already arrived is read without a poll.
        if (!flush()) return GroupEvent::Kind::closed;
        int got = read_some();
        if (got < 0) return GroupEvent::Kind::closed;
        if (got > 0) continue;
        int wait = -1;
        if (timeout_ms >= 0) {
            auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()).count();
            if (left <= 0) return GroupEvent::Kind::none;
            wait = static_cast<int>((left + 999) / 1000);
        }
        bool readable = false;
        if (!pump(wait, readable)) return GroupEvent::Kind::closed;
    }
}

}  // namespace conclave
