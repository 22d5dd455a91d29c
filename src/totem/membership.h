// Membership state of GATHER (Totem TOCS'95 §4.3) and the set arithmetic it needs.
//
// In GATHER a node multicasts a join {proc, fail} every join interval: proc = the nodes
// it believes may form the next ring, fail = those it gave up on. A join whose sets are
// not already mine is merged into mine (union of both sets). Consensus holds when every
// node of proc - fail has sent a join with exactly my sets; then the lowest of them
// builds the commit token (Totem §4.4).
//
// Faster failover than Corosync (DESIGN.md §5): consensus ends as soon as every node
// still heard from agrees. The consensus timer is short: at its first expiry the nodes
// that sent no join at all since GATHER began are failed (a live node answers within a
// join interval or two); at a later expiry without agreement the paper's rule applies
// and every node without a matching join is failed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

#include "totem/config.h"

namespace conclave::totem {

using NodeSet = std::vector<NodeId>;  // always sorted ascending, unique

inline bool contains(const NodeSet& s, NodeId n) { return std::binary_search(s.begin(), s.end(), n); }
inline NodeSet set_union(const NodeSet& a, const NodeSet& b) {
    NodeSet out;
    std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
}
inline NodeSet set_minus(const NodeSet& a, const NodeSet& b) {
    NodeSet out;
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
}
inline NodeSet set_intersection(const NodeSet& a, const NodeSet& b) {
    NodeSet out;
    std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
}
inline bool insert_node(NodeSet& s, NodeId n) {
    auto it = std::lower_bound(s.begin(), s.end(), n);
    if (it != s.end() && *it == n) return false;
    s.insert(it, n);
    return true;
}

struct GatherState {
    NodeSet proc;  // includes self
    NodeSet fail;  // never includes self
    struct View {
        NodeSet proc, fail;
    };
    std::map<NodeId, View> joins;  // latest join of each node since GATHER began
    std::uint32_t consensus_expiries = 0;
    std::uint32_t agreed_expiries = 0;  // expiries that found agreement but no commit token yet
    bool wait_for_others = false;  // at start: no singleton ring before one expiry

    NodeSet candidates() const { return set_minus(proc, fail); }
    // Every candidate other than `self` sent a join with exactly my sets.
    bool consensus(NodeId self) const {
        for (NodeId n : candidates()) {
            if (n == self) continue;
            auto it = joins.find(n);
            if (it == joins.end() || it->second.proc != proc || it->second.fail != fail) return false;
        }
        return true;
    }
};

}  // namespace conclave::totem
