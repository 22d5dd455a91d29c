// conclaved's process: the protocol thread's io_context and everything it drives.
//
// Start-up order matters for the error a user sees: config and keys (in main), then the
// state directory lock (one daemon per node), then the boot epoch, the replicated state
// (LMDB in <state_dir>/store), the UDP socket and the control socket; each failure is
// one line saying what to fix, exit 1.
//
// Threads (DESIGN.md §3): this one (the protocol thread: ring, node, control socket), the
// apply worker (store jobs, group commit) and one reader (get/ls/stat and the content
// hash from LMDB snapshots). The protocol thread never touches the disk.
//
// The cluster's configuration (DESIGN.md §2.1, §7): node list, quorum options and ring
// settings come from the replicated state only. The ring starts with the store's settings
// laid over conclave.conf's (totem::with_settings) and takes every later change the node
// reports (Effects::totem_settings). Changes a sync replaced (a fork under an operator's
// override or two_node) are logged and appended to <state_dir>/discarded.log.
//
// Re-entrancy: the node submits through the ring driver, whose submit() runs the ring's
// effects at once, which may deliver events. Every call into the node goes through
// with_node(): events arriving while the node is busy are queued and handed to it, in
// order, when it returns; and while the driver is dispatching its own effects the node's
// submits are answered "try again" (the node re-offers them at the next pump()), so
// the node never sees events out of the ring's order.

#pragma once

#include <asio.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "base/result.h"
#include "config/config.h"
#include "crypto/channel.h"
#include "daemon/groups.h"
#include "daemon/worker.h"
#include "fuse/tree.h"
#include "node/node.h"
#include "runtime/control.h"
#include "runtime/ring_driver.h"
#include "runtime/state_dir.h"
#include "runtime/transport.h"
#include "store/store.h"

namespace conclave::daemon {

// The ring seq in the state directory, fsync'd before the core uses it.
class DurableRingSeq final : public totem::Durable {
public:
    explicit DurableRingSeq(runtime::StateDir& dir) : dir_(dir) {}
    std::uint64_t load_ring_seq() override;
    void store_ring_seq(std::uint64_t seq) override;

private:
    runtime::StateDir& dir_;
};

class Daemon final : public fuse::Host {
public:
    // `local`: conclaved --local (a node alone, no network, always quorate).
    Daemon(config::Config cfg, crypto::AuthKey key, std::optional<crypto::AuthKey> next_key, bool local = false);
    ~Daemon();

    // Opens the state directory, the store, sockets and signal handling, and starts the ring.
    Status start();
    // Runs the protocol thread until SIGTERM/SIGINT (or stop()). Returns the exit code:
    // 0 after a clean stop, 1 when the node had to stop (store failure, foreign cluster).
    int run();
    void stop();

    // fuse::Host: the tree's writes (any thread; `done` runs on the protocol thread).
    void submit(store::Transition t, Done done) override;

private:
    // What the reader thread found out for a status request.
    struct StoreView {
        store::Head head;
        store::Hash content_hash{};
        store::Store::Usage usage;
    };
    // A client waiting for the node's reply to its request.
    struct Waiting {
        std::shared_ptr<runtime::ControlSession> session;
        std::string what;   // "put /a/b", for the log
        std::string einval; // what EINVAL means for this request, when the node gives no reason
        Done done;          // the tree's requests: called instead of replying to a session
        std::string warning;  // given with a success (the reply's "warning")
    };

    nlohmann::json status(const StoreView& view) const;
    nlohmann::json quorum_json() const;
    // The tree's view of the node: quorate, .members, .quorum (when they changed), and in
    // local mode the one-node cluster a node without state gets.
    void publish_tree();
    nlohmann::json handle(const nlohmann::json& request, const std::shared_ptr<runtime::ControlSession>& session);
    nlohmann::json submit_request(store::Transition t, const std::shared_ptr<runtime::ControlSession>& session,
                                  std::string what, std::string einval = {}, std::string warning = {});
    // Stamps the transition with this node's clock and gives it to the node; `w` gets the
    // node's reply (drain_effects). Control requests and the tree's writes alike.
    void submit_waiting(store::Transition t, Waiting w);
    // A fresh cluster of this node alone (`conclavectl create`, local mode on an empty
    // state); nullopt if no random bytes for the cluster id.
    std::optional<store::Transition> genesis() const;
    // node.add / node.remove / node.votes / votes, quorum.set, totem.set, expected.
    nlohmann::json cluster_request(const std::string& cmd, const nlohmann::json& request,
                                   const std::shared_ptr<runtime::ControlSession>& session);
    nlohmann::json read_request(const std::string& cmd, const nlohmann::json& request,
                                const std::shared_ptr<runtime::ControlSession>& session);
    void on_event(totem::Event&& e);
    void on_config(const totem::ConfigChange& c);
    void on_progress();

    template <class F>
    void with_node(F&& f);
    void drain_effects();
    // The apply worker's results (worker thread): queued, and handed to the node together
    // on the protocol thread (on_jobs_done).
    void jobs_done(std::vector<node::JobResult> results);
    void on_jobs_done();
    // The replicated state's ring settings laid over ring_base_, given to the running ring.
    void apply_ring_settings(const std::map<std::string, std::uint64_t>& settings);
    // Changes a sync replaced: a loud warning, and one JSON line each in discarded_path_
    // (written on the reader thread: the protocol thread never touches the disk).
    void record_discarded(std::vector<store::LogRecord> records);
    std::string ring_id_text() const;

    config::Config cfg_;
    crypto::AuthKey key_;
    std::optional<crypto::AuthKey> next_key_;
    asio::io_context io_;
    asio::signal_set signals_;
    asio::steady_timer lms_timer_;  // last_man_standing's window, armed for the node
    std::optional<runtime::StateDir> state_;
    std::unique_ptr<DurableRingSeq> durable_;
    std::unique_ptr<store::Store> store_;
    std::unique_ptr<ApplyWorker> worker_;
    std::unique_ptr<asio::thread_pool> reader_;
    std::unique_ptr<node::Node> node_;
    std::unique_ptr<crypto::Channel> channel_;
    std::unique_ptr<runtime::Transport> transport_;
    std::unique_ptr<runtime::RingDriver> driver_;
    // The ring configuration from conclave.conf (node id, mtu); the cluster-wide settings of
    // the replicated state are laid over it (totem::with_settings).
    totem::Config ring_base_;
    std::string discarded_path_;  // <state_dir>/discarded.log
    std::unique_ptr<runtime::ControlServer> control_;
    Groups groups_;
    bool local_ = false;
    std::unique_ptr<fuse::Tree> tree_;
    struct {
        std::uint64_t config_changes = ~0ull;
        bool quorate = false;
        std::vector<store::NodeEntry> nodes;
        std::uint32_t total_votes = 0, expected_votes = 0;
    } published_;
    bool local_genesis_sent_ = false;

    // with_node() bookkeeping (see the top of this file).
    bool in_node_ = false;
    int driver_dispatch_ = 0;        // > 0 while the ring driver runs our callbacks
    bool repump_ = false;            // the ring progressed while the node was busy
    std::deque<std::function<void()>> queued_;

    // Reader thread only: the content hash of the last head it was computed for.
    struct {
        store::Head head;
        store::Hash hash{};
        bool valid = false;
    } content_cache_;

    std::map<std::uint64_t, Waiting> waiting_;  // by tag
    std::mutex done_mu_;                          // jobs_done() <-> on_jobs_done()
    std::vector<node::JobResult> done_queue_;
    bool done_posted_ = false;
    std::uint64_t next_tag_ = 1;
    bool was_quorate_ = false;
    std::uint64_t boot_epoch_ = 0;
    std::uint64_t config_changes_ = 0;
    std::chrono::steady_clock::time_point started_;
    bool stopping_ = false;
    int exit_code_ = 0;
};

}  // namespace conclave::daemon
