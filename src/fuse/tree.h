// The cluster configuration tree mounted with FUSE (DESIGN.md §8; pmxcfs's /etc/pve).
//
// libfuse3's low-level API on its own threads; the FUSE node ids are the store's inode
// numbers (replicated, never reused), the root is inode 1.
//   * Reads (lookup, getattr, readdir, read) come from LMDB snapshots on the FUSE threads:
//     no network round trip, never the protocol thread.
//   * Every mutation is one transition submitted through the Host and answered when the
//     cluster acknowledged it (every member of the quorate ring applied it durably). No
//     FUSE thread waits for that: the request is answered later from the completion
//     thread, so a slow ring never starves the FUSE loop.
//   * Writes to an open file are buffered per handle and submitted as one whole-file
//     write at flush (close) or fsync: close-to-open consistency, readers never see half
//     a file. The write names the inode it was opened on (kIfInode): a file renamed or
//     replaced meanwhile gets ESTALE at close, never someone else's path.
//   * create is an exclusive create in the total order (O_EXCL is atomic cluster-wide);
//     without O_EXCL an EEXIST falls back to opening the existing file.
//   * Inquorate: every mutation fails with EROFS at once, write bits are shown cleared,
//     reads and the virtual files keep working.
//   * Kernel caching: entries, attributes and pages are cached and invalidated whenever
//     a change is applied (the apply worker calls applied()): attributes and pages at
//     once, on the worker thread, before the change is reported durable; directory
//     entries on the notifier thread (the kernel takes the directory's lock for that,
//     which a pending local operation in that directory may hold until it is answered).
//   * Cluster locks (pmxcfs priv/lock/, reference §6): mkdir priv/lock/NAME acquires,
//     the holder renews with utime(now), rmdir releases; utime(0, 0) removes the lock if
//     it has not changed for lock_timeout on this node's clock (each node times a lock
//     from when it applied its last change, so clocks need not agree), else EACCES.
//   * Virtual files at the root: .members, .version, .quorum (JSON, conclaved(8)).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "store/store.h"

namespace conclave::fuse {

struct Options {
    std::string mount_point;
    gid_t gid = 0;                              // group of every entry
    std::chrono::milliseconds lock_timeout{120'000};
    double entry_timeout_s = 60;                // kernel dentry cache (invalidated on change)
    double attr_timeout_s = 1;                  // kernel attribute cache (invalidated on change)
    unsigned max_threads = 8;                   // FUSE worker threads
    std::uint32_t self = 0;                     // this node's id (lock renewals)
};

// What the tree needs from the daemon. Thread-safe.
class Host {
public:
    using Done = std::function<void(int err, std::uint64_t version)>;
    virtual ~Host() = default;
    // Submits a transition (origin, request and timestamp are the host's to fill in).
    // `done` runs exactly once, on any thread, when the cluster answered: 0 and the
    // version once every member applied it durably, or an errno.
    virtual void submit(store::Transition t, Done done) = 0;
};

class Tree {
public:
    Tree(store::Store& store, Host& host, Options options);
    ~Tree();
    Tree(const Tree&) = delete;
    Tree& operator=(const Tree&) = delete;

    // Removes a stale mount a crashed daemon left at the mount point, mounts, and starts
    // the FUSE loop. One line saying what to fix on failure.
    Status mount();
    // Unmounts (lazily if busy), answers every request still waiting with EIO, stops the
    // threads. Idempotent.
    void unmount();

    // The protocol thread's view, published for the FUSE threads.
    void set_quorate(bool quorate);
    // The virtual files' contents (JSON texts).
    void set_members(std::string json);
    void set_quorum(std::string json);
    void set_start_time(std::uint64_t unix_seconds);

    // The apply worker's hooks (worker thread): after a batch of transitions was applied
    // (their results in order, with what each changed: store::Touched), and after a
    // snapshot replaced the whole state.
    void after_apply(const std::vector<const store::Transition*>& batch, const std::vector<store::Applied>& results);
    void after_install();

    struct Impl;

private:
    std::shared_ptr<Impl> impl_;  // shared: late answers from the host hold a weak_ptr
};

// "/priv", "/priv/...", "/nodes/NAME/priv", "/nodes/NAME/priv/...": shown 0600/0700.
bool is_private_path(std::string_view path);
// The mode the tree shows for an entry with stored permission bits `mode`.
std::uint32_t shown_mode(bool dir, std::uint32_t mode, bool is_private, bool quorate, bool root);
// The group of the tree: `name` if given (an error if it does not exist), else www-data
// if it exists, else root.
Result<gid_t> resolve_group(const std::string& name);

}  // namespace conclave::fuse
