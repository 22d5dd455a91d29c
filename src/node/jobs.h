// The apply worker's side of node/: executes one Job against the store. Not pure (it is
// the disk); the daemon runs it on the apply worker thread, the simulator inline after a
// simulated delay. Both hand the result to Node::on_job_done().
#pragma once

#include "node/node.h"
#include "store/store.h"

namespace conclave::node {

// `self`: this node's id (ResultInstalled::mine lists its surviving requests).
JobResult execute(store::Store& store, const Job& job, NodeId self);

}  // namespace conclave::node
