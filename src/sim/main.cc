// conclave-sim: runs the ring's pure core on a simulated network, one run per seed, and
// checks the safety and liveness properties over each run's trace (see man conclave-sim).
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>

#include "sim/options.h"
#include "sim/simulation.h"

using namespace conclave::sim;

int main(int argc, char** argv) {
    ParseResult p = parse_args(argc, argv);
    if (p.help) {
        std::fputs(usage().c_str(), stdout);
        return 0;
    }
    if (!p.error.empty()) {
        std::fprintf(stderr, "conclave-sim: %s\n", p.error.c_str());
        return 2;
    }
    const SimOptions& o = p.options;
    std::ofstream trace_out;
    if (!o.trace_file.empty()) {
        trace_out.open(o.trace_file, std::ios::binary | std::ios::trunc);
        if (!trace_out) {
            std::fprintf(stderr, "conclave-sim: cannot write trace file '%s'\n", o.trace_file.c_str());
            return 2;
        }
    }

    const std::clock_t cpu_start = std::clock();
    std::uint64_t seeds = 0, violations = 0, delivered = 0, messages = 0;
    std::vector<std::uint64_t> failovers;
    for (std::uint64_t seed = o.seed_first;; ++seed) {
        SeedResult r = run_seed(o, seed);
        ++seeds;
        failovers.insert(failovers.end(), r.failovers.begin(), r.failovers.end());
        delivered += r.delivered;
        messages += r.submitted;
        if (trace_out) trace_out << r.trace.render();
        if (r.violation) {
            ++violations;
            const Violation& v = *r.violation;
            std::printf("seed %" PRIu64 ": VIOLATION of '%s' (nodes %" PRIu32 ", node n%" PRIu32 ", event #%zu): %s\n",
                        seed, v.property.c_str(), r.nodes, v.node, v.index, v.detail.c_str());
            std::printf("  trace excerpt:\n%s", excerpt(r).c_str());
            std::printf("  replay: %s\n", replay_command(o, seed, r.nodes).c_str());
        } else if (o.verbose) {
            std::printf("seed %" PRIu64 ": ok, nodes %" PRIu32 ", messages %" PRIu64 ", delivered %" PRIu64
                        ", virtual time %" PRIu64 " us, try-again %" PRIu64 ", holds %" PRIu64 ", lingers %" PRIu64
                        ", hold-cancels %" PRIu64 ", token rexmits %" PRIu64 ", frame rexmits %" PRIu64
                        ", gathers %" PRIu64 ", rings %" PRIu64 "\n",
                        seed, r.nodes, r.submitted, r.delivered, r.end_time_us, r.try_again, r.tokens_held,
                        r.lingers, r.hold_cancels, r.token_retransmits, r.retransmits, r.gathers, r.rings_installed);
        }
        std::fflush(stdout);
        if (o.soak_minutes) {
            const double used = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
            if (used >= 60.0 * o.soak_minutes) break;
        } else if (seed == o.seed_last) {
            break;
        }
    }
    if (trace_out) {
        trace_out.close();
        if (!trace_out) {
            std::fprintf(stderr, "conclave-sim: writing trace file '%s' failed\n", o.trace_file.c_str());
            return 2;
        }
    }
    const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    std::printf("speed: %.0f simulated messages per CPU second (%" PRIu64 " messages, %.2f CPU s)\n",
                cpu > 0 ? static_cast<double>(messages) / cpu : 0.0, messages, cpu);
    if (o.fault_crash) {
        std::sort(failovers.begin(), failovers.end());
        if (failovers.empty()) {
            std::printf("failover: 0 crashes measured\n");
        } else {
            std::printf("failover: %zu crashes, median %.0f ms, max %.0f ms (crash to survivors' regular configuration)\n",
                        failovers.size(), static_cast<double>(failovers[failovers.size() / 2]) / 1000.0,
                        static_cast<double>(failovers.back()) / 1000.0);
        }
    }
    std::printf("seeds: %" PRIu64 ", violations: %" PRIu64 ", delivered: %" PRIu64 "\n", seeds, violations,
                delivered);
    return violations == 0 ? 0 : 1;
}
