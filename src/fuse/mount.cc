// Mounting and unmounting the tree, the apply worker's invalidation hooks, and what the
// protocol thread publishes (tree.h).
#include <grp.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/log.h"
#include "base/thread_name.h"
#include "fuse/tree_impl.h"

namespace conclave::fuse {

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size()) {
            int v = 0;
            bool ok = true;
            for (std::size_t k = 1; k <= 3; ++k) {
                char c = s[i + k];
                if (c < '0' || c > '7') ok = false;
                v = v * 8 + (c - '0');
            }
            if (ok) {
                out += static_cast<char>(v);
                i += 3;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

// What is mounted at `path` (the last mount there): its file system type ("" if none)
// and device minor number. From /proc/self/mountinfo: a stat() of a FUSE mount would
// wait for the file system to answer.
struct Mounted {
    std::string type;
    unsigned minor = 0;
};
Mounted mounted_at(const std::string& path) {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    Mounted out;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string id, parent, dev, root, point;
        f >> id >> parent >> dev >> root >> point;
        if (unescape(point) != path) continue;
        auto dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        std::istringstream rest(line.substr(dash + 3));
        rest >> out.type;
        auto colon = dev.find(':');
        out.minor = colon == std::string::npos ? 0 : static_cast<unsigned>(std::strtoul(dev.c_str() + colon + 1, nullptr, 10));
    }
    return out;
}

}  // namespace

Result<gid_t> resolve_group(const std::string& name) {
    std::vector<char> buf(16384);
    struct group g {};
    struct group* found = nullptr;
    if (!name.empty()) {
        if (getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found) != 0 || !found)
            return Error{"tree.group: no group named '" + name + "' on this machine; create it or name another"};
        return found->gr_gid;
    }
    if (getgrnam_r("www-data", &g, buf.data(), buf.size(), &found) == 0 && found) return found->gr_gid;
    return static_cast<gid_t>(0);
}

Tree::Tree(store::Store& store, Host& host, Options options)
    : impl_(std::make_shared<Impl>(store, host, std::move(options))) {
    impl_->self = impl_;
}

Tree::~Tree() { unmount(); }

Status Tree::mount() {
    auto& t = *impl_;
    const std::string& mp = t.opt.mount_point;
    t.refresh_limits();
    // Every lock present now is timed from now (this node has not seen it change).
    {
        store::EntryInfo dir;
        std::vector<store::EntryInfo> locks;
        if (t.store.stat("/priv/lock", dir) == 0 && dir.dir && t.store.list_ino(dir.ino, locks) == 0)
            for (const auto& l : locks)
                if (l.dir) t.lock_seen(l.ino, l.version);
    }

    struct stat st {};
    if (::stat(mp.c_str(), &st) != 0 && errno == ENOTCONN) {
        // A daemon that ended without unmounting (kill -9, a crash) leaves a mount whose
        // every access fails with "Transport endpoint is not connected".
        if (::umount2(mp.c_str(), MNT_DETACH) != 0)
            return Error{"the mount point " + mp + " holds a stale mount (a conclaved that did not exit cleanly) and "
                         "unmounting it failed: " + std::strerror(errno) + "; run 'umount -l " + mp + "'"};
        log::notice("tree: removed the stale mount a previous conclaved left at " + mp);
    }
    if (::stat(mp.c_str(), &st) != 0) {
        if (errno != ENOENT) return Error{"cannot use the mount point " + mp + ": " + std::strerror(errno)};
        if (::mkdir(mp.c_str(), 0755) != 0 && errno != EEXIST)
            return Error{"cannot create the mount point " + mp + ": " + std::strerror(errno) +
                         " (set paths.mount_point in conclave.conf)"};
    } else if (!S_ISDIR(st.st_mode)) {
        return Error{"the mount point " + mp + " is not a directory (set paths.mount_point in conclave.conf)"};
    }
    // mountinfo shows canonical paths.
    std::string canon = mp;
    if (char* real = ::realpath(mp.c_str(), nullptr)) {
        canon = real;
        std::free(real);
    }
    t.canonical_mount_point = canon;
    if (auto type = mounted_at(canon).type; !type.empty())
        return Error{"the mount point " + mp + " already has a file system mounted (" + type + ")" +
                     (type == "fuse.conclave" ? ": is another conclaved running with this mount point?" : "") +
                     "; unmount it or set another paths.mount_point"};

    const char* argv[] = {"conclaved", "-o",
                          "default_permissions,allow_other,noatime,fsname=conclave,subtype=conclave", nullptr};
    struct fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
    t.se = fuse_session_new(&args, tree_ops(), sizeof(struct fuse_lowlevel_ops), &t);
    fuse_opt_free_args(&args);
    if (!t.se) return Error{"cannot set up FUSE (libfuse3 refused its options; see the lines above)"};
    if (fuse_session_mount(t.se, mp.c_str()) != 0) {
        fuse_session_destroy(t.se);
        t.se = nullptr;
        return Error{"cannot mount the tree at " + mp +
                     " (is /dev/fuse there and the fuse module loaded? conclaved mounts as root)"};
    }
    t.mounted = true;
    t.mount_minor = mounted_at(canon).minor;
    t.completions.start("cv-fuse-reply");
    t.notifier.start("cv-fuse-inval");
    t.loop = std::thread([&t] {
        name_this_thread("cv-fuse");  // and the loop's workers
        struct fuse_loop_config* cfg = fuse_loop_cfg_create();
        fuse_loop_cfg_set_max_threads(cfg, t.opt.max_threads);
        fuse_loop_cfg_set_idle_threads(cfg, std::max(1u, t.opt.max_threads / 2));
        int rc = fuse_session_loop_mt(t.se, cfg);
        fuse_loop_cfg_destroy(cfg);
        if (rc != 0 && !t.closed) log::warning("tree: the FUSE loop ended (" + std::to_string(rc) + ")");
        std::lock_guard lock(t.loop_mu);
        t.loop_done = true;
        t.loop_cv.notify_all();
    });
    log::notice("tree: mounted at " + mp);
    return Ok{};
}

void Tree::unmount() {
    auto& t = *impl_;
    if (!t.mounted) return;
    t.mounted = false;
    {
        // Requests waiting for the cluster are answered now (the daemon is leaving).
        std::lock_guard lock(t.pending_mu);
        t.closed = true;
        for (auto req : t.pending) fuse_reply_err(req, EIO);
        t.pending.clear();
    }
    t.completions.stop();
    fuse_session_exit(t.se);
    // Abort the connection so that the FUSE threads blocked reading /dev/fuse return
    // even while files are still open, then detach the mount.
    if (t.mount_minor != 0) {
        std::string abort = "/sys/fs/fuse/connections/" + std::to_string(t.mount_minor) + "/abort";
        if (std::ofstream f(abort); f) f << "1";
    }
    // libfuse's unmount: closes /dev/fuse and detaches the mount (lazily: files may
    // still be open); the kernel ends the connection once nothing uses it.
    fuse_session_unmount(t.se);
    if (!mounted_at(t.canonical_mount_point).type.empty() &&
        ::umount2(t.canonical_mount_point.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
        log::warning("tree: unmounting " + t.opt.mount_point + " failed: " + std::strerror(errno) + "; run 'umount -l " +
                     t.opt.mount_point + "'");
    bool joined = false;
    {
        std::unique_lock lock(t.loop_mu);
        joined = t.loop_cv.wait_for(lock, std::chrono::seconds(3), [&] { return t.loop_done; });
    }
    // The notifier may wait in the kernel for a directory lock that a request the kernel
    // still holds keeps; it gets going again once the connection ends.
    bool notifier_done = t.notifier.stop_within(std::chrono::seconds(2));
    if (joined) t.loop.join();
    else t.loop.detach();
    if (joined && notifier_done) {
        fuse_session_destroy(t.se);
    } else {
        // Files are still open on the detached mount (and this node's kernel connection
        // cannot be aborted without fusectl): the session is left to the process exit.
        log::warning("tree: the FUSE threads did not all stop (files still open on " + t.opt.mount_point +
                     "?); the process exit ends them");
    }
    t.se = nullptr;
    log::notice("tree: unmounted " + t.opt.mount_point);
}

void Tree::set_quorate(bool quorate) {
    if (impl_->quorate.exchange(quorate) != quorate) {
        ++impl_->applied;  // replies built before show the old write bits
        impl_->inval_everything(false);  // write bits shown/cleared
    }
}

void Tree::set_members(std::string json) {
    std::lock_guard lock(impl_->virtual_mu);
    impl_->members_text = std::move(json);
}

void Tree::set_quorum(std::string json) {
    std::lock_guard lock(impl_->virtual_mu);
    impl_->quorum_text = std::move(json);
}

void Tree::set_start_time(std::uint64_t unix_seconds) {
    std::lock_guard lock(impl_->virtual_mu);
    impl_->start_time = unix_seconds;
}

// ---- invalidation ----

// The kernel caches only what it was handed: an inode no lookup, readdirplus, create or
// mkdir ever returned has nothing to drop. Skipping them spares a write to /dev/fuse per
// change that nobody on this node looked at (writes through conclavectl, other nodes'
// files). A reply being built while the change is applied is covered by `applied` (see
// settle) and `suspect` (see revalidate).
bool Tree::Impl::maybe_cached(std::uint64_t ino) {
    if (ino == format_root) return true;
    std::lock_guard lock(known_mu);
    return known.count(ino) != 0;
}

// Drops the kernel's attributes of `ino` (and its pages unless `offset` is negative). If
// the kernel does not hold the inode (yet: a reply handing it out may be on its way), the
// inode stays suspect until its next open.
static void inval_now(Tree::Impl& t, std::uint64_t ino, off_t offset) {
    std::uint64_t mark = 0;
    if (ino != Tree::Impl::format_root) {
        std::lock_guard lock(t.known_mu);
        mark = ++t.suspect_marks;
        t.suspect[ino] = mark;
    }
    if (fuse_lowlevel_notify_inval_inode(t.se, ino, offset, 0) != 0 || mark == 0) return;
    std::lock_guard lock(t.known_mu);
    auto it = t.suspect.find(ino);
    if (it != t.suspect.end() && it->second == mark) t.suspect.erase(it);
}

void Tree::Impl::inval_inode(std::uint64_t ino) {
    if (!ready || closed || !se || !maybe_cached(ino)) return;
    inval_now(*this, ino, 0);  // attributes and every cached page
}

void Tree::Impl::settle(fuse_entry_param& e, std::uint64_t applied_before, bool first) {
    if (first) e.attr_timeout = 0;
    // The caller remembered the inode first: a change applied after this load invalidates
    // it (or marks it suspect); one applied before it shows here.
    if (applied.load() != applied_before) e.entry_timeout = e.attr_timeout = 0;
}

void Tree::Impl::revalidate(std::uint64_t ino) {
    {
        std::lock_guard lock(known_mu);
        auto it = suspect.find(ino);
        if (it == suspect.end()) return;
        suspect.erase(it);
    }
    // Called while the kernel opens the inode, so it holds it now; no page of it is
    // locked by this request (a concurrent read's page is answered by another thread).
    if (ready && !closed && se) fuse_lowlevel_notify_inval_inode(se, ino, 0, 0);
}

void Tree::Impl::inval_entry_later(std::uint64_t parent, std::string name) {
    if (!ready || closed || !maybe_cached(parent)) return;  // no entry under an unknown directory
    notifier.post([this, parent, name = std::move(name)] {
        if (!closed && se) fuse_lowlevel_notify_inval_entry(se, parent, name.c_str(), name.size());
    });
}

void Tree::Impl::inval_everything(bool entries) {
    if (!ready || closed) return;
    std::vector<std::pair<std::uint64_t, Known>> all;
    {
        std::lock_guard lock(known_mu);
        all.assign(known.begin(), known.end());
    }
    notifier.post([this, all = std::move(all), entries] {
        for (const auto& [ino, where] : all) {
            if (closed || !se) return;
            if (entries) fuse_lowlevel_notify_inval_entry(se, where.parent, where.name.c_str(), where.name.size());
            inval_now(*this, ino, entries ? 0 : -1);
        }
        if (!closed && se) fuse_lowlevel_notify_inval_inode(se, format_root, -1, 0);
    });
}

void Tree::after_apply(const std::vector<const store::Transition*>& batch, const std::vector<store::Applied>& results) {
    auto& t = *impl_;
    ++t.applied;  // committed: replies read before this get timeouts of 0
    for (std::size_t i = 0; i < batch.size() && i < results.size(); ++i) {
        const auto& tr = *batch[i];
        const auto& r = results[i];
        if (r.err != 0) continue;
        if (tr.op == store::Op::genesis) {
            t.refresh_limits();
            t.inval_inode(Impl::format_root);
            continue;
        }
        if (tr.op == store::Op::limits_set) {
            t.refresh_limits();  // EFBIG, ENOSPC, ENAMETOOLONG and statfs from now on
            continue;
        }
        // What the transition changed, as the store found it (no path resolved again).
        for (std::uint64_t ino : r.touched.entries)
            if (ino) t.inval_inode(ino);
        for (std::uint64_t dir : r.touched.dirs)
            if (dir) t.inval_inode(dir);
        switch (tr.op) {
        case store::Op::unlink:
        case store::Op::rmdir:
            if (r.touched.dirs[0]) t.inval_entry_later(r.touched.dirs[0], base_name(tr.path));
            break;
        case store::Op::rename:
            if (r.touched.dirs[0]) t.inval_entry_later(r.touched.dirs[0], base_name(tr.path));
            if (r.touched.dirs[1]) t.inval_entry_later(r.touched.dirs[1], base_name(tr.path2));
            break;
        case store::Op::mkdir:
        case store::Op::set_mtime:
            if (r.touched.entries[0] && store::is_lock_dir_path(tr.path)) t.lock_seen(r.touched.entries[0], r.version);
            break;
        default:
            break;
        }
    }
}

void Tree::after_install() {
    ++impl_->applied;
    impl_->refresh_limits();
    impl_->inval_everything(true);
}

}  // namespace conclave::fuse
