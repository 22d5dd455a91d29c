// The FUSE operations of the configuration tree (tree.h). Mounting and unmounting are in
// mount.cc; both share Tree::Impl (tree_impl.h).
#include "fuse/tree_impl.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "base/log.h"

namespace conclave::fuse {

namespace {

using Impl = Tree::Impl;

Impl& impl_of(fuse_req_t req) { return *static_cast<Impl*>(fuse_req_userdata(req)); }

std::uint64_t wall_us() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

struct timespec ts_of(std::uint64_t us) {
    struct timespec ts {};
    ts.tv_sec = static_cast<time_t>(us / 1'000'000);
    ts.tv_nsec = static_cast<long>((us % 1'000'000) * 1000);
    return ts;
}

std::uint64_t us_of(const struct timespec& ts) {
    if (ts.tv_sec < 0) return 0;
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
}

bool wants_write(int flags) { return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC); }

// An inode the kernel names may be gone: removed, or replaced by a rename over its name
// (on any node). ESTALE, not ENOENT, makes the kernel look the path up again, so an
// open or stat racing an atomic replace finds the new file instead of failing.
int stale(int err) { return err == ENOENT ? ESTALE : err; }

}  // namespace

bool is_private_path(std::string_view path) {
    if (path == "/priv" || path.starts_with("/priv/")) return true;
    if (!path.starts_with("/nodes/")) return false;
    auto rest = path.substr(7);
    auto slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0) return false;
    rest = rest.substr(slash);
    return rest == "/priv" || rest.starts_with("/priv/");
}

std::uint32_t shown_mode(bool dir, std::uint32_t mode, bool is_private, bool quorate, bool root) {
    if (root) return S_IFDIR | 0755;
    std::uint32_t ceiling = dir ? (is_private ? 0700 : 0755) : (is_private ? 0600 : 0640);
    std::uint32_t m = mode & ceiling;
    if (!quorate) m &= ~0222u;
    return (dir ? S_IFDIR : S_IFREG) | m;
}

// ---- Tree::Impl helpers ----

void Impl::submit(store::Transition t, std::function<void(int, std::uint64_t)> then) {
    std::weak_ptr<Impl> weak = self;
    host.submit(std::move(t), [weak, then = std::move(then)](int err, std::uint64_t v) mutable {
        if (auto me = weak.lock()) me->completions.post([then = std::move(then), err, v]() mutable { then(err, v); });
    });
}

void Impl::hold(fuse_req_t req) {
    std::lock_guard lock(pending_mu);
    pending.insert(req);
}

bool Impl::claim(fuse_req_t req) {
    std::lock_guard lock(pending_mu);
    return pending.erase(req) == 1;
}

void Impl::finish(fuse_req_t req, int err) {
    if (claim(req)) fuse_reply_err(req, err);
}

store::Limits Impl::current_limits() {
    std::lock_guard lock(limits_mu);
    return limits;
}

void Impl::refresh_limits() {
    auto meta = store.meta();
    std::lock_guard lock(limits_mu);
    if (!meta.empty()) limits = meta.limits;
}

bool Impl::remember(std::uint64_t ino, std::uint64_t parent, std::string_view name) {
    if (ino == format_root) return false;
    std::lock_guard lock(known_mu);
    auto& k = known[ino];
    k.parent = parent;
    k.name.assign(name);
    return k.lookups++ == 0;
}

void Impl::forget(std::uint64_t ino, std::uint64_t n) {
    if (ino == format_root) return;
    std::lock_guard lock(known_mu);
    auto it = known.find(ino);
    if (it == known.end()) return;  // a virtual file
    if (it->second.lookups > n) {
        it->second.lookups -= n;
    } else {
        known.erase(it);  // nothing of it left in the kernel: changes to it need no invalidation
        suspect.erase(ino);
    }
}

void Impl::attr_of(const store::EntryInfo& e, struct stat& st, const std::string* path) {
    std::memset(&st, 0, sizeof st);
    bool root = e.ino == format_root;
    bool priv = false;
    if (path) {
        priv = is_private_path(*path);
    } else if (!root) {
        std::string found;
        if (store.path_of(e.ino, found) == 0) priv = is_private_path(found);
    }
    st.st_ino = e.ino;
    st.st_mode = shown_mode(e.dir, e.mode, priv, quorate.load(), root);
    st.st_nlink = e.dir ? 2 : 1;
    st.st_uid = 0;
    st.st_gid = opt.gid;
    st.st_size = static_cast<off_t>(e.size);
    st.st_blksize = 4096;
    st.st_blocks = static_cast<blkcnt_t>((e.size + 511) / 512);
    st.st_mtim = st.st_ctim = st.st_atim = ts_of(e.mtime_us);
}

void Impl::entry_of(const store::EntryInfo& e, fuse_entry_param& out, const std::string* path) {
    std::memset(&out, 0, sizeof out);
    out.ino = e.ino;
    out.generation = 1;
    out.entry_timeout = opt.entry_timeout_s;
    out.attr_timeout = opt.attr_timeout_s;
    attr_of(e, out.attr, path);
}

// ---- virtual files ----

int Impl::virtual_index(std::string_view name) {
    for (int i = 0; i < kVirtualCount; ++i)
        if (name == kVirtualNames[i]) return i;
    return -1;
}

std::string Impl::virtual_text(int index) {
    if (index == 1) return version_json();
    std::lock_guard lock(virtual_mu);
    return index == 0 ? members_text : quorum_text;
}

std::string Impl::version_json() {
    auto head = store.head();
    nlohmann::json paths = nlohmann::json::object();
    // Every file with the state version that last changed it: a cache keyed on it is
    // fresh exactly as long as the number is the same.
    std::vector<std::pair<std::uint64_t, std::string>> dirs{{format_root, "/"}};
    while (!dirs.empty()) {
        auto [ino, path] = std::move(dirs.back());
        dirs.pop_back();
        std::vector<store::EntryInfo> children;
        if (store.list_ino(ino, children) != 0) continue;
        for (const auto& c : children) {
            auto p = child_path(path, c.name);
            if (c.dir)
                dirs.emplace_back(c.ino, std::move(p));
            else
                paths[p] = c.version;
        }
    }
    std::uint64_t start;
    {
        std::lock_guard lock(virtual_mu);
        start = start_time;
    }
    nlohmann::json j{{"version", head.version}, {"epoch", head.epoch}, {"starttime", start}, {"paths", paths}};
    // Names are any bytes, JSON strings UTF-8: bad bytes show as U+FFFD (never an exception).
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void Impl::virtual_attr(int index, const std::string& text, struct stat& st) {
    std::memset(&st, 0, sizeof st);
    st.st_ino = kVirtualBase + static_cast<std::uint64_t>(index);
    st.st_mode = S_IFREG | 0440;
    st.st_nlink = 1;
    st.st_gid = opt.gid;
    st.st_size = static_cast<off_t>(text.size());
    st.st_blksize = 4096;
    auto now = ts_of(wall_us());
    st.st_mtim = st.st_ctim = st.st_atim = now;
}

// ---- operations ----

namespace {

void op_init(void* userdata, struct fuse_conn_info* conn) {
    auto& t = *static_cast<Impl*>(userdata);
    // open(O_TRUNC) arrives as one open, not a truncate to 0 first: the new contents
    // replace the old in one transition.
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
    conn->want &= ~static_cast<unsigned>(FUSE_CAP_WRITEBACK_CACHE);
    t.ready = true;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    auto& t = impl_of(req);
    if (parent == t.format_root) {
        if (int v = Impl::virtual_index(name); v >= 0) {
            fuse_entry_param e{};
            e.ino = Impl::kVirtualBase + static_cast<std::uint64_t>(v);
            e.generation = 1;
            e.entry_timeout = t.opt.entry_timeout_s;
            e.attr_timeout = 0;  // the size changes with every read
            t.virtual_attr(v, t.virtual_text(v), e.attr);
            fuse_reply_entry(req, &e);
            return;
        }
    }
    // Not the cluster's max_name: a name made before it was lowered is still found.
    if (std::strlen(name) > store::kMaxName) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    store::EntryInfo info;
    const std::uint64_t before = t.applied.load();
    if (int err = t.store.lookup(parent, name, info); err != 0) {
        store::EntryInfo dir;
        if (err == ENOENT && t.store.stat_ino(parent, dir) == ENOENT) err = ESTALE;  // the directory itself went
        fuse_reply_err(req, err);  // ENOENT: not cached (a create elsewhere shows at once)
        return;
    }
    fuse_entry_param e;
    t.entry_of(info, e);
    t.settle(e, before, t.remember(info.ino, parent, name));
    if (fuse_reply_entry(req, &e) != 0) t.forget(info.ino, 1);  // interrupted: the kernel took nothing
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    impl_of(req).forget(ino, nlookup);
    fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data* forgets) {
    auto& t = impl_of(req);
    for (size_t i = 0; i < count; ++i) t.forget(forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    auto& t = impl_of(req);
    struct stat st;
    if (ino >= Impl::kVirtualBase && ino < Impl::kVirtualBase + Impl::kVirtualCount) {
        int v = static_cast<int>(ino - Impl::kVirtualBase);
        t.virtual_attr(v, t.virtual_text(v), st);
        fuse_reply_attr(req, &st, 0);
        return;
    }
    store::EntryInfo info;
    if (int err = t.store.stat_ino(ino, info); err != 0) {
        auto* h = fi ? reinterpret_cast<Handle*>(fi->fh) : nullptr;
        if (err == ENOENT && h && !h->virt && !h->writable) {
            // Removed or replaced while open (the kernel asks through the handle when it
            // reads): the file as it was opened, with no links left.
            t.attr_of(h->opened_info, st);
            st.st_nlink = 0;
            fuse_reply_attr(req, &st, 0);
            return;
        }
        fuse_reply_err(req, stale(err));
        return;
    }
    t.attr_of(info, st);
    // fstat does not say which handle asks (the kernel passes no file): the writer's size.
    bool writing = t.writer_size(ino, st);
    fuse_reply_attr(req, &st, writing ? 0 : t.opt.attr_timeout_s);
}

// Replies with the entry's attributes after a change (setattr).
void reply_attr_now(Impl& t, fuse_req_t req, fuse_ino_t ino, const store::EntryInfo* fallback = nullptr) {
    if (!t.claim(req)) return;
    store::EntryInfo info;
    int err = t.store.stat_ino(ino, info);
    if (err != 0 && fallback) {
        info = *fallback;
        err = 0;
    }
    if (err != 0) {
        fuse_reply_err(req, err);
        return;
    }
    struct stat st;
    t.attr_of(info, st);
    bool writing = t.writer_size(ino, st);
    fuse_reply_attr(req, &st, writing ? 0 : t.opt.attr_timeout_s);
}

// Submits the transitions one after the other (each waits for the previous one's
// acknowledgement); `done` gets the first error or 0.
void submit_chain(Impl& t, std::vector<store::Transition> chain, std::size_t at, std::function<void(int)> done) {
    if (at >= chain.size()) {
        done(0);
        return;
    }
    auto next = chain[at];
    t.submit(std::move(next), [&t, chain = std::move(chain), at, done = std::move(done)](int err, std::uint64_t) mutable {
        if (err != 0) {
            done(err);
            return;
        }
        submit_chain(t, std::move(chain), at + 1, std::move(done));
    });
}

// utime(0, 0) on a lock directory: an unlock request, honoured once the lock has not
// changed for lock_timeout on this node's clock.
void unlock_request(Impl& t, fuse_req_t req, fuse_ino_t ino, const std::string& path) {
    store::EntryInfo info;
    if (int err = t.store.stat_ino(ino, info); err != 0) {
        fuse_reply_err(req, err);
        return;
    }
    if (!t.lock_expired(ino, info.version)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    store::Transition tr;
    tr.op = store::Op::rmdir;
    tr.path = path;
    tr.flags = store::kIfVersion;
    tr.expect = info.version;
    t.hold(req);
    t.submit(std::move(tr), [&t, req, ino, info](int err, std::uint64_t) {
        if (err == ESTALE) err = EACCES;  // renewed or replaced meanwhile: still held
        if (err != 0) {
            t.finish(req, err);
            return;
        }
        log::notice("tree: lock priv/lock/" + info.name + " removed on an unlock request (unchanged for the lock "
                    "timeout on this node)");
        reply_attr_now(t, req, ino, &info);
    });
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, struct fuse_file_info* fi) {
    auto& t = impl_of(req);
    if (ino >= Impl::kVirtualBase) {
        fuse_reply_err(req, EACCES);
        return;
    }
    // Ownership is fixed (root and the tree's group): asking for it is fine, anything else
    // is EPERM (pmxcfs alike; root:root is accepted too, so that cp -a and tar work).
    if ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != 0) {
        fuse_reply_err(req, EPERM);
        return;
    }
    if ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != 0 && attr->st_gid != t.opt.gid) {
        fuse_reply_err(req, EPERM);
        return;
    }
    const int mutating = FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW;
    if (!(to_set & mutating)) {
        t.hold(req);  // (reply_attr_now answers held requests only)
        reply_attr_now(t, req, ino);
        return;
    }
    if (!t.quorate) {
        fuse_reply_err(req, EROFS);
        return;
    }
    store::EntryInfo info;
    std::string path;
    if (int err = t.store.stat_ino(ino, info); err != 0) {
        fuse_reply_err(req, stale(err));
        return;
    }
    if (int err = t.store.path_of(ino, path); err != 0) {
        fuse_reply_err(req, stale(err));
        return;
    }
    Handle* h = fi ? reinterpret_cast<Handle*>(fi->fh) : nullptr;
    if (h && !h->writable) h = nullptr;
    std::vector<store::Transition> chain;
    auto make = [&](store::Op op) -> store::Transition& {
        auto& tr = chain.emplace_back();
        tr.op = op;
        tr.path = path;
        tr.flags = store::kIfInode;
        tr.expect = ino;
        return tr;
    };

    if (to_set & FUSE_SET_ATTR_SIZE) {
        if (info.dir) {
            fuse_reply_err(req, EISDIR);
            return;
        }
        auto size = static_cast<std::uint64_t>(attr->st_size < 0 ? 0 : attr->st_size);
        if (size > t.current_limits().max_file_size) {
            fuse_reply_err(req, EFBIG);
            return;
        }
        if (h) {
            // (Never answer while holding h->mu: once answered, the kernel may release h.)
            t.writing(h);
            int err;
            {
                std::lock_guard lock(h->mu);
                err = t.load(*h);
                if (err == 0) {
                    h->buf.resize(size, 0);
                    h->dirty = true;
                    ++h->gen;
                }
            }
            if (err != 0) {
                fuse_reply_err(req, err);
                return;
            }
        } else {
            make(store::Op::truncate).size = size;
        }
    }
    if (to_set & FUSE_SET_ATTR_MODE) {
        std::uint32_t mode = attr->st_mode & 07777;
        if (mode & 07000) {
            fuse_reply_err(req, EPERM);  // no set-id or sticky bits
            return;
        }
        if ((mode & 0777) != (info.mode & 0777)) make(store::Op::set_mode).mode = mode & 0777;
    }
    if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
        if (!(to_set & FUSE_SET_ATTR_MTIME_NOW) && attr->st_mtim.tv_sec < 0) {
            fuse_reply_err(req, EINVAL);  // times before 1970 are not stored (not silently 0)
            return;
        }
        std::uint64_t mtime = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? wall_us() : us_of(attr->st_mtim);
        if (store::is_lock_dir_path(path)) {
            if (mtime == 0 && !(to_set & FUSE_SET_ATTR_MTIME_NOW) && chain.empty()) {
                unlock_request(t, req, ino, path);
                return;
            }
            // A renewal: the store allows it to the holder only (EACCES otherwise).
            auto& tr = make(store::Op::set_mtime);
            tr.size = mtime;
            tr.flags = 0;
            tr.expect = 0;
        } else if (!t.defer_mtime(h, ino, mtime)) {
            make(store::Op::set_mtime).size = mtime;
        }
    }
    t.hold(req);
    submit_chain(t, std::move(chain), 0, [&t, req, ino](int err) {
        if (err != 0)
            t.finish(req, err);
        else
            reply_attr_now(t, req, ino);
    });
}

void op_readlink(fuse_req_t req, fuse_ino_t) { fuse_reply_err(req, EINVAL); }

// Checks a new name and builds its path; 0 or an errno. A rename's destination may be an
// existing entry whose name is longer than a lowered max_name: `may_exist` leaves that
// to the store, which knows whether it exists.
int new_path(Impl& t, fuse_ino_t parent, const char* name, std::string& out, bool may_exist = false) {
    if (!t.quorate) return EROFS;
    if (std::strlen(name) > (may_exist ? store::kMaxName : t.current_limits().max_name)) return ENAMETOOLONG;
    if (parent == t.format_root && Impl::virtual_index(name) >= 0) return EEXIST;
    std::string p;
    if (int err = t.store.path_of(parent, p); err != 0) return stale(err);
    out = child_path(p, name);
    if (out.size() > store::kMaxPath) return ENAMETOOLONG;  // the whole path, as PATH_MAX
    return 0;
}

void reply_new_entry(Impl& t, fuse_req_t req, fuse_ino_t parent, const std::string& name) {
    store::EntryInfo info;
    const std::uint64_t before = t.applied.load();
    int err = t.store.lookup(parent, name, info);
    if (!t.claim(req)) return;
    if (err != 0) {
        fuse_reply_err(req, err);  // removed again before we could answer
        return;
    }
    fuse_entry_param e;
    t.entry_of(info, e);
    t.settle(e, before, t.remember(info.ino, parent, name));
    if (fuse_reply_entry(req, &e) != 0) t.forget(info.ino, 1);
}

// Makes the entry `name` in `parent` with `tr` (its op and mode; the path is set here) and
// answers with it once acknowledged (mknod, mkdir).
void make_entry(fuse_req_t req, fuse_ino_t parent, const char* name, store::Transition tr) {
    auto& t = impl_of(req);
    if (int err = new_path(t, parent, name, tr.path); err != 0) {
        fuse_reply_err(req, err);
        return;
    }
    t.hold(req);
    t.submit(std::move(tr), [&t, req, parent, n = std::string(name)](int err, std::uint64_t) {
        if (err != 0)
            t.finish(req, err);
        else
            reply_new_entry(t, req, parent, n);
    });
}

// mknod(S_IFREG) makes an empty file, as creat() + close() would (EEXIST if the name is
// taken: mknod never opens an existing file); every other kind of node is EPERM.
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
    if (!S_ISREG(mode)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    store::Transition tr;
    tr.op = store::Op::create;
    tr.flags = store::kExclusive | store::kSetMode;
    tr.mode = mode & 0777;
    make_entry(req, parent, name, std::move(tr));
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    store::Transition tr;
    tr.op = store::Op::mkdir;
    tr.mode = mode & 0777;
    make_entry(req, parent, name, std::move(tr));
}

void remove(fuse_req_t req, fuse_ino_t parent, const char* name, store::Op op) {
    auto& t = impl_of(req);
    if (!t.quorate) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (parent == t.format_root && Impl::virtual_index(name) >= 0) {
        fuse_reply_err(req, EACCES);
        return;
    }
    std::string p;
    if (int err = t.store.path_of(parent, p); err != 0) {
        fuse_reply_err(req, stale(err));
        return;
    }
    store::Transition tr;
    tr.op = op;
    tr.path = child_path(p, name);
    if (tr.path.size() > store::kMaxPath) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    t.hold(req);
    t.submit(std::move(tr), [&t, req](int err, std::uint64_t) { t.finish(req, err); });
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) { remove(req, parent, name, store::Op::unlink); }
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) { remove(req, parent, name, store::Op::rmdir); }

void op_symlink(fuse_req_t req, const char*, fuse_ino_t, const char*) { fuse_reply_err(req, EPERM); }
void op_link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { fuse_reply_err(req, EPERM); }

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned int flags) {
    auto& t = impl_of(req);
    if (flags & ~static_cast<unsigned>(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
        fuse_reply_err(req, EINVAL);  // RENAME_WHITEOUT
        return;
    }
    if ((parent == t.format_root && Impl::virtual_index(name) >= 0) ||
        (newparent == t.format_root && Impl::virtual_index(newname) >= 0)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    store::Transition tr;
    if (int err = new_path(t, newparent, newname, tr.path2, true); err != 0) {
        fuse_reply_err(req, err);
        return;
    }
    std::string p;
    if (int err = t.store.path_of(parent, p); err != 0) {
        fuse_reply_err(req, stale(err));
        return;
    }
    tr.op = store::Op::rename;
    tr.path = child_path(p, name);
    if (tr.path.size() > store::kMaxPath) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    if (flags & RENAME_NOREPLACE) tr.flags |= store::kNoReplace;
    if (flags & RENAME_EXCHANGE) tr.flags |= store::kExchange;
    t.hold(req);
    t.submit(std::move(tr), [&t, req](int err, std::uint64_t) { t.finish(req, err); });
}

Handle* new_handle(Impl& t, std::uint64_t ino, int flags) {
    auto* h = new Handle;
    h->ino = ino;
    h->flags = flags;
    h->writable = wants_write(flags);
    if (flags & O_TRUNC) {
        h->loaded = true;
        h->dirty = true;  // the truncation itself is a change, written at close
    }
    (void)t;
    return h;
}

void set_open_flags(Handle* h, struct fuse_file_info* fi) {
    fi->fh = reinterpret_cast<std::uint64_t>(h);
    // A handle that writes bypasses the page cache (other readers on this node keep
    // seeing the committed contents until the write is acknowledged); read-only handles
    // keep the cache, which the tree invalidates whenever a change is applied.
    fi->direct_io = h->writable || h->virt ? 1 : 0;
    fi->keep_cache = h->writable || h->virt ? 0 : 1;
    // Nothing to submit at close for a handle that cannot write: no FLUSH round trip.
    fi->noflush = h->writable ? 0 : 1;
}

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    auto& t = impl_of(req);
    if (ino >= Impl::kVirtualBase && ino < Impl::kVirtualBase + Impl::kVirtualCount) {
        if (wants_write(fi->flags)) {
            fuse_reply_err(req, EACCES);
            return;
        }
        auto* h = new Handle;
        h->ino = ino;
        h->virt = true;
        h->text = t.virtual_text(static_cast<int>(ino - Impl::kVirtualBase));
        set_open_flags(h, fi);
        if (fuse_reply_open(req, fi) != 0) delete h;
        return;
    }
    if (wants_write(fi->flags) && !t.quorate) {
        fuse_reply_err(req, EROFS);
        return;
    }
    store::EntryInfo info;
    wire::Bytes snapshot;
    const bool reader = !wants_write(fi->flags);
    // A reader keeps the contents it opened (read_ino serves them if the file is removed
    // or replaced while open, as POSIX keeps an unlinked file readable).
    if (int err = reader ? t.store.read_ino(ino, snapshot, &info) : t.store.stat_ino(ino, info); err != 0) {
        fuse_reply_err(req, err == EISDIR ? EISDIR : stale(err));
        return;
    }
    if (info.dir) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    t.revalidate(ino);  // before the reply: the reads that follow ask for fresh attributes
    auto* h = new_handle(t, ino, fi->flags);
    if (reader) {
        h->opened = std::move(snapshot);
        h->opened_info = info;
    }
    if (h->dirty) t.writing(h);  // O_TRUNC: empty until written, also for fstat
    set_open_flags(h, fi);
    if (fuse_reply_open(req, fi) != 0) {
        t.not_writing(h);
        delete h;
    }
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, struct fuse_file_info* fi) {
    auto& t = impl_of(req);
    store::Transition tr;
    if (int err = new_path(t, parent, name, tr.path); err != 0) {
        fuse_reply_err(req, err);
        return;
    }
    // Always exclusive in the total order: O_EXCL is atomic cluster-wide, and without
    // O_EXCL an existing file (made elsewhere since the lookup) is opened, not truncated.
    tr.op = store::Op::create;
    tr.flags = store::kExclusive | store::kSetMode;
    tr.mode = mode & 0777;
    struct fuse_file_info copy = *fi;
    t.hold(req);
    t.submit(std::move(tr), [&t, req, parent, n = std::string(name), copy](int err, std::uint64_t) mutable {
        if (err == EEXIST && !(copy.flags & O_EXCL)) err = 0;
        if (err != 0) {
            t.finish(req, err);
            return;
        }
        store::EntryInfo info;
        const std::uint64_t before = t.applied.load();
        err = t.store.lookup(parent, n, info);
        if (err == 0 && info.dir) err = EISDIR;
        if (err != 0) {
            t.finish(req, err);
            return;
        }
        if (!t.claim(req)) return;
        auto* h = new_handle(t, info.ino, copy.flags);
        if (!(copy.flags & O_TRUNC) && info.size == 0) h->loaded = true;  // new and empty
        if (h->dirty) t.writing(h);
        set_open_flags(h, &copy);
        fuse_entry_param e;
        t.entry_of(info, e);
        t.settle(e, before, t.remember(info.ino, parent, n));
        if (fuse_reply_create(req, &e, &copy) != 0) {
            t.forget(info.ino, 1);
            t.not_writing(h);
            delete h;
        }
    });
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
    auto& t = impl_of(req);
    auto* h = reinterpret_cast<Handle*>(fi->fh);
    auto slice = [&](const std::uint8_t* data, std::size_t len) {
        if (off < 0 || static_cast<std::uint64_t>(off) >= len) {
            fuse_reply_buf(req, nullptr, 0);
            return;
        }
        std::size_t n = std::min(size, len - static_cast<std::size_t>(off));
        fuse_reply_buf(req, reinterpret_cast<const char*>(data) + off, n);
    };
    if (h->virt) {
        slice(reinterpret_cast<const std::uint8_t*>(h->text.data()), h->text.size());
        return;
    }
    wire::Bytes data;
    bool mine = false;
    {
        // What this handle wrote (not yet flushed) is what it reads back. (Copied: never
        // answer while holding h->mu, the kernel may release h once answered.)
        std::lock_guard lock(h->mu);
        if (h->loaded) {
            data = h->buf;
            mine = true;
        }
    }
    if (mine) {
        slice(data.data(), data.size());
        return;
    }
    if (int err = t.store.read_ino(ino, data); err != 0) {
        if (err == ENOENT && !h->writable) {
            // Removed or replaced since it was opened: what it held then.
            slice(h->opened.data(), h->opened.size());
            return;
        }
        fuse_reply_err(req, stale(err));
        return;
    }
    slice(data.data(), data.size());
}

void op_write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, struct fuse_file_info* fi) {
    auto& t = impl_of(req);
    auto* h = reinterpret_cast<Handle*>(fi->fh);
    if (h->virt || !h->writable) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (!t.quorate) {
        fuse_reply_err(req, EROFS);
        return;
    }
    t.writing(h);
    const auto max = t.current_limits().max_file_size;
    int err = [&] {
        std::lock_guard lock(h->mu);
        if (int e = t.load(*h); e != 0) return e;
        std::uint64_t at = (h->flags & O_APPEND) ? h->buf.size() : static_cast<std::uint64_t>(off < 0 ? 0 : off);
        if (at + size > max) {
            h->failed = EFBIG;
            return EFBIG;
        }
        if (h->buf.size() < at + size) h->buf.resize(at + size, 0);
        std::memcpy(h->buf.data() + at, buf, size);
        h->dirty = true;
        ++h->gen;
        return 0;
    }();
    // Answered after h->mu is released: once the write returns, close() may release h.
    if (err != 0)
        fuse_reply_err(req, err);
    else
        fuse_reply_write(req, size);
}

// Submits a handle's buffered contents (flush and fsync).
void commit(fuse_req_t req, fuse_ino_t ino, Handle* h) {
    auto& t = impl_of(req);
    if (h->virt) {
        fuse_reply_err(req, 0);
        return;
    }
    std::unique_lock lock(h->mu);
    int early = -1;
    std::string path;
    if (h->failed)
        early = h->failed;
    else if (!h->dirty && !h->mtime_us)
        early = 0;
    else if (!t.quorate)
        early = EROFS;
    else if (int err = t.store.path_of(ino, path); err != 0)
        early = err == ENOENT ? ESTALE : err;  // removed while open: say so, lose nothing silently
    if (early >= 0) {
        lock.unlock();  // answered after h->mu is released: the kernel may then release h
        fuse_reply_err(req, early);
        return;
    }
    std::vector<store::Transition> chain;
    if (h->dirty) {
        auto& tr = chain.emplace_back();
        tr.op = store::Op::write;
        tr.path = path;
        tr.flags = store::kIfInode;
        tr.expect = ino;
        tr.data = h->buf;
    }
    if (h->mtime_us) {
        auto& tr = chain.emplace_back();
        tr.op = store::Op::set_mtime;
        tr.path = path;
        tr.flags = store::kIfInode;
        tr.expect = ino;
        tr.size = *h->mtime_us;
    }
    auto gen = h->gen;
    lock.unlock();
    t.hold(req);
    submit_chain(t, std::move(chain), 0, [&t, req, h, gen](int err) {
        if (err == 0) {
            std::lock_guard l(h->mu);
            if (h->gen == gen) {
                h->dirty = false;
                h->mtime_us.reset();
            }
        }
        // Before the answer: once close() returns, the kernel may release (free) h.
        if (err == 0) t.not_writing(h, gen);
        t.finish(req, err);
    });
}

void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    commit(req, ino, reinterpret_cast<Handle*>(fi->fh));
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int, struct fuse_file_info* fi) {
    commit(req, ino, reinterpret_cast<Handle*>(fi->fh));
}

void op_release(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
    auto& t = impl_of(req);
    auto* h = reinterpret_cast<Handle*>(fi->fh);
    t.not_writing(h);
    if (h && h->dirty && !h->virt)
        log::info("tree: a file handle closed with changes that were not stored (its flush failed)");
    delete h;
    fuse_reply_err(req, 0);
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    auto& t = impl_of(req);
    store::EntryInfo self;
    if (int err = t.store.stat_ino(ino, self); err != 0) {
        fuse_reply_err(req, stale(err));
        return;
    }
    if (!self.dir) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    t.revalidate(ino);
    auto* d = new DirHandle;
    d->ino = ino;
    d->parent = ino;
    d->applied = t.applied.load();  // before the entries are read (list_ino below)
    if (t.store.path_of(ino, d->path) != 0) {
        d->path.clear();  // (a directory deeper than a path can name: each entry finds its own)
    } else if (ino != t.format_root) {
        store::EntryInfo parent;
        if (t.store.stat(parent_path(d->path), parent) == 0) d->parent = parent.ino;
    }
    if (int err = t.store.list_ino(ino, d->entries); err != 0) {
        delete d;
        fuse_reply_err(req, err);
        return;
    }
    if (ino == t.format_root) d->virtual_files = true;
    fi->fh = reinterpret_cast<std::uint64_t>(d);
    if (fuse_reply_open(req, fi) != 0) delete d;
}

void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi, bool plus) {
    auto& t = impl_of(req);
    auto* d = reinterpret_cast<DirHandle*>(fi->fh);
    std::vector<char> buf(size);
    std::size_t used = 0;
    std::vector<std::uint64_t> handed;  // the inodes this reply hands the kernel
    // Offsets: 0 ".", 1 "..", then the virtual files at the root, then the entries.
    const std::size_t virt = d->virtual_files ? Impl::kVirtualCount : 0;
    const std::size_t total = 2 + virt + d->entries.size();
    for (std::size_t i = off < 0 ? 0 : static_cast<std::size_t>(off); i < total; ++i) {
        std::string name;
        fuse_entry_param e{};
        if (i < 2) {
            name = i == 0 ? "." : "..";
            e.ino = i == 0 ? ino : d->parent;
            e.attr.st_ino = e.ino;
            e.attr.st_mode = S_IFDIR;
        } else if (i < 2 + virt) {
            int v = static_cast<int>(i - 2);
            name = Impl::kVirtualNames[v];
            e.ino = Impl::kVirtualBase + static_cast<std::uint64_t>(v);
            e.generation = 1;
            e.entry_timeout = t.opt.entry_timeout_s;
            t.virtual_attr(v, std::string(), e.attr);  // size 0: readdir does not build the texts
        } else {
            const auto& c = d->entries[i - 2 - virt];
            name = c.name;
            const std::string path = d->path.empty() ? std::string() : child_path(d->path, c.name);
            t.entry_of(c, e, d->path.empty() ? nullptr : &path);  // one walk up per directory, not per entry
        }
        // readdirplus hands out a lookup for every entry (not for "." and ".."): the
        // entries were read at opendir, so changes applied since then show with timeouts
        // of 0 (remembered first, as settle wants).
        const bool counted = plus && i >= 2 + virt;
        if (counted) {
            t.settle(e, d->applied, t.remember(e.ino, ino, name));
            handed.push_back(e.ino);
        }
        std::size_t n;
        if (plus) {
            n = fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), &e, static_cast<off_t>(i + 1));
        } else {
            n = fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &e.attr, static_cast<off_t>(i + 1));
        }
        if (n > size - used) {
            if (counted) {
                t.forget(e.ino, 1);  // not in this reply
                handed.pop_back();
            }
            break;
        }
        used += n;
    }
    if (fuse_reply_buf(req, buf.data(), used) != 0)
        for (auto h : handed) t.forget(h, 1);  // interrupted: the kernel took none of them
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
    readdir_common(req, ino, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
    readdir_common(req, ino, size, off, fi, true);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
    delete reinterpret_cast<DirHandle*>(fi->fh);
    fuse_reply_err(req, 0);
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t, int, struct fuse_file_info*) {
    fuse_reply_err(req, 0);  // every acknowledged change is durable on every member already
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
    auto& t = impl_of(req);
    auto limits = t.current_limits();
    auto usage = t.store.usage();
    struct statvfs st {};
    st.f_bsize = st.f_frsize = 4096;
    st.f_blocks = limits.max_total_size / 4096;
    std::uint64_t used = (usage.bytes + 4095) / 4096;
    st.f_bfree = st.f_bavail = st.f_blocks > used ? st.f_blocks - used : 0;
    st.f_files = 262144;  // no inode limit: pmxcfs's figure, for df -i
    st.f_ffree = st.f_favail = st.f_files > usage.entries ? st.f_files - usage.entries : 0;
    st.f_namemax = limits.max_name;
    fuse_reply_statfs(req, &st);
}

void op_setxattr(fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) {
    // ENOSYS: the kernel answers ENOTSUP ("Operation not supported") from then on
    // without asking again.
    fuse_reply_err(req, ENOSYS);
}
void op_getxattr(fuse_req_t req, fuse_ino_t, const char*, size_t) { fuse_reply_err(req, ENOSYS); }
void op_listxattr(fuse_req_t req, fuse_ino_t, size_t) { fuse_reply_err(req, ENOSYS); }
void op_removexattr(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, ENOSYS); }

}  // namespace

const struct fuse_lowlevel_ops* tree_ops() {
    static const struct fuse_lowlevel_ops ops = [] {
        struct fuse_lowlevel_ops o {};
        o.init = op_init;
        o.lookup = op_lookup;
        o.forget = op_forget;
        o.forget_multi = op_forget_multi;
        o.getattr = op_getattr;
        o.setattr = op_setattr;
        o.readlink = op_readlink;
        o.mknod = op_mknod;
        o.mkdir = op_mkdir;
        o.unlink = op_unlink;
        o.rmdir = op_rmdir;
        o.symlink = op_symlink;
        o.rename = op_rename;
        o.link = op_link;
        o.open = op_open;
        o.read = op_read;
        o.write = op_write;
        o.flush = op_flush;
        o.release = op_release;
        o.fsync = op_fsync;
        o.opendir = op_opendir;
        o.readdir = op_readdir;
        o.readdirplus = op_readdirplus;
        o.releasedir = op_releasedir;
        o.fsyncdir = op_fsyncdir;
        o.statfs = op_statfs;
        o.setxattr = op_setxattr;
        o.getxattr = op_getxattr;
        o.listxattr = op_listxattr;
        o.removexattr = op_removexattr;
        o.create = op_create;
        return o;
    }();
    return &ops;
}

// ---- handles ----

int Impl::load(Handle& h) {
    if (h.loaded) return 0;
    wire::Bytes data;
    if (int err = store.read_ino(h.ino, data); err != 0) return err == ENOENT ? ESTALE : err;
    h.buf = std::move(data);
    h.loaded = true;
    return 0;
}

// ---- writers ----

bool Impl::defer_mtime(Handle* h, std::uint64_t ino, std::uint64_t mtime) {
    // futimens before close (cp -p, tar): the time goes after the buffered contents, or
    // the write at close would stamp its own. The kernel passes the file only for some
    // calls, so the writer is also found by inode.
    std::lock_guard lock(writers_mu);
    if (!h) {
        auto it = writers.find(ino);
        if (it == writers.end()) return false;
        h = it->second;
    }
    std::lock_guard hl(h->mu);
    if (!h->dirty) return false;
    h->mtime_us = mtime;
    return true;
}

bool Impl::writer_size(std::uint64_t ino, struct stat& st) {
    // A file being written on this node shows the size its writer holds (fstat on the
    // writer's descriptor must see its writes); the contents stay the committed ones.
    std::lock_guard lock(writers_mu);
    auto it = writers.find(ino);
    if (it == writers.end()) return false;
    std::lock_guard hl(it->second->mu);
    st.st_size = static_cast<off_t>(it->second->buf.size());
    st.st_blocks = static_cast<blkcnt_t>((it->second->buf.size() + 511) / 512);
    return true;
}

void Impl::writing(Handle* h) {
    std::lock_guard lock(writers_mu);
    writers[h->ino] = h;
}

void Impl::not_writing(Handle* h, std::optional<std::uint64_t> if_gen) {
    std::lock_guard lock(writers_mu);
    auto it = writers.find(h->ino);
    if (it == writers.end() || it->second != h) return;
    if (if_gen) {
        std::lock_guard hl(h->mu);
        if (h->gen != *if_gen) return;  // written again since: still the writer
    }
    writers.erase(it);
}

// ---- locks ----

bool Impl::lock_expired(std::uint64_t ino, std::uint64_t version) {
    auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(locks_mu);
    auto it = locks.find(ino);
    if (it == locks.end() || it->second.version != version) {
        // Not seen in this version yet (changed before this daemon started): its time
        // starts now.
        locks[ino] = LockSeen{version, now};
        return false;
    }
    return now - it->second.since >= opt.lock_timeout;
}

void Impl::lock_seen(std::uint64_t ino, std::uint64_t version) {
    std::lock_guard lock(locks_mu);
    locks[ino] = LockSeen{version, std::chrono::steady_clock::now()};
}

}  // namespace conclave::fuse
