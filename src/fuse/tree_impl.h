// Tree's insides, shared by tree.cc (the FUSE operations) and mount.cc (mounting, the
// apply hooks). Not part of the interface.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fuse/tasks.h"
#include "fuse/tree.h"

namespace conclave::fuse {

// An open file. Writes go to `buf` (loaded from the store at the first write unless the
// file was opened with O_TRUNC or just created); flush/fsync submit it whole.
struct Handle {
    std::mutex mu;
    std::uint64_t ino = 0;
    int flags = 0;
    bool writable = false;
    bool loaded = false;
    bool dirty = false;
    // A write past the file size limit failed (EFBIG): what the handle holds is not the
    // file its writer meant, so nothing of it is committed; every flush and fsync answers
    // this errno (a whole file or nothing, never its first 1 MiB).
    int failed = 0;
    std::uint64_t gen = 0;                  // bumped by every change to buf
    wire::Bytes buf;
    std::optional<std::uint64_t> mtime_us;  // futimens while dirty: set after the contents
    wire::Bytes opened;                     // a read-only handle: the contents at open
    store::EntryInfo opened_info;           // ... and its attributes
    bool virt = false;                      // a virtual file: `text`, read-only
    std::string text;
};

// An open directory: its entries as of opendir (readdir pages through them).
struct DirHandle {
    std::uint64_t ino = 0, parent = 0;
    std::string path;
    std::vector<store::EntryInfo> entries;
    bool virtual_files = false;
    std::uint64_t applied = 0;  // Impl::applied before the entries were read
};

struct LockSeen {
    std::uint64_t version = 0;
    std::chrono::steady_clock::time_point since;
};

const struct fuse_lowlevel_ops* tree_ops();

// Tree paths (absolute, normalised: store/transition.h).
inline std::string child_path(const std::string& parent, std::string_view name) {
    std::string p = parent == "/" ? std::string() : parent;
    p += '/';
    p += name;
    return p;
}
inline std::string parent_path(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == 0 || slash == std::string::npos ? std::string("/") : path.substr(0, slash);
}
inline std::string base_name(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

struct Tree::Impl {
    Impl(store::Store& s, Host& h, Options o) : store(s), host(h), opt(std::move(o)) {}

    static constexpr std::uint64_t format_root = 1;
    static constexpr std::uint64_t kVirtualBase = 1ull << 62;
    static constexpr int kVirtualCount = 3;
    static constexpr const char* kVirtualNames[kVirtualCount] = {".members", ".version", ".quorum"};

    store::Store& store;
    Host& host;
    Options opt;
    std::weak_ptr<Impl> self;

    fuse_session* se = nullptr;
    std::thread loop;
    std::mutex loop_mu;
    std::condition_variable loop_cv;
    bool loop_done = false;
    bool mounted = false;
    std::string canonical_mount_point;
    unsigned mount_minor = 0;  // the FUSE connection's number (fusectl)
    std::atomic<bool> ready{false};  // the kernel's INIT is answered: notifications may go
    std::atomic<bool> closed{false};
    std::atomic<bool> quorate{false};

    TaskThread completions;  // the cluster's answers to submitted requests
    TaskThread notifier;     // directory-entry invalidations (may wait for a directory lock)

    std::mutex pending_mu;
    std::unordered_set<fuse_req_t> pending;  // answered later (after the cluster's answer)

    std::mutex limits_mu;
    store::Limits limits;

    std::mutex virtual_mu;
    std::string members_text = "{}\n", quorum_text = "{}\n";
    std::uint64_t start_time = 0;

    // The inodes the kernel holds: every entry reply (lookup, create, mkdir, mknod,
    // readdirplus) adds one to an inode's lookup count, as the kernel does, and FORGET
    // takes the kernel's count off; at 0 the kernel has dropped the inode.
    struct Known {
        std::uint64_t parent = 0;  // where it was last handed out
        std::string name;
        std::uint64_t lookups = 0;
    };
    std::mutex known_mu;
    std::unordered_map<std::uint64_t, Known> known;
    bool maybe_cached(std::uint64_t ino);  // the root, or known

    // A reply that hands the kernel a new inode (lookup, create, mkdir, readdirplus) may
    // be read from the store just before a change is applied and reach the kernel just
    // after that change's invalidation, which then finds nothing to drop. (For an inode
    // the kernel holds, the kernel itself discards attributes read before an
    // invalidation.) Three guards: such a first reply has an attribute timeout of 0
    // (`settle` with first = true: the next stat asks); `applied` counts applied batches
    // (bumped before their invalidations), and a reply read before a bump gets entry and
    // attribute timeouts of 0; an inode whose invalidation found nothing in the kernel is
    // `suspect` (under known_mu, with the mark that set it) and is invalidated again at
    // its next open, for a kernel that took the inode while its forget was on its way.
    std::atomic<std::uint64_t> applied{0};
    std::unordered_map<std::uint64_t, std::uint64_t> suspect;
    std::uint64_t suspect_marks = 0;
    void settle(fuse_entry_param& e, std::uint64_t applied_before, bool first);
    void revalidate(std::uint64_t ino);

    // Files being written on this node: the handle that wrote last (getattr shows its size).
    // Lock order: writers_mu, then a handle's mu.
    std::mutex writers_mu;
    std::unordered_map<std::uint64_t, Handle*> writers;
    void writing(Handle* h);
    bool writer_size(std::uint64_t ino, struct stat& st);  // false: nobody writes it here
    // Records a new mtime on the handle with unwritten contents (`h`, else the inode's
    // writer) so that it is set after them; false if there is none.
    bool defer_mtime(Handle* h, std::uint64_t ino, std::uint64_t mtime);
    void not_writing(Handle* h, std::optional<std::uint64_t> if_gen = std::nullopt);

    std::mutex locks_mu;
    std::unordered_map<std::uint64_t, LockSeen> locks;  // lock directory ino -> last change seen

    void submit(store::Transition t, std::function<void(int, std::uint64_t)> then);
    void hold(fuse_req_t req);
    bool claim(fuse_req_t req);  // false: already answered (unmount)
    void finish(fuse_req_t req, int err);
    store::Limits current_limits();
    void refresh_limits();
    // One more lookup of `ino` handed to the kernel (before the reply goes); true if the
    // kernel held no reference to it. forget: the kernel dropped `n` (or a reply failed).
    bool remember(std::uint64_t ino, std::uint64_t parent, std::string_view name);
    void forget(std::uint64_t ino, std::uint64_t n);
    // What stat shows for an entry; `path` (its path, if the caller knows it) spares the
    // walk up its parents that tells whether it is private.
    void attr_of(const store::EntryInfo& e, struct stat& st, const std::string* path = nullptr);
    void entry_of(const store::EntryInfo& e, fuse_entry_param& out, const std::string* path = nullptr);
    int load(Handle& h);
    bool lock_expired(std::uint64_t ino, std::uint64_t version);
    void lock_seen(std::uint64_t ino, std::uint64_t version);

    static int virtual_index(std::string_view name);
    std::string virtual_text(int index);
    std::string version_json();
    void virtual_attr(int index, const std::string& text, struct stat& st);

    // Kernel cache invalidation (no-ops before INIT and after unmount).
    void inval_inode(std::uint64_t ino);
    void inval_entry_later(std::uint64_t parent, std::string name);
    void inval_everything(bool entries);
};

}  // namespace conclave::fuse
