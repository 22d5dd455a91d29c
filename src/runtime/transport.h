// UDP transport of the daemon: multicast (one send per frame to the group) or unicast
// (one send per frame to every configured peer). Every datagram is sealed and opened by
// crypto::Channel; nothing reaches the handler unless its tag verified (DESIGN §2.4).
//
// Node addresses for point-to-point sends (the token) are learned from authenticated
// packets only, and only from a sender's newest one: neither a forged source address
// nor a captured datagram sent again from elsewhere can redirect the ring's traffic.
// Point-to-point sends are sealed for their receiver alone (wire/datagram.h).
//
// Runs on the protocol thread's io_context; sends never block (a full socket buffer is
// a counted drop that the ring's retransmission repairs, DESIGN §2.5).
#pragma once

#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "base/result.h"
#include "config/config.h"
#include "crypto/channel.h"

namespace conclave::runtime {

struct TransportStats {
    std::uint64_t datagrams_sent = 0;
    std::uint64_t datagrams_received = 0;
    std::uint64_t send_errors = 0;     // the kernel refused (buffer full, no route, ...)
    std::uint64_t unroutable = 0;      // send_to a node whose address is not known yet
    std::uint64_t oversize = 0;        // a body that cannot fit a datagram
};

class Transport {
public:
    // Called for every authenticated datagram: the sender's node id and the opened body
    // (valid only during the call).
    using Handler = std::function<void(std::uint32_t sender, wire::ByteView body)>;

    Transport(asio::io_context& io, const config::Config& cfg, crypto::Channel& channel, Handler on_packet);

    // Binds, joins the group, sizes buffers and starts receiving. The error says what
    // failed and what to check (address not on this host, port in use, ...).
    Status open();
    void close();

    // To every other node: the group (multicast) or each peer (unicast).
    void send_all(wire::ByteView body);
    // The same for several bodies, in order, with as few system calls as possible
    // (sendmmsg): a token visit's burst of frames leaves in one call.
    void send_all_batch(const std::vector<wire::Bytes>& bodies);
    // To one node, at the address its authenticated packets came from. False (and
    // counted) when that address is not known yet.
    bool send_to(std::uint32_t node, wire::ByteView body);

    // Datagrams are read in batches (recvmmsg, up to kBatch per call and kMaxPerWake per
    // wake-up); `begin` runs before the first handler call of a batch and `end` after
    // the last, so the ring driver can do once per batch what is per-batch work (waking
    // the clients with the deliveries, for instance). Either may be empty.
    void set_batch_hooks(std::function<void()> begin, std::function<void()> end) {
        batch_begin_ = std::move(begin);
        batch_end_ = std::move(end);
    }
    static constexpr int kBatch = 32;
    static constexpr int kMaxPerWake = 128;

    asio::ip::udp::endpoint local_endpoint() const;
    const TransportStats& stats() const { return stats_; }
    const crypto::RejectCounts& rejects() const { return channel_.rejects(); }
    // Last address each node was heard from (the who-hears-whom matrix starts here).
    const std::map<std::uint32_t, asio::ip::udp::endpoint>& addresses() const { return addresses_; }

private:
    void receive();
    // Reads what the socket holds (bounded), handing each datagram to deliver(). True
    // when it stopped with datagrams possibly left (the bound, or an error report).
    bool drain();
    void receive_more();
    void deliver(const std::uint8_t* data, std::size_t n, const asio::ip::udp::endpoint& from);
    void send_datagram(const asio::ip::udp::endpoint& to);
    // Seals body into sealed_ for `receiver` (0: every member); false (counted as
    // oversize) when it cannot be a datagram.
    bool seal(wire::ByteView body, std::uint32_t receiver = 0);
    Status open_multicast(const asio::ip::address& group);

    const config::Config& cfg_;
    crypto::Channel& channel_;
    Handler on_packet_;
    asio::ip::udp::socket socket_;
    std::vector<asio::ip::udp::endpoint> fanout_;  // group, or the unicast peers
    std::map<std::uint32_t, asio::ip::udp::endpoint> addresses_;
    // kBatch receive slots of slot_size_ bytes each, with their source addresses.
    std::size_t slot_size_ = 0;
    std::vector<std::uint8_t> rx_buf_;
    std::vector<asio::ip::udp::endpoint> rx_from_;
    std::function<void()> batch_begin_, batch_end_;
    wire::Bytes sealed_;
    wire::Bytes scratch_;
    std::vector<wire::Bytes> sealed_batch_;  // send_all(bodies): one sealed datagram each
    TransportStats stats_;
    // Rejections are counted always and logged at most once a minute per reason, with
    // the number dropped since that reason's last line: a flood cannot fill the journal,
    // and a new problem (a node with the wrong key) is still reported a minute later.
    struct RejectLog {
        std::chrono::steady_clock::time_point last{};
        bool logged = false;
        std::uint64_t unreported = 0;
    };
    std::array<RejectLog, crypto::kRejectReasons> reject_log_{};
};

}  // namespace conclave::runtime
