// A thread that runs posted tasks in order (the tree's completion and notifier threads).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "base/thread_name.h"

namespace conclave::fuse {

class TaskThread {
public:
    TaskThread() = default;
    ~TaskThread() { stop(); }
    TaskThread(const TaskThread&) = delete;
    TaskThread& operator=(const TaskThread&) = delete;

    // `name`: the thread's name (a string literal; at most 15 bytes show).
    void start(const char* name) {
        std::lock_guard lock(mu_);
        if (thread_.joinable()) return;
        stopping_ = false;
        thread_ = std::thread([this, name] {
            name_this_thread(name);
            run();
        });
    }
    // Tasks posted after stop() are dropped.
    void post(std::function<void()> task) {
        {
            std::lock_guard lock(mu_);
            if (stopping_ || !thread_.joinable()) return;
            queue_.push_back(std::move(task));
        }
        cv_.notify_one();
    }
    // Runs what is queued, then ends the thread. Idempotent.
    void stop() {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        cv_.notify_one();
        if (thread_.joinable()) thread_.join();
    }
    // Drops what is queued and ends the thread; false (the thread left running, detached)
    // if the task at hand does not return within `limit`.
    template <class Duration>
    bool stop_within(Duration limit) {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
            queue_.clear();
            if (!thread_.joinable()) return true;
        }
        cv_.notify_one();
        std::unique_lock lock(mu_);
        if (!done_cv_.wait_for(lock, limit, [this] { return finished_; })) {
            thread_.detach();
            return false;
        }
        lock.unlock();
        thread_.join();
        return true;
    }

private:
    void run() {
        std::unique_lock lock(mu_);
        for (;;) {
            cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) {
                finished_ = true;
                done_cv_.notify_all();
                return;
            }
            auto task = std::move(queue_.front());
            queue_.pop_front();
            lock.unlock();
            task();
            lock.lock();
        }
    }

    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    bool finished_ = false;
    std::deque<std::function<void()>> queue_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace conclave::fuse
