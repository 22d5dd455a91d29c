#include <doctest/doctest.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"
#include "conclave/client.h"
#include "runtime/control.h"
#include "runtime/request_fields.h"
#include "why.h"

using namespace conclave;
using nlohmann::json;

namespace {

using conclave::test::TempDir;

// A server on its own thread, as in the daemon (the protocol thread runs the io_context).
struct Served {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
    runtime::ControlServer server;
    std::thread thread;
    explicit Served(const std::string& path)
        : server(io, path, [this](const json& req, const std::shared_ptr<runtime::ControlSession>& s) -> json {
              const auto cmd = req.value("cmd", "");
              if (cmd == "boom") throw std::runtime_error("handler bug");
              if (cmd == "later") {
                  // Answered from another thread's result, posted back (as the daemon's reader).
                  auto ms = req.value("ms", 0);
                  std::thread([this, s, req, ms] {
                      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
                      asio::post(io, [this, s, req] {
                          s->reply(json{{"ok", true}, {"late", req}});
                          ++answered;
                      });
                  }).detach();
                  ++deferred;
                  return runtime::deferred_reply();
              }
              if (cmd == "at-once") {
                  s->reply(json{{"ok", true}, {"early", true}});  // inside the handler
                  return runtime::deferred_reply();
              }
              return json{{"ok", true}, {"echo", req}};
          }) {}
    std::atomic<int> deferred{0};
    std::atomic<int> answered{0};  // deferred replies handed to their session (gone or not)
    Status start() {
        auto st = server.open();
        if (st) thread = std::thread([this] { io.run(); });
        return st;
    }
    ~Served() {
        asio::post(io, [this] { server.close(); });
        guard.reset();
        io.stop();
        if (thread.joinable()) thread.join();
    }
};

// Sends raw bytes and returns the first reply line.
std::string raw_exchange(const std::string& path, const std::string& bytes) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path.c_str());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    std::size_t off = 0;
    while (off < bytes.size()) {
        ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;  // the server may close early on an oversize request
        off += static_cast<std::size_t>(n);
    }
    std::string in;
    char buf[4096];
    while (in.find('\n') == std::string::npos) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return in;
}

// A connected client socket (blocking).
int connect_to(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path.c_str());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    return fd;
}

// Everything up to the first newline, or what came before the deadline or the close.
std::string read_line(int fd, std::chrono::milliseconds within) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    std::string in;
    char buf[4096];
    while (in.find('\n') == std::string::npos) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
    }
    return in;
}

// The CPU time a thread has used so far.
std::chrono::nanoseconds cpu_time(std::thread& t) {
    clockid_t clock{};
    REQUIRE(::pthread_getcpuclockid(t.native_handle(), &clock) == 0);
    timespec ts{};
    REQUIRE(::clock_gettime(clock, &ts) == 0);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace

TEST_CASE("control socket: request and reply, bad requests answered, not fatal") {
    TempDir d;
    std::string path = d.path + "/run/control.sock";
    Served s(path);
    REQUIRE(s.start().ok());

    auto r = runtime::control_request(path, json{{"cmd", "status"}, {"n", 1}});
    REQUIRE_MESSAGE(r.ok(), test::why(r));
    CHECK(r.value()["ok"] == true);
    CHECK(r.value()["echo"]["n"] == 1);

    CHECK(raw_exchange(path, "not json\n").find("not valid JSON") != std::string::npos);
    CHECK(raw_exchange(path, "[1,2]\n").find("not a JSON object") != std::string::npos);
    CHECK(raw_exchange(path, std::string(runtime::kMaxRequest + 10, 'x')).find("longer than 4 MiB") !=
          std::string::npos);
    auto boom = runtime::control_request(path, json{{"cmd", "boom"}});
    REQUIRE(boom.ok());
    CHECK(boom.value()["ok"] == false);
    CHECK(boom.value()["error"].get<std::string>().find("handler bug") != std::string::npos);

    // Still serving after all that.
    CHECK(runtime::control_request(path, json{{"cmd", "again"}}).ok());

    // Two requests on one connection (pipelined) both get answers.
    auto two = raw_exchange(path, "{\"a\":1}\n{\"b\":2}\n");
    CHECK(two.find("\"a\":1") != std::string::npos);

    SUBCASE("a second daemon on the same socket is refused") {
        asio::io_context io2;
        runtime::ControlServer second(io2, path, [](const json&, const std::shared_ptr<runtime::ControlSession>&) { return json{}; });
        auto st = second.open();
        REQUIRE_FALSE(st.ok());
        CHECK(st.error().find("another daemon answers") != std::string::npos);
    }
}

TEST_CASE("control socket: a request that is not valid JSON is refused with the parser's reason") {
    TempDir d;
    std::string path = d.path + "/control.sock";
    Served s(path);
    REQUIRE(s.start().ok());
    // A lone surrogate: valid JSON syntax, but no character; the reason, not "not an object".
    auto surrogate = raw_exchange(path, "{\"cmd\":\"x\",\"p\":\"\\ud800\"}\n");
    CHECK_MESSAGE(surrogate.find("not valid JSON") != std::string::npos, surrogate);
    CHECK_MESSAGE(surrogate.find("surrogate") != std::string::npos, surrogate);
    CHECK_MESSAGE(surrogate.find("last read") == std::string::npos, surrogate);  // short: not the text read
    CHECK(surrogate.find("json.exception") == std::string::npos);

    // Anything after a NUL byte would be ignored by the parser: refused, not carried out.
    using namespace std::string_literals;
    for (const auto& line : {"{\"cmd\":\"put\"}\0GARBAGE\n"s, "{\"cmd\":\"put\"}\0\n"s, "{\"cmd\":\"p\0ut\"}\n"s}) {
        auto reply = raw_exchange(path, line);
        CHECK_MESSAGE(reply.find("not valid JSON (a NUL byte at offset ") != std::string::npos, reply);
        CHECK_MESSAGE(reply.find("echo") == std::string::npos, reply);
    }
    CHECK(runtime::control_request(path, json{{"cmd", "still"}}).ok());
}

TEST_CASE("control socket: a client over the limit is answered why, and one can connect again once one leaves") {
    TempDir d;
    std::string path = d.path + "/control.sock";
    Served s(path);
    REQUIRE(s.start().ok());
    std::vector<int> clients;
    for (std::size_t i = 0; i < runtime::kMaxClients; ++i) {
        int fd = connect_to(path);
        clients.push_back(fd);
        // Answered: the server holds it (counted) before the next one comes.
        const std::string req = "{\"n\":" + std::to_string(i) + "}\n";
        REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
        REQUIRE(read_line(fd, std::chrono::seconds(5)).find("\"ok\":true") != std::string::npos);
    }
    auto over = runtime::control_request(path, json{{"cmd", "status"}});
    REQUIRE_MESSAGE(over.ok(), test::why(over));
    CHECK(over.value()["ok"] == false);
    CHECK_MESSAGE(over.value().value("error", "").find("serves at most 64 clients at once (64 connected)") !=
                      std::string::npos,
                  over.value().dump());
    // Turned away without reading: the line is there even for one that only connected.
    int idle = connect_to(path);
    CHECK(read_line(idle, std::chrono::seconds(5)).find("at most 64 clients") != std::string::npos);
    ::close(idle);

    ::close(clients.back());
    clients.pop_back();
    bool served = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!served && std::chrono::steady_clock::now() < deadline) {
        auto r = runtime::control_request(path, json{{"cmd", "again"}});
        served = r.ok() && r.value()["ok"] == true;
        if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(served);
    for (int fd : clients) ::close(fd);
}

TEST_CASE("control socket: a stale socket file is replaced, a dead daemon is reported") {
    TempDir d;
    std::string path = d.path + "/control.sock";
    auto none = runtime::control_request(path, json{{"cmd", "status"}});
    REQUIRE_FALSE(none.ok());
    CHECK(none.error().find("conclaved is not running") != std::string::npos);

    {  // leave a socket file nobody listens on
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strcpy(sa.sun_path, path.c_str());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        ::close(fd);
    }
    Served s(path);
    REQUIRE(s.start().ok());
    CHECK(runtime::control_request(path, json{{"cmd", "x"}}).ok());
}

TEST_CASE("control socket: only root may talk to it") {
    if (::geteuid() != 0) return;  // needs root to become another user
    TempDir d;
    std::string path = d.path + "/control.sock";
    Served s(path);
    REQUIRE(s.start().ok());
    ::chmod(d.path.c_str(), 0755);
    ::chmod(path.c_str(), 0666);  // even a permissive file mode lets no one else in
    pid_t pid = ::fork();
    if (pid == 0) {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) _exit(3);
        auto r = runtime::control_request(path, json{{"cmd", "status"}});
        bool refused = r.ok() && r.value()["ok"] == false &&
                       r.value()["error"].get<std::string>().find("root only") != std::string::npos;
        _exit(refused ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(s.server.refused_peers() == 1);
}

TEST_CASE("process-group connection: upgrade after the join reply, frames both ways, close noticed") {
    TempDir d;
    std::string path = d.path + "/control.sock";
    asio::io_context io;
    auto guard = asio::make_work_guard(io);
    std::atomic<int> closed{0};
    std::atomic<int> sends{0};
    std::uint64_t number = 0;
    runtime::ControlServer server(io, path, [&](const json& req, const std::shared_ptr<runtime::ControlSession>& s) -> json {
        if (req.value("cmd", "") != "group.join") return json{{"ok", false}, {"error", "no"}};
        std::weak_ptr<runtime::ControlSession> weak = s;
        s->upgrade(
            [&, weak](const wire::group::Send& send) {
                ++sends;
                wire::group::Deliver del{9, send.guarantee, ++number, send.payload};
                wire::Bytes frame;
                wire::group::encode_deliver(del, frame);
                if (auto live = weak.lock()) live->push(frame);
            },
            [&] { ++closed; });
        wire::Bytes cfg;
        wire::group::encode_config({2, 1, 0x10, {1, 9}}, cfg);
        s->push(cfg);  // queued behind the JSON reply
        return json{{"ok", true}};
    });
    REQUIRE(server.open().ok());
    std::thread t([&] { io.run(); });

    {
        conclave::GroupClient c;
        REQUIRE_MESSAGE(c.join(path, "g1"), c.error());
        conclave::GroupEvent ev;
        REQUIRE(c.next(5000, ev) == conclave::GroupEvent::Kind::config);
        CHECK_FALSE(ev.transitional);
        CHECK(ev.members == std::vector<std::uint32_t>{1, 9});
        for (int i = 0; i < 100; ++i) {
            std::string m = "msg" + std::to_string(i);
            REQUIRE(c.send(m.data(), m.size(), i % 2 == 1));
        }
        for (int i = 0; i < 100; ++i) {
            REQUIRE(c.next(5000, ev) == conclave::GroupEvent::Kind::message);
            CHECK(ev.sender == 9);
            CHECK(ev.number == static_cast<std::uint64_t>(i + 1));
            CHECK(ev.safe == (i % 2 == 1));
            CHECK(std::string(ev.payload.begin(), ev.payload.end()) == "msg" + std::to_string(i));
        }
        conclave::GroupClient bad;
        CHECK_FALSE(bad.join(path, "no spaces allowed"));
        CHECK(bad.error().find("invalid group name") != std::string::npos);
    }
    // The client went away: the server notices (deadline, no sleep as synchronisation).
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (closed.load() == 0 && std::chrono::steady_clock::now() < end) std::this_thread::yield();
    CHECK(closed.load() == 1);
    CHECK(sends.load() == 100);

    SUBCASE("a malformed frame gets an error frame and the connection is closed") {
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strcpy(sa.sun_path, path.c_str());
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        std::string req = "{\"cmd\":\"group.join\",\"group\":\"g\"}\n";
        std::string junk("\x05\x00\x00\x00\x07xxxx", 9);  // frame type 7 does not exist
        std::string all = req + junk;
        REQUIRE(::send(fd, all.data(), all.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(all.size()));
        std::string in;
        char buf[4096];
        for (;;) {
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;  // the server closed
            in.append(buf, static_cast<std::size_t>(n));
        }
        ::close(fd);
        CHECK(in.find("malformed frame") != std::string::npos);
    }
    asio::post(io, [&] { server.close(); });
    guard.reset();
    t.join();
}

TEST_CASE("process-group connection: a client far behind with its deliveries is not read until it catches up") {
    TempDir d;
    std::string path = d.path + "/control.sock";
    asio::io_context io;
    auto guard = asio::make_work_guard(io);
    std::atomic<int> sends{0};
    std::uint64_t number = 0;
    const wire::Bytes big(512u << 10, 0x5a);  // every send brings a 512 KiB delivery
    runtime::ControlServer server(io, path, [&](const json&, const std::shared_ptr<runtime::ControlSession>& s) -> json {
        std::weak_ptr<runtime::ControlSession> weak = s;
        s->upgrade(
            [&, weak](const wire::group::Send&) {
                ++sends;
                wire::group::Deliver del{9, 0, ++number, big};
                wire::Bytes frame;
                wire::group::encode_deliver(del, frame);
                if (auto live = weak.lock()) CHECK(live->push(frame));
            },
            [] {});
        return json{{"ok", true}};
    });
    REQUIRE(server.open().ok());
    std::thread t([&] { io.run(); });
    {
        conclave::GroupClient c;
        REQUIRE_MESSAGE(c.join(path, "g1"), c.error());
        constexpr int kSends = 40;  // 20 MiB of deliveries, under the 64 MiB that disconnects
        for (int i = 0; i < kSends; ++i) REQUIRE(c.send("x", 1, false));
        REQUIRE(c.flush());
        // Without reading: the server stops taking sends once it holds kPauseBacklog for us
        // (the socket's own buffer takes a little more).
        const auto limit = static_cast<int>(runtime::ControlServer::kPauseBacklog / big.size());
        auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (sends.load() < limit && std::chrono::steady_clock::now() < end) std::this_thread::yield();
        REQUIRE(sends.load() >= limit);
        end = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
        while (sends.load() < kSends && std::chrono::steady_clock::now() < end) std::this_thread::yield();
        CHECK(sends.load() <= limit + 2);
        // Reading everything: the rest are taken in, each delivered once, in order.
        conclave::GroupEvent ev;
        for (int i = 0; i < kSends; ++i) {
            REQUIRE(c.next(5000, ev) == conclave::GroupEvent::Kind::message);
            CHECK(ev.number == static_cast<std::uint64_t>(i + 1));
            CHECK(ev.payload.size() == big.size());
        }
        CHECK(sends.load() == kSends);
    }
    asio::post(io, [&] { server.close(); });
    guard.reset();
    t.join();
}

TEST_CASE("control socket: deferred replies come in request order; a gone client is no crash") {
    TempDir d;
    std::string path = d.path + "/control.sock";
    Served s(path);
    REQUIRE(s.start().ok());

    auto late = runtime::control_request(path, json{{"cmd", "later"}, {"ms", 20}});
    REQUIRE_MESSAGE(late.ok(), test::why(late));
    CHECK(late.value()["late"]["ms"] == 20);
    auto early = runtime::control_request(path, json{{"cmd", "at-once"}});
    REQUIRE(early.ok());
    CHECK(early.value()["early"] == true);

    // Pipelined: a slow deferred request, then an immediate one: answers in request order.
    auto two = raw_exchange(path, "{\"cmd\":\"later\",\"ms\":50,\"n\":1}\n{\"cmd\":\"echo\",\"n\":2}\n");
    auto first = two.find('\n');
    REQUIRE(first != std::string::npos);
    CHECK(two.substr(0, first).find("\"late\"") != std::string::npos);

    // A client that leaves before its deferred answer: the answer is dropped.
    {
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strcpy(sa.sun_path, path.c_str());
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        std::string req = "{\"cmd\":\"later\",\"ms\":100}\n";
        REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
        ::close(fd);
    }
    // Once the answer for the gone client (the third deferred request) was handed to its
    // session, the server still serves.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((s.deferred.load() < 3 || s.answered.load() < s.deferred.load()) &&
           std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling interval
    REQUIRE(s.deferred.load() == 3);
    REQUIRE(s.answered.load() == 3);
    CHECK(runtime::control_request(path, json{{"cmd", "still"}}).ok());
}

TEST_CASE("control socket: out of descriptors, the server retries now and then instead of spinning") {
    TempDir d;
    std::string path = d.path + "/control.sock";
    Served s(path);
    REQUIRE(s.start().ok());
    rlimit saved{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
    // The client's socket is the lowest free descriptor, so every one below it is in use:
    // with the limit just above it, the server's accept() finds none free (EMFILE).
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(fd) + 1;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    struct Restore {
        rlimit limit;
        ~Restore() { ::setrlimit(RLIMIT_NOFILE, &limit); }
    } restore{saved};
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path.c_str());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);

    // A spinning server thread would use about all of the time (or its share of a busy
    // machine); one that waits between tries, next to none.
    const auto cpu_before = cpu_time(s.thread);
    const auto wall_before = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const auto cpu = cpu_time(s.thread) - cpu_before;
    const auto wall = std::chrono::steady_clock::now() - wall_before;
    // Descriptors to spare again before any check: UBSan's vptr check opens
    // /proc/self/maps on its first look at a type (doctest's INFO scope of a
    // *_MESSAGE), and without a free descriptor reports a false "invalid vptr".
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
    CHECK_MESSAGE(cpu < wall / 10, "the server thread used " << cpu.count() / 1000000 << " ms of CPU in "
                                                             << wall.count() / 1000000 << " ms");

    // The waiting client is taken in and answered.
    const std::string req = "{\"cmd\":\"after\"}\n";
    REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
    const auto reply = read_line(fd, std::chrono::seconds(5));
    ::close(fd);
    CHECK(reply.find("\"after\"") != std::string::npos);
}

TEST_CASE("request fields: the wrong type or range is an error naming the field, absent or null the default") {
    const json req = json::parse(R"({"votes":3,"neg":-3,"text":"7","real":2.5,"big":4294968740,"yes":true,
                                     "none":null,"obj":{"x":1},"list":[1,2],"bad_list":[1,"2"]})");
    auto votes = runtime::optional_uint(req, "votes", 1, 255);
    REQUIRE(votes.ok());
    CHECK(votes.value() == std::optional<std::uint64_t>(3));
    CHECK_FALSE(runtime::optional_uint(req, "absent", 1, 255).value().has_value());
    CHECK_FALSE(runtime::optional_uint(req, "none", 1, 255).value().has_value());
    auto error = [&](auto r) { return r.ok() ? std::string("ok") : r.error(); };
    CHECK(error(runtime::optional_uint(req, "neg", 1, 255)) == "neg must be an integer 1..255, not -3");
    CHECK(error(runtime::optional_uint(req, "text", 1, 255)) == "text must be an integer 1..255, not a string");
    CHECK(error(runtime::optional_uint(req, "real", 1, 255)) == "real must be an integer 1..255, not 2.5");
    CHECK(error(runtime::optional_uint(req, "yes", 1, 255)) == "yes must be an integer 1..255, not true");
    CHECK(error(runtime::optional_uint(req, "obj", 0, 07777, "permission bits")) ==
          "obj must be an integer 0..4095 (permission bits), not an object");
    CHECK(error(runtime::optional_uint(req, "big", 0, 07777)) == "big must be an integer 0..4095, not 4294968740");
    CHECK(error(runtime::required_uint(req, "absent", 1, 2)) == "the request needs \"absent\", an integer 1..2");
    CHECK(error(runtime::required_uint(req, "none", 1, 2)) == "the request needs \"none\", an integer 1..2");
    CHECK(runtime::required_uint(req, "big", 0, UINT64_MAX).value() == 4294968740u);

    CHECK(runtime::optional_bool(req, "yes", false).value() == true);
    CHECK(runtime::optional_bool(req, "absent", true).value() == true);
    CHECK(runtime::optional_bool(req, "none", false).value() == false);
    CHECK(error(runtime::optional_bool(req, "votes", false)) == "votes must be true or false, not 3");
    CHECK(error(runtime::optional_bool(req, "text", false)) == "text must be true or false, not a string");

    CHECK(runtime::required_string(req, "text").value() == "7");
    CHECK_FALSE(runtime::optional_string(req, "none").value().has_value());
    CHECK(error(runtime::required_string(req, "list")) == "list must be a string, not a list");
    CHECK(error(runtime::required_string(req, "absent")) == "the request needs \"absent\", a string");

    CHECK(runtime::optional_uint_list(req, "list", 1, 9).value() == std::vector<std::uint64_t>{1, 2});
    CHECK_FALSE(runtime::optional_uint_list(req, "none", 1, 9).value().has_value());
    CHECK(error(runtime::optional_uint_list(req, "bad_list", 1, 9)) ==
          "bad_list must be a list of integers 1..9, not one that holds a string");
    CHECK(error(runtime::optional_uint_list(req, "list", 2, 9)) ==
          "list must be a list of integers 2..9, not one that holds 1");
    CHECK(error(runtime::optional_uint_list(req, "votes", 1, 9)) == "votes must be a list of integers 1..9, not 3");
}

TEST_CASE("base64: round trip, canonical form only") {
    for (std::size_t n = 0; n < 70; ++n) {
        std::string in;
        for (std::size_t i = 0; i < n; ++i) in += static_cast<char>((i * 37 + n) & 0xff);
        auto enc = runtime::base64_encode(in);
        CHECK(enc.size() == (n + 2) / 3 * 4);
        std::string out;
        REQUIRE(runtime::base64_decode(enc, out));
        CHECK(out == in);
        std::vector<std::uint8_t> bytes{1, 2, 3};  // replaced, not appended to
        REQUIRE(runtime::base64_decode(enc, bytes));
        CHECK(std::string(bytes.begin(), bytes.end()) == in);
        CHECK_FALSE(runtime::base64_decode(enc + "=", bytes));
    }
    std::string out;
    CHECK(runtime::base64_encode("foobar") == "Zm9vYmFy");
    CHECK(runtime::base64_encode("fo") == "Zm8=");
    CHECK(runtime::base64_decode("Zm8=", out));
    CHECK(out == "fo");
    CHECK_FALSE(runtime::base64_decode("Zm8", out));     // length
    CHECK_FALSE(runtime::base64_decode("Zm9=", out));    // non-zero bits under the padding
    CHECK_FALSE(runtime::base64_decode("Z=8=", out));    // padding inside
    CHECK_FALSE(runtime::base64_decode("Zm8=Zm8=", out));
    CHECK_FALSE(runtime::base64_decode("Zm 8", out));
    CHECK_FALSE(runtime::base64_decode("====", out));
    CHECK_FALSE(runtime::base64_decode("A===", out));
    CHECK_FALSE(runtime::base64_decode("Zg==Zg==", out));
    CHECK_FALSE(runtime::base64_decode(std::string("Zm9v\0mFy", 8), out));
    CHECK(runtime::base64_decode("", out));
    CHECK(out.empty());
    // Every single-character change of a valid text either fails or decodes to what
    // encodes back to it (one text per byte string: the canonical form).
    const std::string valid = runtime::base64_encode("conclave!?");
    for (std::size_t i = 0; i < valid.size(); ++i)
        for (int c = 0; c < 256; ++c) {
            std::string t = valid;
            t[i] = static_cast<char>(c);
            if (runtime::base64_decode(t, out)) CHECK(runtime::base64_encode(out) == t);
        }
}

TEST_CASE("the fast request parser gives what nlohmann gives, or declines") {
    using nlohmann::json;
    auto same = [](std::string_view text) {
        json fast;
        REQUIRE_MESSAGE(conclave::runtime::parse_flat_object(text, fast), std::string(text));
        const json full = json::parse(text);
        CHECK_MESSAGE(fast == full, std::string(text));
        CHECK_MESSAGE(fast.dump() == full.dump(), std::string(text));
    };
    same(R"({"cmd":"put","path":"/a/b","data":"aGVsbG8="})");
    same(" {\t\"a\" : 1 ,\r\n\"b\":-5, \"c\":true,\"d\":false,\"e\":null,\"f\":\"\"} \n");
    same("{}");
    same(R"({"n":0,"m":-0,"big":9999999999999999999,"neg":-999999999999999999})");
    same(R"({"k":"x","k":"y"})");  // a repeated key: the last one
    for (std::string_view declined : std::vector<std::string_view>{"", "[]", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}", "{\"a\":1}x", "{\"a\":01}", "{\"a\":1.5}",
          "{\"a\":1e3}", "{\"a\":-}", "{\"a\":\"\\n\"}", "{\"a\":\"\xc3\xa9\"}", "{\"a\":\"\x01\"}",
          "{\"a\":[1]}", "{\"a\":{}}", "{\"a\":tru}", "{\"a\":nul}", "{\"a\":\"x}", "{a:1}",
          "{\"a\":18446744073709551615}", "{\"a\":-1000000000000000000}", std::string_view("{\"a\":\"\0\"}", 8)}) {
        json out;
        CHECK_FALSE_MESSAGE(conclave::runtime::parse_flat_object(declined, out), std::string(declined));
    }
}

TEST_CASE("valid_utf8: well-formed UTF-8 only") {
    for (std::string_view ok : {"", "plain", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xef\xbf\xbd",
                                "\xf4\x8f\xbf\xbf"})
        CHECK_MESSAGE(runtime::valid_utf8(ok), ok);
    for (std::string_view bad : {"\xff", "a\xfe", "\xc3", "\xe2\x82", "\xc0\xaf" /* overlong '/' */,
                                 "\xe0\x80\xaf", "\xed\xa0\x80" /* surrogate */, "\xf4\x90\x80\x80" /* > U+10FFFF */,
                                 "\x80", "\xf8\x88\x80\x80\x80"})
        CHECK_MESSAGE(!runtime::valid_utf8(bad), runtime::base64_encode(bad));
}
