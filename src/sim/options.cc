#include "sim/options.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace conclave::sim {
namespace {

bool parse_u64(std::string_view s, std::uint64_t& out) {
    if (s.empty() || s.size() > 20) return false;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    out = v;
    return true;
}

bool parse_range(std::string_view s, std::uint64_t& lo, std::uint64_t& hi) {
    const auto dash = s.find('-');
    if (dash == std::string_view::npos) {
        if (!parse_u64(s, lo)) return false;
        hi = lo;
        return true;
    }
    return parse_u64(s.substr(0, dash), lo) && parse_u64(s.substr(dash + 1), hi) && lo <= hi;
}

bool parse_probability(const std::string& s, double& out) {
    if (s.empty()) return false;
    errno = 0;
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (errno != 0 || end != s.c_str() + s.size() || !(v >= 0.0 && v <= 1.0)) return false;
    out = v;
    return true;
}

}  // namespace

const std::vector<std::string>& planted_bug_names() {
    static const std::vector<std::string> names = {
        "skip-retransmit",   "deliver-out-of-order", "deliver-twice",       "deliver-safe-early",
        "skip-transitional", "transitional-all-new", "drop-recovered",      "old-after-regular",
        "drop-queue-on-change", "no-merge", "receipt-overclaim",
        // store workload
        "apply-inquorate-transitional", "source-highest-version", "no-yellow", "lms-settled-transitional"};
    return names;
}

std::string usage() {
    return "usage: conclave-sim [options]\n"
           "Runs N conclave ring members in one thread on a simulated network, one run per seed,\n"
           "and checks total order, no duplication, no creation, per-sender FIFO, safe delivery,\n"
           "the watermark bound, the EVS configuration properties, self delivery and liveness\n"
           "over the recorded trace.\n"
           "\n"
           "  --nodes N|A-B        ring size, or a range drawn per seed (2..64; default 3)\n"
           "  --seeds A-B          seeds to run, inclusive (a single seed S is S-S; default 1)\n"
           "  --faults LIST        comma list of loss,dup,reorder,delay,partition,asym,crash,pause,\n"
           "                       join, power (store workload: every node loses power at once),\n"
           "                       stall (store workload: a node stops for 50..1500 ms right\n"
           "                       after it decided to apply a transition; not in all);\n"
           "                       all; or none (default none)\n"
           "  --pause-ms MS        every pause lasts MS, 1..60000 (default: random 50..1500)\n"
           "  --soak MINUTES       run random seeds from --seeds' first until MINUTES of CPU time\n"
           "  --loss P             packet loss probability per link, 0..1 (default 0.1; implies loss)\n"
           "  --dup P              duplication probability when dup is on (default 0.05)\n"
           "  --reorder P          hold-back probability when reorder is on (default 0.1)\n"
           "  --workload W         messages (default): application messages, ordering and EVS\n"
           "                       checks; store: the replicated state (LMDB in temp dirs, fsync\n"
           "                       off) with random file operations and some limit,\n"
           "                       ring setting and quorum option changes, checked for lost\n"
           "                       acknowledged writes, forks, one quorate configuration\n"
           "                       at a time and identical replicas (and metadata) after\n"
           "                       the heal\n"
           "  --msgs M             messages (store: client requests) per seed, 1..100000 (default 100)\n"
           "  --max-size BYTES     largest workload message, 1..1048576 (default 262144)\n"
           "  --mtu BYTES          path MTU of the simulated network, 576..65535 (default 1500)\n"
           "  --trace FILE         write the trace (text, one event per line) of every seed to FILE\n"
           "  --plant-bug NAME     test only: skip-retransmit, deliver-out-of-order, deliver-twice,\n"
           "                       deliver-safe-early, skip-transitional, transitional-all-new,\n"
           "                       drop-recovered, old-after-regular, drop-queue-on-change,\n"
           "                       no-merge, receipt-overclaim; with --workload store:\n"
           "                       apply-inquorate-transitional, source-highest-version,\n"
           "                       no-yellow, lms-settled-transitional (the checkers must\n"
           "                       catch it)\n"
           "  --verbose            one line per seed\n"
           "  --help               this text\n"
           "\n"
           "Exit status: 0 all seeds passed; 1 a property was violated; 2 bad arguments.\n"
           "With crash faults a line 'failover: ...' gives the time from a crash to the\n"
           "survivors' regular configuration. The last line is\n"
           "'seeds: K, violations: V, delivered: D'.\n";
}

ParseResult parse_args(int argc, const char* const* argv) {
    ParseResult r;
    SimOptions& o = r.options;
    bool loss_given = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&](std::string& out) {
            if (i + 1 >= argc) {
                r.error = "option " + arg + " needs a value";
                return false;
            }
            out = argv[++i];
            return true;
        };
        std::string v;
        std::uint64_t lo = 0, hi = 0;
        if (arg == "--help" || arg == "-h") {
            r.help = true;
            return r;
        } else if (arg == "--verbose" || arg == "-v") {
            o.verbose = true;
        } else if (arg == "--nodes") {
            if (!value(v)) return r;
            if (!parse_range(v, lo, hi) || lo < 2 || hi > 64) {
                r.error = "--nodes wants N or A-B with 2 <= A <= B <= 64, got '" + v + "'";
                return r;
            }
            o.nodes_min = static_cast<std::uint32_t>(lo);
            o.nodes_max = static_cast<std::uint32_t>(hi);
        } else if (arg == "--seeds") {
            if (!value(v)) return r;
            if (!parse_range(v, lo, hi)) {
                r.error = "--seeds wants A-B with A <= B (or a single seed), got '" + v + "'";
                return r;
            }
            o.seed_first = lo;
            o.seed_last = hi;
        } else if (arg == "--faults") {
            if (!value(v)) return r;
            o.fault_loss = o.fault_dup = o.fault_reorder = o.fault_delay = false;
            o.fault_partition = o.fault_asym = o.fault_crash = o.fault_pause = o.fault_join = false;
            o.fault_power = o.fault_stall = false;
            if (v == "none") continue;
            std::string_view rest = v;
            while (true) {
                const auto comma = rest.find(',');
                const std::string_view f = rest.substr(0, comma);
                if (f == "loss") o.fault_loss = true;
                else if (f == "dup") o.fault_dup = true;
                else if (f == "reorder") o.fault_reorder = true;
                else if (f == "delay") o.fault_delay = true;
                else if (f == "partition") o.fault_partition = true;
                else if (f == "asym") o.fault_asym = true;
                else if (f == "crash") o.fault_crash = true;
                else if (f == "pause") o.fault_pause = true;
                else if (f == "join") o.fault_join = true;
                else if (f == "power") o.fault_power = true;
                else if (f == "stall") o.fault_stall = true;
                else if (f == "all") {
                    o.fault_loss = o.fault_dup = o.fault_reorder = o.fault_delay = true;
                    o.fault_partition = o.fault_asym = o.fault_crash = o.fault_pause = o.fault_join = true;
                    o.fault_power = true;
                } else {
                    r.error = "--faults: unknown fault '" + std::string(f) +
                              "' (known: loss,dup,reorder,delay,partition,asym,crash,pause,join,power,stall,all)";
                    return r;
                }
                if (comma == std::string_view::npos) break;
                rest = rest.substr(comma + 1);
            }
        } else if (arg == "--loss" || arg == "--dup" || arg == "--reorder") {
            if (!value(v)) return r;
            double p = 0;
            if (!parse_probability(v, p)) {
                r.error = arg + " wants a probability between 0 and 1, got '" + v + "'";
                return r;
            }
            if (arg == "--loss") {
                o.loss = p;
                loss_given = true;
            } else if (arg == "--dup") {
                o.dup = p;
            } else {
                o.reorder = p;
            }
        } else if (arg == "--msgs" || arg == "--max-size" || arg == "--mtu") {
            if (!value(v)) return r;
            const std::uint64_t min = arg == "--mtu" ? 576 : 1;
            const std::uint64_t max = arg == "--msgs" ? 100000 : arg == "--mtu" ? 65535 : (1u << 20);
            if (!parse_u64(v, lo) || lo < min || lo > max) {
                r.error = arg + " wants an integer in " + std::to_string(min) + ".." + std::to_string(max) +
                          ", got '" + v + "'";
                return r;
            }
            (arg == "--msgs" ? o.msgs : arg == "--mtu" ? o.mtu : o.max_size) = static_cast<std::uint32_t>(lo);
        } else if (arg == "--pause-ms" || arg == "--soak") {
            if (!value(v)) return r;
            const std::uint64_t max = arg == "--soak" ? 100000 : 60000;
            if (!parse_u64(v, lo) || lo < 1 || lo > max) {
                r.error = arg + " wants an integer in 1.." + std::to_string(max) + ", got '" + v + "'";
                return r;
            }
            (arg == "--soak" ? o.soak_minutes : o.pause_ms) = static_cast<std::uint32_t>(lo);
        } else if (arg == "--trace") {
            if (!value(o.trace_file)) return r;
            if (o.trace_file.empty()) {
                r.error = "--trace wants a file name";
                return r;
            }
        } else if (arg == "--workload") {
            if (!value(v)) return r;
            if (v != "messages" && v != "store") {
                r.error = "--workload wants 'messages' or 'store', got '" + v + "'";
                return r;
            }
            o.workload = v;
        } else if (arg == "--plant-bug") {
            if (!value(v)) return r;
            bool known = false;
            for (const auto& n : planted_bug_names()) known = known || n == v;
            if (!known) {
                std::string known;
                for (const auto& n : planted_bug_names()) known += (known.empty() ? "" : ", ") + n;
                r.error = "--plant-bug: unknown bug '" + v + "' (known: " + known + ")";
                return r;
            }
            o.plant_bug = v;
        } else {
            r.error = "unknown argument '" + arg + "' (see --help)";
            return r;
        }
    }
    if (loss_given) o.fault_loss = true;
    return r;
}

std::string faults_string(const SimOptions& o) {
    std::string s;
    auto add = [&](bool on, const char* n) {
        if (!on) return;
        if (!s.empty()) s += ',';
        s += n;
    };
    add(o.fault_loss, "loss");
    add(o.fault_dup, "dup");
    add(o.fault_reorder, "reorder");
    add(o.fault_delay, "delay");
    add(o.fault_partition, "partition");
    add(o.fault_asym, "asym");
    add(o.fault_crash, "crash");
    add(o.fault_pause, "pause");
    add(o.fault_join, "join");
    add(o.fault_power, "power");
    add(o.fault_stall, "stall");
    return s.empty() ? "none" : s;
}

std::string replay_command(const SimOptions& o, std::uint64_t seed, std::uint32_t nodes) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "conclave-sim --nodes %u --seeds %llu-%llu --faults %s", nodes,
                  static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed),
                  faults_string(o).c_str());
    std::string s = buf;
    auto prob = [](double p) {
        char b[32];
        std::snprintf(b, sizeof b, "%.17g", p);
        // Prefer the short form when it reads back as the same double.
        char s6[32];
        std::snprintf(s6, sizeof s6, "%g", p);
        return std::strtod(s6, nullptr) == p ? std::string(s6) : std::string(b);
    };
    if (o.fault_loss) s += " --loss " + prob(o.loss);
    if (o.fault_dup) s += " --dup " + prob(o.dup);
    if (o.fault_reorder) s += " --reorder " + prob(o.reorder);
    if (o.workload != "messages") s += " --workload " + o.workload;
    s += " --msgs " + std::to_string(o.msgs);
    if (o.max_size != 256 * 1024) s += " --max-size " + std::to_string(o.max_size);
    if (o.mtu != 1500) s += " --mtu " + std::to_string(o.mtu);
    if (o.pause_ms != 0) s += " --pause-ms " + std::to_string(o.pause_ms);
    if (!o.plant_bug.empty()) s += " --plant-bug " + o.plant_bug;
    s += " --trace /tmp/conclave-sim-" + std::to_string(seed) + ".trace";
    return s;
}

}  // namespace conclave::sim
