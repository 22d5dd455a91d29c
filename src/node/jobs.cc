// The apply worker's side of node/: one Job against the store (see jobs.h).
#include "node/jobs.h"

#include <algorithm>
#include <map>

namespace conclave::node {

namespace {

JobResult read_sync(store::Store& store, const JobReadSync& job) {
    ResultSyncRead r;
    r.ring = job.ring;
    const store::Head head = store.head();
    // Members on my history get the records they lack; anyone else (ahead of me on a
    // dead branch, or behind the retained log) the whole state.
    std::optional<std::uint64_t> lowest;
    store::Hash lowest_hash{};
    bool snapshot = false;
    for (const auto& l : job.laggers) {
        bool on_history = l.head.version <= head.version && store.log_after(l.head.version, l.head.hash).has_value();
        r.actions.emplace_back(l.node, on_history ? SyncAction::log : SyncAction::snapshot);
        if (!on_history) {
            snapshot = true;
        } else if (!lowest || l.head.version < *lowest) {
            lowest = l.head.version;
            lowest_hash = l.head.hash;
        }
    }
    if (lowest) {
        auto records = store.log_after(*lowest, lowest_hash);
        if (!records) return ResultFailed{"the retained log changed while reading it"};
        r.records = std::move(*records);
    }
    if (snapshot) {
        auto s = store.snapshot();
        if (!s) return ResultFailed{"cannot take a snapshot: " + s.error()};
        r.snapshot = std::move(s.value());
    }
    return r;
}

}  // namespace

JobResult execute(store::Store& store, const Job& job, NodeId self) {
    if (const auto* a = std::get_if<JobApply>(&job)) {
        auto applied = store.apply(a->items);
        if (!applied) return ResultFailed{applied.error()};
        return ResultApplied{std::move(applied.value()), store.head()};
    }
    if (const auto* in = std::get_if<JobInstall>(&job)) {
        // What this node applied that the new history lacks (a fork: only an operator's
        // expected-votes override or two_node can make one) is reported, not dropped
        // silently.
        std::vector<store::LogRecord> discarded;
        if (auto parsed = store::parse_snapshot(in->snapshot)) {
            std::map<std::uint64_t, store::Hash> theirs;
            for (const auto& rec : parsed->log) theirs[rec.version] = rec.hash;
            for (auto& rec : store.retained_log()) {
                if (rec.version <= parsed->log_base_version || rec.err != 0) continue;
                auto it = theirs.find(rec.version);
                if (it == theirs.end() || it->second != rec.hash) discarded.push_back(std::move(rec));
            }
        }
        auto head = store.install(in->snapshot);
        if (!head) return ResultFailed{"cannot install the snapshot from the sync source: " + head.error()};
        return ResultInstalled{head.value(), store.meta(), store.retained_from(self), std::move(discarded)};
    }
    return read_sync(store, std::get<JobReadSync>(job));
}

}  // namespace conclave::node
