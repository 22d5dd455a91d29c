#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "temp_dir.h"
#include "base/latency_window.h"
#include "base/log.h"
#include "runtime/ring_driver.h"
#include "runtime/state_dir.h"
#include "runtime/transport.h"
#include "wire/totem.h"
#include "why.h"

using namespace conclave;

namespace {

using conclave::test::TempDir;

crypto::AuthKey key(std::uint8_t seed) {
    crypto::AuthKey k;
    for (std::size_t i = 0; i < k.bytes.size(); ++i) k.bytes[i] = static_cast<std::uint8_t>(seed + i);
    crypto::compute_key_id(k);
    return k;
}

crypto::ChannelConfig channel_config(std::uint32_t node, std::uint8_t key_seed = 1) {
    crypto::ChannelConfig c;
    c.cluster_id = wire::cluster_id_of("rt");
    c.node_id = node;
    c.boot = {1, node};
    c.current = key(key_seed);
    return c;
}

std::uint16_t free_port() {
    asio::io_context io;
    asio::ip::udp::socket s(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return s.local_endpoint().port();
}

// Runs the io_context until pred() holds or the deadline passes: no sleeps.
template <typename Pred>
bool run_until(asio::io_context& io, Pred pred, std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
    auto end = std::chrono::steady_clock::now() + deadline;
    while (!pred() && std::chrono::steady_clock::now() < end) {
        io.restart();
        io.run_for(std::chrono::milliseconds(10));
    }
    return pred();
}

struct Node {
    config::Config cfg;
    crypto::Channel channel;
    std::vector<std::pair<std::uint32_t, std::string>> got;
    runtime::Transport transport;
    Node(asio::io_context& io, std::uint32_t id, std::uint16_t port, std::uint16_t peer_port)
        : cfg(make_cfg(id, port, peer_port)),
          channel(channel_config(id)),
          transport(io, cfg, channel, [this](std::uint32_t from, wire::ByteView body) {
              got.emplace_back(from, std::string(body.begin(), body.end()));
          }) {}
    static config::Config make_cfg(std::uint32_t id, std::uint16_t port, std::uint16_t peer_port) {
        config::Config c;
        c.cluster_name = "rt";
        c.node_id = id;
        c.transport = config::Transport::unicast;
        c.bind_address = "127.0.0.1";
        c.port = port;
        c.peers = {{"127.0.0.1", peer_port}};
        return c;
    }
};

wire::ByteView view(const std::string& s) {
    return wire::ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

}  // namespace

TEST_CASE("log lines carry node and ring, one line per event") {
    log::set_node(3);
    log::set_ring("1.1a8");
    auto journal = log::format_line(log::Level::warning, "token lost\nforged line", true);
    CHECK(journal == "<4>node 3 ring 1.1a8: token lost forged line\n");
    auto plain = log::format_line(log::Level::info, "hello", false);
    CHECK(plain.find(" info node 3 ring 1.1a8: hello\n") != std::string::npos);
    log::set_level(log::Level::info);
    CHECK_FALSE(log::enabled(log::Level::debug));
    CHECK(log::enabled(log::Level::notice));
    log::set_node(0);
    log::set_ring("");
}

TEST_CASE("a state directory admits one daemon and keeps durable facts") {
    TempDir d;
    std::string dir = d.path + "/state/sub";
    auto a = runtime::StateDir::open(dir);
    REQUIRE_MESSAGE(a.ok(), test::why(a));
    struct stat st {};
    REQUIRE(stat(dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);

    auto b = runtime::StateDir::open(dir);
    REQUIRE_FALSE(b.ok());
    CHECK(b.error().find("another conclaved (pid " + std::to_string(getpid()) + ")") != std::string::npos);

    CHECK(a->load("ring").value() == 0);
    REQUIRE(a->store("ring", 1234).ok());
    CHECK(a->load("ring").value() == 1234);
    CHECK_FALSE(a->store("../x", 1).ok());

    // The boot epoch grows at every start, whether the clock or the file carries it.
    auto e1 = a->next_boot_epoch(1000);
    REQUIRE(e1.ok());
    CHECK(e1.value() == 1000);
    CHECK(a->next_boot_epoch(5).value() == 1001);  // the clock went back: the file wins
    CHECK(a->next_boot_epoch(9999).value() == 9999);

    std::system(("echo garbage > '" + dir + "/ring'").c_str());
    auto bad = a->load("ring");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().find("damaged") != std::string::npos);
}

TEST_CASE("the lock is released with its holder") {
    TempDir d;
    { auto a = runtime::StateDir::open(d.path); REQUIRE(a.ok()); }
    CHECK(runtime::StateDir::open(d.path).ok());
}

TEST_CASE("unicast transport: sealed exchange on loopback, bad packets counted and dropped") {
    asio::io_context io;
    std::uint16_t pa = free_port(), pb = free_port();
    Node a(io, 1, pa, pb), b(io, 2, pb, pa);
    REQUIRE_MESSAGE(a.transport.open().ok(), "open a");
    REQUIRE_MESSAGE(b.transport.open().ok(), "open b");

    // Before anything was heard from node 1, b cannot address it.
    CHECK_FALSE(b.transport.send_to(1, view("early")));
    CHECK(b.transport.stats().unroutable == 1);

    a.transport.send_all(view("hello"));
    REQUIRE(run_until(io, [&] { return b.got.size() == 1; }));
    CHECK(b.got[0] == std::make_pair(1u, std::string("hello")));

    // b learned node 1's address from the authenticated packet.
    CHECK(b.transport.send_to(1, view("back")));
    REQUIRE(run_until(io, [&] { return a.got.size() == 1; }));
    CHECK(a.got[0] == std::make_pair(2u, std::string("back")));

    asio::ip::udp::socket raw(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::ip::udp::endpoint to_b(asio::ip::make_address("127.0.0.1"), pb);

    SUBCASE("garbage") {
        raw.send_to(asio::buffer(std::string("not a datagram")), to_b);
        REQUIRE(run_until(io, [&] { return b.transport.rejects()[crypto::Reject::malformed] == 1; }));
    }
    SUBCASE("replay and wrong key") {
        crypto::Channel third(channel_config(3));
        wire::Bytes sealed;
        REQUIRE(third.seal(view("once"), sealed));
        raw.send_to(asio::buffer(sealed), to_b);
        raw.send_to(asio::buffer(sealed), to_b);
        REQUIRE(run_until(io, [&] { return b.transport.rejects()[crypto::Reject::replay] == 1; }));
        crypto::Channel stranger(channel_config(4, 9));
        REQUIRE(stranger.seal(view("let me in"), sealed));
        raw.send_to(asio::buffer(sealed), to_b);
        REQUIRE(run_until(io, [&] { return b.transport.rejects()[crypto::Reject::unknown_key] == 1; }));
        CHECK(b.got.size() == 2);  // "hello" and the first "once" only
        CHECK(b.got[1] == std::make_pair(3u, std::string("once")));
    }
    CHECK(b.got.size() <= 2);
}

TEST_CASE("transport: a 64-member commit token, above the MTU, arrives whole") {
    asio::io_context io;
    std::uint16_t pa = free_port(), pb = free_port();
    Node a(io, 1, pa, pb), b(io, 2, pb, pa);
    REQUIRE(a.cfg.mtu == 1500);
    REQUIRE(wire::totem::kMaxCommitTokenSize > wire::totem::frame_budget(a.cfg.mtu));
    REQUIRE(a.transport.open().ok());
    REQUIRE(b.transport.open().ok());
    const std::string big(wire::totem::kMaxCommitTokenSize, 'c');
    a.transport.send_all(view(big));
    REQUIRE(run_until(io, [&] { return b.got.size() == 1; }));
    CHECK(b.got[0].second == big);
    CHECK(b.transport.rejects()[crypto::Reject::malformed] == 0);
}

TEST_CASE("a port in use is a clear error") {
    asio::io_context io;
    std::uint16_t p = free_port();
    asio::ip::udp::socket holder(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), p));
    Node a(io, 1, p, p);
    auto st = a.transport.open();
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().find("port is in use") != std::string::npos);
}

TEST_CASE("ring driver: a fixed two-node ring orders messages over real UDP sockets and timers") {
    asio::io_context io;
    std::uint16_t pa = free_port(), pb = free_port();
    struct Member {
        config::Config cfg;
        crypto::Channel channel;
        std::unique_ptr<runtime::Transport> transport;
        std::unique_ptr<runtime::RingDriver> driver;
        std::vector<std::string> got;
    };
    auto make = [&](std::uint32_t id, std::uint16_t port, std::uint16_t peer) {
        auto m = std::make_unique<Member>(Member{Node::make_cfg(id, port, peer), crypto::Channel(channel_config(id)), {}, {}, {}});
        Member* raw = m.get();
        m->transport = std::make_unique<runtime::Transport>(io, m->cfg, m->channel, [raw](std::uint32_t from, wire::ByteView b) {
            raw->driver->on_packet(from, b);
        });
        totem::Config tc;
        tc.self = id;
        tc.members = {1, 2};
        tc.ring_id = {1, 4};
        m->driver = std::make_unique<runtime::RingDriver>(
            io, *m->transport, tc, nullptr,
            runtime::RingDriver::Callbacks{[raw](totem::Event&& e) {
                                               if (auto* d = std::get_if<totem::Delivery>(&e))
                                                   raw->got.emplace_back(d->payload.begin(), d->payload.end());
                                           },
                                           nullptr, nullptr, nullptr});
        return m;
    };
    auto a = make(1, pa, pb), b = make(2, pb, pa);
    REQUIRE(a->transport->open().ok());
    REQUIRE(b->transport->open().ok());
    // Addresses are learned from authenticated packets only: say hello first.
    a->transport->send_all({});
    b->transport->send_all({});
    REQUIRE(run_until(io, [&] { return a->transport->addresses().size() == 1 && b->transport->addresses().size() == 1; }));
    a->driver->start();
    b->driver->start();
    for (int i = 0; i < 50; ++i) {
        std::string m = (i % 2 ? "a" : "b") + std::to_string(i);
        auto& who = i % 2 ? a : b;
        REQUIRE(who->driver->submit(wire::Bytes(m.begin(), m.end()), i % 3 ? totem::Guarantee::agreed : totem::Guarantee::safe).status ==
                totem::SubmitStatus::ok);
    }
    REQUIRE(run_until(io, [&] { return a->got.size() == 50 && b->got.size() == 50; }));
    CHECK(a->got == b->got);  // the same total order on both nodes
}

TEST_CASE("a latency window summarises its last samples: nearest-rank p50 and p99, max; the oldest drop out") {
    conclave::LatencyWindow w(100);
    auto empty = w.summary();
    CHECK(empty.samples == 0);
    CHECK(empty.p50 == 0);
    CHECK(empty.max == 0);
    w.add(7);
    auto one = w.summary();
    CHECK(one.samples == 1);
    CHECK(one.p50 == 7);
    CHECK(one.p99 == 7);
    CHECK(one.max == 7);
    for (std::uint64_t v = 100; v >= 1; --v) w.add(v);  // 7 (the oldest) drops out
    auto full = w.summary();
    CHECK(full.samples == 100);
    CHECK(full.p50 == 50);
    CHECK(full.p99 == 99);
    CHECK(full.max == 100);
    for (int i = 0; i < 99; ++i) w.add(1000);  // only the last 1 is left of the old ones
    auto later = w.summary();
    CHECK(later.samples == 100);
    CHECK(later.p50 == 1000);
    CHECK(later.p99 == 1000);
    CHECK(later.max == 1000);
    w.add(1);  // ... and now that 1 is gone too, replaced by a new 1
    CHECK(w.summary().p50 == 1000);
    CHECK(w.summary().max == 1000);
}
