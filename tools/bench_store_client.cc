// conclave-bench store-put: the client of `tools/bench store`. N connections to one node's
// control socket, each with one put outstanding at a time (the request conclavectl put
// sends: JSON, the value in base64), keys random in K, for C puts in all or S seconds.
// One thread polls every connection, so the client costs the daemon's figures little
// (the Python client it replaces took more time per put than the daemon did).
// Prints one JSON object: puts, errors, the first error, elapsed seconds, and latency
// percentiles in microseconds.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/control.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
    int fd = -1;
    std::string out;
    std::size_t sent = 0;
    std::string in;
    Clock::time_point started;
    bool busy = false;
};

int connect_to(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) {
        ::close(fd);
        return -1;
    }
    std::memcpy(a.sun_path, path.data(), path.size());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

double pct(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int store_put_main(const std::vector<std::string_view>& argv) {
    std::string socket, prefix = "/bench/k";
    int clients = 1;
    long count = -1;
    double secs = 0;
    std::size_t size = 1024;
    int keys = 10000;
    unsigned seed = 1;
    for (std::size_t i = 0; i < argv.size(); ++i) {
        auto need = [&](const char* what) -> std::string {
            if (i + 1 >= argv.size()) {
                std::fprintf(stderr, "conclave-bench store-put: %s needs a value\n", what);
                std::exit(2);
            }
            return std::string(argv[++i]);
        };
        std::string_view o = argv[i];
        if (o == "--socket") socket = need("--socket");
        else if (o == "--clients") clients = std::atoi(need("--clients").c_str());
        else if (o == "--count") count = std::atol(need("--count").c_str());
        else if (o == "--secs") secs = std::atof(need("--secs").c_str());
        else if (o == "--size") size = static_cast<std::size_t>(std::atol(need("--size").c_str()));
        else if (o == "--keys") keys = std::atoi(need("--keys").c_str());
        else if (o == "--prefix") prefix = need("--prefix");
        else if (o == "--seed") seed = static_cast<unsigned>(std::atol(need("--seed").c_str()));
        else {
            std::fprintf(stderr, "conclave-bench store-put: unknown argument '%s'\n", std::string(o).c_str());
            return 2;
        }
    }
    if (socket.empty() || clients < 1 || clients > static_cast<int>(conclave::runtime::kMaxClients) || keys < 1 ||
        (count < 0) == (secs <= 0) || size > (1u << 20)) {
        std::fprintf(stderr, "conclave-bench store-put: needs --socket, --clients 1..%zu, --keys >= 1, "
                             "--size <= 1048576 and one of --count N, --secs S\n",
                     conclave::runtime::kMaxClients);
        return 2;
    }

    std::mt19937 rng(seed);
    std::string value(size, '\0');
    for (char& c : value) c = static_cast<char>(rng());
    const std::string data = conclave::runtime::base64_encode(value);
    std::uniform_int_distribution<int> key(0, keys - 1);

    std::vector<Conn> conns(static_cast<std::size_t>(clients));
    for (Conn& c : conns) {
        c.fd = connect_to(socket);
        if (c.fd < 0) {
            std::fprintf(stderr, "conclave-bench store-put: cannot connect to %s: %s\n", socket.c_str(),
                         std::strerror(errno));
            return 1;
        }
    }
    std::vector<double> lat;
    long issued = 0, errors = 0;
    std::string first_error;
    const auto start = Clock::now();
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
    auto more = [&] { return count >= 0 ? issued < count : Clock::now() < deadline; };
    auto issue = [&](Conn& c) {
        char k[32];
        std::snprintf(k, sizeof k, "%05d", key(rng));
        c.out = R"({"cmd":"put","path":")" + prefix + k + R"(","data":")" + data + "\"}\n";
        c.sent = 0;
        c.busy = true;
        c.started = Clock::now();
        ++issued;
    };
    for (Conn& c : conns)
        if (more()) issue(c);

    std::vector<pollfd> fds(conns.size());
    char buf[65536];
    for (;;) {
        bool any = false;
        for (std::size_t i = 0; i < conns.size(); ++i) {
            fds[i].fd = conns[i].busy ? conns[i].fd : -1;
            fds[i].events = static_cast<short>(conns[i].sent < conns[i].out.size() ? POLLOUT : POLLIN);
            fds[i].revents = 0;
            any = any || conns[i].busy;
        }
        if (!any) break;
        if (::poll(fds.data(), fds.size(), 30000) <= 0) {
            std::fprintf(stderr, "conclave-bench store-put: no reply within 30 s\n");
            return 1;
        }
        for (std::size_t i = 0; i < conns.size(); ++i) {
            Conn& c = conns[i];
            if (!fds[i].revents) continue;
            if (c.sent < c.out.size()) {
                const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
                if (n < 0 && errno != EAGAIN && errno != EINTR) {
                    std::fprintf(stderr, "conclave-bench store-put: send: %s\n", std::strerror(errno));
                    return 1;
                }
                if (n > 0) c.sent += static_cast<std::size_t>(n);
                continue;
            }
            const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
            if (n <= 0) {
                std::fprintf(stderr, "conclave-bench store-put: the daemon closed the connection\n");
                return 1;
            }
            c.in.append(buf, static_cast<std::size_t>(n));
            const auto nl = c.in.find('\n');
            if (nl == std::string::npos) continue;
            const double us = std::chrono::duration<double, std::micro>(Clock::now() - c.started).count();
            const auto reply = nlohmann::json::parse(c.in.substr(0, nl), nullptr, false);
            c.in.erase(0, nl + 1);
            c.busy = false;
            if (reply.is_object() && reply.value("ok", false)) {
                lat.push_back(us);
            } else {
                ++errors;
                if (first_error.empty()) first_error = reply.is_object() ? reply.value("error", "?") : "bad reply";
            }
            if (more()) issue(c);
        }
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    for (Conn& c : conns) ::close(c.fd);
    std::sort(lat.begin(), lat.end());
    nlohmann::json out{{"puts", lat.size()},      {"errors", errors},         {"first_error", first_error},
                       {"elapsed", elapsed},      {"p50_us", pct(lat, 0.5)},  {"p90_us", pct(lat, 0.9)},
                       {"p99_us", pct(lat, 0.99)}};
    std::printf("%s\n", out.dump().c_str());
    return 0;
}
