// The simulator's agenda: events ordered by (virtual time, insertion order), so two
// events at the same instant always run in the order they were scheduled.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace conclave::sim {

template <typename Payload>
class EventQueue {
public:
    struct Entry {
        std::uint64_t time;
        std::uint64_t order;
        Payload payload;
    };
    void push(std::uint64_t time, Payload p) {
        heap_.push_back(Entry{time, next_order_++, std::move(p)});
        std::push_heap(heap_.begin(), heap_.end(), later);
    }
    bool empty() const { return heap_.empty(); }
    std::size_t size() const { return heap_.size(); }
    std::uint64_t next_time() const { return heap_.front().time; }
    Entry pop() {
        std::pop_heap(heap_.begin(), heap_.end(), later);
        Entry e = std::move(heap_.back());
        heap_.pop_back();
        return e;
    }

private:
    static bool later(const Entry& a, const Entry& b) {
        return a.time != b.time ? a.time > b.time : a.order > b.order;
    }
    std::vector<Entry> heap_;
    std::uint64_t next_order_ = 0;
};

}  // namespace conclave::sim
