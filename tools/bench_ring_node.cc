// conclave-bench ring-node: the per-node client of `tools/bench ring`, the same patterns
// as the peers' cpgbench (../shared/peers/cpgbench.c) so figures sit side by side.
//
// Every node's instance joins one group and announces itself; once all N announcements
// were delivered (the barrier), senders multicast messages of --size bytes for --warmup
// + --secs seconds, each carrying its CLOCK_MONOTONIC send time, then one DONE; it ends
// once every client's DONE was delivered (so every node counts the same messages).
// Latency = send -> the sender's own delivery (namespaces share one kernel clock). Throughput = messages
// delivered on this node during the measured window / window length. With --pid the
// daemon's utime+stime is read from /proc at the window's edges. Prints one JSON object;
// --lat FILE writes the raw own-delivery latencies (ns, one per line). --safe sends with
// the safe guarantee (delivered once every member holds the message) instead of agreed.
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "conclave/client.h"
#include "wire/bytes.h"

namespace {

constexpr std::uint32_t kMagic = 0x636e6231;  // "cnb1"
constexpr std::uint8_t kReady = 1;
constexpr std::uint8_t kData = 2;
constexpr std::uint8_t kDone = 3;  // after a client's last message: once every client's
                                   // DONE is delivered, every message before it is too
constexpr std::size_t kHeader = 4 + 1 + 4 + 8 + 8;

std::uint64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

long long cpu_ticks(long pid) {
    if (pid <= 0) return -1;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(in)), {});
    auto close = s.rfind(')');
    if (close == std::string::npos) return -1;
    // Fields after the command: state is field 3; utime 14 and stime 15 (1-based).
    std::vector<std::string> f;
    std::size_t i = close + 2;
    while (i < s.size()) {
        auto sp = s.find(' ', i);
        f.push_back(s.substr(i, sp == std::string::npos ? std::string::npos : sp - i));
        if (sp == std::string::npos) break;
        i = sp + 1;
    }
    if (f.size() < 13) return -1;
    return std::atoll(f[11].c_str()) + std::atoll(f[12].c_str());
}

struct Args {
    std::string socket, group = "bench", lat_file;
    int nodes = 3, index = 1, window = 0;
    std::size_t size = 1024;
    double secs = 5, warmup = 1, drain = 10;  // drain: at most, if a DONE never comes
    bool all_send = false, i_send = false, safe = false;
    long pid = 0;
};

// The type of one of our messages (kReady, kData, kDone), or 0 for anything else.
std::uint8_t kind_of(const std::vector<std::uint8_t>& m) {
    return m.size() >= kHeader && conclave::wire::load_u32(m.data()) == kMagic ? m[4] : 0;
}

double pct(std::vector<std::uint64_t>& v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return static_cast<double>(v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))]);
}

}  // namespace

int ring_node_main(const std::vector<std::string_view>& argv) {
    Args a;
    for (std::size_t i = 0; i < argv.size(); ++i) {
        auto need = [&](const char* what) -> std::string {
            if (i + 1 >= argv.size()) {
                std::fprintf(stderr, "conclave-bench ring-node: %s needs a value\n", what);
                std::exit(2);
            }
            return std::string(argv[++i]);
        };
        std::string_view o = argv[i];
        if (o == "--socket") a.socket = need("--socket");
        else if (o == "--group") a.group = need("--group");
        else if (o == "--nodes") a.nodes = std::atoi(need("--nodes").c_str());
        else if (o == "--index") a.index = std::atoi(need("--index").c_str());
        else if (o == "--size") a.size = static_cast<std::size_t>(std::atol(need("--size").c_str()));
        else if (o == "--secs") a.secs = std::atof(need("--secs").c_str());
        else if (o == "--warmup") a.warmup = std::atof(need("--warmup").c_str());
        else if (o == "--senders") a.all_send = need("--senders") == "all";
        else if (o == "--window") a.window = std::atoi(need("--window").c_str());
        else if (o == "--safe") a.safe = true;
        else if (o == "--pid") a.pid = std::atol(need("--pid").c_str());
        else if (o == "--lat") a.lat_file = need("--lat");
        else {
            std::fprintf(stderr, "conclave-bench ring-node: unknown argument '%s'\n", std::string(o).c_str());
            return 2;
        }
    }
    if (a.socket.empty() || a.nodes < 1 || a.index < 1 || a.size < kHeader || a.size > (1u << 20) || a.secs <= 0) {
        std::fprintf(stderr, "conclave-bench ring-node: needs --socket, --nodes >= 1, --index >= 1, "
                             "--size %zu..1048576, --secs > 0\n", kHeader);
        return 2;
    }
    a.i_send = a.all_send || a.index == 1;

    conclave::GroupClient c;
    if (!c.join(a.socket, a.group)) {
        std::fprintf(stderr, "conclave-bench ring-node: %s\n", c.error().c_str());
        return 1;
    }
    std::vector<std::uint8_t> msg(a.size, 0x5a);
    auto stamp = [&](std::uint8_t type, std::uint64_t seq) {
        conclave::wire::store_u32(msg.data(), kMagic);
        msg[4] = type;
        conclave::wire::store_u32(msg.data() + 5, static_cast<std::uint32_t>(a.index));
        conclave::wire::store_u64(msg.data() + 9, seq);
        conclave::wire::store_u64(msg.data() + 17, now_ns());
    };

    // Barrier (clients join at different times, so a single announcement can be missed
    // by a client that joins later): every 50 ms each client multicasts READY carrying how
    // many clients it has heard; it passes once it sent READY(N) itself and heard READY(N)
    // from all N. Whoever sends READY(N) has heard everyone, so everyone had joined and
    // will see that message.
    std::set<std::uint32_t> heard, complete;
    bool sent_complete = false;
    conclave::GroupEvent ev;
    const std::uint64_t barrier_deadline = now_ns() + 60'000'000'000ull;
    std::uint64_t next_ready = 0;
    while (!(sent_complete && static_cast<int>(complete.size()) == a.nodes)) {
        if (now_ns() >= next_ready) {
            stamp(kReady, heard.size());
            sent_complete = static_cast<int>(heard.size()) == a.nodes;
            if (!c.send(msg.data(), kHeader, false)) return std::fprintf(stderr, "send: %s\n", c.error().c_str()), 1;
            next_ready = now_ns() + 50'000'000ull;
        }
        auto k = c.next(10, ev);
        if (k == conclave::GroupEvent::Kind::closed) return std::fprintf(stderr, "%s\n", c.error().c_str()), 1;
        if (k == conclave::GroupEvent::Kind::message && kind_of(ev.payload) == kReady) {
            std::uint32_t who = conclave::wire::load_u32(ev.payload.data() + 5);
            heard.insert(who);
            if (conclave::wire::load_u64(ev.payload.data() + 9) == static_cast<std::uint64_t>(a.nodes)) complete.insert(who);
        }
        if (now_ns() > barrier_deadline) {
            std::fprintf(stderr, "conclave-bench ring-node: barrier: heard %zu of %d clients after 60 s\n", heard.size(),
                         a.nodes);
            return 1;
        }
    }

    const std::uint64_t t0 = now_ns();
    const std::uint64_t win_start = t0 + static_cast<std::uint64_t>(a.warmup * 1e9);
    const std::uint64_t win_end = win_start + static_cast<std::uint64_t>(a.secs * 1e9);
    const std::uint64_t stop = win_end + static_cast<std::uint64_t>(a.drain * 1e9);
    long long cpu0 = -1, cpu1 = -1;
    bool in_window = false;
    std::uint64_t seq = 0, outstanding = 0, delivered_win = 0, bytes_win = 0, delivered_total = 0;
    std::vector<std::uint64_t> lat_own;
    std::uint64_t sent_win = 0;
    bool sent_done = false;
    std::set<std::uint32_t> done_from;

    for (;;) {
        std::uint64_t t = now_ns();
        if (!in_window && t >= win_start) {
            in_window = true;
            cpu0 = cpu_ticks(a.pid);
        }
        if (in_window && t >= win_end && cpu1 < 0) cpu1 = cpu_ticks(a.pid);
        if (t >= stop || static_cast<int>(done_from.size()) == a.nodes) break;
        if (!sent_done && t >= win_end) {
            stamp(kDone, seq);
            if (!c.send(msg.data(), kHeader, a.safe)) return std::fprintf(stderr, "send: %s\n", c.error().c_str()), 1;
            sent_done = true;
        }
        bool sending = a.i_send && t < win_end && (a.window == 0 || outstanding < static_cast<std::uint64_t>(a.window)) &&
                       c.unsent() < conclave::GroupClient::kMaxUnsent / 2;
        // Up to 16 messages between two looks at the deliveries, as cpgbench does.
        for (int burst = 0; sending && burst < 16; ++burst) {
            stamp(kData, ++seq);
            if (!c.send(msg.data(), msg.size(), a.safe)) return std::fprintf(stderr, "send: %s\n", c.error().c_str()), 1;
            ++outstanding;
            if (t >= win_start && t < win_end) ++sent_win;
            sending = (a.window == 0 || outstanding < static_cast<std::uint64_t>(a.window)) &&
                      c.unsent() < conclave::GroupClient::kMaxUnsent / 2;
        }
        // Back-pressure (the daemon is not taking our bytes) waits like cpgbench's flow
        // control does, instead of spinning on a zero timeout: that spin took most of a
        // core from the daemons on a 2-core machine.
        auto k = c.next(sending ? 0 : (a.i_send && t < win_end && a.window == 0) ? 1 : 20, ev);
        while (k == conclave::GroupEvent::Kind::message) {
            std::uint64_t td = now_ns();
            ++delivered_total;
            const std::uint8_t kind = kind_of(ev.payload);
            if (kind == kDone) {
                done_from.insert(conclave::wire::load_u32(ev.payload.data() + 5));
                if (static_cast<int>(done_from.size()) == a.nodes) break;  // nothing follows
            }
            if (td >= win_start && td < win_end) {
                ++delivered_win;
                bytes_win += ev.payload.size();
            }
            if (kind == kData && conclave::wire::load_u32(ev.payload.data() + 5) == static_cast<std::uint32_t>(a.index)) {
                if (outstanding) --outstanding;
                std::uint64_t sent_at = conclave::wire::load_u64(ev.payload.data() + 17);
                if (sent_at >= win_start && sent_at < win_end) lat_own.push_back(td - sent_at);
            }
            k = c.next(0, ev);
        }
        if (k == conclave::GroupEvent::Kind::closed) return std::fprintf(stderr, "%s\n", c.error().c_str()), 1;
    }
    if (!a.lat_file.empty()) {
        std::ofstream out(a.lat_file);
        for (auto l : lat_own) out << l << '\n';
    }
    std::vector<std::uint64_t> l = lat_own;
    double p50 = pct(l, 0.50) / 1000.0, p99 = pct(l, 0.99) / 1000.0;
    std::printf(
        "{\"index\": %d, \"size\": %zu, \"secs\": %.3f, \"delivered_window\": %llu, \"msgs_per_s\": %.1f, "
        "\"mb_per_s\": %.3f, \"sent_window\": %llu, \"own_latencies\": %zu, \"lat_p50_us\": %.1f, \"lat_p99_us\": %.1f, "
        "\"delivered_total\": %llu, \"daemon_cpu_ticks\": %lld, \"ticks_per_s\": %ld}\n",
        a.index, a.size, a.secs, static_cast<unsigned long long>(delivered_win), static_cast<double>(delivered_win) / a.secs,
        static_cast<double>(bytes_win) / a.secs / 1e6, static_cast<unsigned long long>(sent_win), lat_own.size(), p50, p99,
        static_cast<unsigned long long>(delivered_total), (cpu0 >= 0 && cpu1 >= 0) ? cpu1 - cpu0 : -1L,
        sysconf(_SC_CLK_TCK));
    return 0;
}
