// node/: the replicated state machine's protocol side, pure (DESIGN.md §2.2, §6). It sits
// on top of one totem::Ring: it turns client requests into TRANSITION messages, decides
// from the ring's ordered events what gets applied (only SAFE deliveries in a QUORATE,
// synced configuration), runs the sync after every regular configuration, and answers
// each request once every member of the quorate ring holds it durably (the ring
// watermark). It never touches the disk: store work goes out as Jobs, executed in order
// by the driver's apply worker (jobs.h: execute()), and comes back through on_job_done().
//
// Drivers: the daemon (apply worker thread, control socket) and the simulator (jobs run
// after a simulated delay; a crash drops the jobs not yet done = "applied but not fsync'd").
//
// Configuration phases (per regular configuration of ring R):
//   syncing  after R's regular configuration: wait until my own jobs are done, multicast
//            SYNC_STATE; when every member's is delivered, the source is the member with the
//            highest (epoch, version) (node id breaks ties). If every head equals the
//            source's, the sync is over at once. Otherwise the source reads its store
//            (a read_sync job) and multicasts SYNC_PLAN, SYNC_LOG / SYNC_CHUNK, SYNC_DONE;
//            a member on the source's history applies the log records it lacks, any other
//            member installs the snapshot. Transitions delivered meanwhile wait.
//   synced   apply every delivered transition while the configuration is quorate:
//            a majority of the node list's votes are members (the full votequorum rules are
//            issue 7). A transitional configuration of a synced one is quorate on its own
//            members (EVS: every member of it delivers the same messages).
// Quorum of a configuration is computed from the node list in the replicated state as of
// that point in the total order (node ops change it as they are delivered).
//
// Requests: submit() gives EINVAL at once for a transition store::validate() refuses (it
// could not travel the ring), EROFS when the synced configuration is not quorate;
// otherwise the transition is multicast (SAFE). Its delivery assigns the version; the
// apply job's result gives the errno; the reply goes out when the ring watermark covers
// the version in a synced quorate configuration. A request delivered but not applied (the
// configuration was not quorate) waits for the next sync: if the synced history holds it
// (another partition applied it), its result there is the answer; else it is submitted
// once more if quorate, or fails with EROFS.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "node/messages.h"
#include "quorum/votequorum.h"
#include "store/store.h"
#include "store/transition.h"
#include "totem/effects.h"
#include "totem/packing.h"

namespace conclave::node {

using NodeId = std::uint32_t;

// ---- Store jobs (executed in order by the apply worker; jobs.h) ----
struct JobApply {
    std::vector<store::Item> items;
};
struct JobInstall {
    wire::Bytes snapshot;
};
struct Lagger {
    NodeId node = 0;
    store::Head head;
};
struct JobReadSync {
    RingRef ring;
    std::vector<Lagger> laggers;  // members whose head differs from mine (I am the source)
};
using Job = std::variant<JobApply, JobInstall, JobReadSync>;

struct ResultApplied {
    std::vector<store::Applied> applied;
    store::Head head;  // durable head after the batch
};
struct ResultInstalled {
    store::Head head;
    store::Meta meta;
    std::vector<store::Applied> mine;  // retained records whose origin is this node
    // Changes this node had applied that the installed history does not hold (its history
    // forked: an expected-votes override or a two_node split); reported, never silent.
    std::vector<store::LogRecord> discarded;
};
struct ResultSyncRead {
    RingRef ring;
    std::vector<std::pair<NodeId, SyncAction>> actions;
    std::vector<store::LogRecord> records;  // after the lowest log lagger's version
    std::optional<wire::Bytes> snapshot;
};
struct ResultFailed {
    std::string error;  // the store failed: the node must stop (the driver aborts)
};
using JobResult = std::variant<ResultApplied, ResultInstalled, ResultSyncRead, ResultFailed>;

// ---- Replies to clients ----
struct Reply {
    std::uint64_t tag = 0;      // the driver's handle given to submit()
    int err = 0;                // 0 or an errno (EROFS: not quorate; the transition's own errno)
    std::uint64_t version = 0;  // state version the transition got (0 if none)
    std::string why;            // for errors the node decided (not the transition's errno)
};

struct Effects {
    std::vector<Job> jobs;                         // to the apply worker, in order
    std::vector<Reply> replies;
    std::optional<std::uint64_t> local_watermark;  // give to Ring::set_local_watermark
    // With local_watermark: the origins of what it newly covers (not this node), who
    // wait for it: the ring sends them the rise at once (Ring::set_local_watermark).
    std::vector<NodeId> watermark_notify;
    std::vector<std::string> log;                  // one line per event, for the log
    // The node must not go on (its state belongs to another cluster, or its store
    // failed): the driver logs this one line and stops (the daemon exits 1).
    std::optional<std::string> stop;
    // last_man_standing: call on_lms_timer() after this many microseconds (replaces any
    // earlier request; nullopt: nothing new).
    std::optional<std::uint64_t> lms_timer_us;
    // Changes discarded by a sync (see ResultInstalled): the daemon keeps a record.
    std::vector<store::LogRecord> discarded;
    // The cluster-wide ring settings changed (totem_set applied, or a sync brought new
    // ones): the driver gives them to the ring.
    std::optional<std::map<std::string, std::uint64_t>> totem_settings;
    bool empty() const {
        return jobs.empty() && replies.empty() && !local_watermark && log.empty() && !stop && !lms_timer_us &&
               discarded.empty() && !totem_settings;
    }
};

struct Config {
    NodeId self = 0;
    // Request numbers start here (the daemon's boot epoch), so (origin, request) stays
    // unique across restarts.
    std::uint64_t request_base = 0;
    std::size_t log_batch_bytes = 256 * 1024;   // SYNC_LOG message size bound
    std::size_t chunk_bytes = 256 * 1024;       // SYNC_CHUNK size
    // Local mode (conclaved --local, pmxcfs -l): the node runs alone and every
    // configuration of a node with a cluster state is quorate.
    bool local = false;
};

// Test hooks: planted bugs the simulator's checkers must catch.
struct Bugs {
    bool apply_inquorate_transitional = false;  // apply in a transitional configuration without quorum
    bool source_highest_version = false;        // sync source by version alone, not (epoch, version)
    bool no_yellow = false;  // drop what a transitional configuration cannot apply (no yellow transitions)
    // A last_man_standing lowering delivered only in a transitional configuration counts
    // as settled (no majority of its set needed).
    bool lms_settled_transitional = false;
};

// The replicated state's quorum settings and node list, as votequorum takes them.
quorum::Options quorum_options(const store::QuorumSettings& q);
std::vector<quorum::Node> quorum_nodes(const store::Meta& m);

enum class Phase : std::uint8_t { none = 0, syncing = 1, synced = 2 };
const char* phase_name(Phase p);

class Node {
public:
    using SubmitFn = std::function<totem::SubmitResult(wire::Bytes, totem::Guarantee)>;

    // `head` and `meta`: what the store holds at start (durable).
    Node(Config config, store::Head head, store::Meta meta, SubmitFn submit, Bugs bugs = {});

    // A client request. `t.origin` and `t.request` are filled in here; the caller sets
    // `t.timestamp_us` (its wall clock). The reply comes through Effects::replies.
    void submit(std::uint64_t tag, store::Transition t);
    // Ring events, in the order the ring produced them.
    void on_event(const totem::Event& e);
    void on_ring_watermark(std::uint64_t w);
    // `conclavectl expected N`: lowers expected votes on this partition (DESIGN.md §7).
    // Refused at once (EINVAL with the reason) below the votes present or above the
    // configured expected votes; otherwise multicast and answered when delivered.
    void set_expected(std::uint64_t tag, std::uint32_t expected);
    // The timer Effects::lms_timer_us asked for fired.
    void on_lms_timer();
    // The oldest outstanding job finished.
    void on_job_done(JobResult r);
    // Offers messages the ring refused (TryAgain) again; call after the ring progressed.
    void pump();

    Effects take_effects();

    // Introspection.
    Phase phase() const { return phase_; }
    bool quorate() const;            // synced and quorate now
    bool in_quorate_config() const { return quorate_; }
    const store::Head& durable_head() const { return durable_; }
    const store::Meta& meta() const { return meta_; }
    RingRef ring() const { return ring_; }
    std::vector<NodeId> members() const { return members_; }
    std::optional<NodeId> sync_source() const { return source_; }
    std::size_t pending_requests() const { return pending_.size(); }
    std::size_t outstanding_jobs() const { return jobs_outstanding_; }
    std::uint64_t ring_watermark() const { return ring_watermark_; }
    std::string not_quorate_text() const;  // why a write gets EROFS, for its client
    // votequorum's view of the current configuration (status, flags).
    const quorum::Status& quorum_status() const { return vq_.status(); }
    std::uint64_t discarded_total() const { return discarded_total_; }
    std::uint64_t malformed() const { return malformed_; }

private:
    void push_job(Job j);
    void send(const Message& m);
    void log(std::string line) { effects_.log.push_back(std::move(line)); }
    void on_delivery(const totem::Delivery& d);
    void on_config(const totem::ConfigChange& c);
    void on_transition(store::Transition t);
    void on_sync_state(NodeId from, MsgSyncState m);
    void on_sync_plan(NodeId from, MsgSyncPlan m);
    void on_sync_log(NodeId from, MsgSyncLog m);
    void on_sync_chunk(NodeId from, MsgSyncChunk m);
    void on_sync_done(NodeId from, MsgSyncDone m);
    void on_expected(NodeId from, MsgExpected m);
    void on_lms(NodeId from, MsgLms m);
    // Re-evaluates quorum of the current configuration (at a point of the total order
    // every member shares) and logs a change.
    void evaluate_quorum(const char* why);
    void maybe_send_sync_state();
    void decide_source();
    void send_sync_data(ResultSyncRead r);
    void finish_sync(const store::Head& head, const store::Meta& meta);
    void resolve_pending();
    void apply_transition(store::Transition t);
    // Schedules the yellow transitions (yellow_) as applied in their epoch.
    void apply_yellow();
    void apply_meta(const store::Transition& t, std::uint64_t version);
    // Whether `members` are quorate once synced to `meta` (finish_sync's test); `state`,
    // when given, gets the votequorum state they start with then.
    bool probe_quorate(const store::Meta& meta, const std::vector<NodeId>& members,
                       quorum::Votequorum* state = nullptr) const;
    // A quorum change of the old ring's order, delivered in its transitional configuration:
    // whether the regular configuration stayed quorate after it, for a member that applied
    // it there (the yellow prefix ends where it did not).
    void follow_old_ring(const store::Transition& t);
    static quorum::Votequorum::Agreed agreed_of(const MsgSyncState& st);
    void update_local_watermark();
    void try_replies();
    void fail_pending(std::uint64_t request, int err, const std::string& why);

    struct Pending {
        std::uint64_t tag = 0;
        store::Transition t;
        enum class State : std::uint8_t { queued, delivered_unapplied, applied } state = State::queued;
        bool resubmitted = false;
        bool recheck = false;  // applied on a history a snapshot replaces: look it up afterwards
        RingRef applied_ring;  // the ring whose (quorate) configuration applied it
        std::uint64_t version = 0;
        std::optional<int> err;  // known once the apply job is done
    };

    void mark_applied(Pending& p, std::uint64_t version);

    Config config_;
    Bugs bugs_;
    SubmitFn submit_;
    Effects effects_;

    // Durable and predicted state.
    store::Head durable_;              // last reported by the worker
    store::Meta meta_;                 // the node list as of the latest scheduled apply
    std::uint64_t next_version_ = 1;   // version the next scheduled transition gets
    std::size_t jobs_outstanding_ = 0;
    std::deque<std::uint8_t> job_kinds_;  // Job::index() of each outstanding job, oldest first

    // Configuration.
    Phase phase_ = Phase::none;
    RingRef ring_;
    std::vector<NodeId> members_;
    bool transitional_ = false;
    bool quorate_ = false;             // the current (regular or transitional) configuration
    std::uint64_t epoch_ = 0;          // ring seq of the last regular configuration
    std::vector<NodeId> ring_members_;  // its members

    // Sync of ring_.
    bool sync_state_sent_ = false;
    std::map<NodeId, MsgSyncState> states_;
    std::optional<NodeId> source_;
    std::optional<MsgSyncPlan> plan_;
    SyncAction my_action_ = SyncAction::none;
    wire::Bytes snapshot_;             // chunks being reassembled
    std::uint64_t snapshot_total_ = 0;
    std::vector<store::Transition> held_;  // delivered while syncing
    bool sync_read_requested_ = false;
    std::uint64_t sync_next_ = 0;      // sync by log: the next version I need
    std::uint64_t sync_from_ = 0;      // my durable version when the plan came (the log line)
    bool awaiting_install_ = false;    // a snapshot is being installed: my history is not the synced one yet

    // Requests and acknowledgements.
    std::uint64_t next_request_ = 0;
    std::map<std::uint64_t, Pending> pending_;  // by request number
    std::uint64_t ring_watermark_ = 0;
    std::uint64_t last_local_watermark_ = 0;
    std::set<NodeId> notify_;  // origins applied since the last local watermark rise
    std::deque<std::pair<wire::Bytes, totem::Guarantee>> outbox_;
    std::uint64_t malformed_ = 0;
    quorum::Votequorum vq_{quorum::Options{}};
    std::map<std::uint64_t, std::uint32_t> expected_pending_;  // tag -> value, replied at delivery
    std::uint64_t discarded_total_ = 0;
    std::uint64_t last_node_list_version_ = 0;  // newest node list change applied here

    // Yellow transitions (MsgSyncState): delivered in the transitional configuration that
    // ended the quorate regular configuration of epoch yellow_epoch_, in its order, up to
    // its first hole or the quorum change after which that configuration would not have
    // been quorate. A member that left may have applied them there; they follow
    // version yellow_base_ and wait for a quorate configuration's sync.
    std::vector<store::Transition> yellow_;
    std::uint64_t yellow_epoch_ = 0;
    std::uint64_t yellow_base_ = 0;
    bool yellow_open_ = false;          // still collecting
    bool delivery_after_hole_ = false;  // of the delivery being handled
    bool yellow_round_ = false;         // this sync chooses its source by heads with yellows
    // While collecting: the quorum state and metadata of the old regular configuration as
    // a member that applied the prefix there has them (follow_old_ring).
    quorum::Votequorum yellow_vq_{quorum::Options{}};
    store::Meta yellow_meta_;
    std::map<NodeId, MsgSyncState> left_states_;  // of members that left, this configuration
    // Every member of the regular configuration sent its state (in it, or in the
    // transitional configuration that ended it).
    bool all_ring_states() const;
    std::uint64_t trans_epoch_ = 0;     // ring seq of the transitional configuration's new ring
};

}  // namespace conclave::node
