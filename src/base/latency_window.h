// The last N latency samples of one kind, summarised on demand (p50, p99, max): the
// apply worker's queue wait, commit and journal fsync times in `conclavectl status`.
// Not thread-safe: its owner locks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace conclave {

class LatencyWindow {
public:
    struct Summary {
        std::size_t samples = 0;  // in the window (at most its capacity)
        std::uint64_t p50 = 0, p99 = 0, max = 0;
    };

    explicit LatencyWindow(std::size_t capacity = 1024) : capacity_(capacity ? capacity : 1) {}

    void add(std::uint64_t value) {
        if (samples_.size() < capacity_) {
            samples_.push_back(value);
        } else {
            samples_[next_] = value;
            next_ = (next_ + 1) % capacity_;
        }
    }

    // Nearest-rank percentiles over the samples in the window; all zero when empty.
    Summary summary() const {
        Summary s;
        s.samples = samples_.size();
        if (samples_.empty()) return s;
        std::vector<std::uint64_t> sorted = samples_;
        std::sort(sorted.begin(), sorted.end());
        auto rank = [&](std::size_t percent) {
            // The smallest value with at least `percent` % of the samples at or below it.
            const std::size_t n = sorted.size();
            const std::size_t k = (n * percent + 99) / 100;
            return sorted[k == 0 ? 0 : k - 1];
        };
        s.p50 = rank(50);
        s.p99 = rank(99);
        s.max = sorted.back();
        return s;
    }

private:
    std::size_t capacity_;
    std::size_t next_ = 0;  // the oldest sample once the window is full
    std::vector<std::uint64_t> samples_;
};

}  // namespace conclave
