#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "runtime/control.h"

using namespace conclave;
using nlohmann::json;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/conclave-ctl-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

// A server on its own thread, as in the daemon (the protocol thread runs the io_context).
struct Served {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
    runtime::ControlServer server;
    std::thread thread;
    explicit Served(const std::string& path)
        : server(io, path, [](const json& req) -> json {
              if (req.value("cmd", "") == "boom") throw std::runtime_error("handler bug");
              return json{{"ok", true}, {"echo", req}};
          }) {}
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

}  // namespace

TEST_CASE("control socket: request and reply, bad requests answered, not fatal") {
    TempDir d;
    std::string path = d.path + "/run/control.sock";
    Served s(path);
    REQUIRE(s.start().ok());

    auto r = runtime::control_request(path, json{{"cmd", "status"}, {"n", 1}});
    REQUIRE_MESSAGE(r.ok(), r.error());
    CHECK(r.value()["ok"] == true);
    CHECK(r.value()["echo"]["n"] == 1);

    CHECK(raw_exchange(path, "not json\n").find("not a JSON object") != std::string::npos);
    CHECK(raw_exchange(path, "[1,2]\n").find("not a JSON object") != std::string::npos);
    CHECK(raw_exchange(path, std::string(runtime::kMaxRequest + 10, 'x')).find("longer than 1 MiB") !=
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
        runtime::ControlServer second(io2, path, [](const json&) { return json{}; });
        auto st = second.open();
        REQUIRE_FALSE(st.ok());
        CHECK(st.error().find("another daemon answers") != std::string::npos);
    }
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
