#include <doctest/doctest.h>

#include <vector>

#include "quorum/votequorum.h"

using namespace conclave::quorum;

namespace {

// A deliberately plain model of votequorum's steady state: quorate or not, written from
// the rules and nothing else, for a partition that has seen all nodes together before
// (so wait_for_all does not hold it back), with no override and no last_man_standing
// lowering yet.
bool model_quorate(const Options& o, const std::vector<Node>& nodes, const std::vector<NodeId>& members) {
    unsigned expected = 0, total = 0;
    for (const auto& n : nodes) {
        expected += n.votes;
        for (NodeId m : members)
            if (m == n.id) total += n.votes;
    }
    unsigned quorum = (o.two_node && nodes.size() == 2) ? 1 : expected / 2 + 1;
    if (total >= quorum) return true;
    if (o.auto_tie_breaker == TieBreaker::off || expected % 2 != 0 || total * 2 != expected) return false;
    NodeId tb = 0;
    if (o.auto_tie_breaker == TieBreaker::lowest) {
        tb = nodes[0].id;
        for (const auto& n : nodes) tb = n.id < tb ? n.id : tb;
    } else if (o.auto_tie_breaker == TieBreaker::highest) {
        for (const auto& n : nodes) tb = n.id > tb ? n.id : tb;
    } else {
        for (NodeId id : o.tie_breaker_nodes) {
            bool listed = false;
            for (const auto& n : nodes) listed = listed || n.id == id;
            if (listed) { tb = id; break; }
        }
    }
    for (NodeId m : members)
        if (m == tb && tb != 0) return true;
    return false;
}

std::vector<Options> every_option_combination(std::size_t n) {
    std::vector<Options> all;
    for (int mask = 0; mask < 8; ++mask)
        for (TieBreaker tb : {TieBreaker::off, TieBreaker::lowest, TieBreaker::highest, TieBreaker::list}) {
            Options o;
            o.two_node = mask & 1;
            o.wait_for_all = mask & 2;
            o.last_man_standing = mask & 4;
            o.auto_tie_breaker = tb;
            if (tb == TieBreaker::list) o.tie_breaker_nodes = {static_cast<NodeId>(100 + n), 20 + 1, 10 + 1};
            all.push_back(o);
        }
    return all;
}

std::vector<NodeId> subset(const std::vector<Node>& nodes, unsigned mask) {
    std::vector<NodeId> m;
    for (std::size_t i = 0; i < nodes.size(); ++i)
        if (mask & (1u << i)) m.push_back(nodes[i].id);
    return m;
}

std::vector<Node> cluster(std::size_t n, bool weighted) {
    std::vector<Node> nodes;
    for (std::size_t i = 0; i < n; ++i)
        nodes.push_back({static_cast<NodeId>(10 * (i + 1) + 1), weighted ? static_cast<std::uint32_t>(1 + (i * 7) % 3) : 1u});
    return nodes;
}

// A configuration of `members` (ring `seq`) forms: every member starts from the merge of
// the members' agreed states (as the node does at a sync). Whether it is quorate.
bool form_ring(std::vector<Votequorum>& n, const std::vector<Node>& nodes, const std::vector<NodeId>& members,
               std::uint64_t seq) {
    std::vector<Votequorum::Agreed> agreed;
    for (NodeId i : members) agreed.push_back(n[i].agreed());
    const auto merged = Votequorum::merge(agreed);
    bool quorate = false;
    for (NodeId i : members) {
        n[i].restore(merged);
        quorate = n[i].update(nodes, members, 0, seq).quorate;
    }
    return quorate;
}

}  // namespace

TEST_CASE("every membership subset of clusters up to 7 nodes, every option combination, matches the model") {
    std::size_t cases = 0;
    for (std::size_t n = 1; n <= 7; ++n)
        for (bool weighted : {false, true}) {
            auto nodes = cluster(n, weighted);
            for (const auto& o : every_option_combination(n)) {
                if (!validate(o, nodes).empty()) continue;  // lms with weighted votes
                for (unsigned mask = 0; mask < (1u << n); ++mask) {
                    Votequorum q(o);
                    q.update(nodes, subset(nodes, (1u << n) - 1), 0);  // everyone seen together once
                    auto s = q.update(nodes, subset(nodes, mask), 1);
                    bool want = model_quorate(o, nodes, subset(nodes, mask));
                    REQUIRE_MESSAGE(s.quorate == want, "n=" << n << " weighted=" << weighted << " mask=" << mask
                                                            << " two_node=" << o.two_node
                                                            << " wfa=" << o.wait_for_all
                                                            << " atb=" << static_cast<int>(o.auto_tie_breaker));
                    ++cases;
                }
            }
        }
    CHECK(cases > 10000);
}

TEST_CASE("two disjoint partitions are never both quorate (two_node aside)") {
    for (std::size_t n = 1; n <= 7; ++n)
        for (bool weighted : {false, true}) {
            auto nodes = cluster(n, weighted);
            for (const auto& o : every_option_combination(n)) {
                if (!validate(o, nodes).empty() || (o.two_node && n == 2)) continue;
                for (unsigned a = 0; a < (1u << n); ++a)
                    for (unsigned b = a + 1; b < (1u << n); ++b) {
                        if (a & b) continue;
                        bool qa = model_quorate(o, nodes, subset(nodes, a));
                        bool qb = model_quorate(o, nodes, subset(nodes, b));
                        Votequorum x(o), y(o);
                        x.update(nodes, subset(nodes, (1u << n) - 1), 0);
                        y.update(nodes, subset(nodes, (1u << n) - 1), 0);
                        REQUIRE(x.update(nodes, subset(nodes, a), 1).quorate == qa);
                        REQUIRE(y.update(nodes, subset(nodes, b), 1).quorate == qb);
                        REQUIRE_FALSE((qa && qb));
                    }
            }
        }
}

TEST_CASE("quorum arithmetic as corosync-quorumtool shows it") {
    Votequorum q({});
    std::vector<Node> nodes = {{1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}};
    auto s = q.update(nodes, {1, 2, 3}, 0);
    CHECK(s.configured_expected == 5);
    CHECK(s.expected_votes == 5);
    CHECK(s.highest_expected == 5);
    CHECK(s.total_votes == 3);
    CHECK(s.quorum == 3);
    CHECK(s.quorate);
    s = q.update(nodes, {4, 5, 99}, 1);  // 99 is on the ring but not in the node list: no vote
    CHECK(s.total_votes == 2);
    CHECK_FALSE(s.quorate);
}

TEST_CASE("wait_for_all: not quorate before every node was seen, armed again when quorum is lost") {
    Options o;
    o.wait_for_all = true;
    Votequorum q(o);
    std::vector<Node> nodes = {{1, 1}, {2, 1}, {3, 1}};
    auto s = q.update(nodes, {1, 2}, 0);
    CHECK_FALSE(s.quorate);
    CHECK(s.waiting_for_all);
    CHECK(s.flags.wait_for_all);
    CHECK(q.update(nodes, {1, 2, 3}, 1).quorate);
    CHECK(q.update(nodes, {1, 2}, 2).quorate);  // a majority after all were seen
    CHECK_FALSE(q.update(nodes, {1}, 3).quorate);
    s = q.update(nodes, {1, 2}, 4);  // quorum was lost: wait for all again
    CHECK_FALSE(s.quorate);
    CHECK(s.waiting_for_all);
    CHECK(q.update(nodes, {1, 2, 3}, 5).quorate);
}

TEST_CASE("two_node: quorum 1 with wait_for_all implied; ineffective with more nodes") {
    Options o;
    o.two_node = true;
    Votequorum q(o);
    std::vector<Node> two = {{1, 1}, {2, 1}};
    auto s = q.update(two, {1}, 0);
    CHECK(s.quorum == 1);
    CHECK(s.flags.two_node);
    CHECK(s.flags.wait_for_all);
    CHECK_FALSE(s.quorate);  // a fresh start alone waits for the other node
    CHECK(q.update(two, {1, 2}, 1).quorate);
    CHECK(q.update(two, {1}, 2).quorate);  // the survivor keeps quorum (fencing decides)
    std::vector<Node> three = {{1, 1}, {2, 1}, {3, 1}};
    s = q.update(three, {1, 2, 3}, 3);
    CHECK_FALSE(s.flags.two_node);
    CHECK(s.quorum == 2);
}

TEST_CASE("last_man_standing lowers expected votes after its window, one step at a time") {
    Options o;
    o.last_man_standing = true;
    o.last_man_standing_window_us = 10'000'000;
    Votequorum q(o);
    std::vector<Node> nodes;
    std::vector<NodeId> all;
    for (NodeId i = 1; i <= 8; ++i) {
        nodes.push_back({i, 1});
        all.push_back(i);
    }
    q.update(nodes, all, 0);
    auto s = q.update(nodes, {1, 2, 3, 4, 5}, 1'000'000);
    CHECK(s.quorate);
    CHECK(s.quorum == 5);
    REQUIRE(s.lms_deadline);
    CHECK(*s.lms_deadline == 11'000'000);
    CHECK(q.on_timer(5'000'000).expected_votes == 8);  // too early: nothing changes
    s = q.on_timer(11'000'000);
    CHECK(s.expected_votes == 5);
    CHECK(s.quorum == 3);
    CHECK_FALSE(s.lms_deadline);

    s = q.update(nodes, {1, 2, 3}, 12'000'000);
    CHECK(s.quorate);
    s = q.on_timer(*s.lms_deadline);
    CHECK(s.expected_votes == 3);
    CHECK(s.quorum == 2);

    // Without a tie-breaker the last man is not enough: 1 of 2 is not a majority.
    s = q.update(nodes, {1, 2}, 30'000'000);
    s = q.on_timer(*s.lms_deadline);
    CHECK(s.expected_votes == 2);
    CHECK_FALSE(q.update(nodes, {1}, 50'000'000).quorate);

    // Members coming back raise expected votes again.
    s = q.update(nodes, all, 60'000'000);
    CHECK(s.expected_votes == 8);
    CHECK(s.quorum == 5);
}

TEST_CASE("last_man_standing with auto_tie_breaker goes down to one node") {
    Options o;
    o.last_man_standing = true;
    o.auto_tie_breaker = TieBreaker::lowest;
    Votequorum q(o);
    std::vector<Node> nodes = {{1, 1}, {2, 1}, {3, 1}, {4, 1}};
    q.update(nodes, {1, 2, 3, 4}, 0);
    auto s = q.update(nodes, {1, 2}, 1);  // exact half holding the lowest id
    CHECK(s.quorate);
    s = q.on_timer(*s.lms_deadline);
    CHECK(s.expected_votes == 2);
    s = q.update(nodes, {1}, 100'000'000);
    CHECK(s.quorate);
    s = q.on_timer(*s.lms_deadline);
    CHECK(s.expected_votes == 1);
    CHECK(s.quorum == 1);
}

TEST_CASE("last_man_standing: after a lowering, two partitions are never both quorate") {
    // A tester's split on a 5-node cluster: {1,2,3} lowers expected to 3, then the
    // cluster splits {1,2} / {3,4,5}. By numbers alone both would be quorate ({1,2}: 2 of
    // 3; {3,4,5}: 3 of the node list's 5), and writes acknowledged on {1,2} were lost.
    Options o;
    o.last_man_standing = true;
    std::vector<Node> nodes = {{1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}};
    std::vector<Votequorum> n(6, Votequorum(o));
    for (NodeId i = 1; i <= 5; ++i) REQUIRE(n[i].update(nodes, {1, 2, 3, 4, 5}, 0, 4).quorate);
    for (NodeId i : {1, 2, 3}) {
        REQUIRE(n[i].update(nodes, {1, 2, 3}, 0, 8).quorate);
        CHECK(n[i].lower_expected(3, {1, 2, 3}, 8, 0).expected_votes == 3);
    }
    for (NodeId i : {4, 5}) CHECK_FALSE(n[i].update(nodes, {4, 5}, 0, 8).quorate);
    // Every member of a new configuration starts from the merge of the members' states.
    auto form = [&](std::vector<NodeId> members, std::uint64_t seq) { return form_ring(n, nodes, members, seq); };
    CHECK(form({1, 2}, 12));
    CHECK_FALSE(form({3, 4, 5}, 12));  // 1 of {1,2,3}
    CHECK(n[3].status().total_votes == 1);
    CHECK(n[3].status().expected_votes == 3);
    // Node 4 joins {1,2}: a majority of the set and one more node raise it to {1,2,4}.
    CHECK(form({1, 2, 4}, 16));
    CHECK(n[1].agreed().lms_members == std::vector<NodeId>{1, 2, 4});
    CHECK_FALSE(form({3, 5}, 16));
    // Everyone back: the node list's votes again.
    CHECK(form({1, 2, 3, 4, 5}, 20));
    CHECK(n[5].agreed().lms_members.empty());
    CHECK(n[5].status().expected_votes == 5);
    CHECK(form({3, 4, 5}, 24));  // a plain majority again
}

TEST_CASE("last_man_standing: a lowering delivered only in transitional configurations is unsettled") {
    // Ring 8 = {1,2} of {1,2,3,4}, quorate by the tie-breaker; its window passes and node
    // 1 sends the lowering, but the ring breaks before anyone delivers it in the regular
    // configuration. Node 1 had received it and delivers it in its transitional
    // configuration {1}; node 2 never received it. Taking it would make {1} quorate (1 of
    // the set {1,2}, with the tie-breaker) next to {2,3,4} (3 of 4).
    Options o;
    o.last_man_standing = true;
    o.auto_tie_breaker = TieBreaker::lowest;
    std::vector<Node> nodes = {{1, 1}, {2, 1}, {3, 1}, {4, 1}};
    std::vector<Votequorum> n(5, Votequorum(o));
    for (NodeId i = 1; i <= 4; ++i) REQUIRE(n[i].update(nodes, {1, 2, 3, 4}, 0, 4).quorate);
    for (NodeId i : {1, 2}) REQUIRE(n[i].update(nodes, {1, 2}, 0, 8).quorate);
    n[1].update(nodes, {1}, 0);  // node 1's transitional configuration
    auto s = n[1].lower_expected_unsettled(2, {1, 2}, 8, 0);
    CHECK_FALSE(s.quorate);
    CHECK(s.lms_unsettled == 1);
    CHECK(n[1].agreed().lms_members.empty());
    auto form = [&](std::vector<NodeId> members, std::uint64_t seq) { return form_ring(n, nodes, members, seq); };
    CHECK_FALSE(form({1}, 12));
    CHECK(form({2, 3, 4}, 12));
    // Half of the node list and half of {1,2}, both with the tie-breaker.
    CHECK(form({1, 3}, 16));
    CHECK(n[3].agreed().lms_doubts.size() == 1);  // node 3 carries it on
    CHECK_FALSE(form({2, 4}, 16));
    // {2,3,4} holds 3 of 4 but only 1 of {1,2} without the tie-breaker.
    CHECK_FALSE(form({2, 3, 4}, 20));
    // If nodes 1 and 2 are gone for good, an operator's override is the way on.
    Votequorum overridden = n[3];
    CHECK_FALSE(overridden.set_expected(3).has_value());
    CHECK(overridden.status().quorate);
    CHECK(form({1, 3, 4}, 24));
    // The next lowering in a regular configuration settles it.
    s = n[1].lower_expected(3, {1, 3, 4}, 24, 0);
    CHECK(s.lms_unsettled == 0);
    CHECK(n[1].agreed().lms_members == std::vector<NodeId>{1, 3, 4});
    // So does the whole node list in one ring.
    n[2].restore(Votequorum::merge({n[2].agreed(), n[3].agreed()}));
    CHECK(n[2].agreed().lms_doubts.size() == 1);
    n[2].update(nodes, {1, 2, 3, 4}, 0, 28);
    CHECK(n[2].agreed().lms_doubts.empty());

    // When a member did deliver it in the regular configuration, everyone received it:
    // the others hold it unsettled, and the merge settles it to the lowering.
    Votequorum a(o), b(o);
    a.update(nodes, {1, 2, 3}, 0, 8);
    b.update(nodes, {1, 2, 3}, 0, 8);
    a.lower_expected(3, {1, 2, 3}, 8, 0);             // in ring 8's regular configuration
    b.update(nodes, {3}, 0);                          // node 3's transitional configuration
    b.lower_expected_unsettled(3, {1, 2, 3}, 8, 0);  // the same message, delivered there
    CHECK(b.agreed().lms_doubts.size() == 1);
    CHECK(Votequorum::merge({a.agreed(), b.agreed()}) == a.agreed());
}

TEST_CASE("an override lowers expected votes on this partition until everyone is back") {
    Votequorum q({});
    std::vector<Node> nodes = {{1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}};
    q.update(nodes, {1, 2, 3, 4, 5}, 0);
    auto s = q.update(nodes, {4, 5}, 1);
    CHECK_FALSE(s.quorate);
    auto refused = q.set_expected(1);
    REQUIRE(refused);
    CHECK(refused->find("below the 2 votes present") != std::string::npos);
    CHECK(q.set_expected(6).has_value());
    CHECK_FALSE(q.set_expected(2).has_value());
    s = q.status();
    CHECK(s.expected_votes == 2);
    CHECK(s.quorum == 2);
    CHECK(s.quorate);
    CHECK(s.flags.override_expected);
    s = q.update(nodes, {1, 2, 3, 4, 5}, 2);
    CHECK_FALSE(s.flags.override_expected);
    CHECK(s.expected_votes == 5);
    // Everyone present: nothing to override (it would end at once), refused.
    auto pointless = q.set_expected(5);
    REQUIRE(pointless);
    CHECK(pointless->find("nothing to override") != std::string::npos);
    CHECK_FALSE(q.status().flags.override_expected);
}

TEST_CASE("an override releases wait_for_all, as corosync-quorumtool -e does") {
    SUBCASE("wait_for_all, two of three nodes back after a full stop") {
        Options o;
        o.wait_for_all = true;
        Votequorum q(o);
        std::vector<Node> nodes = {{1, 1}, {2, 1}, {3, 1}};
        auto s = q.update(nodes, {1, 2}, 0);
        REQUIRE(s.waiting_for_all);
        CHECK_FALSE(q.set_expected(2).has_value());
        s = q.status();
        CHECK(s.quorate);
        CHECK_FALSE(s.waiting_for_all);
        // Node 3 back: the override ends, quorum stays.
        CHECK(q.update(nodes, {1, 2, 3}, 1).quorate);
        CHECK_FALSE(q.status().flags.override_expected);
    }
    SUBCASE("two_node restarted without its peer") {
        Options o;
        o.two_node = true;
        Votequorum q(o);
        std::vector<Node> two = {{1, 1}, {2, 1}};
        REQUIRE_FALSE(q.update(two, {1}, 0).quorate);
        CHECK_FALSE(q.set_expected(1).has_value());
        CHECK(q.status().quorate);
    }
}

TEST_CASE("option validation") {
    Options o;
    o.last_man_standing = true;
    CHECK(validate(o, {{1, 2}, {2, 1}}).find("one vote per node") != std::string::npos);
    Options l;
    l.auto_tie_breaker = TieBreaker::list;
    CHECK_FALSE(validate(l, {{1, 1}}).empty());
    CHECK(validate({}, {{1, 3}}).empty());
}
