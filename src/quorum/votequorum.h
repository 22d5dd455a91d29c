// Quorum with votequorum semantics (DESIGN.md §7; ../shared/reference/corosync.md §4), pure:
// no clock (time enters as `now`), no I/O; the caller feeds membership changes and timer
// fires and reads the result.
//
// Vocabulary (as corosync-quorumtool prints it):
//   configured expected  sum of the votes of the node list in the replicated state
//   expected votes       what quorum is computed from: configured, unless lowered by
//                        last_man_standing or by an operator override (`conclavectl expected`)
//   total votes          votes of the current members that are in the node list (a member
//                        outside the node list may be on the ring but has no vote)
//   quorum               ⌊expected/2⌋ + 1, or 1 for a two_node cluster of two nodes
//
// Rules (votequorum):
//   * quorum is never lowered implicitly: only last_man_standing (after its window, with one
//     vote per node) and an explicit override lower expected votes; both come back up as
//     members return (an override is cleared when the whole node list is present again)
//   * wait_for_all: after start, not quorate until every configured vote was present at
//     once; armed again whenever quorum is lost
//   * two_node (a node list of exactly two nodes): quorum is 1, and wait_for_all is implied.
//     Both halves of a split are then quorate: two_node relies on fencing, as in Corosync
//   * auto_tie_breaker: in a split into exact halves, the half holding the tie-breaker node
//     (lowest id, highest id, or the first node of a list that is in the node list) is
//     quorate
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace conclave::quorum {

using NodeId = std::uint32_t;
using Micros = std::uint64_t;

struct Node {
    NodeId id = 0;
    std::uint32_t votes = 1;
};

enum class TieBreaker { off, lowest, highest, list };

struct Options {
    bool two_node = false;
    bool wait_for_all = false;
    bool last_man_standing = false;
    Micros last_man_standing_window_us = 10'000'000;
    TieBreaker auto_tie_breaker = TieBreaker::off;
    std::vector<NodeId> tie_breaker_nodes;  // for TieBreaker::list, in priority order
};

struct Flags {
    bool quorate = false;
    bool two_node = false;  // in force: option set and the node list has exactly two nodes
    bool wait_for_all = false;
    bool last_man_standing = false;
    bool auto_tie_breaker = false;
    bool override_expected = false;
};

struct Status {
    std::uint32_t configured_expected = 0;
    std::uint32_t expected_votes = 0;
    std::uint32_t highest_expected = 0;
    std::uint32_t total_votes = 0;
    std::uint32_t quorum = 0;
    bool quorate = false;
    bool waiting_for_all = false;  // wait_for_all still holds quorum back
    std::uint32_t lms_unsettled = 0;  // unsettled last_man_standing lowerings (Agreed::lms_doubts)
    Flags flags;
    std::optional<Micros> lms_deadline;  // arm a timer; call on_timer at this time
};

// The options' own consistency (e.g. last_man_standing needs one vote per node).
// Empty when usable, else what is wrong.
std::string validate(const Options& options, const std::vector<Node>& node_list);

class Votequorum {
public:
    explicit Votequorum(Options options) : options_(std::move(options)) {}

    // The node list (replicated state) or the ring membership changed. `ring_seq`: the
    // regular configuration's ring seq, which dates a change of last_man_standing's set.
    Status update(const std::vector<Node>& node_list, const std::vector<NodeId>& members, Micros now,
                  std::uint64_t ring_seq = 0);
    // The last_man_standing window timer fired (lowers at once; the node agrees on it
    // through the ring instead, lower_expected()).
    Status on_timer(Micros now);
    // `conclavectl expected N`: lowers expected votes on this partition. Refused (with the
    // reason) below the current total votes, above the configured expected votes, and
    // when the whole node list is present (an override ends then).
    std::optional<std::string> set_expected(std::uint32_t expected);

    const Status& status() const { return status_; }
    const Options& options() const { return options_; }
    void set_options(Options options) { options_ = std::move(options); }

    // What votequorum keeps per node but conclave must agree on within a configuration,
    // because every member of it must make the same apply decision (DESIGN.md §6.1): each
    // member carries its own in its sync state; the configuration uses merge() of all.
    // A last_man_standing set: its members and the ring seq that made it.
    struct LmsSet {
        std::uint64_t seq = 0;
        std::vector<NodeId> members;  // ascending
        auto operator<=>(const LmsSet&) const = default;  // by seq, then members
    };
    // At most this many unsettled lowerings are carried; with as many, no new lowering
    // is started (on_lms_timer), so the list stays bounded.
    static constexpr std::size_t kMaxLmsDoubts = 8;

    struct Agreed {
        bool all_seen = false;               // wait_for_all satisfied
        // last_man_standing: the nodes whose votes make the expected votes since the last
        // lowering or raise (empty: the node list's), and the ring seq that set it.
        std::vector<NodeId> lms_members;
        std::uint64_t lms_seq = 0;
        std::uint32_t override_expected = 0; // `conclavectl expected` in force (0: none)
        // Lowerings this member delivered only in a transitional configuration: whether
        // any member delivered them in the regular one (and lowered) is unknown, so until
        // a newer set settles them a partition is quorate only with a majority of each of
        // these sets too (lower_expected_unsettled).
        std::vector<LmsSet> lms_doubts;
        bool operator==(const Agreed&) const = default;
    };
    Agreed agreed() const;
    // Replaces the agreed part (call update() afterwards).
    void restore(const Agreed& a);
    // all_seen if any member has seen everyone (a configuration with a member from a
    // running cluster is not a fresh start); the lowest override; the newest
    // last_man_standing set (the highest ring seq).
    static Agreed merge(const std::vector<Agreed>& members);
    // last_man_standing's window passed in the regular configuration of ring `ring_seq`,
    // whose members were `ring_members`: expected votes become the votes of those that
    // count, agreed by all of them at the same point of the total order (also a member
    // that delivers it in the transitional configuration after that ring).
    //
    // Why a set and not just a number (Corosync keeps a number): with {1,2,3} of 5 left
    // and the window passed, expected is 3; if {1,2} and {3,4,5} then split, {1,2} holds
    // 2 of 3 and {3,4,5} 3 of the node list's 5, and both would be quorate. With the set,
    // only votes of its members count while it is in force: {3,4,5} holds 1 of {1,2,3}.
    // A partition that holds a majority of the set and more nodes makes them the set
    // (a raise); the whole node list present ends it. Each new set thus overlaps a
    // majority of the one before, and at most one partition is quorate at a time.
    Status lower_expected(std::uint32_t expected, const std::vector<NodeId>& ring_members, std::uint64_t ring_seq,
                          Micros now);
    // The same message delivered in the transitional configuration after that ring.
    // EVS says only this: if a member delivered it in the regular configuration, every
    // member of the ring received it. If none did, those that deliver it are just the
    // parts that happened to receive it, and the rest never lower. So a member that
    // delivers it here cannot take it (a part of the ring that lowered alone could be
    // quorate next to the rest, which did not) nor drop it (members that delivered it in
    // the regular configuration lowered): the lowering is unsettled. Quorum then needs a
    // majority of the set in force and of the lowered set alike, which both kinds of
    // member agree on; a newer set (the next lowering, a raise, everyone back) settles it.
    Status lower_expected_unsettled(std::uint32_t expected, const std::vector<NodeId>& ring_members,
                                    std::uint64_t ring_seq, Micros now);
    std::size_t unsettled() const { return lms_doubts_.size(); }

private:
    Status compute(Micros now);
    std::vector<NodeId> lms_from(const std::vector<NodeId>& counted) const;
    void set_lms(const std::vector<NodeId>& counted);
    // A majority of `set`'s votes present (or half with the tie-breaker).
    bool holds_majority(const std::vector<NodeId>& set) const;
    void settle_doubts();
    // Whether the set made at `seq` of `members` settles the unsettled lowering `d`.
    static bool settles(std::uint64_t seq, const std::vector<NodeId>& members, const LmsSet& d) {
        return d.seq < seq || (d.seq == seq && d.members == members);
    }
    bool holds_tie_breaker() const;

    Options options_;
    std::vector<Node> node_list_;
    std::vector<NodeId> members_;
    bool all_seen_ = false;                  // wait_for_all satisfied
    std::vector<NodeId> lms_members_;  // sorted; empty: no lowering in force
    std::uint64_t lms_seq_ = 0;
    std::vector<LmsSet> lms_doubts_;  // ascending seq; see Agreed::lms_doubts
    std::uint64_t ring_seq_ = 0;
    std::optional<Micros> lms_deadline_;
    std::optional<std::uint32_t> override_;
    Micros last_now_ = 0;
    Status status_;
};

}  // namespace conclave::quorum
