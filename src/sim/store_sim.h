// The store workload of conclave-sim (`--workload store`, issue 6): N nodes, each the real
// totem::Ring + node::Node + store::Store (LMDB in a temp dir, fsync off), on the seeded
// network of network.h, under the same fault classes as the message workload, with
// crashes at any point, including between an apply and its fsync: a store job runs a
// random delay after it was handed over, and a crash drops every job not yet run (what a
// real crash does to transitions applied in memory but not yet committed).
//
// Clients submit random file operations (write, create O_EXCL, unlink, mkdir, rmdir,
// rename incl. no-replace, truncate, chmod) over a small namespace so they collide.
// Every acknowledgement is recorded. Checkers:
//   "histories never fork"        the same (epoch, version) has the same H on every node
//   "one quorate configuration"   two configurations whose members are disjoint never
//                                 apply transitions during overlapping times
//   "acknowledged write lost"     every acknowledged request is in the final history at
//                                 its version, with the same operation and errno
//   "replicas identical"          after the heal every live node has the same head and
//                                 content hash
//   "store liveness"              after the heal every node is synced, quorate, with no
//                                 request left unanswered, within the liveness bound
//   "node stopped"                no node stopped (store failure, sync inconsistency)
#pragma once

#include <cstdint>

#include "sim/options.h"
#include "sim/simulation.h"

namespace conclave::sim {

SeedResult run_store_seed(const SimOptions& o, std::uint64_t seed);

}  // namespace conclave::sim
