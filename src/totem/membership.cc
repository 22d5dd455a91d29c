// GATHER and COMMIT (Totem TOCS'95 §4.3, §4.4; DESIGN.md §5 "Membership", "Faster
// failover"). See membership.h for the join/consensus rules.
#include <algorithm>
#include <cstdio>

#include "totem/check.h"
#include "totem/ring.h"

namespace conclave::totem {

namespace wt = wire::totem;

constexpr std::size_t kAbandonedKept = 8;
// How long the joins that fail this node are collected before it says whom it gave up on.
constexpr Micros kGiveUpCoalesceUs = 2'000;

std::string Ring::describe(const NodeSet& s) const {
    std::string out = "[";
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i) out += ' ';
        out += std::to_string(s[i]);
    }
    return out + "]";
}

// Entry into GATHER from any state (Totem §4.3). The proc set starts from what we
// knew: the installed ring's members (OPERATIONAL), or the sets of the gather that led to
// an abandoned COMMIT/RECOVERY. The old ring's state is kept untouched: it is what
// RECOVERY will re-send.
void Ring::enter_gather(const std::string& reason, Micros now) {
    log(reason);
    if (state_ == State::operational) {
        gather_.proc = set_union(installed_->members, {config_.self});
        gather_.fail.clear();
    } else if (state_ == State::commit || state_ == State::recovery) {
        gather_.proc = set_union(gather_.proc, forming_->members);
        abandoned_.push_back(forming_->id);
        if (abandoned_.size() > kAbandonedKept) abandoned_.erase(abandoned_.begin());
        forming_.reset();
        to_resend_.clear();
        install_seq_.reset();
        first_token_sent_ = false;
    }
    if (installed_) {
        installed_->held.reset();
        installed_->last_sent_token.clear();
        installed_->last_sent_seq.reset();
    }
    insert_node(gather_.proc, config_.self);
    state_ = State::gather;
    gather_.joins.clear();
    gather_.consensus_expiries = 0;
    gather_.agreed_expiries = 0;
    // No singleton ring before one consensus expiry: fail sets are merged by union, so
    // joins still in flight from an earlier round can fail everyone at once, and an instant
    // singleton ring restarts the round for every node that hears of it (a livelock at six
    // nodes). A node that is really alone loses one consensus timeout.
    gather_.wait_for_others = true;
    waiting_for_token_ = false;
    ++stats_.gathers;
    cancel_all_timers();
    send_join(now);
    arm(TimerId::join, now + config_.join_interval_us);
    arm(TimerId::consensus, now + config_.consensus_us);
    // No consensus check here: whatever made us gather (a join, a foreign ring) is
    // merged in first; the check follows that, a join or the consensus timer.
}

void Ring::send_join(Micros now) {
    (void)now;
    wt::Join j;
    j.header = {installed_ ? installed_->id : wt::RingId{}, config_.self};
    j.ring_seq = highest_ring_seq_;
    j.proc = gather_.proc;
    j.fail = gather_.fail;
    wire::Bytes b;
    wt::encode(j, b);
    multicast(std::move(b));
    ++stats_.joins_sent;
}

// A packet of a ring that is not ours (Totem §4.1). Packets of an older ring than ours
// are stale copies still in flight and ignored; anything else means another ring can
// hear us: merge. The lower ring reacts to the higher one's packets and its join then
// pulls the higher one in, so one side noticing is enough.
void Ring::on_foreign(NodeId from, const wt::RingId& id, const char* what, Micros now) {
    const std::uint64_t mine = installed_ ? installed_->id.seq : 0;
    if (id.seq < mine || (forming_ && id.seq < forming_->id.seq)) {
        ++stats_.stale;
        return;
    }
    ++stats_.foreign_ring;
    if (config_.test_hooks.no_merge) return;
    // As for a non-member's join (on_join): not before every member has installed the
    // ring. Members still in RECOVERY take the gather for a member's change of mind and
    // start over; when both rings of a split hear each other just as they form, each
    // cut the other's RECOVERY short at every round (7 nodes, conclave-sim seed 60134:
    // 28,000 rings in 15 s). The other ring's packets keep coming (merge-detect, joins).
    if (state_ == State::operational && !installed_->settled) {
        ++stats_.stale;
        return;
    }
    if (state_ == State::operational) {
        char b[128];
        std::snprintf(b, sizeof b, "%s of ring %x.%llx from node %u: merging", what, id.rep,
                      static_cast<unsigned long long>(id.seq), from);
        enter_gather(b, now);
    } else if (state_ != State::gather) {
        return;  // COMMIT/RECOVERY: finish first, merge afterwards
    }
    if (contains(gather_.fail, from) || gather_.proc.size() >= wt::kMaxMembers) return;
    if (insert_node(gather_.proc, from)) {
        send_join(now);
        arm(TimerId::consensus, now + config_.consensus_us);
    }
}

void Ring::on_join(NodeId from, const wt::Join& j, Micros now) {
    if (state_ == State::operational) {
        const bool member = installed_->is_member(from);
        // A member's join sent before it installed our ring is stale (Corosync does the same).
        if (member && j.ring_seq < installed_->id.seq) {
            ++stats_.stale;
            return;
        }
        if (config_.test_hooks.no_merge && !member) return;
        // A non-member's join waits (it is sent again every join interval) until the ring
        // is installed everywhere: members still in RECOVERY would take the gather that
        // follows for a member's change of mind and start over, and on a large ring whose
        // recovery spans several join intervals the merge never ends (conclave-sim).
        if (!member && !installed_->settled) {
            ++stats_.stale;
            return;
        }
        // A non-member that gave up on us, or on any of our members, would split this ring
        // to merge: it forms its own ring first (which empties its fail set) and merges then.
        if (!member && !set_intersection(j.fail, installed_->members).empty()) return;
        enter_gather("join from node " + std::to_string(from) + ", forming a new ring", now);
    } else if (state_ == State::commit || state_ == State::recovery) {
        // A member of the ring being formed that gathers with other sets than the
        // agreed ones never took the commit token, or gave up on it (Corosync: "join
        // during commit"): the ring cannot form. Joins agreeing with the members are
        // copies from before the agreement, still in flight. Non-members wait for the
        // next merge.
        const std::uint64_t old_seq = installed_ ? installed_->id.seq : 0;
        const bool moved_past = j.ring_seq >= forming_->id.seq;
        const bool disagrees = set_minus(j.proc, j.fail) != forming_->members && j.ring_seq >= old_seq;
        if (!forming_->is_member(from) || !(moved_past || disagrees)) {
            ++stats_.stale;
            return;
        }
        enter_gather("join from node " + std::to_string(from) + " during " + state_name(state_) + ", forming again",
                     now);
    }
    CONCLAVE_CHECK(state_ == State::gather);
    highest_ring_seq_ = std::max(highest_ring_seq_, j.ring_seq);
    if (contains(gather_.fail, from)) return;
    if (contains(j.fail, config_.self)) {
        // It gave up on us: we cannot be in one ring, so we give up on it (Totem §4.3).
        // Told in one join a moment later, not one per sender: a node that resumes after
        // a pause reads the joins of a round that failed it all at once, and a join naming
        // only the first few of them would make the others fail each other (a node that
        // hears fail [A] from us fails A): at nine nodes the cluster then split again at
        // every merge. A join that names them all only makes each give up on us.
        if (contains(gather_.proc, from) && insert_node(gather_.fail, from)) {
            const auto i = static_cast<std::size_t>(TimerId::join);
            const Micros soon = now + kGiveUpCoalesceUs;
            if (!timer_armed_[i] || timer_deadline_[i] > soon) arm(TimerId::join, soon);
            check_consensus(now);
        }
        return;
    }
    NodeSet proc = set_union(set_union(gather_.proc, j.proc), {from});
    NodeSet fail = set_union(gather_.fail, j.fail);
    if (proc.size() > wt::kMaxMembers) return;
    const bool grew = proc.size() > gather_.proc.size();
    const bool changed = grew || fail != gather_.fail;
    gather_.proc = std::move(proc);
    gather_.fail = std::move(fail);
    gather_.joins[from] = GatherState::View{j.proc, j.fail};
    if (grew) {
        // New candidates need time to answer.
        gather_.consensus_expiries = 0;
        arm(TimerId::consensus, now + config_.consensus_us);
    }
    if (changed) send_join(now);
    check_consensus(now);
}

void Ring::on_leave(NodeId from, Micros now) {
    const bool member = (installed_ && installed_->is_member(from)) || (forming_ && forming_->is_member(from));
    if (!member && !contains(gather_.proc, from)) return;
    if (state_ != State::gather) {
        enter_gather("node " + std::to_string(from) + " left the ring", now);
        gather_.wait_for_others = false;  // it said so itself: no need to wait for it
    } else if (!contains(gather_.fail, from)) {
        log("node " + std::to_string(from) + " left the ring");  // once: a leave is sent more than once
    }
    insert_node(gather_.proc, from);
    if (insert_node(gather_.fail, from)) send_join(now);
    check_consensus(now);
}

void Ring::on_consensus_timeout(Micros now) {
    ++gather_.consensus_expiries;
    gather_.wait_for_others = false;
    const NodeSet candidates = gather_.candidates();
    if (candidates.size() > 1 && gather_.consensus(config_.self)) {
        // Agreement, yet the lowest candidate's commit token has not come. It may still be
        // on its way (a first pass takes up to a token retransmission per hop, and a copy
        // refused while my sets were still moving is sent again), or its sender may be in
        // COMMIT and silent until its token timeout: wait for both, twice the first pass
        // and token_loss_us. Past that, the joins that agreed may be old ones, from nodes
        // that have formed a ring without me since (and ignore my joins while I give up
        // on any of their members). Forget them, as Corosync resets its consensus list:
        // who still gathers with me answers within a join interval, the next expiry
        // fails the rest.
        const Micros first_pass = static_cast<Micros>(candidates.size()) * config_.token_retransmit_us;
        const Micros patience = std::max(2 * first_pass, config_.token_loss_us);
        if (++gather_.agreed_expiries * config_.consensus_us >= patience) {
            gather_.agreed_expiries = 0;
            gather_.joins.clear();
            send_join(now);
        }
        arm(TimerId::consensus, now + config_.consensus_us);
        return;
    }
    NodeSet failed;
    for (NodeId n : candidates) {
        if (n == config_.self) continue;
        auto it = gather_.joins.find(n);
        const bool silent = it == gather_.joins.end();
        const bool disagrees = !silent && (it->second.proc != gather_.proc || it->second.fail != gather_.fail);
        // First expiry: only the silent are failed (live nodes answer within a join
        // interval or two). Later expiries: the paper's rule, everyone not agreeing.
        if (silent || (disagrees && gather_.consensus_expiries >= 2)) failed.push_back(n);
    }
    if (!failed.empty()) {
        log("consensus timeout: no agreement from " + describe(failed) + ", excluding");
        gather_.fail = set_union(gather_.fail, failed);
        send_join(now);
    }
    arm(TimerId::consensus, now + config_.consensus_us);
    check_consensus(now);
}

void Ring::check_consensus(Micros now) {
    if (state_ != State::gather) return;
    const NodeSet members = gather_.candidates();
    if (members.size() == 1 && gather_.wait_for_others) return;
    if (!gather_.consensus(config_.self)) return;
    if (members.front() != config_.self) return;  // the lowest builds the commit token
    create_commit_token(now);
}

// Totem §4.4: the new ring id is {lowest member, highest known seq + 4}.
void Ring::create_commit_token(Micros now) {
    const NodeSet members = gather_.candidates();
    std::uint64_t seq = highest_ring_seq_;
    if (installed_) seq = std::max(seq, installed_->id.seq);
    wt::CommitToken c;
    c.header = {{config_.self, seq + 4}, config_.self};
    c.members = members;
    c.entries.resize(members.size());
    ++stats_.commit_tokens;
    enter_commit(std::move(c), now);
}

void Ring::on_commit_token(wt::CommitToken c, Micros now) {
    const wt::RingId id = c.header.ring_id;
    if (!contains(c.members, config_.self) || c.entries.size() != c.members.size() || id.rep != c.members.front())
        return;
    const std::size_t me = static_cast<std::size_t>(
        std::lower_bound(c.members.begin(), c.members.end(), config_.self) - c.members.begin());
    switch (state_) {
        case State::gather:
            // First pass: my turn, the members are the ones I agreed on, the ring is new,
            // and not a round I left already: its predecessors may retransmit its first
            // pass long after every member gave it up, and a node that entered it again
            // would sit in COMMIT, deaf to the next round, until its token timeout (a
            // livelock of large rings in conclave-sim).
            if (c.filled == me && c.members == gather_.candidates() &&
                id.seq > (installed_ ? installed_->id.seq : 0) &&
                std::find(abandoned_.begin(), abandoned_.end(), id) == abandoned_.end())
                enter_commit(std::move(c), now);
            break;
        case State::commit:
            // Second pass: every entry filled, we can compute the recovery.
            if (id == forming_->id && c.filled == c.members.size()) {
                enter_recovery(c, now);
                forward_commit_token(std::move(c), now);
            }
            break;
        case State::recovery:
            // The rep: the second pass came back, everyone is in RECOVERY: start the token.
            // (A copy of the first pass, retransmitted late, has an older token_seq.)
            if (id == forming_->id && config_.self == forming_->rep() && !first_token_sent_ &&
                c.token_seq > commit_.token_seq) {
                first_token_sent_ = true;
                cancel(TimerId::token_retransmit);
                forming_->last_sent_token.clear();
                originate_token(*forming_, now);
            }
            break;
        default:
            break;
    }
}

// COMMIT entry (Totem §4.4): fill my entry with my old ring's state, persist the new
// ring seq BEFORE using it, and pass the token on.
void Ring::enter_commit(wt::CommitToken c, Micros now) {
    const std::size_t me = c.filled;
    CONCLAVE_CHECK(me < c.members.size() && c.members[me] == config_.self);
    wt::CommitEntry& e = c.entries[me];
    if (installed_) {
        const ReceiveWindow& w = installed_->window;
        e.old_ring_id = installed_->id;
        e.old_aru = w.my_aru();
        e.old_high = w.high();
        e.high_delivered = w.delivered();
        e.old_safe = w.safe_point() ? *w.safe_point() : w.base() - 1;
    }
    ++c.filled;
    const wt::RingId id = c.header.ring_id;
    highest_ring_seq_ = std::max(highest_ring_seq_, id.seq);
    durable_->store_ring_seq(highest_ring_seq_);
    cancel_all_timers();
    state_ = State::commit;
    forming_ = std::make_unique<RingInstance>(id, c.members, config_.self, config_);
    first_token_sent_ = false;
    arm(TimerId::token_loss, now + config_.token_loss_us);
    forward_commit_token(std::move(c), now);
}

void Ring::forward_commit_token(wt::CommitToken c, Micros now) {
    c.header.sender = config_.self;
    ++c.token_seq;
    if (forming_->successor == config_.self) {  // a singleton ring: the next pass is mine
        on_commit_token(std::move(c), now);
        return;
    }
    commit_ = c;
    forming_->last_sent_token.clear();
    wt::encode(c, forming_->last_sent_token);
    CONCLAVE_CHECK(forming_->last_sent_token.size() <= std::max(frame_budget(), wt::kMaxCommitTokenSize));
    effects_.unicasts.push_back(Unicast{forming_->successor, forming_->last_sent_token});
    arm(TimerId::token_retransmit, now + config_.token_retransmit_us);
}

}  // namespace conclave::totem
