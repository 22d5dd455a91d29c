#include "runtime/transport.h"

#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "base/log.h"
#include "wire/totem.h"

namespace conclave::runtime {
namespace {

constexpr int kSocketBuffer = 8 << 20;  // bursts of a saturated ring; the kernel may cap it
constexpr std::size_t kMaxDatagram = 65507;

void size_buffers(int fd) {
    int size = kSocketBuffer;
    // As root the *FORCE variants pass net.core.{r,w}mem_max; otherwise take what we get.
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

}  // namespace

Transport::Transport(asio::io_context& io, const config::Config& cfg, crypto::Channel& channel, Handler on_packet)
    : cfg_(cfg),
      channel_(channel),
      on_packet_(std::move(on_packet)),
      socket_(io),
      // Our datagrams stay within the MTU but for a large ring's commit token
      // (wire::totem::kMaxCommitTokenSize); a larger one arrives truncated (MSG_TRUNC) and
      // fails authentication like any other damaged datagram.
      slot_size_(std::min<std::size_t>(
          std::max<std::size_t>({cfg.mtu, 1500, wire::totem::kMaxCommitTokenSize + wire::totem::kDatagramOverhead}) + 512,
          kMaxDatagram + 1)),
      rx_buf_(slot_size_ * kBatch),
      rx_from_(kBatch) {}

Status Transport::open() {
    std::error_code ec;
    asio::ip::address bind_addr;
    asio::ip::address group;
    bool v6 = false;
    if (cfg_.transport == config::Transport::multicast) {
        group = asio::ip::make_address(cfg_.mcast_group, ec);
        if (ec) return Error{"bad multicast group " + cfg_.mcast_group};
        v6 = group.is_v6();
    } else {
        v6 = !cfg_.peers.empty() && cfg_.peers.front().address.find(':') != std::string::npos;
    }
    if (!cfg_.bind_address.empty()) {
        bind_addr = asio::ip::make_address(cfg_.bind_address, ec);
        if (ec) return Error{"bad bind_address " + cfg_.bind_address};
        v6 = bind_addr.is_v6();
    }

    socket_.open(v6 ? asio::ip::udp::v6() : asio::ip::udp::v4(), ec);
    if (ec) return Error{"cannot open a UDP socket: " + ec.message()};
    size_buffers(socket_.native_handle());
    socket_.set_option(asio::socket_base::reuse_address(true), ec);

    // Multicast must bind the wildcard address: a socket bound to a unicast address
    // never sees datagrams addressed to the group. Unicast binds bind_address if given.
    asio::ip::address listen = v6 ? asio::ip::address(asio::ip::address_v6::any())
                                  : asio::ip::address(asio::ip::address_v4::any());
    if (cfg_.transport == config::Transport::unicast && !cfg_.bind_address.empty()) listen = bind_addr;
    socket_.bind(asio::ip::udp::endpoint(listen, cfg_.port), ec);
    if (ec) {
        std::string what = listen.to_string() + " port " + std::to_string(cfg_.port);
        if (ec == asio::error::address_in_use)
            return Error{"cannot bind " + what + ": the port is in use (another conclaved or corosync?); "
                         "stop it or set network.port"};
        if (ec == std::errc::address_not_available)
            return Error{"cannot bind " + what + ": the address is not on this host; check network.bind_address"};
        return Error{"cannot bind " + what + ": " + ec.message()};
    }
    socket_.non_blocking(true, ec);

    fanout_.clear();
    if (cfg_.transport == config::Transport::multicast) {
        if (auto st = open_multicast(group); !st) return st;
        fanout_.emplace_back(group, cfg_.port);
    } else {
        for (const auto& p : cfg_.peers) {
            auto addr = asio::ip::make_address(p.address, ec);
            if (ec) return Error{"bad peer address " + p.address};
            fanout_.emplace_back(addr, p.port ? p.port : cfg_.port);
        }
    }
    receive();
    return Ok{};
}

Status Transport::open_multicast(const asio::ip::address& group) {
    int fd = socket_.native_handle();
    unsigned ifindex = 0;
    if (!cfg_.interface.empty()) {
        ifindex = ::if_nametoindex(cfg_.interface.c_str());
        if (ifindex == 0) return Error{"network.interface " + cfg_.interface + " does not exist on this host"};
    }
    std::error_code ec;
    if (group.is_v4()) {
        ip_mreqn req{};
        std::memcpy(&req.imr_multiaddr, group.to_v4().to_bytes().data(), 4);
        if (!cfg_.bind_address.empty())
            std::memcpy(&req.imr_address, asio::ip::make_address_v4(cfg_.bind_address).to_bytes().data(), 4);
        req.imr_ifindex = static_cast<int>(ifindex);
        if (::setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &req, sizeof req) != 0)
            return Error{"cannot join multicast group " + cfg_.mcast_group + ": " + std::strerror(errno) +
                         " (is there a route for 224.0.0.0/4, or set network.interface)"};
        if (::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &req, sizeof req) != 0)
            return Error{std::string("cannot choose the multicast interface: ") + std::strerror(errno)};
    } else {
        ipv6_mreq req{};
        std::memcpy(&req.ipv6mr_multiaddr, group.to_v6().to_bytes().data(), 16);
        req.ipv6mr_interface = ifindex;
        if (::setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &req, sizeof req) != 0)
            return Error{"cannot join multicast group " + cfg_.mcast_group + ": " + std::strerror(errno)};
        if (ifindex && ::setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) != 0)
            return Error{std::string("cannot choose the multicast interface: ") + std::strerror(errno)};
    }
    socket_.set_option(asio::ip::multicast::enable_loopback(false), ec);
    socket_.set_option(asio::ip::multicast::hops(static_cast<int>(cfg_.ttl)), ec);
    return Ok{};
}

void Transport::close() {
    std::error_code ec;
    socket_.close(ec);
}

asio::ip::udp::endpoint Transport::local_endpoint() const {
    std::error_code ec;
    return socket_.local_endpoint(ec);
}

void Transport::receive() {
    // Wait for readability, then read everything there is in as few system calls as
    // possible: one wake-up serves a whole burst of the ring's frames.
    socket_.async_wait(asio::socket_base::wait_read, [this](std::error_code ec) {
        if (ec == asio::error::operation_aborted || !socket_.is_open()) return;
        if (!ec && drain()) {
            // Asio's epoll registration is edge-triggered: datagrams left behind (the
            // per-wake-up bound was hit) would not wake a new wait. Read on after the
            // other ready handlers had their turn.
            asio::post(socket_.get_executor(), [this] {
                if (socket_.is_open()) receive_more();
            });
            return;
        }
        receive();
    });
}

void Transport::receive_more() {
    if (drain())
        asio::post(socket_.get_executor(), [this] {
            if (socket_.is_open()) receive_more();
        });
    else
        receive();
}

bool Transport::drain() {
    std::array<mmsghdr, kBatch> msgs{};
    std::array<iovec, kBatch> iov{};
    bool began = false;
    bool more = false;  // stopped before the socket said "empty"
    int total = 0;
    while (socket_.is_open()) {
        if (total >= kMaxPerWake) {
            more = true;
            break;
        }
        for (int i = 0; i < kBatch; ++i) {
            iov[i] = {rx_buf_.data() + static_cast<std::size_t>(i) * slot_size_, slot_size_};
            msgs[i].msg_hdr = {};
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = rx_from_[i].data();
            msgs[i].msg_hdr.msg_namelen = static_cast<socklen_t>(rx_from_[i].capacity());
        }
        int n = ::recvmmsg(socket_.native_handle(), msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
        if (n < 0) {
            if (errno == EINTR) continue;
            // A pending socket error (an ICMP report on a unicast send) is consumed by
            // this call while datagrams may still wait behind it: read again.
            more = errno != EAGAIN && errno != EWOULDBLOCK;
            break;
        }
        if (n == 0) break;
        if (!began) {
            began = true;
            if (batch_begin_) batch_begin_();
        }
        for (int i = 0; i < n && socket_.is_open(); ++i) {
            rx_from_[i].resize(msgs[i].msg_hdr.msg_namelen);
            deliver(rx_buf_.data() + static_cast<std::size_t>(i) * slot_size_, msgs[i].msg_len, rx_from_[i]);
        }
        total += n;
        if (n < kBatch) break;  // drained: the next datagram makes a new edge
    }
    if (began && batch_end_) batch_end_();
    return more && socket_.is_open();
}

namespace {

// What an operator should look at for each kind of rejected datagram.
const char* reject_hint(crypto::Reject why) {
    switch (why) {
        case crypto::Reject::bad_tag:
            return "it failed authentication: a node with another authkey of the same id, or corruption";
        case crypto::Reject::unknown_key:
            return "sealed with an authkey this node does not have: copy the cluster's authkey to that node";
        case crypto::Reject::other_cluster:
            return "another cluster uses the same multicast group or port: give each cluster its own";
        case crypto::Reject::unknown_version:
            return "another conclave wire version: run one version on every node";
        case crypto::Reject::misdirected:
            return "a unicast for another node or one bearing this node's own id: two nodes with one nodeid, "
                   "or captured datagrams sent on";
        case crypto::Reject::replay:
        case crypto::Reject::too_old:
            return "a copy of a datagram already received, or one from a restarted node's old process";
        case crypto::Reject::malformed: return "not a conclave datagram";
    }
    return "";
}

}  // namespace

void Transport::deliver(const std::uint8_t* data, std::size_t n, const asio::ip::udp::endpoint& from) {
    ++stats_.datagrams_received;
    auto r = channel_.open(wire::ByteView(data, n), scratch_);
    if (auto* ok = std::get_if<crypto::Channel::Opened>(&r)) {
        // Where the sender is now: only its newest datagram may say so, so that a late or
        // re-sent copy (from anywhere) cannot redirect this node's unicasts to it.
        auto [it, fresh] = addresses_.try_emplace(ok->sender, from);
        if (!fresh && ok->newest && it->second != from) it->second = from;
        on_packet_(ok->sender, ok->body);
        return;
    }
    auto why = std::get<crypto::Reject>(r);
    RejectLog& rl = reject_log_[static_cast<std::size_t>(why)];
    const auto now = std::chrono::steady_clock::now();
    if (rl.logged && now - rl.last < std::chrono::minutes(1)) {
        ++rl.unreported;
        return;
    }
    std::string more;
    if (rl.unreported > 0) more = "; " + std::to_string(rl.unreported) + " more since the last report";
    log::warning("dropped a datagram from " + from.address().to_string() + ":" + std::to_string(from.port()) + " (" +
                 std::string(crypto::reject_name(why)) + ": " + reject_hint(why) + ")" + more +
                 "; reported at most once a minute, every drop is counted in conclavectl counters");
    rl.logged = true;
    rl.last = now;
    rl.unreported = 0;
}

void Transport::send_datagram(const asio::ip::udp::endpoint& to) {
    std::error_code ec;
    socket_.send_to(asio::buffer(sealed_), to, 0, ec);
    if (ec)
        ++stats_.send_errors;
    else
        ++stats_.datagrams_sent;
}

bool Transport::seal(wire::ByteView body, std::uint32_t receiver) {
    if (body.size() + wire::kDatagramOverhead <= kMaxDatagram && channel_.seal(body, sealed_, receiver)) return true;
    ++stats_.oversize;
    return false;
}

void Transport::send_all(wire::ByteView body) {
    if (!seal(body)) return;
    for (const auto& to : fanout_) send_datagram(to);
}

void Transport::send_all_batch(const std::vector<wire::Bytes>& bodies) {
    if (bodies.size() <= 1) {
        for (const auto& b : bodies) send_all(b);
        return;
    }
    if (sealed_batch_.size() < bodies.size()) sealed_batch_.resize(bodies.size());
    constexpr std::size_t kMax = 64;  // datagrams per sendmmsg
    std::array<mmsghdr, kMax> msgs{};
    std::array<iovec, kMax> iov{};
    std::size_t count = 0;
    auto flush = [&] {
        std::size_t done = 0;
        while (done < count) {
            int n = ::sendmmsg(socket_.native_handle(), msgs.data() + done, static_cast<unsigned>(count - done), 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                // The first datagram failed (buffer full, no route, ...): count it, go on.
                ++stats_.send_errors;
                ++done;
                continue;
            }
            stats_.datagrams_sent += static_cast<std::uint64_t>(n);
            done += static_cast<std::size_t>(n);
        }
        count = 0;
    };
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        const auto& body = bodies[i];
        auto& out = sealed_batch_[i];
        if (body.size() + wire::kDatagramOverhead > kMaxDatagram || !channel_.seal(body, out)) {
            ++stats_.oversize;
            continue;
        }
        for (const auto& to : fanout_) {
            if (count == kMax) flush();
            iov[count] = {out.data(), out.size()};
            msgs[count].msg_hdr = {};
            msgs[count].msg_hdr.msg_iov = &iov[count];
            msgs[count].msg_hdr.msg_iovlen = 1;
            msgs[count].msg_hdr.msg_name = const_cast<void*>(static_cast<const void*>(to.data()));
            msgs[count].msg_hdr.msg_namelen = static_cast<socklen_t>(to.size());
            ++count;
        }
    }
    flush();
}

bool Transport::send_to(std::uint32_t node, wire::ByteView body) {
    auto it = addresses_.find(node);
    if (it == addresses_.end()) {
        ++stats_.unroutable;
        return false;
    }
    if (!seal(body, node)) return false;
    send_datagram(it->second);
    return true;
}

}  // namespace conclave::runtime
