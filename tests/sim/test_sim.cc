// The simulator's own tests: each planted bug is caught and reported as the expected
// property; a clean run passes; one seed replays to a byte-identical trace.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>

#include "sim/options.h"
#include "sim/simulation.h"

using namespace conclave::sim;

namespace {

SimOptions faulty(const std::string& bug = {}) {
    SimOptions o;
    o.nodes_min = 2;
    o.nodes_max = 7;
    o.fault_loss = o.fault_dup = o.fault_reorder = o.fault_delay = true;
    o.loss = 0.2;
    o.msgs = 60;
    o.plant_bug = bug;
    return o;
}

// Runs seeds until one violates; returns its property ("" if none did).
std::string first_violation(const SimOptions& o, std::uint64_t seeds) {
    for (std::uint64_t s = 1; s <= seeds; ++s) {
        SeedResult r = run_seed(o, s);
        if (r.violation) {
            MESSAGE("seed " << s << ": " << r.violation->property << ": " << r.violation->detail);
            CHECK_FALSE(excerpt(r).empty());
            return r.violation->property;
        }
    }
    return {};
}

}  // namespace

TEST_CASE("planted bug skip-retransmit is caught as a liveness violation") {
    CHECK(first_violation(faulty("skip-retransmit"), 20) == "liveness");
}

TEST_CASE("planted bug deliver-out-of-order is caught as a total order violation") {
    CHECK(first_violation(faulty("deliver-out-of-order"), 20) == "total order agreement");
}

TEST_CASE("planted bug deliver-twice is caught as a duplicate delivery") {
    CHECK(first_violation(faulty("deliver-twice"), 20) == "no duplicate delivery");
}

TEST_CASE("planted bug deliver-safe-early is caught as a safe delivery violation") {
    CHECK(first_violation(faulty("deliver-safe-early"), 20) == "safe delivery");
}

TEST_CASE("planted bug receipt-overclaim is caught as a safe delivery violation") {
    CHECK(first_violation(faulty("receipt-overclaim"), 20) == "safe delivery");
}

TEST_CASE("a 500 ms pause excludes nobody (default timers)") {
    SimOptions o;
    o.nodes_min = 2;
    o.nodes_max = 7;
    o.fault_pause = true;
    o.pause_ms = 500;
    o.msgs = 40;
    for (std::uint64_t s = 1; s <= 30; ++s) {
        SeedResult r = run_seed(o, s);
        CAPTURE(s);
        CHECK_FALSE(r.violation.has_value());
        std::size_t pauses = 0, regular = 0;
        for (const auto& e : r.trace.events) {
            pauses += e.kind == Ev::pause;
            regular += e.kind == Ev::config && e.mode == 1;
        }
        CHECK(pauses >= 1);
        CHECK(regular == r.nodes);  // the first ring only: no node was ever excluded
    }
}

TEST_CASE("the EVS checkers catch their planted bugs") {
    auto all = [](const std::string& bug) {
        SimOptions o = faulty(bug);
        o.fault_partition = o.fault_asym = o.fault_crash = o.fault_pause = o.fault_join = true;
        o.loss = 0.1;
        return o;
    };
    CHECK(first_violation(all("transitional-all-new"), 20) == "transitional configuration");
    CHECK(first_violation(all("skip-transitional"), 20) != "");
    CHECK(first_violation(all("old-after-regular"), 20) == "one configuration per message");
    CHECK(first_violation(all("drop-recovered"), 20) == "same message set");
    CHECK(first_violation(all("drop-queue-on-change"), 20) == "self delivery");
    CHECK(first_violation(all("no-merge"), 20) == "membership liveness");
}

TEST_CASE("every fault class together passes, and crashes are measured") {
    SimOptions o;
    o.nodes_min = 2;
    o.nodes_max = 7;
    o.fault_loss = o.fault_dup = o.fault_reorder = o.fault_delay = true;
    o.fault_partition = o.fault_asym = o.fault_crash = o.fault_pause = o.fault_join = true;
    o.msgs = 60;
    std::size_t failovers = 0;
    for (std::uint64_t s = 1; s <= 40; ++s) {
        SeedResult r = run_seed(o, s);
        CAPTURE(s);
        CHECK_FALSE(r.violation.has_value());
        for (auto f : r.failovers) CHECK(f <= 1'500'000);
        failovers += r.failovers.size();
    }
    CHECK(failovers >= 1);
}

TEST_CASE("without a planted bug the same seeds pass") {
    SimOptions o = faulty();
    for (std::uint64_t s = 1; s <= 20; ++s) {
        SeedResult r = run_seed(o, s);
        CAPTURE(s);
        CHECK_FALSE(r.violation.has_value());
        CHECK(r.delivered == r.submitted * r.nodes);
        CHECK(r.malformed == 0);
    }
}

TEST_CASE("one seed gives a byte-identical trace every time") {
    SimOptions o = faulty();
    for (std::uint64_t s : {3u, 11u}) {
        const std::string a = run_seed(o, s).trace.render();
        const std::string b = run_seed(o, s).trace.render();
        CHECK(a == b);
        CHECK(a.size() > 1000);
    }
}

TEST_CASE("a seed drawn from a node range replays with the drawn size fixed") {
    SimOptions range = faulty();
    const std::uint32_t n = nodes_for_seed(range, 5);
    SimOptions fixed = range;
    fixed.nodes_min = fixed.nodes_max = n;
    CHECK(run_seed(range, 5).trace.render() == run_seed(fixed, 5).trace.render());
}

TEST_CASE("the command line is parsed strictly") {
    const char* good[] = {"conclave-sim", "--nodes", "5", "--seeds", "1-200", "--faults", "loss,dup,reorder,delay",
                          "--loss", "0.2"};
    ParseResult p = parse_args(9, good);
    CHECK(p.error.empty());
    CHECK(p.options.nodes_min == 5);
    CHECK(p.options.seed_last == 200);
    CHECK(p.options.fault_delay);
    CHECK(p.options.loss == 0.2);
    const char* bad1[] = {"conclave-sim", "--nodes", "1"};
    CHECK_FALSE(parse_args(3, bad1).error.empty());
    const char* bad2[] = {"conclave-sim", "--seeds", "9-3"};
    CHECK_FALSE(parse_args(3, bad2).error.empty());
    const char* bad3[] = {"conclave-sim", "--faults", "loss,fire"};
    CHECK_FALSE(parse_args(3, bad3).error.empty());
    const char* bad4[] = {"conclave-sim", "--loss", "1.5"};
    CHECK_FALSE(parse_args(3, bad4).error.empty());
    const char* bad5[] = {"conclave-sim", "--msgs"};
    CHECK_FALSE(parse_args(2, bad5).error.empty());
    const char* bad6[] = {"conclave-sim", "--plant-bug", "nope"};
    CHECK_FALSE(parse_args(3, bad6).error.empty());
    const char* all[] = {"conclave-sim", "--faults", "all", "--nodes", "2-7", "--soak", "1", "--pause-ms", "500"};
    ParseResult pa = parse_args(9, all);
    CHECK(pa.error.empty());
    CHECK(pa.options.fault_crash);
    CHECK(pa.options.fault_join);
    CHECK(pa.options.soak_minutes == 1);
    CHECK(pa.options.pause_ms == 500);
    const char* bad7[] = {"conclave-sim", "--nodes", "2-65"};
    CHECK_FALSE(parse_args(3, bad7).error.empty());
    const char* replay_args[] = {"conclave-sim", "--loss", "0.2"};
    ParseResult r = parse_args(3, replay_args);
    CHECK(r.options.fault_loss);  // --loss implies loss
    CHECK(replay_command(r.options, 7, 4).find("--nodes 4 --seeds 7-7 --faults loss --loss 0.2") != std::string::npos);
}
