#include "runtime/transport.h"

#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "base/log.h"

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
    : cfg_(cfg), channel_(channel), on_packet_(std::move(on_packet)), socket_(io), rx_buf_(kMaxDatagram + 1) {}

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
    socket_.async_receive_from(asio::buffer(rx_buf_), rx_from_, [this](std::error_code ec, std::size_t n) {
        if (ec == asio::error::operation_aborted || !socket_.is_open()) return;
        if (!ec) {
            ++stats_.datagrams_received;
            auto r = channel_.open(wire::ByteView(rx_buf_.data(), n), scratch_);
            if (auto* ok = std::get_if<crypto::Channel::Opened>(&r)) {
                addresses_[ok->sender] = rx_from_;
                on_packet_(ok->sender, ok->body);
            } else {
                auto why = std::get<crypto::Reject>(r);
                auto idx = static_cast<std::size_t>(why);
                // Counted always; logged once per reason so a flood cannot fill the journal.
                if (!reject_logged_[idx]) {
                    reject_logged_[idx] = true;
                    log::warning("dropped a datagram from " + rx_from_.address().to_string() + ":" +
                                 std::to_string(rx_from_.port()) + " (" + std::string(crypto::reject_name(why)) +
                                 "); further drops are only counted, see conclavectl status");
                }
            }
        }
        receive();
    });
}

void Transport::send_datagram(const asio::ip::udp::endpoint& to) {
    std::error_code ec;
    socket_.send_to(asio::buffer(sealed_), to, 0, ec);
    if (ec)
        ++stats_.send_errors;
    else
        ++stats_.datagrams_sent;
}

bool Transport::seal(wire::ByteView body) {
    if (body.size() + wire::kDatagramOverhead <= kMaxDatagram && channel_.seal(body, sealed_)) return true;
    ++stats_.oversize;
    return false;
}

void Transport::send_all(wire::ByteView body) {
    if (!seal(body)) return;
    for (const auto& to : fanout_) send_datagram(to);
}

bool Transport::send_to(std::uint32_t node, wire::ByteView body) {
    auto it = addresses_.find(node);
    if (it == addresses_.end()) {
        ++stats_.unroutable;
        return false;
    }
    if (!seal(body)) return false;
    send_datagram(it->second);
    return true;
}

}  // namespace conclave::runtime
