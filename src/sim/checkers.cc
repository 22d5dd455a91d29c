#include "sim/checkers.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>
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

// A configuration: (kind, ring id). kind 0 transitional, 1 regular. Members of several
// old rings each deliver their own transitional configuration before one regular one,
// all carrying the new ring id: a transitional configuration is also named by its
// members.
struct ConfigId {
    std::uint8_t kind = 0;
    std::uint32_t rep = 0;
    std::uint64_t seq = 0;
    std::uint64_t mask = 0;  // transitional only
    auto tie() const { return std::tie(kind, rep, seq, mask); }
    friend bool operator<(const ConfigId& a, const ConfigId& b) { return a.tie() < b.tie(); }
    friend bool operator==(const ConfigId& a, const ConfigId& b) { return a.tie() == b.tie(); }
};
const ConfigId kNone{};

std::string cname(const ConfigId& c) {
    if (c == kNone) return "none";
    char b[64];
    std::snprintf(b, sizeof b, "%s %" PRIx32 ".%" PRIx64, c.kind ? "regular" : "transitional", c.rep, c.seq);
    return b;
}

ConfigId config_of(const TraceEvent& e) { return ConfigId{e.mode, e.a, e.b, e.mode ? 0 : e.hash}; }

// Per node, in trace order: its configuration events, split into incarnations.
struct ConfigEvent {
    std::size_t index;
    ConfigId id;
    std::uint64_t mask;
    std::uint32_t incarnation;
};
struct History {
    std::vector<std::vector<ConfigEvent>> per_node;
    explicit History(const Trace& t, std::uint32_t nodes) : per_node(nodes + 1) {
        std::vector<std::uint32_t> inc(nodes + 1, 0);
        for (std::size_t i = 0; i < t.events.size(); ++i) {
            const TraceEvent& e = t.events[i];
            if (e.kind == Ev::start) ++inc[e.node];
            if (e.kind == Ev::config) per_node[e.node].push_back({i, config_of(e), e.hash, inc[e.node]});
        }
    }
    // The regular configuration y installed before regular R (same incarnation);
    // nullopt if y never delivered R; kNone if R was its first.
    std::optional<ConfigId> regular_before(std::uint32_t y, const ConfigId& r) const {
        const auto& h = per_node[y];
        for (std::size_t k = 0; k < h.size(); ++k) {
            if (!(h[k].id == r)) continue;
            for (std::size_t j = k; j-- > 0;) {
                if (h[j].incarnation != h[k].incarnation) return kNone;
                if (h[j].id.kind == 1) return h[j].id;
            }
            return kNone;
        }
        return std::nullopt;
    }
};

std::uint64_t bit(std::uint32_t n) { return 1ull << (n - 1); }

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
    std::vector<std::vector<std::pair<MsgKey, std::size_t>>> seq(nodes + 1);
    std::vector<std::map<MsgKey, std::size_t>> pos(nodes + 1);
    for (std::size_t i = 0; i < t.events.size(); ++i) {
        const TraceEvent& e = t.events[i];
        if (e.kind != Ev::deliver) continue;
        pos[e.node].emplace(MsgKey{e.a, e.b}, seq[e.node].size());
        seq[e.node].push_back({{e.a, e.b}, i});
    }
    for (std::uint32_t x = 1; x <= nodes; ++x) {
        for (std::uint32_t y = x + 1; y <= nodes; ++y) {
            std::size_t last = 0;
            bool any = false;
            MsgKey prev{};
            for (const auto& [k, i] : seq[x]) {
                auto it = pos[y].find(k);
                if (it == pos[y].end()) continue;
                if (any && it->second < last) {
                    char b[200];
                    std::snprintf(b, sizeof b, "%s after %s here, but before it on n%" PRIu32, name(k).c_str(),
                                  name(prev).c_str(), y);
                    return make("total order agreement", b, i, x);
                }
                last = it->second;
                prev = k;
                any = true;
            }
        }
    }
    return std::nullopt;
}

std::optional<Violation> check_fifo(const Trace& t) {
    std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t> last;  // (node, sender) -> id
    for (std::size_t i = 0; i < t.events.size(); ++i) {
        const TraceEvent& e = t.events[i];
        if (e.kind == Ev::start) {  // a new incarnation starts a new history
            for (auto it = last.begin(); it != last.end();) it = it->first.first == e.node ? last.erase(it) : std::next(it);
        }
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
    using FrameKey = std::pair<std::uint64_t, std::uint64_t>;   // (ring key, seq)
    std::map<FrameKey, std::vector<std::size_t>> held;        // first hold index per node
    std::map<MsgKey, std::vector<FrameKey>> frames;           // message -> frames carrying it
    std::vector<std::pair<ConfigId, std::uint64_t>> current(nodes + 1, {kNone, 0});
    auto hold = [&](const FrameKey& f, std::uint32_t node, std::size_t i) {
        auto& v = held[f];
        if (v.empty()) v.assign(nodes + 1, never);
        if (v[node] == never) v[node] = i;
    };
    for (std::size_t i = 0; i < t.events.size(); ++i) {
        const TraceEvent& e = t.events[i];
        if (e.kind == Ev::config) {
            current[e.node] = {config_of(e), e.hash};
        } else if (e.kind == Ev::start) {
            current[e.node] = {kNone, 0};
        } else if (e.kind == Ev::mcast) {
            hold({e.hash, e.b}, e.node, i);
            for (std::uint64_t j = 0; j < e.size; ++j) frames[{e.node, e.c + j}].push_back({e.hash, e.b});
        } else if (e.kind == Ev::recv) {
            hold({e.c, e.b}, e.node, i);
        } else if (e.kind == Ev::deliver && e.mode == 1) {
            const auto& [cfg, mask] = current[e.node];
            if (cfg.kind != 1) continue;  // transitional: members hold it through recovery
            auto f = frames.find({e.a, e.b});
            if (f == frames.end()) continue;  // no creation reports this
            const std::uint64_t key = cfg.seq * 64 + cfg.rep;
            for (const FrameKey& fk : f->second) {
                if (fk.first != key) continue;  // a frame of an earlier attempt on another ring
                const auto& v = held[fk];
                for (std::uint32_t y = 1; y <= nodes; ++y) {
                    if (!(mask & bit(y))) continue;
                    if (v[y] == never || v[y] > i) {
                        char b[160];
                        std::snprintf(b, sizeof b, "%s delivered safe but n%" PRIu32 " did not hold frame seq=%" PRIu64,
                                      name({e.a, e.b}).c_str(), y, fk.second);
                        return make("safe delivery", b, i, e.node);
                    }
                }
            }
        }
    }
    return std::nullopt;
}

std::optional<Violation> check_watermark(const Trace& t, std::uint32_t nodes) {
    // The simulator sets each node's local watermark to its count of deliveries (kept
    // across crashes, like a durable version).
    std::vector<std::uint64_t> delivered(nodes + 1, 0);
    std::vector<std::uint64_t> members(nodes + 1, 0);
    for (std::size_t i = 0; i < t.events.size(); ++i) {
        const TraceEvent& e = t.events[i];
        if (e.kind == Ev::deliver) ++delivered[e.node];
        if (e.kind == Ev::config && e.mode == 1) members[e.node] = e.hash;
        if (e.kind != Ev::watermark) continue;
        std::uint64_t low = UINT64_MAX;
        for (std::uint32_t y = 1; y <= nodes; ++y)
            if (members[e.node] & bit(y)) low = std::min(low, delivered[y]);
        if (low != UINT64_MAX && e.b > low) {
            char b[128];
            std::snprintf(b, sizeof b, "ring watermark %" PRIu64 " above a member's local value %" PRIu64, e.b, low);
            return make("watermark bound", b, i, e.node);
        }
    }
    return std::nullopt;
}

std::optional<Violation> check_transitional(const Trace& t, std::uint32_t nodes) {
    const History h(t, nodes);
    for (std::uint32_t x = 1; x <= nodes; ++x) {
        const auto& hx = h.per_node[x];
        for (std::size_t k = 0; k < hx.size(); ++k) {
            if (hx[k].id.kind != 0) continue;
            // P: the regular before it; R: the regular after it (same incarnation).
            const ConfigEvent* p = nullptr;
            for (std::size_t j = k; j-- > 0;)
                if (hx[j].incarnation == hx[k].incarnation && hx[j].id.kind == 1) {
                    p = &hx[j];
                    break;
                }
            if (k + 1 >= hx.size() || hx[k + 1].incarnation != hx[k].incarnation) continue;
            const ConfigEvent& r = hx[k + 1];
            if (!p || r.id.kind != 1 || r.id.rep != hx[k].id.rep || r.id.seq != hx[k].id.seq) {
                return make("transitional configuration",
                            cname(hx[k].id) + " not between two regular configurations of its ring", hx[k].index, x);
            }
            std::uint64_t certain = 0, possible = 0;
            for (std::uint32_t y = 1; y <= nodes; ++y) {
                if (!(p->mask & r.mask & bit(y))) continue;
                const auto before = h.regular_before(y, r.id);
                if (!before) possible |= bit(y);
                else if (*before == p->id) certain |= bit(y);
            }
            const std::uint64_t m = hx[k].mask;
            if ((m & certain) != certain || (m & ~(certain | possible)) != 0 || !(m & bit(x))) {
                char b[200];
                std::snprintf(b, sizeof b, "%s has members %#" PRIx64 ", expected old ∩ new of those from %s = %#" PRIx64,
                              cname(hx[k].id).c_str(), m, cname(p->id).c_str(), certain);
                return make("transitional configuration", b, hx[k].index, x);
            }
        }
    }
    return std::nullopt;
}

std::optional<Violation> check_config_agreement(const Trace& t, std::uint32_t nodes) {
    const History h(t, nodes);
    std::map<ConfigId, std::pair<std::uint64_t, std::uint32_t>> members;
    // (P, R) -> transitional between (kNone if none) and who said so
    std::map<std::pair<ConfigId, ConfigId>, std::pair<ConfigId, std::uint32_t>> moves;
    for (std::uint32_t x = 1; x <= nodes; ++x) {
        const auto& hx = h.per_node[x];
        for (std::size_t k = 0; k < hx.size(); ++k) {
            auto [it, fresh] = members.emplace(hx[k].id, std::make_pair(hx[k].mask, x));
            if (!fresh && it->second.first != hx[k].mask) {
                char b[200];
                std::snprintf(b, sizeof b, "%s has members %#" PRIx64 " here but %#" PRIx64 " on n%" PRIu32,
                              cname(hx[k].id).c_str(), hx[k].mask, it->second.first, it->second.second);
                return make("configuration agreement", b, hx[k].index, x);
            }
            if (hx[k].id.kind != 1) continue;
            ConfigId trans = kNone, prev = kNone;
            for (std::size_t j = k; j-- > 0;) {
                if (hx[j].incarnation != hx[k].incarnation) break;
                if (hx[j].id.kind == 0 && trans == kNone) trans = hx[j].id;
                if (hx[j].id.kind == 1) {
                    prev = hx[j].id;
                    break;
                }
            }
            if (prev == kNone) continue;
            auto [mt, mfresh] = moves.emplace(std::make_pair(prev, hx[k].id), std::make_pair(trans, x));
            if (!mfresh && !(mt->second.first == trans)) {
                return make("configuration agreement",
                            "moving from " + cname(prev) + " to " + cname(hx[k].id) + " via " + cname(trans) +
                                " here but via " + cname(mt->second.first) + " on n" + std::to_string(mt->second.second),
                            hx[k].index, x);
            }
        }
    }
    return std::nullopt;
}

std::optional<Violation> check_one_config_per_message(const Trace& t, std::uint32_t nodes) {
    // A message's home is the regular configuration of the ring that sequenced (the last
    // frame of) it. Every node that delivers it does so in that configuration or in a
    // transitional configuration that follows it.
    std::map<MsgKey, std::uint64_t> home;  // ring key
    std::vector<ConfigId> current(nodes + 1, kNone), regular(nodes + 1, kNone);
    for (std::size_t i = 0; i < t.events.size(); ++i) {
        const TraceEvent& e = t.events[i];
        if (e.kind == Ev::mcast)
            for (std::uint64_t j = 0; j < e.size; ++j) home[{e.node, e.c + j}] = e.hash;
        if (e.kind == Ev::config) {
            current[e.node] = config_of(e);
            if (e.mode == 1) regular[e.node] = config_of(e);
        }
        if (e.kind == Ev::start) current[e.node] = regular[e.node] = kNone;
        if (e.kind != Ev::deliver) continue;
        auto h = home.find({e.a, e.b});
        if (h == home.end()) continue;
        const ConfigId& r = regular[e.node];
        if (r == kNone || r.seq * 64 + r.rep != h->second)
            return make("one configuration per message",
                        name({e.a, e.b}) + " of ring " + std::to_string(h->second % 64) + "." +
                            std::to_string(h->second / 64) + " delivered in " + cname(current[e.node]),
                        i, e.node);
    }
    return std::nullopt;
}

std::optional<Violation> check_same_message_set(const Trace& t, std::uint32_t nodes) {
    struct Segment {
        ConfigId id = kNone;
        std::set<MsgKey> msgs;
    };
    std::vector<Segment> open(nodes + 1);
    std::map<std::pair<ConfigId, ConfigId>, std::pair<std::set<MsgKey>, std::uint32_t>> closed;
    for (std::size_t i = 0; i < t.events.size(); ++i) {
        const TraceEvent& e = t.events[i];
        if (e.kind == Ev::start) open[e.node] = Segment{};
        if (e.kind == Ev::deliver) open[e.node].msgs.insert({e.a, e.b});
        if (e.kind != Ev::config) continue;
        Segment& s = open[e.node];
        const ConfigId next = config_of(e);
        if (!(s.id == kNone)) {
            auto [it, fresh] = closed.emplace(std::make_pair(s.id, next), std::make_pair(s.msgs, e.node));
            if (!fresh && it->second.first != s.msgs) {
                std::string diff;
                for (const auto& m : s.msgs)
                    if (!it->second.first.count(m)) diff = name(m) + " only here";
                for (const auto& m : it->second.first)
                    if (!s.msgs.count(m)) diff = name(m) + " only on n" + std::to_string(it->second.second);
                return make("same message set",
                            "in " + cname(s.id) + " before " + cname(next) + ": " + std::to_string(s.msgs.size()) +
                                " messages here, " + std::to_string(it->second.first.size()) + " on n" +
                                std::to_string(it->second.second) + " (" + diff + ")",
                            i, e.node);
            }
        }
        s = Segment{next, {}};
    }
    return std::nullopt;
}

std::optional<Violation> check_self_delivery(const Trace& t) {
    // submit index per message; exempt once its sender crashes or leaves.
    std::map<MsgKey, std::size_t> pending;
    for (std::size_t i = 0; i < t.events.size(); ++i) {
        const TraceEvent& e = t.events[i];
        if (e.kind == Ev::submit) pending[{e.a, e.b}] = i;
        if (e.kind == Ev::deliver && e.a == e.node) pending.erase({e.a, e.b});
        if (e.kind == Ev::crash || e.kind == Ev::leave)
            for (auto it = pending.begin(); it != pending.end();)
                it = it->first.first == e.node ? pending.erase(it) : std::next(it);
    }
    if (pending.empty()) return std::nullopt;
    const auto& [k, i] = *pending.begin();
    return make("self delivery", name(k) + " never delivered to its sender, which stayed up", i, k.first);
}

std::optional<Violation> check_membership_liveness(const Trace& t, const std::vector<std::uint32_t>& live) {
    std::uint64_t live_mask = 0;
    std::uint32_t max_node = 0;
    for (auto y : live) {
        live_mask |= bit(y);
        max_node = std::max(max_node, y);
    }
    std::vector<const TraceEvent*> last(max_node + 1, nullptr);
    for (const TraceEvent& e : t.events) {
        if (e.node > max_node) continue;
        if (e.kind == Ev::start) last[e.node] = nullptr;
        if (e.kind == Ev::config) last[e.node] = &e;
    }
    const std::size_t end = t.events.empty() ? 0 : t.events.size() - 1;
    const TraceEvent* ref = nullptr;
    for (auto y : live) {
        const TraceEvent* c = last[y];
        if (!c || c->mode != 1 || c->hash != live_mask)
            return make("membership liveness",
                        "n" + std::to_string(y) + " is not in a regular configuration of all live nodes at the end",
                        end, y);
        if (ref && (ref->a != c->a || ref->b != c->b))
            return make("membership liveness", "live nodes end in different rings", end, y);
        ref = c;
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

std::optional<Violation> check_all(const Trace& t, std::uint32_t nodes, const std::vector<std::uint32_t>& live,
                                   bool membership_faults) {
    if (auto v = check_no_creation(t)) return v;
    if (auto v = check_no_duplicate(t)) return v;
    if (auto v = check_total_order(t, nodes)) return v;
    if (auto v = check_fifo(t)) return v;
    if (auto v = check_safe(t, nodes)) return v;
    if (auto v = check_watermark(t, nodes)) return v;
    if (auto v = check_transitional(t, nodes)) return v;
    if (auto v = check_config_agreement(t, nodes)) return v;
    if (auto v = check_one_config_per_message(t, nodes)) return v;
    if (auto v = check_same_message_set(t, nodes)) return v;
    if (auto v = check_self_delivery(t)) return v;
    if (auto v = check_membership_liveness(t, live)) return v;
    if (!membership_faults)
        if (auto v = check_liveness(t, nodes)) return v;
    return std::nullopt;
}

}  // namespace conclave::sim
