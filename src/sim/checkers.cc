#include "sim/checkers.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <set>
#include <utility>
#include <vector>

namespace conclave::sim {
namespace {

using MsgKey = std::pair<std::uint32_t, std::uint64_t>;  // (sender, msg id)

std::string name(const MsgKey& k) {
    char b[48];
    std::snprintf(b, sizeof b, "m%" PRIu32 ".%" PRIu64, k.first, k.second);
    return b;
}

Violation make(const char* property, std::string detail, std::size_t index, std::uint32_t node) {
    return Violation{property, std::move(detail), index, node};
}

}  // namespace

std::optional<Violation> check_no_creation(const Trace& t) {
    std::map<MsgKey, const TraceEvent*> submitted;
    for (std::size_t i = 0; i < t.events.size(); ++i) {
        const TraceEvent& e = t.events[i];
        if (e.kind == Ev::submit) submitted[{e.a, e.b}] = &e;
        if (e.kind != Ev::deliver) continue;
        auto it = submitted.find({e.a, e.b});
        if (it == submitted.end())
            return make("no creation", name({e.a, e.b}) + " delivered but never submitted", i, e.node);
        const TraceEvent& s = *it->second;
        if (s.size != e.size || s.hash != e.hash || s.mode != e.mode)
            return make("no creation", name({e.a, e.b}) + " delivered with other bytes or guarantee than submitted",
                        i, e.node);
    }
    return std::nullopt;
}

std::optional<Violation> check_no_duplicate(const Trace& t) {
    std::set<std::pair<std::uint32_t, MsgKey>> seen;
    for (std::size_t i = 0; i < t.events.size(); ++i) {
        const TraceEvent& e = t.events[i];
        if (e.kind != Ev::deliver) continue;
        if (!seen.insert({e.node, {e.a, e.b}}).second)
            return make("no duplicate delivery", name({e.a, e.b}) + " delivered a second time", i, e.node);
    }
    return std::nullopt;
}

std::optional<Violation> check_total_order(const Trace& t, std::uint32_t nodes) {
    // position -> the message the first node to reach it delivered there
    std::vector<MsgKey> reference;
    std::vector<std::uint32_t> reference_node;
    std::vector<std::size_t> position(nodes + 1, 0);
    for (std::size_t i = 0; i < t.events.size(); ++i) {
        const TraceEvent& e = t.events[i];
        if (e.kind != Ev::deliver) continue;
        const std::size_t pos = position[e.node]++;
        const MsgKey k{e.a, e.b};
        if (pos == reference.size()) {
            reference.push_back(k);
            reference_node.push_back(e.node);
        } else if (reference[pos] != k) {
            char b[160];
            std::snprintf(b, sizeof b, "position %zu holds %s here but %s on n%" PRIu32, pos, name(k).c_str(),
                          name(reference[pos]).c_str(), reference_node[pos]);
            return make("total order agreement", b, i, e.node);
        }
    }
    return std::nullopt;
}

std::optional<Violation> check_fifo(const Trace& t) {
    std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t> last;  // (node, sender) -> id
    for (std::size_t i = 0; i < t.events.size(); ++i) {
        const TraceEvent& e = t.events[i];
        if (e.kind != Ev::deliver) continue;
        auto [it, fresh] = last.emplace(std::make_pair(e.node, e.a), e.b);
        if (fresh) continue;
        if (e.b <= it->second)
            return make("per-sender FIFO",
                        name({e.a, e.b}) + " delivered after " + name({e.a, it->second}), i, e.node);
        it->second = e.b;
    }
    return std::nullopt;
}

std::optional<Violation> check_safe(const Trace& t, std::uint32_t nodes) {
    constexpr std::size_t never = static_cast<std::size_t>(-1);
    std::map<std::uint64_t, std::vector<std::size_t>> held;  // frame seq -> first hold index per node
    std::map<MsgKey, std::vector<std::uint64_t>> frames;     // message -> frames carrying it
    auto hold = [&](std::uint64_t seq, std::uint32_t node, std::size_t i) {
        auto& v = held[seq];
        if (v.empty()) v.assign(nodes + 1, never);
        if (v[node] == never) v[node] = i;
    };
    for (std::size_t i = 0; i < t.events.size(); ++i) {
        const TraceEvent& e = t.events[i];
        if (e.kind == Ev::mcast) {
            hold(e.b, e.node, i);
            for (std::uint64_t j = 0; j < e.size; ++j) frames[{e.node, e.c + j}].push_back(e.b);
        } else if (e.kind == Ev::recv) {
            hold(e.b, e.node, i);
        } else if (e.kind == Ev::deliver && e.mode == 1) {
            auto f = frames.find({e.a, e.b});
            if (f == frames.end()) continue;  // no creation reports this
            for (std::uint64_t seq : f->second) {
                const auto& v = held[seq];
                for (std::uint32_t y = 1; y <= nodes; ++y) {
                    if (v[y] == never || v[y] > i) {
                        char b[160];
                        std::snprintf(b, sizeof b, "%s delivered safe but n%" PRIu32 " did not hold frame seq=%" PRIu64,
                                      name({e.a, e.b}).c_str(), y, seq);
                        return make("safe delivery", b, i, e.node);
                    }
                }
            }
        }
    }
    return std::nullopt;
}

std::optional<Violation> check_watermark(const Trace& t, std::uint32_t nodes) {
    // The simulator sets each node's local watermark to its count of deliveries.
    std::vector<std::uint64_t> delivered(nodes + 1, 0);
    for (std::size_t i = 0; i < t.events.size(); ++i) {
        const TraceEvent& e = t.events[i];
        if (e.kind == Ev::deliver) ++delivered[e.node];
        if (e.kind != Ev::watermark) continue;
        const std::uint64_t low = *std::min_element(delivered.begin() + 1, delivered.end());
        if (e.b > low) {
            char b[128];
            std::snprintf(b, sizeof b, "ring watermark %" PRIu64 " above a member's local value %" PRIu64, e.b, low);
            return make("watermark bound", b, i, e.node);
        }
    }
    return std::nullopt;
}

std::optional<Violation> check_liveness(const Trace& t, std::uint32_t nodes) {
    std::map<MsgKey, std::vector<bool>> got;
    for (const TraceEvent& e : t.events) {
        if (e.kind == Ev::submit) got[{e.a, e.b}].assign(nodes + 1, false);
    }
    for (const TraceEvent& e : t.events) {
        if (e.kind != Ev::deliver) continue;
        auto it = got.find({e.a, e.b});
        if (it != got.end()) it->second[e.node] = true;
    }
    for (const auto& [k, v] : got) {
        for (std::uint32_t y = 1; y <= nodes; ++y) {
            if (!v[y])
                return make("liveness", name(k) + " never delivered on n" + std::to_string(y) +
                                            " within the bound after faults stopped",
                            t.events.empty() ? 0 : t.events.size() - 1, y);
        }
    }
    return std::nullopt;
}

std::optional<Violation> check_all(const Trace& t, std::uint32_t nodes) {
    if (auto v = check_no_creation(t)) return v;
    if (auto v = check_no_duplicate(t)) return v;
    if (auto v = check_total_order(t, nodes)) return v;
    if (auto v = check_fifo(t)) return v;
    if (auto v = check_safe(t, nodes)) return v;
    if (auto v = check_watermark(t, nodes)) return v;
    if (auto v = check_liveness(t, nodes)) return v;
    return std::nullopt;
}

}  // namespace conclave::sim
