// node/: see node.h for the rules. This file is the whole state machine: requests,
// ordered apply, the sync after every regular configuration, and acknowledgements.
#include "node/node.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace conclave::node {

const char* phase_name(Phase p) {
    switch (p) {
        case Phase::none: return "none";
        case Phase::syncing: return "syncing";
        case Phase::synced: return "synced";
    }
    return "?";
}

namespace {

std::string head_text(const store::Head& h) {
    return "(" + std::to_string(h.epoch) + ", " + std::to_string(h.version) + ", " + store::hex(h.hash).substr(0, 12) + ")";
}

bool same_head(const store::Head& a, const store::Head& b) {
    return a.epoch == b.epoch && a.version == b.version && a.hash == b.hash;
}

bool meta_op(store::Op op) {
    return op == store::Op::genesis || op == store::Op::node_add || op == store::Op::node_remove ||
           op == store::Op::node_votes || op == store::Op::quorum_set || op == store::Op::totem_set ||
           op == store::Op::limits_set;
}

bool node_list_op(store::Op op) {
    return op == store::Op::node_add || op == store::Op::node_remove || op == store::Op::node_votes;
}

// A metadata change that quorum depends on (expected votes, options), as opposed to the
// ring settings and the cluster limits.
bool quorum_op(store::Op op) {
    return op == store::Op::genesis || node_list_op(op) || op == store::Op::quorum_set;
}


}  // namespace

quorum::Options quorum_options(const store::QuorumSettings& q) {
    quorum::Options o;
    o.two_node = q.two_node;
    o.wait_for_all = q.wait_for_all;
    o.last_man_standing = q.last_man_standing;
    o.last_man_standing_window_us = std::uint64_t{q.last_man_standing_window_ms} * 1000;
    o.auto_tie_breaker = static_cast<quorum::TieBreaker>(q.auto_tie_breaker);
    o.tie_breaker_nodes = q.tie_breaker_nodes;
    return o;
}

std::vector<quorum::Node> quorum_nodes(const store::Meta& m) {
    std::vector<quorum::Node> v;
    for (const auto& n : m.nodes) v.push_back({n.id, n.votes});
    return v;
}

namespace {

// `v` decides quorum of `members` under `meta`'s node list and options, in ring `seq`.
quorum::Status decide_quorum(quorum::Votequorum& v, const store::Meta& meta, const std::vector<NodeId>& members,
                             std::uint64_t seq) {
    v.set_options(quorum_options(meta.quorum));
    return v.update(quorum_nodes(meta), members, 0, seq);
}

}  // namespace

Node::Node(Config config, store::Head head, store::Meta meta, SubmitFn submit, Bugs bugs)
    : config_(config), bugs_(bugs), submit_(std::move(submit)), durable_(head), meta_(std::move(meta)) {
    next_version_ = durable_.version + 1;
    next_request_ = config_.request_base;
    vq_.set_options(quorum_options(meta_.quorum));
    if (!meta_.totem.empty()) effects_.totem_settings = meta_.totem;
}

Effects Node::take_effects() {
    Effects e = std::move(effects_);
    effects_ = Effects{};
    return e;
}

// ---- Requests ----

void Node::submit(std::uint64_t tag, store::Transition t) {
    t.origin = config_.self;
    t.request = ++next_request_;
    if (const char* why = store::validate(t)) {
        // Every replica's decoder would drop it, and the request would never be answered.
        effects_.replies.push_back({tag, EINVAL, 0, std::string("malformed request: ") + why});
        return;
    }
    if (t.op == store::Op::genesis && !meta_.empty()) {
        effects_.replies.push_back({tag, EEXIST, 0,
                                    "this node already belongs to cluster " + store::hex(meta_.cluster_id)});
        return;
    }
    if (phase_ == Phase::synced && !awaiting_install_ && !quorate_ &&
        !(t.op == store::Op::genesis && meta_.empty())) {
        std::string why = meta_.empty()
                              ? "this node has no cluster state yet: run `conclavectl create` on one node, then "
                                "`conclavectl node add` there for the others"
                              : not_quorate_text();
        effects_.replies.push_back({tag, EROFS, 0, why});
        return;
    }
    if (node_list_op(t.op) && last_node_list_version_ > ring_watermark_) {
        // Single-server changes (DESIGN.md §6.6): the previous change, from any node, must
        // be durable on every member first.
        effects_.replies.push_back({tag, EBUSY, 0,
                                    "the node list change at version " + std::to_string(last_node_list_version_) +
                                        " is not yet durable on every member: node list changes go one at a time"});
        return;
    }
    if (node_list_op(t.op))
        for (const auto& [req, p] : pending_)
            if (node_list_op(p.t.op)) {
                effects_.replies.push_back({tag, EBUSY, 0,
                                            "another node list change from this node is still in progress: "
                                            "node list changes go one at a time"});
                return;
            }
    if (t.op == store::Op::node_votes) {
        // As votequorum refuses a votes change whose quorum would exceed the votes
        // present: the partition that makes it would stop at once, read-only. (A node
        // add may, knowingly: the new node is started next; conclavectl(8).)
        std::vector<quorum::Node> after = quorum_nodes(meta_);
        for (auto& n : after)
            if (n.id == t.node_id) n.votes = t.votes;
        quorum::Votequorum trial = vq_;
        const quorum::Status& st = trial.update(after, members_, 0, ring_.seq);
        if (!st.quorate) {
            effects_.replies.push_back(
                {tag, EINVAL, 0,
                 "refused: this partition would lose quorum (" + std::to_string(st.total_votes) + " of " +
                     std::to_string(st.expected_votes) + " expected votes, quorum " + std::to_string(st.quorum) +
                     "); start the missing nodes first, or give fewer votes"});
            return;
        }
    }
    Pending p;
    p.tag = tag;
    p.t = t;
    pending_.emplace(t.request, std::move(p));
    send(MsgTransition{std::move(t)});
}

void Node::send(const Message& m) {
    wire::Bytes bytes;
    encode(m, bytes);
    outbox_.emplace_back(std::move(bytes), totem::Guarantee::safe);
    pump();
}

void Node::pump() {
    while (!outbox_.empty()) {
        auto& [bytes, g] = outbox_.front();
        auto r = submit_(bytes, g);
        if (r.status == totem::SubmitStatus::try_again) return;
        if (r.status == totem::SubmitStatus::too_large) {
            // Only a transition can be this large (sync messages are bounded): its
            // request fails, nothing else is affected.
            auto m = decode(bytes);
            if (m && std::holds_alternative<MsgTransition>(*m)) {
                fail_pending(std::get<MsgTransition>(*m).t.request, EFBIG,
                             "the request is larger than a ring message may be");
            } else {
                log("a state message was too large for the ring and was dropped");
            }
        }
        outbox_.pop_front();
    }
}

void Node::fail_pending(std::uint64_t request, int err, const std::string& why) {
    auto it = pending_.find(request);
    if (it == pending_.end()) return;
    effects_.replies.push_back({it->second.tag, err, 0, why});
    pending_.erase(it);
}

// ---- Quorum ----

std::string Node::not_quorate_text() const {
    const quorum::Status& st = vq_.status();
    return "this partition is not quorate (" + std::to_string(st.total_votes) + " of " +
           std::to_string(st.expected_votes) + " expected votes, quorum " + std::to_string(st.quorum) +
           (st.waiting_for_all ? "; waiting for all nodes (wait_for_all): see conclavectl(8), expected" : "") + ")";
}

void Node::evaluate_quorum(const char* why) {
    const bool before = quorate_;
    const bool override_before = vq_.agreed().override_expected != 0;
    const quorum::Status st = decide_quorum(vq_, meta_, members_, ring_.seq);
    if (override_before && !st.flags.override_expected)
        log("the expected-votes override ended: every node of the node list is present again (" +
            std::to_string(st.total_votes) + " of " + std::to_string(st.configured_expected) + " votes)");
    quorate_ = st.quorate || (config_.local && !meta_.empty());
    if (bugs_.apply_inquorate_transitional && transitional_) quorate_ = true;
    // last_man_standing's window runs (from 0: the core has no clock; the driver arms it).
    if (st.lms_deadline) effects_.lms_timer_us = *st.lms_deadline;
    if (before != quorate_ && phase_ == Phase::synced)
        log(std::string(quorate_ ? "quorate" : "not quorate") + " (" + why + "): " + std::to_string(st.total_votes) +
            " of " + std::to_string(st.expected_votes) + " expected votes, quorum " + std::to_string(st.quorum) +
            (st.waiting_for_all ? ", waiting for all nodes (wait_for_all)" : "") +
            (st.flags.override_expected ? ", expected votes overridden by an operator" : ""));
}

bool Node::quorate() const { return phase_ == Phase::synced && quorate_ && !awaiting_install_; }

// ---- Ring events ----

void Node::on_event(const totem::Event& e) {
    if (const auto* d = std::get_if<totem::Delivery>(&e)) {
        on_delivery(*d);
    } else {
        on_config(std::get<totem::ConfigChange>(e));
    }
}

void Node::on_delivery(const totem::Delivery& d) {
    if (!is_state_message(d.payload)) return;  // a process-group message
    delivery_after_hole_ = d.after_hole;
    auto m = decode(d.payload);
    if (!m) {
        ++malformed_;
        log("dropped a malformed state message from node " + std::to_string(d.sender));
        return;
    }
    if (d.guarantee != totem::Guarantee::safe) {
        // Every state message is sent SAFE; anything else is not ours to apply.
        ++malformed_;
        log("dropped a state message from node " + std::to_string(d.sender) + " not delivered safe");
        return;
    }
    std::visit(
        [&](auto&& msg) {
            using T = std::decay_t<decltype(msg)>;
            if constexpr (std::is_same_v<T, MsgTransition>) on_transition(std::move(msg.t));
            else if constexpr (std::is_same_v<T, MsgSyncState>) on_sync_state(d.sender, std::move(msg));
            else if constexpr (std::is_same_v<T, MsgSyncPlan>) on_sync_plan(d.sender, std::move(msg));
            else if constexpr (std::is_same_v<T, MsgSyncLog>) on_sync_log(d.sender, std::move(msg));
            else if constexpr (std::is_same_v<T, MsgSyncChunk>) on_sync_chunk(d.sender, std::move(msg));
            else if constexpr (std::is_same_v<T, MsgSyncDone>) on_sync_done(d.sender, std::move(msg));
            else if constexpr (std::is_same_v<T, MsgExpected>) on_expected(d.sender, msg);
            else on_lms(d.sender, msg);
        },
        std::move(*m));
}

void Node::on_config(const totem::ConfigChange& c) {
    members_ = c.members;
    if (c.kind == totem::ConfigChange::Kind::transitional) {
        // The old ring's remaining messages are delivered in the transitional
        // configuration: every member of it delivers the same ones (EVS), so it may apply
        // them if it is quorate on its own. They keep the old ring's epoch: a member that
        // delivered one of them in the regular configuration applied it in that epoch,
        // and one transition must hash alike everywhere, or a sync takes the two copies
        // for forked histories (and reports a change that every node has as replaced).
        // What the transitional configuration cannot apply, a member that left may have
        // applied in the regular one (it learnt they were safe, the others did not
        // learn it had them): they are held as yellow for the next quorate sync.
        const bool was_quorate = phase_ == Phase::synced && !awaiting_install_ && quorate_;
        transitional_ = true;
        trans_epoch_ = c.ring_id.seq;
        yellow_open_ = false;
        if (was_quorate) {
            // An older set was resolved by this configuration's sync, or superseded by
            // what it applied (a later epoch).
            yellow_.clear();
            yellow_epoch_ = epoch_;
            yellow_base_ = next_version_ - 1;
            yellow_open_ = true;
            yellow_vq_ = vq_;  // as the regular configuration left it
            yellow_meta_ = meta_;
        }
        if (phase_ == Phase::synced && !awaiting_install_)
            evaluate_quorum("transitional configuration");
        else
            quorate_ = false;
        return;
    }
    transitional_ = false;
    yellow_open_ = false;
    yellow_round_ = false;
    left_states_.clear();
    epoch_ = c.ring_id.seq;
    ring_members_ = c.members;
    ring_ = RingRef{c.ring_id.rep, c.ring_id.seq};
    phase_ = Phase::syncing;
    quorate_ = false;
    sync_state_sent_ = false;
    states_.clear();
    source_.reset();
    plan_.reset();
    my_action_ = SyncAction::none;
    snapshot_.clear();
    snapshot_total_ = 0;
    sync_read_requested_ = false;
    sync_next_ = 0;
    // Transitions held by an unfinished sync were never applied.
    for (auto& t : held_) {
        if (t.origin != config_.self) continue;
        auto it = pending_.find(t.request);
        if (it != pending_.end()) it->second.state = Pending::State::delivered_unapplied;
    }
    held_.clear();
    ring_watermark_ = 0;
    for (const auto& [tag, value] : expected_pending_)
        effects_.replies.push_back({tag, EAGAIN, 0, "the configuration changed before the override was delivered; "
                                                    "check `conclavectl status` and run it again"});
    expected_pending_.clear();
    update_local_watermark();
    maybe_send_sync_state();
}

void Node::on_ring_watermark(std::uint64_t w) {
    ring_watermark_ = w;
    try_replies();
}

// ---- Quorum overrides ----

void Node::set_expected(std::uint64_t tag, std::uint32_t expected) {
    if (phase_ != Phase::synced || meta_.empty()) {
        effects_.replies.push_back({tag, EAGAIN, 0,
                                    meta_.empty() ? "this node has no cluster state yet"
                                                  : "the ring is forming or syncing; try again in a moment"});
        return;
    }
    // The same checks every member makes at delivery, answered here at once.
    quorum::Votequorum probe = vq_;
    if (auto why = probe.set_expected(expected)) {
        effects_.replies.push_back({tag, EINVAL, 0, *why});
        return;
    }
    expected_pending_.emplace(tag, expected);
    send(MsgExpected{ring_, expected});
}

void Node::on_expected(NodeId from, MsgExpected m) {
    if (!(m.ring == ring_) || phase_ != Phase::synced) return;
    if (transitional_ && delivery_after_hole_) return;  // as on_lms; its client gets EAGAIN
    // A member that delivered it in the regular configuration took it there.
    if (transitional_ && yellow_open_) (void)yellow_vq_.set_expected(m.expected);
    auto why = vq_.set_expected(m.expected);
    if (!why) {
        const auto& st = vq_.status();
        quorate_ = st.quorate;
        log("OPERATOR OVERRIDE: expected votes set to " + std::to_string(m.expected) + " on this partition by node " +
            std::to_string(from) + " (`conclavectl expected`); " + (quorate_ ? "quorate" : "still not quorate") +
            " with " + std::to_string(st.total_votes) + " votes. Not written to the cluster state; it ends when every "
            "node is back. Writes made under it may be replaced when partitions merge (see conclavectl(8)).");
    }
    if (from != config_.self) return;
    for (auto it = expected_pending_.begin(); it != expected_pending_.end(); ++it)
        if (it->second == m.expected) {
            effects_.replies.push_back({it->first, why ? EINVAL : 0, 0, why.value_or("")});
            expected_pending_.erase(it);
            break;
        }
    try_replies();
}

void Node::on_lms_timer() {
    const auto& st = vq_.status();
    if (phase_ != Phase::synced || transitional_ || !quorate_ || !st.lms_deadline || members_.empty() ||
        members_.front() != config_.self || vq_.unsettled() >= quorum::Votequorum::kMaxLmsDoubts)
        return;
    send(MsgLms{ring_, st.total_votes});
}

void Node::on_lms(NodeId from, MsgLms m) {
    if (!(m.ring == ring_) || phase_ != Phase::synced) return;
    // Past a hole of the old order nobody delivered it in the regular configuration (all
    // its members would have received what came before): it never counted.
    if (transitional_ && delivery_after_hole_) return;
    // A member that delivered it in the regular configuration lowered there.
    if (transitional_ && yellow_open_) yellow_vq_.lower_expected(m.expected, ring_members_, ring_.seq, 0);
    if (transitional_ && !bugs_.lms_settled_transitional) {
        // Delivered in the transitional configuration only: some members may have
        // lowered in the regular configuration, others never receive it.
        const auto& st = vq_.lower_expected_unsettled(m.expected, ring_members_, ring_.seq, 0);
        quorate_ = st.quorate;
        log("last_man_standing: the lowering of expected votes to " + std::to_string(m.expected) + " (by node " +
            std::to_string(from) + ") arrived as the configuration ended; until a later configuration settles it, "
            "quorum needs a majority of its nodes as well (" + (quorate_ ? "quorate" : "not quorate") + ")");
        return;
    }
    const auto& st = vq_.lower_expected(m.expected, ring_members_, ring_.seq, 0);
    quorate_ = st.quorate;
    log("last_man_standing: expected votes lowered to " + std::to_string(st.expected_votes) + " (by node " +
        std::to_string(from) + " after the window)");
}

// ---- Apply ----

void Node::on_transition(store::Transition t) {
    if (phase_ == Phase::syncing) {
        held_.push_back(std::move(t));
        return;
    }
    apply_transition(std::move(t));
}

void Node::apply_transition(store::Transition t) {
    const bool genesis_ok = t.op == store::Op::genesis && meta_.empty();
    // Behind yellow ones nothing is applied: they come first in the old ring's order.
    const bool behind_yellow = transitional_ && !yellow_.empty() && yellow_epoch_ == epoch_;
    const bool apply = phase_ == Phase::synced && (quorate_ || genesis_ok) && !behind_yellow;
    auto it = t.origin == config_.self ? pending_.find(t.request) : pending_.end();
    if (transitional_ && yellow_open_ && delivery_after_hole_) yellow_open_ = false;
    if (!apply && transitional_ && yellow_open_ && !bugs_.no_yellow) {
        // Only the gap-free prefix of the old order, which every member of the old ring
        // delivers alike, whatever its partition. Every kind of transition is held, or a
        // member that left after applying one would hold a history the others cannot take
        // for theirs (and the origin's retry would apply it again elsewhere). After a node
        // list or quorum option change, quorum of the old regular configuration is decided
        // again, as its members did there: the prefix ends where it was lost.
        yellow_.push_back(t);
        if (quorum_op(t.op)) follow_old_ring(t);
    }
    if (!apply) {
        if (it != pending_.end()) {
            if (transitional_ || phase_ != Phase::synced) {
                // Another partition may apply it (it is an old-ring message): the next
                // sync tells.
                it->second.state = Pending::State::delivered_unapplied;
            } else {
                // Delivered in this regular configuration only, which is not quorate:
                // nobody applies it.
                fail_pending(t.request, EROFS,
                             meta_.empty() ? "this node has no cluster state yet (conclavectl create)"
                                           : not_quorate_text());
            }
        }
        return;
    }
    const std::uint64_t version = next_version_++;
    if (it != pending_.end()) mark_applied(it->second, version);
    if (transitional_ && yellow_open_) {
        // A quorate transitional configuration applies the old order's prefix as the
        // regular one did: what it cannot apply after this is held from here.
        yellow_base_ = version;
        if (quorum_op(t.op)) follow_old_ring(t);
    }
    if (meta_op(t.op)) apply_meta(t, version);
    // Past a hole of the old order (a quorate transitional configuration), in the new
    // ring's epoch: no member applied these in the old regular configuration, and members
    // of another part of it may hold other transitions at these versions (yellow ones),
    // which a sync must not take for the same history.
    const std::uint64_t epoch = transitional_ && delivery_after_hole_ ? trans_epoch_ : epoch_;
    JobApply job;
    job.items.push_back(store::Item{epoch, std::move(t), std::nullopt});
    push_job(std::move(job));
}

// A request of this node's was scheduled to apply at `version` in this ring; its errno
// comes with the apply job's result.
void Node::mark_applied(Pending& p, std::uint64_t version) {
    p.state = Pending::State::applied;
    p.version = version;
    p.err.reset();
    p.applied_ring = ring_;
}

// The node's copy of the cluster metadata follows a metadata transition applied at
// `version`.
void Node::apply_meta(const store::Transition& t, std::uint64_t version) {
    if (store::apply_node_op(meta_, t) != 0) return;
    if (t.op == store::Op::quorum_set || t.op == store::Op::totem_set || t.op == store::Op::limits_set)
        log(std::string(t.op == store::Op::quorum_set  ? "quorum option "
                        : t.op == store::Op::totem_set ? "ring setting "
                                                       : "cluster limit ") +
            t.node_name + " = " + std::to_string(t.size) + (t.size == 0 ? " (the default)" : "") + " at version " +
            std::to_string(version));
    else
        log(std::string("node list: ") + store::op_name(t.op) + " node " + std::to_string(t.node_id) + " at version " +
            std::to_string(version));
    if (node_list_op(t.op)) last_node_list_version_ = version;
    if (t.op == store::Op::totem_set) effects_.totem_settings = meta_.totem;
    if (quorum_op(t.op)) evaluate_quorum(store::op_name(t.op));
}

void Node::push_job(Job j) {
    job_kinds_.push_back(static_cast<std::uint8_t>(j.index()));
    ++jobs_outstanding_;
    effects_.jobs.push_back(std::move(j));
}

void Node::on_job_done(JobResult r) {
    if (jobs_outstanding_ == 0) {
        effects_.stop = "internal error: a store result arrived with no job outstanding";
        return;
    }
    --jobs_outstanding_;
    job_kinds_.pop_front();
    if (auto* f = std::get_if<ResultFailed>(&r)) {
        effects_.stop = "the state store failed: " + f->error +
                        "; stopping so that this node cannot diverge (fix the disk, then restart)";
        return;
    }
    if (auto* a = std::get_if<ResultApplied>(&r)) {
        durable_ = a->head;
        for (const auto& ap : a->applied) {
            // Every member checks a node list change's durability before the next one
            // (submit's EBUSY): all of them wait for this one.
            if (ap.version == last_node_list_version_)
                for (NodeId m : members_)
                    if (m != config_.self) notify_.insert(m);
            if (ap.origin != config_.self) {
                notify_.insert(ap.origin);
                continue;
            }
            auto it = pending_.find(ap.request);
            if (it != pending_.end() && it->second.state == Pending::State::applied && it->second.version == ap.version)
                it->second.err = ap.err;
        }
    } else if (auto* in = std::get_if<ResultInstalled>(&r)) {
        durable_ = in->head;
        if (!in->discarded.empty()) {
            discarded_total_ += in->discarded.size();
            std::string what;
            std::size_t shown = 0;
            for (const auto& rec : in->discarded) {
                auto t = store::decode(rec.transition);
                if (!t || ++shown > 8) continue;
                what += std::string(shown > 1 ? ", " : "") + store::op_name(t->op) + " " +
                        (t->path.empty() ? t->node_name : t->path) + " (version " + std::to_string(rec.version) +
                        " from node " + std::to_string(t->origin) + ")";
            }
            if (in->discarded.size() > 8) what += ", ...";
            // Acknowledged ones only where two partitions could write (an override, a
            // two_node split); otherwise changes that a quorate ring applied here while
            // the rest went on without them, never acknowledged (DESIGN.md §6).
            log("sync: this node's history had forked from the cluster's; " + std::to_string(in->discarded.size()) +
                " change(s) made on this side are not in the cluster's history and were replaced (see "
                "discarded.log; a client was told of their success only if an expected-votes override or a "
                "two_node split let two partitions write): " + what);
            effects_.discarded = in->discarded;
        }
        if (awaiting_install_) {
            awaiting_install_ = false;
            // Which of my requests does the installed history hold?
            for (auto& [request, p] : pending_) {
                const std::uint64_t req = request;  // a named copy the lambda can capture
                if (p.state == Pending::State::queued) continue;
                if (p.state == Pending::State::applied && !p.recheck) continue;  // applied after the install
                p.recheck = false;
                auto f = std::find_if(in->mine.begin(), in->mine.end(),
                                      [&](const store::Applied& a) { return a.request == req; });
                if (f != in->mine.end()) {
                    p.state = Pending::State::applied;
                    p.version = f->version;
                    p.err = f->err;
                } else {
                    p.state = Pending::State::delivered_unapplied;
                }
            }
            if (phase_ == Phase::synced) resolve_pending();
        }
    } else if (auto* s = std::get_if<ResultSyncRead>(&r)) {
        if (phase_ == Phase::syncing && s->ring == ring_ && source_ == config_.self) send_sync_data(std::move(*s));
    }
    update_local_watermark();
    try_replies();
    maybe_send_sync_state();
}

// ---- Sync ----

void Node::maybe_send_sync_state() {
    if (phase_ != Phase::syncing || sync_state_sent_ || jobs_outstanding_ != 0) return;
    sync_state_sent_ = true;
    const auto a = vq_.agreed();
    MsgSyncState m{ring_, durable_, meta_, a.all_seen, a.lms_members, a.lms_seq, a.override_expected};
    m.lms_doubts = a.lms_doubts;
    if (!yellow_.empty() && durable_.version != yellow_base_) {
        log("sync: dropping " + std::to_string(yellow_.size()) + " held transition(s) of epoch " +
            std::to_string(yellow_epoch_) + ": the history here moved on from version " + std::to_string(yellow_base_));
        yellow_.clear();
    }
    if (!yellow_.empty()) {
        store::Hash h = durable_.hash;
        std::uint64_t v = durable_.version;
        for (const auto& t : yellow_) h = store::chain(h, yellow_epoch_, ++v, t);
        m.yellow_epoch = yellow_epoch_;
        m.yellow_count = static_cast<std::uint32_t>(yellow_.size());
        m.yellow_hash = h;
    }
    send(m);
}

bool Node::all_ring_states() const {
    for (NodeId id : ring_members_)
        if (!states_.count(id) && !left_states_.count(id)) return false;
    return true;
}

// A member's votequorum state as its sync state carries it.
quorum::Votequorum::Agreed Node::agreed_of(const MsgSyncState& st) {
    return {st.all_seen, st.lms_members, st.lms_seq, st.override_expected, st.lms_doubts};
}

bool Node::probe_quorate(const store::Meta& meta, const std::vector<NodeId>& members,
                         quorum::Votequorum* state) const {
    if (meta.empty()) return false;
    std::vector<quorum::Votequorum::Agreed> agreed;
    for (const auto& [id, st] : states_) agreed.push_back(agreed_of(st));
    quorum::Votequorum probe = vq_;
    probe.restore(quorum::Votequorum::merge(agreed));
    const bool quorate = decide_quorum(probe, meta, members, ring_.seq).quorate || config_.local;
    if (state) *state = std::move(probe);
    return quorate;
}

void Node::follow_old_ring(const store::Transition& t) {
    if (store::apply_node_op(yellow_meta_, t) != 0) return;  // refused alike there: no change
    if (!(decide_quorum(yellow_vq_, yellow_meta_, ring_members_, ring_.seq).quorate || config_.local))
        yellow_open_ = false;
}

void Node::apply_yellow() {
    log("sync: applying " + std::to_string(yellow_.size()) + " transition(s) delivered as the quorate configuration of epoch " +
        std::to_string(yellow_epoch_) + " ended (a member that left may have applied them in it), from version " +
        std::to_string(next_version_));
    // With the hashes they chain to, as sync-by-log items: decisions of the old ring,
    // which the store checks as it applies them.
    JobApply job;
    store::Hash h = durable_.hash;
    for (auto& t : yellow_) {
        const std::uint64_t version = next_version_++;
        h = store::chain(h, yellow_epoch_, version, t);
        if (t.origin == config_.self)
            if (auto it = pending_.find(t.request); it != pending_.end()) mark_applied(it->second, version);
        if (meta_op(t.op)) apply_meta(t, version);
        job.items.push_back(store::Item{yellow_epoch_, std::move(t), h});
    }
    yellow_.clear();
    push_job(std::move(job));
}

void Node::on_sync_state(NodeId from, MsgSyncState m) {
    if (phase_ != Phase::syncing || !(m.ring == ring_)) return;
    if (std::find(ring_members_.begin(), ring_members_.end(), from) == ring_members_.end()) return;
    const bool here = std::find(members_.begin(), members_.end(), from) != members_.end();
    (here ? states_ : left_states_).insert_or_assign(from, std::move(m));
    if (source_) return;
    // In a transitional configuration the decision is still the one the regular
    // configuration's members make (they may have ended the sync there and applied on
    // top): from every member's state, also those of members that left. Without all of
    // them nobody ended it in the regular configuration, and neither does this part: the
    // next configuration syncs.
    if (transitional_ ? !all_ring_states() : std::any_of(members_.begin(), members_.end(), [&](NodeId id) {
            return !states_.count(id);
        }))
        return;
    decide_source();
}

void Node::decide_source() {
    // States of members that left count as in the regular configuration (on_sync_state).
    for (auto& [id, st] : left_states_) states_.insert_or_assign(id, std::move(st));
    left_states_.clear();
    auto here = [&](NodeId id) { return std::find(members_.begin(), members_.end(), id) != members_.end(); };
    // Which cluster is this ring? The cluster id most members hold (empty states join
    // anyone); a tie goes to the side with the highest head.
    std::map<store::ClusterId, std::pair<std::size_t, store::Head>> clusters;
    for (const auto& [id, s] : states_) {
        if (s.meta.empty()) continue;
        auto& c = clusters[s.meta.cluster_id];
        ++c.first;
        if (c.second < s.head) c.second = s.head;
    }
    std::optional<store::ClusterId> cluster;
    std::pair<std::size_t, store::Head> best{0, {}};
    for (const auto& [cid, c] : clusters) {
        if (!cluster || c.first > best.first || (c.first == best.first && best.second < c.second)) {
            cluster = cid;
            best = c;
        }
    }
    auto belongs = [&](const MsgSyncState& s) { return s.meta.empty() || !cluster || s.meta.cluster_id == *cluster; };
    if (!meta_.empty() && cluster && meta_.cluster_id != *cluster) {
        effects_.stop = "this node's state belongs to cluster " + store::hex(meta_.cluster_id) +
                        " but the ring's members hold cluster " + store::hex(*cluster) +
                        ": refusing to join. To make this node part of that cluster, stop conclaved, remove "
                        "the store in its state directory, and start it again (it then syncs)";
        return;
    }
    // The source: the highest (epoch, version), node id breaking ties (DESIGN.md §6.4).
    const MsgSyncState* src = nullptr;
    NodeId src_id = 0;
    for (const auto& [id, s] : states_) {
        if (!belongs(s)) continue;
        bool better;
        if (!src) {
            better = true;
        } else if (bugs_.source_highest_version) {
            better = s.head.version != src->head.version ? s.head.version > src->head.version : id > src_id;
        } else {
            better = src->head < s.head || (!(s.head < src->head) && id > src_id);
        }
        if (better) {
            src = &s;
            src_id = id;
        }
    }
    if (!src) return;  // unreachable: my own state always belongs
    // Yellow transitions (MsgSyncState) count if this configuration will be quorate: the
    // source is then the member with the highest head counting them. All of them lie on
    // one order (the old ring's, gap-free), so that head's history holds every other
    // member's, and whatever a member that left applied from them.
    yellow_round_ = false;
    for (const auto& [id, s] : states_)
        if (belongs(s) && s.yellow_count != 0) yellow_round_ = true;
    if (yellow_round_) yellow_round_ = probe_quorate(src->meta, ring_members_);
    auto head_of = [&](const MsgSyncState& s) {
        if (!yellow_round_ || s.yellow_count == 0) return s.head;
        return store::Head{s.yellow_epoch, s.head.version + s.yellow_count, s.yellow_hash};
    };
    if (yellow_round_)
        for (const auto& [id, s] : states_) {
            if (!belongs(s)) continue;
            if (head_of(*src) < head_of(s) || (!(head_of(s) < head_of(*src)) && id > src_id)) {
                src = &s;
                src_id = id;
            }
        }
    const store::Head target = head_of(*src);
    // A source that left sends nothing more: who needs its data (a lagger, or anyone while
    // there are laggers) ends the sync only if that data came before it left.
    source_ = src_id;
    std::vector<Lagger> laggers;
    for (const auto& [id, s] : states_)
        if (belongs(s) && here(id) && !same_head(head_of(s), target)) laggers.push_back({id, s.head});
    // Members whose own yellow ones reach the target apply them (the source first, before
    // it reads the log for the others).
    if (yellow_round_ && states_.at(config_.self).yellow_count != 0 && same_head(head_of(states_.at(config_.self)), target))
        apply_yellow();
    if (laggers.empty()) {
        // Every member is at the target. Past the source's held ones, its state's metadata
        // is from before them: each member's own is at the target (it applied them, or
        // had them applied already).
        finish_sync(target, yellow_round_ && src->yellow_count != 0 ? meta_ : src->meta);
        return;
    }
    std::string behind;
    for (const auto& l : laggers) behind += " n" + std::to_string(l.node) + " " + head_text(l.head);
    log("sync: source node " + std::to_string(src_id) + " at " + head_text(target) + "; differing:" + behind);
    if (src_id == config_.self) {
        sync_read_requested_ = true;
        push_job(JobReadSync{ring_, std::move(laggers)});
    }
}

void Node::send_sync_data(ResultSyncRead r) {
    send(MsgSyncPlan{ring_, config_.self, durable_, r.actions});
    MsgSyncLog batch{ring_, {}};
    std::size_t bytes = 0;
    for (auto& rec : r.records) {
        bytes += rec.transition.size() + 64;
        batch.records.push_back(std::move(rec));
        if (bytes >= config_.log_batch_bytes) {
            send(batch);
            batch.records.clear();
            bytes = 0;
        }
    }
    if (!batch.records.empty()) send(batch);
    if (r.snapshot) {
        const auto& s = *r.snapshot;
        std::uint64_t off = 0;
        do {
            std::size_t n = std::min<std::size_t>(config_.chunk_bytes, s.size() - off);
            MsgSyncChunk c{ring_, s.size(), off, wire::Bytes(s.begin() + static_cast<std::ptrdiff_t>(off),
                                                             s.begin() + static_cast<std::ptrdiff_t>(off + n))};
            send(c);
            off += n;
        } while (off < s.size());
    }
    send(MsgSyncDone{ring_, durable_, meta_});
}

void Node::on_sync_plan(NodeId from, MsgSyncPlan m) {
    if (phase_ != Phase::syncing || !(m.ring == ring_) || source_ != from || plan_) return;
    my_action_ = SyncAction::none;
    for (const auto& [n, a] : m.actions)
        if (n == config_.self) my_action_ = a;
    sync_next_ = durable_.version + 1;
    sync_from_ = durable_.version;
    plan_ = std::move(m);
    if (my_action_ == SyncAction::snapshot)
        for (auto& [req, p] : pending_)
            if (p.state == Pending::State::applied) p.recheck = true;
}

void Node::on_sync_log(NodeId from, MsgSyncLog m) {
    if (phase_ != Phase::syncing || !(m.ring == ring_) || source_ != from || !plan_) return;
    if (my_action_ != SyncAction::log) return;
    JobApply job;
    for (auto& rec : m.records) {
        if (rec.version < sync_next_) continue;
        if (rec.version != sync_next_) {
            effects_.stop = "sync: the source's log skips from version " + std::to_string(sync_next_) + " to " +
                            std::to_string(rec.version);
            return;
        }
        auto t = store::decode(rec.transition);
        if (!t) {
            effects_.stop = "sync: a log record from the source does not decode: " + t.error();
            return;
        }
        if (t->origin == config_.self) {
            auto it = pending_.find(t->request);
            if (it != pending_.end()) {
                it->second.state = Pending::State::applied;
                it->second.version = rec.version;
                it->second.err = rec.err;
            }
        }
        ++sync_next_;
        job.items.push_back(store::Item{rec.epoch, std::move(t.value()), rec.hash});
    }
    if (!job.items.empty()) push_job(std::move(job));
}

void Node::on_sync_chunk(NodeId from, MsgSyncChunk m) {
    if (phase_ != Phase::syncing || !(m.ring == ring_) || source_ != from || !plan_) return;
    if (my_action_ != SyncAction::snapshot) return;
    if (m.offset != snapshot_.size() || (snapshot_total_ != 0 && m.total != snapshot_total_) ||
        m.offset + m.data.size() > m.total) {
        effects_.stop = "sync: snapshot chunks from the source do not line up";
        return;
    }
    snapshot_total_ = m.total;
    snapshot_.insert(snapshot_.end(), m.data.begin(), m.data.end());
    if (snapshot_.size() == snapshot_total_) {
        awaiting_install_ = true;
        push_job(JobInstall{std::move(snapshot_)});
        snapshot_.clear();
    }
}

void Node::on_sync_done(NodeId from, MsgSyncDone m) {
    if (phase_ != Phase::syncing || !(m.ring == ring_) || source_ != from || !plan_) return;
    if (my_action_ == SyncAction::log && sync_next_ != m.head.version + 1) {
        effects_.stop = "sync: the source's log ended at version " + std::to_string(sync_next_ - 1) +
                        ", its head is " + std::to_string(m.head.version);
        return;
    }
    if (my_action_ == SyncAction::snapshot && (snapshot_total_ == 0 || !snapshot_.empty())) {
        effects_.stop = "sync: the source finished before its snapshot was complete";
        return;
    }
    finish_sync(m.head, m.meta);
}

void Node::finish_sync(const store::Head& head, const store::Meta& meta) {
    phase_ = Phase::synced;
    // Yellow ones are resolved by a quorate sync (applied here, taken from the source, or
    // behind its history) and are stale once this node's history changed.
    if (yellow_round_ || my_action_ != SyncAction::none) yellow_.clear();
    yellow_round_ = false;
    quorum::Votequorum probe{quorum::Options{}};
    if (transitional_ && !delivery_after_hole_ && probe_quorate(meta, ring_members_, &probe)) {
        // The sync ended only in the transitional configuration, as it did for the
        // regular configuration's members (on_sync_state): one that left may have ended
        // it in the quorate regular one, and applied what follows there.
        yellow_.clear();
        yellow_epoch_ = epoch_;
        yellow_base_ = head.version;
        yellow_open_ = true;
        yellow_vq_ = std::move(probe);  // as that member starts
        yellow_meta_ = meta;
    }
    const bool totem_changed = meta.totem != meta_.totem;
    meta_ = meta;
    if (totem_changed) effects_.totem_settings = meta_.totem;
    next_version_ = head.version + 1;
    // The members' votequorum states, merged: every member starts this configuration with
    // the same one, so they all make the same apply decisions.
    std::vector<quorum::Votequorum::Agreed> agreed;
    for (const auto& [id, st] : states_) agreed.push_back(agreed_of(st));
    vq_.restore(quorum::Votequorum::merge(agreed));
    evaluate_quorum("synced");
    const auto& q = vq_.status();
    std::string how;
    if (my_action_ == SyncAction::log && head.version >= sync_from_)
        how = " by log (" + std::to_string(head.version - sync_from_) + " transitions)";
    else if (my_action_ == SyncAction::snapshot)
        how = " by snapshot (" + std::to_string(snapshot_total_) + " bytes)";
    log("synced at version " + std::to_string(head.version) + " from node " + std::to_string(source_.value_or(0)) +
        how + "; " + (meta_.empty() ? std::string("no cluster yet")
                              : (quorate_ ? "quorate" : "not quorate") + std::string(" (") +
                                    std::to_string(q.total_votes) + " of " + std::to_string(q.expected_votes) +
                                    " expected votes" + (q.waiting_for_all ? ", waiting for all nodes" : "") +
                                    (q.lms_unsettled ? ", " + std::to_string(q.lms_unsettled) +
                                                           " unsettled last_man_standing lowering(s)"
                                                     : std::string()) +
                                    ")"));
    if (!awaiting_install_) resolve_pending();
    auto held = std::move(held_);
    held_.clear();
    for (auto& t : held) apply_transition(std::move(t));
    update_local_watermark();
    try_replies();
}

// Requests delivered but not applied here: the synced history has them (then they are
// answered from it), or they go out once more if this configuration is quorate.
void Node::resolve_pending() {
    std::vector<std::uint64_t> fail;
    for (auto& [req, p] : pending_) {
        if (p.state != Pending::State::delivered_unapplied) continue;
        if (quorate_ && !p.resubmitted) {
            p.resubmitted = true;
            p.state = Pending::State::queued;
            send(MsgTransition{p.t});
        } else {
            fail.push_back(req);
        }
    }
    for (auto req : fail) {
        const bool held = std::any_of(yellow_.begin(), yellow_.end(), [&](const store::Transition& t) {
            return t.origin == config_.self && t.request == req;
        });
        fail_pending(req, EROFS,
                     held ? "quorum was lost while the request was in flight: it is not applied in this partition, "
                            "and a node that left may have applied it; the first quorate configuration decides "
                            "(check the result once quorum is back)"
                     : quorate_ ? "the request was not applied after a configuration change, nor after one retry"
                                : "the request was not applied: this partition is not quorate");
    }
}

// ---- Acknowledgements ----

void Node::update_local_watermark() {
    std::uint64_t v = (phase_ == Phase::synced && !awaiting_install_) ? durable_.version : 0;
    if (v != last_local_watermark_) {
        last_local_watermark_ = v;
        effects_.local_watermark = v;
        // Several results in one round of effects: every origin they cover is told.
        effects_.watermark_notify.insert(effects_.watermark_notify.end(), notify_.begin(), notify_.end());
        notify_.clear();
    }
}

void Node::try_replies() {
    if (phase_ != Phase::synced || transitional_ || awaiting_install_) return;
    for (auto it = pending_.begin(); it != pending_.end();) {
        const Pending& p = it->second;
        // Every member of a quorate ring holds it durably. The ring may have lost quorum
        // since (a node add whose node is not there yet): the members that applied it
        // while quorate all hold it, which is what an acknowledgement promises.
        const bool ring_ok = quorate_ || p.applied_ring == ring_;
        if (ring_ok && p.state == Pending::State::applied && p.err && p.version <= ring_watermark_) {
            effects_.replies.push_back({p.tag, *p.err, p.version, ""});
            it = pending_.erase(it);
        } else {
            ++it;
        }
    }
}

}  // namespace conclave::node
