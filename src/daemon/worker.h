// conclaved's disk threads (DESIGN.md §3): the apply worker, which executes the node's
// store jobs in order on its own thread with group commit, and the reader, which serves
// reads from LMDB snapshots. Neither runs protocol code; their results go back to the
// protocol thread through the callbacks (which post to its io_context).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "base/latency_window.h"
#include "node/jobs.h"
#include "node/node.h"
#include "store/store.h"

namespace conclave::daemon {

// Observers of what the worker changes (the FUSE tree invalidates the kernel's caches),
// called on the worker thread: `after` a batch of transitions was applied, with their
// results in order (before `done` reports them), `installed` after a snapshot replaced the
// state. Each may be empty.
struct ApplyHooks {
    std::function<void(const std::vector<const store::Transition*>&, const std::vector<store::Applied>&)> after;
    std::function<void()> installed;
};

class ApplyWorker {
public:
    // `done` runs on the worker thread, once per commit with the results of the jobs it
    // covered, in job order.
    using Done = std::function<void(std::vector<node::JobResult>)>;
    ApplyWorker(store::Store& store, node::NodeId self, Done done, ApplyHooks hooks = {});
    ~ApplyWorker();
    ApplyWorker(const ApplyWorker&) = delete;
    ApplyWorker& operator=(const ApplyWorker&) = delete;

    void push(std::vector<node::Job> jobs);
    // Finishes the queued jobs, then ends the thread. Idempotent.
    void stop();

    struct Stats {
        std::uint64_t jobs = 0, commits = 0, merged_jobs = 0, largest_commit = 0;
        // Over the last kLatencyWindow commits, in µs: from the push of a commit's first
        // job until the worker began it (`queued`), the commit itself: store, journal
        // fsync and the tree's invalidations (`commit`), and of that the journal's
        // fdatasync alone (`fsync`, apply commits only).
        LatencyWindow::Summary queued, commit, fsync;
    };
    static constexpr std::size_t kLatencyWindow = 1024;
    Stats stats() const;

private:
    using Clock = std::chrono::steady_clock;
    void run();
    void execute(std::vector<node::Job>& batch, const std::vector<Clock::time_point>& pushed);

    store::Store& store_;
    node::NodeId self_;
    Done done_;
    ApplyHooks hooks_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<node::Job> queue_;
    std::deque<Clock::time_point> pushed_;  // when each job of queue_ was pushed
    bool stopping_ = false;
    bool failed_ = false;  // after a store failure nothing more is executed
    Stats stats_;
    LatencyWindow queued_{kLatencyWindow}, commit_{kLatencyWindow}, fsync_{kLatencyWindow};
    std::thread thread_;
};

// Executes one merged batch of apply jobs in a single store transaction (one commit, one
// fsync) and splits the result back into one ResultApplied per job. When the merged
// transaction fails, the jobs run one by one, so the failure lands on the job it belongs
// to. Exposed for the unit tests.
std::vector<node::JobResult> apply_merged(store::Store& store, node::NodeId self,
                                          const std::vector<const node::JobApply*>& jobs);

}  // namespace conclave::daemon
