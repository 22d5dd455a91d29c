// conclave-sim's command line, parsed into SimOptions (shared by the tool and the tests).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace conclave::sim {

struct SimOptions {
    std::uint32_t nodes_min = 3, nodes_max = 3;
    std::uint64_t seed_first = 1, seed_last = 1;
    bool fault_loss = false, fault_dup = false, fault_reorder = false, fault_delay = false;
    // Membership faults (issue 4): symmetric partitions, one-way links, crash + restart,
    // pause + resume with a backlog, a node joining mid-run.
    bool fault_partition = false, fault_asym = false, fault_crash = false, fault_pause = false,
         fault_join = false;
    // A power failure of every node at once, each restarting after its own delay (store
    // workload only: what it exercises is the store's commit window).
    bool fault_power = false;
    // A node that stops right after it decided to apply a transition, as a VM descheduled
    // at the worst moment (store workload; not part of "all": it is for the case of a
    // member that applied what the others deliver only after it left).
    bool fault_stall = false;
    std::uint32_t pause_ms = 0;  // 0: each pause lasts a random 50..1500 ms
    double loss = 0.1;      // used when loss is on
    double dup = 0.05;      // used when dup is on
    double reorder = 0.1;   // used when reorder is on
    std::uint32_t msgs = 100;            // messages submitted per seed
    std::uint32_t max_size = 256 * 1024; // largest message of the workload
    std::uint32_t mtu = 1500;
    std::string trace_file;
    std::string plant_bug;  // "", or one of planted_bug_names()
    // "messages": random application messages, checked for total order and EVS;
    // "store": the replicated state machine (node/ + store/) under the same faults.
    std::string workload = "messages";
    std::uint32_t soak_minutes = 0;  // > 0: random seeds until this much wall time passed
    bool verbose = false;
    bool membership_faults() const {
        return fault_partition || fault_asym || fault_crash || fault_pause || fault_join || fault_stall;
    }
};

const std::vector<std::string>& planted_bug_names();

struct ParseResult {
    SimOptions options;
    bool help = false;
    std::string error;  // non-empty: bad arguments (exit 2)
};

ParseResult parse_args(int argc, const char* const* argv);
std::string usage();
// The faults as given to --faults ("loss,dup,reorder,delay"; "none" when none).
std::string faults_string(const SimOptions& o);
// A command that replays exactly one seed of this run with its trace written out.
std::string replay_command(const SimOptions& o, std::uint64_t seed, std::uint32_t nodes);

}  // namespace conclave::sim
