#include "daemon/worker.h"

#include <utility>

#include "base/thread_name.h"

namespace conclave::daemon {

std::vector<node::JobResult> apply_merged(store::Store& store, node::NodeId self,
                                          const std::vector<const node::JobApply*>& jobs) {
    std::vector<node::JobResult> out;
    std::vector<store::Item> items;
    for (const auto* j : jobs) items.insert(items.end(), j->items.begin(), j->items.end());
    store::Head head = store.head();
    auto r = store.apply(items);
    if (!r) {
        // Nothing was applied: run the jobs one at a time, so that each gets its own
        // outcome and the failure the one it belongs to.
        for (const auto* j : jobs) {
            out.push_back(node::execute(store, node::Job{*j}, self));
            if (std::holds_alternative<node::ResultFailed>(out.back())) break;
        }
        return out;
    }
    const auto& applied = r.value();
    std::size_t at = 0;
    for (const auto* j : jobs) {
        node::ResultApplied res;
        res.applied.assign(applied.begin() + static_cast<std::ptrdiff_t>(at),
                           applied.begin() + static_cast<std::ptrdiff_t>(at + j->items.size()));
        at += j->items.size();
        if (!res.applied.empty()) {
            const auto& last = res.applied.back();
            head = store::Head{last.epoch, last.version, last.hash};
        }
        res.head = head;
        out.emplace_back(std::move(res));
    }
    return out;
}

ApplyWorker::ApplyWorker(store::Store& store, node::NodeId self, Done done, ApplyHooks hooks)
    : store_(store), self_(self), done_(std::move(done)), hooks_(std::move(hooks)), thread_([this] { run(); }) {}

ApplyWorker::~ApplyWorker() { stop(); }

void ApplyWorker::push(std::vector<node::Job> jobs) {
    if (jobs.empty()) return;
    const auto now = Clock::now();
    {
        std::lock_guard lock(mu_);
        for (auto& j : jobs) {
            queue_.push_back(std::move(j));
            pushed_.push_back(now);
        }
    }
    cv_.notify_one();
}

void ApplyWorker::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
}

ApplyWorker::Stats ApplyWorker::stats() const {
    std::lock_guard lock(mu_);
    Stats s = stats_;
    s.queued = queued_.summary();
    s.commit = commit_.summary();
    s.fsync = fsync_.summary();
    return s;
}

void ApplyWorker::run() {
    name_this_thread("cv-apply");
    std::vector<node::Job> batch;
    std::vector<Clock::time_point> pushed;
    for (;;) {
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty() || failed_) return;  // stopping, and drained
            // Everything queued so far: consecutive apply jobs share one commit.
            batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
            pushed.assign(pushed_.begin(), pushed_.end());
            queue_.clear();
            pushed_.clear();
        }
        execute(batch, pushed);
        batch.clear();
    }
}

void ApplyWorker::execute(std::vector<node::Job>& batch, const std::vector<Clock::time_point>& pushed) {
    auto micros = [](Clock::duration d) {
        return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
    };
    std::size_t i = 0;
    while (i < batch.size()) {
        const auto began = Clock::now();
        std::vector<node::JobResult> results;
        std::size_t merged = 0;
        bool journaled = false;
        if (std::holds_alternative<node::JobApply>(batch[i])) {
            journaled = true;
            std::vector<const node::JobApply*> run;
            for (std::size_t k = i; k < batch.size() && std::holds_alternative<node::JobApply>(batch[k]); ++k)
                run.push_back(&std::get<node::JobApply>(batch[k]));
            merged = run.size();
            std::vector<const store::Transition*> ts;
            if (hooks_.after) {
                for (const auto* j : run)
                    for (const auto& item : j->items) ts.push_back(&item.t);
            }
            results = run.size() == 1 ? std::vector<node::JobResult>{node::execute(store_, batch[i], self_)}
                                      : apply_merged(store_, self_, run);
            if (hooks_.after) {
                std::vector<store::Applied> applied;
                for (const auto& r : results)
                    if (const auto* a = std::get_if<node::ResultApplied>(&r))
                        applied.insert(applied.end(), a->applied.begin(), a->applied.end());
                hooks_.after(ts, applied);
            }
        } else {
            merged = 1;
            results.push_back(node::execute(store_, batch[i], self_));
            if (hooks_.installed && std::holds_alternative<node::ResultInstalled>(results.back())) hooks_.installed();
        }
        bool failed = false;
        std::size_t items = 0;
        for (std::size_t k = i; k < i + merged; ++k)
            if (auto* a = std::get_if<node::JobApply>(&batch[k])) items += a->items.size();
        for (const auto& r : results) failed = failed || std::holds_alternative<node::ResultFailed>(r);
        const auto ended = Clock::now();
        const std::uint64_t synced = journaled && !failed ? store_.last_sync_micros() : 0;
        done_(std::move(results));
        {
            std::lock_guard lock(mu_);
            if (i < pushed.size()) queued_.add(micros(began - pushed[i]));
            commit_.add(micros(ended - began));
            if (journaled && !failed) fsync_.add(synced);
            stats_.jobs += merged;
            ++stats_.commits;
            if (merged > 1) stats_.merged_jobs += merged;
            if (items > stats_.largest_commit) stats_.largest_commit = items;
            if (failed) {
                // The node stops on a store failure; nothing after it may be applied.
                failed_ = true;
                queue_.clear();
                pushed_.clear();
            }
        }
        if (failed) return;
        i += merged;
    }
}

}  // namespace conclave::daemon
