#include "quorum/votequorum.h"

#include <algorithm>

namespace conclave::quorum {
namespace {

bool contains(const std::vector<NodeId>& v, NodeId id) { return std::find(v.begin(), v.end(), id) != v.end(); }

}  // namespace

std::string validate(const Options& options, const std::vector<Node>& node_list) {
    if (options.last_man_standing)
        for (const auto& n : node_list)
            if (n.votes != 1)
                return "last_man_standing needs one vote per node (node " + std::to_string(n.id) + " has " +
                       std::to_string(n.votes) + ")";
    if (options.auto_tie_breaker == TieBreaker::list && options.tie_breaker_nodes.empty())
        return "auto_tie_breaker list needs at least one node id";
    return {};
}

bool Votequorum::holds_tie_breaker() const {
    if (node_list_.empty()) return false;
    NodeId tb = 0;
    switch (options_.auto_tie_breaker) {
        case TieBreaker::off: return false;
        case TieBreaker::lowest:
            tb = std::min_element(node_list_.begin(), node_list_.end(),
                                  [](const Node& a, const Node& b) { return a.id < b.id; })->id;
            break;
        case TieBreaker::highest:
            tb = std::max_element(node_list_.begin(), node_list_.end(),
                                  [](const Node& a, const Node& b) { return a.id < b.id; })->id;
            break;
        case TieBreaker::list:
            for (NodeId id : options_.tie_breaker_nodes) {
                bool listed = std::any_of(node_list_.begin(), node_list_.end(), [&](const Node& n) { return n.id == id; });
                if (listed) {
                    tb = id;
                    break;
                }
            }
            if (tb == 0) return false;
            break;
    }
    return contains(members_, tb);
}

Status Votequorum::update(const std::vector<Node>& node_list, const std::vector<NodeId>& members, Micros now,
                          std::uint64_t ring_seq) {
    node_list_ = node_list;
    members_ = members;
    if (ring_seq) ring_seq_ = ring_seq;
    return compute(now);
}

Status Votequorum::on_timer(Micros now) {
    if (lms_deadline_ && now >= *lms_deadline_) {
        // The window passed with the partition still quorate: what is here is the cluster.
        lms_deadline_.reset();
        if (status_.quorate && status_.total_votes < status_.expected_votes) set_lms(members_);
    }
    return compute(now);
}

// The given nodes that count now: those of the set in force, or of the node list.
std::vector<NodeId> Votequorum::lms_from(const std::vector<NodeId>& counted) const {
    std::vector<NodeId> next;
    for (const auto& n : node_list_) {
        if (!contains(counted, n.id)) continue;
        if (!lms_members_.empty() && !contains(lms_members_, n.id)) continue;
        next.push_back(n.id);
    }
    std::sort(next.begin(), next.end());
    return next;
}

void Votequorum::set_lms(const std::vector<NodeId>& counted) {
    lms_members_ = lms_from(counted);
    lms_seq_ = ring_seq_;
    settle_doubts();
}

bool Votequorum::holds_majority(const std::vector<NodeId>& set) const {
    std::uint32_t votes = 0, present = 0;
    for (const auto& n : node_list_) {
        if (!contains(set, n.id)) continue;
        votes += n.votes;
        if (contains(members_, n.id)) present += n.votes;
    }
    if (votes == 0) return true;  // its nodes left the node list: nothing to hold
    return present * 2 > votes || (options_.auto_tie_breaker != TieBreaker::off && votes % 2 == 0 &&
                                   present * 2 == votes && holds_tie_breaker());
}

// A set made later than an unsettled lowering settles it: whoever made it held a
// majority of every set that could be in force, the unsettled one included (a member
// that delivered the lowering in its regular configuration made it, and any majority of
// the set before meets such a member, or none did and the lowering never counted).
void Votequorum::settle_doubts() {
    std::erase_if(lms_doubts_, [&](const LmsSet& d) { return settles(lms_seq_, lms_members_, d); });
}

std::optional<std::string> Votequorum::set_expected(std::uint32_t expected) {
    if (expected == 0) return std::string("expected votes must be at least 1");
    if (expected < status_.total_votes)
        return "cannot set expected votes to " + std::to_string(expected) + ": below the " +
               std::to_string(status_.total_votes) + " votes present";
    if (expected > status_.configured_expected)
        return "cannot set expected votes to " + std::to_string(expected) + ": above the configured " +
               std::to_string(status_.configured_expected);
    // An override ends once the whole node list is present: with everyone here now it
    // would end at once, and say "OPERATOR OVERRIDE" for nothing.
    if (status_.total_votes >= status_.configured_expected)
        return "every node of the node list is in this partition (" + std::to_string(status_.total_votes) +
               " votes): there is nothing to override";
    override_ = expected;
    compute(last_now_);
    return std::nullopt;
}

Votequorum::Agreed Votequorum::agreed() const {
    return Agreed{all_seen_, lms_members_, lms_seq_, override_.value_or(0), lms_doubts_};
}

void Votequorum::restore(const Agreed& a) {
    all_seen_ = a.all_seen;
    lms_members_ = a.lms_members;
    lms_seq_ = a.lms_seq;
    override_ = a.override_expected ? std::optional<std::uint32_t>(a.override_expected) : std::nullopt;
    lms_doubts_ = a.lms_doubts;
    settle_doubts();
    status_.quorate = false;  // a fresh configuration: losing quorum is judged from here
}

Votequorum::Agreed Votequorum::merge(const std::vector<Agreed>& members) {
    Agreed m;
    for (const auto& a : members) {
        m.all_seen = m.all_seen || a.all_seen;
        // The newest set: the one a later quorate configuration made (ring seqs grow from
        // one such configuration to the next, which share a member). A tie between
        // different sets is not expected; the larger one decides it, alike everywhere.
        if (a.lms_seq > m.lms_seq || (a.lms_seq == m.lms_seq && a.lms_members > m.lms_members)) {
            m.lms_members = a.lms_members;
            m.lms_seq = a.lms_seq;
        }
        if (a.override_expected && (!m.override_expected || a.override_expected < m.override_expected))
            m.override_expected = a.override_expected;
    }
    // Every member's unsettled lowerings that the newest set does not settle.
    for (const auto& a : members)
        for (const auto& d : a.lms_doubts) {
            if (settles(m.lms_seq, m.lms_members, d)) continue;
            if (std::find(m.lms_doubts.begin(), m.lms_doubts.end(), d) == m.lms_doubts.end()) m.lms_doubts.push_back(d);
        }
    std::sort(m.lms_doubts.begin(), m.lms_doubts.end());
    return m;
}

Status Votequorum::lower_expected(std::uint32_t expected, const std::vector<NodeId>& ring_members,
                                  std::uint64_t ring_seq, Micros now) {
    lms_deadline_.reset();
    if (ring_seq) ring_seq_ = ring_seq;
    if (options_.last_man_standing && expected >= 1 && expected < status_.expected_votes) set_lms(ring_members);
    return compute(now);
}

Status Votequorum::lower_expected_unsettled(std::uint32_t expected, const std::vector<NodeId>& ring_members,
                                            std::uint64_t ring_seq, Micros now) {
    lms_deadline_.reset();
    if (ring_seq) ring_seq_ = ring_seq;
    if (options_.last_man_standing && expected >= 1 && expected < status_.expected_votes) {
        LmsSet d{ring_seq_, lms_from(ring_members)};
        if (d.members != lms_members_ && std::find(lms_doubts_.begin(), lms_doubts_.end(), d) == lms_doubts_.end()) {
            lms_doubts_.push_back(std::move(d));
            std::sort(lms_doubts_.begin(), lms_doubts_.end());
        }
    }
    return compute(now);
}

Status Votequorum::compute(Micros now) {
    last_now_ = now;
    Status s;
    std::uint32_t present = 0;  // votes of the members
    for (const auto& n : node_list_) {
        s.configured_expected += n.votes;
        if (contains(members_, n.id)) present += n.votes;
    }
    bool two_node = options_.two_node && node_list_.size() == 2;
    bool wait_for_all = options_.wait_for_all || two_node;

    // An override lasts until the whole node list is back.
    if (override_ && present >= s.configured_expected) override_.reset();

    // last_man_standing's set (see lower_expected): only its members' votes count.
    std::uint32_t set_votes = 0, set_present = 0;
    auto count_set = [&] {
        set_votes = set_present = 0;
        for (const auto& n : node_list_) {
            if (!contains(lms_members_, n.id)) continue;
            set_votes += n.votes;
            if (contains(members_, n.id)) set_present += n.votes;
        }
    };
    if (!lms_members_.empty()) {
        count_set();
        const bool majority = holds_majority(lms_members_);
        const bool holds_doubts = std::all_of(lms_doubts_.begin(), lms_doubts_.end(),
                                              [&](const LmsSet& d) { return holds_majority(d.members); });
        if (present >= s.configured_expected || set_votes == 0) {
            // Everyone is back (or the set's nodes left the node list): the node list's
            // votes again.
            lms_members_.clear();
            lms_seq_ = ring_seq_;
            settle_doubts();
        } else if (majority && holds_doubts && present > set_present) {
            // Members coming back to a partition that holds a majority of the set raise
            // expected votes again: they join the set.
            lms_members_.clear();
            set_lms(members_);
            count_set();
        }
    } else if (!lms_doubts_.empty() && present >= s.configured_expected) {
        lms_seq_ = ring_seq_;
        settle_doubts();
    }
    const bool lms = !lms_members_.empty() && !override_;
    s.total_votes = lms ? set_present : present;
    s.expected_votes = override_ ? *override_ : lms ? set_votes : s.configured_expected;
    if (s.total_votes > s.expected_votes) s.expected_votes = s.total_votes;
    s.highest_expected = s.configured_expected;
    s.quorum = two_node ? 1 : s.expected_votes / 2 + 1;

    bool quorate = s.total_votes >= s.quorum;
    if (!quorate && options_.auto_tie_breaker != TieBreaker::off && s.expected_votes % 2 == 0 &&
        s.total_votes * 2 == s.expected_votes && holds_tie_breaker())
        quorate = true;
    // Unsettled lowerings: a majority of each of their sets too (lower_expected_unsettled).
    // An operator's override decides instead.
    if (!override_)
        for (const auto& d : lms_doubts_)
            if (!holds_majority(d.members)) quorate = false;

    if (wait_for_all) {
        // "All" is the node list's votes, or what an operator set with `expected`: as
        // votequorum compares with expected_votes, which `corosync-quorumtool -e` lowers,
        // so that an override is the way back for a cluster whose missing nodes are gone
        // for good (a two_node cluster restarted without its peer).
        const std::uint32_t all = override_ ? *override_ : s.configured_expected;
        if (present >= all && all > 0) all_seen_ = true;
        // Losing quorum arms wait_for_all again (votequorum).
        if (!quorate && status_.quorate) all_seen_ = present >= all;
        if (!all_seen_) {
            s.waiting_for_all = quorate;
            quorate = false;
        }
    }

    if (options_.last_man_standing && quorate && s.total_votes < s.expected_votes) {
        if (!lms_deadline_) lms_deadline_ = now + options_.last_man_standing_window_us;
    } else {
        lms_deadline_.reset();
    }

    s.quorate = quorate;
    s.lms_unsettled = static_cast<std::uint32_t>(lms_doubts_.size());
    s.lms_deadline = lms_deadline_;
    s.flags.quorate = quorate;
    s.flags.two_node = two_node;
    s.flags.wait_for_all = wait_for_all;
    s.flags.last_man_standing = options_.last_man_standing;
    s.flags.auto_tie_breaker = options_.auto_tie_breaker != TieBreaker::off;
    s.flags.override_expected = override_.has_value();
    status_ = s;
    return s;
}

}  // namespace conclave::quorum
