// The deterministic apply of one transition (apply.h). Every op first checks everything
// that can fail, then writes: a failed transition leaves the state exactly as it was.
#include "store/apply.h"

#include <cerrno>

namespace conclave::store {
namespace {

using format::Node;

class Applier {
public:
    Applier(db::Txn& txn, db::State& st, const Transition& t, std::uint64_t version, Touched& touched)
        : txn_(txn), st_(st), t_(t), version_(version), limits_(st.meta.limits), touched_(touched) {}

    int run() {
        switch (t_.op) {
            case Op::genesis: return genesis();
            case Op::node_add:
            case Op::node_remove:
            case Op::node_votes:
            case Op::quorum_set:
            case Op::totem_set:
            case Op::limits_set: return apply_node_op(st_.meta, t_);
            default: break;
        }
        if (!valid_path(t_.path) || (t_.op == Op::rename && !valid_path(t_.path2))) return EINVAL;
        // No name can be longer than kMaxName; the cluster's max_name binds new names only
        // (write_file, mkdir, rename), as names made before it was lowered stay usable.
        if (too_long(t_.path) || (t_.op == Op::rename && too_long(t_.path2))) return ENAMETOOLONG;
        if (const int err = condition()) return err;
        // A lock directory holds nothing: an entry made in it would re-stamp the lock
        // (its writer and version), letting anyone renew or keep it from expiring.
        if ((t_.op == Op::create || t_.op == Op::write || t_.op == Op::mkdir) && below("/priv/lock", t_.path) &&
            !is_lock_dir_path(t_.path))
            return EACCES;
        // Nor at the names of the tree's virtual files (one made before this rule can
        // still be removed, or renamed away).
        if (((t_.op == Op::create || t_.op == Op::write || t_.op == Op::mkdir) && is_reserved_path(t_.path)) ||
            (t_.op == Op::rename && (is_reserved_path(t_.path2) || ((t_.flags & kExchange) && is_reserved_path(t_.path)))))
            return EACCES;
        switch (t_.op) {
            case Op::create: return write_file(false);
            case Op::write: return write_file(true);
            case Op::truncate: return truncate();
            case Op::mkdir: return mkdir();
            case Op::rmdir: return remove(true);
            case Op::unlink: return remove(false);
            case Op::rename: return rename();
            case Op::set_mtime:
            case Op::set_mode: return set_attr();
            default: return EINVAL;  // not reached: decode() knows every op
        }
    }

private:
    bool too_long(std::string_view path) const {
        std::size_t start = 1;
        while (start < path.size()) {
            std::size_t end = path.find('/', start);
            if (end == std::string_view::npos) end = path.size();
            if (end - start > kMaxName) return true;
            start = end + 1;
        }
        return false;
    }

    // kIfInode / kIfVersion: the entry at t.path must be the one the origin expects.
    // Resolving the path once more here keeps the check in one place for every op.
    int condition() {
        const bool if_inode = t_.flags & kIfInode;
        if (!if_inode && !(t_.flags & kIfVersion)) return 0;
        Node e;
        if (const int err = db::resolve(txn_, t_.path, e)) return err;
        return (if_inode ? e.info.ino : e.info.version) == t_.expect ? 0 : ESTALE;
    }

    // The total after adding `add` and removing `sub` bytes would pass the limit (only
    // growth is refused, so a full tree can always be cleaned up).
    bool no_space(std::uint64_t add, std::uint64_t sub) const {
        return add > sub && st_.total + (add - sub) > limits_.max_total_size;
    }
    void account(std::uint64_t add, std::uint64_t sub) { st_.total = st_.total + add - sub; }

    // An entry that a children record points at must exist; if not, the database is
    // corrupt and the batch aborts (the txn goes bad; the errno returned is moot).
    std::optional<Node> existing(std::uint64_t ino) {
        auto e = txn_.entry(ino);
        if (!e) txn_.fail(MDB_CORRUPTED);
        return e;
    }

    void stamp(Node& n, bool mtime) {
        if (mtime) n.info.mtime_us = t_.timestamp_us;
        n.info.version = version_;
        n.info.writer = t_.origin;
    }
    // A directory whose children changed.
    void touch(std::uint64_t dir) {
        if (auto d = existing(dir)) {
            stamp(*d, true);
            txn_.put_entry(*d);
        }
    }

    Node make(std::uint64_t parent, std::string_view name, bool dir, std::uint32_t mode) {
        Node n;
        n.parent = parent;
        n.info.ino = st_.next_ino++;
        n.info.name = std::string(name);
        n.info.dir = dir;
        n.info.mode = mode & kModeMask;
        stamp(n, true);
        return n;
    }

    int genesis() {
        if (const int err = apply_node_op(st_.meta, t_)) return err;
        touch(format::kRootIno);
        return 0;
    }

    // create (`with_data` false: an empty file) and write (the whole file = t.data).
    int write_file(bool with_data) {
        const bool exclusive = !with_data && (t_.flags & kExclusive);
        if (t_.path == "/") return exclusive ? EEXIST : EISDIR;
        std::uint64_t parent = 0;
        std::string_view name;
        if (const int err = db::lookup_parent(txn_, t_.path, parent, name)) return err;
        const std::uint64_t size = with_data ? t_.data.size() : 0;
        const wire::ByteView data = with_data ? wire::ByteView(t_.data) : wire::ByteView();
        const auto ino = txn_.child(parent, name);
        if (ino) {
            auto e = existing(*ino);
            if (!e) return EIO;
            if (exclusive) return EEXIST;
            if (e->info.dir) return EISDIR;
            if (size > limits_.max_file_size) return EFBIG;
            if (no_space(size, e->info.size)) return ENOSPC;
            account(size, e->info.size);
            e->info.size = size;
            if (t_.flags & kSetMode) e->info.mode = t_.mode & kModeMask;
            stamp(*e, true);
            txn_.put_entry(*e);
            txn_.put_data(*ino, data);
            touched_.entries[0] = *ino;
            return 0;
        }
        if (name.size() > limits_.max_name) return ENAMETOOLONG;
        if (size > limits_.max_file_size) return EFBIG;
        if (no_space(size + name.size(), 0)) return ENOSPC;
        account(size + name.size(), 0);
        Node n = make(parent, name, false, (t_.flags & kSetMode) ? t_.mode : format::kDefaultFileMode);
        n.info.size = size;
        txn_.put_entry(n);
        txn_.put_child(parent, name, n.info.ino);
        txn_.put_data(n.info.ino, data);
        touch(parent);
        touched_ = {{n.info.ino, 0}, {parent, 0}};
        return 0;
    }

    int truncate() {
        Node e;
        if (const int err = db::resolve(txn_, t_.path, e)) return err;
        if (e.info.dir) return EISDIR;
        if (t_.size > limits_.max_file_size) return EFBIG;
        if (no_space(t_.size, e.info.size)) return ENOSPC;
        account(t_.size, e.info.size);
        const wire::ByteView old = txn_.data(e.info.ino);
        wire::Bytes bytes(old.begin(), old.end());
        bytes.resize(static_cast<std::size_t>(t_.size), 0);
        e.info.size = t_.size;
        stamp(e, true);
        txn_.put_entry(e);
        txn_.put_data(e.info.ino, bytes);
        touched_.entries[0] = e.info.ino;
        return 0;
    }

    int mkdir() {
        if (t_.path == "/") return EEXIST;
        std::uint64_t parent = 0;
        std::string_view name;
        if (const int err = db::lookup_parent(txn_, t_.path, parent, name)) return err;
        if (txn_.child(parent, name)) return EEXIST;
        if (name.size() > limits_.max_name) return ENAMETOOLONG;
        if (no_space(name.size(), 0)) return ENOSPC;
        account(name.size(), 0);
        Node n = make(parent, name, true, t_.mode);
        txn_.put_entry(n);
        txn_.put_child(parent, name, n.info.ino);
        touch(parent);
        touched_ = {{n.info.ino, 0}, {parent, 0}};
        return 0;
    }

    // rmdir (`dir` true) and unlink.
    int remove(bool dir) {
        if (t_.path == "/") return dir ? EBUSY : EISDIR;
        std::uint64_t parent = 0;
        std::string_view name;
        if (const int err = db::lookup_parent(txn_, t_.path, parent, name)) return err;
        const auto ino = txn_.child(parent, name);
        if (!ino) return ENOENT;
        const auto e = existing(*ino);
        if (!e) return EIO;
        if (dir && !e->info.dir) return ENOTDIR;
        if (!dir && e->info.dir) return EISDIR;
        if (dir && txn_.has_children(*ino)) return ENOTEMPTY;
        account(0, e->info.size + name.size());
        txn_.del_entry(*ino);
        txn_.del_child(parent, name);
        txn_.del_data(*ino);
        touch(parent);
        touched_ = {{*ino, 0}, {parent, 0}};
        return 0;
    }

    // True when `inner` lies strictly below directory path `outer`.
    static bool below(std::string_view outer, std::string_view inner) {
        return inner.size() > outer.size() && inner.substr(0, outer.size()) == outer && inner[outer.size()] == '/';
    }

    // Paths a rename may not touch: a lock directory, anything in one, and the directories
    // holding them (moving any of these would move or free locks without their rmdir).
    static bool lock_path(std::string_view path) {
        return path == "/priv" || path == "/priv/lock" || below("/priv/lock", path);
    }

    int rename() {
        const std::uint32_t f = t_.flags;
        if ((f & kNoReplace) && (f & kExchange)) return EINVAL;
        if (t_.path == "/" || t_.path2 == "/") return EBUSY;
        if (lock_path(t_.path) || lock_path(t_.path2)) return EACCES;
        std::uint64_t sp = 0, dp = 0;
        std::string_view sn, dn;
        if (const int err = db::lookup_parent(txn_, t_.path, sp, sn)) return err;
        const auto src_ino = txn_.child(sp, sn);
        if (!src_ino) return ENOENT;
        if (const int err = db::lookup_parent(txn_, t_.path2, dp, dn)) return err;
        const auto dst_ino = txn_.child(dp, dn);
        if (t_.path == t_.path2) return (f & kNoReplace) ? EEXIST : 0;
        auto src = existing(*src_ino);
        if (!src) return EIO;
        if (src->info.dir && below(t_.path, t_.path2)) return EINVAL;
        std::optional<Node> dst;
        if (dst_ino && !(dst = existing(*dst_ino))) return EIO;

        if (f & kExchange) {
            if (!dst) return ENOENT;
            if (dst->info.dir && below(t_.path2, t_.path)) return EINVAL;
            // Swap the two entries' places; names swap too, so the total is unchanged.
            txn_.put_child(sp, sn, *dst_ino);
            txn_.put_child(dp, dn, *src_ino);
            src->parent = dp;
            src->info.name = std::string(dn);
            dst->parent = sp;
            dst->info.name = std::string(sn);
            stamp(*src, false);
            stamp(*dst, false);
            txn_.put_entry(*src);
            txn_.put_entry(*dst);
        } else {
            std::uint64_t freed = sn.size();
            if (dst) {
                if (f & kNoReplace) return EEXIST;
                if (src->info.dir && !dst->info.dir) return ENOTDIR;
                if (!src->info.dir && dst->info.dir) return EISDIR;
                if (dst->info.dir && txn_.has_children(*dst_ino)) return ENOTEMPTY;
                freed += dst->info.size + dn.size();
            } else if (dn.size() > limits_.max_name) {
                return ENAMETOOLONG;
            }
            if (no_space(dn.size(), freed)) return ENOSPC;
            account(dn.size(), freed);
            if (dst) {
                txn_.del_entry(*dst_ino);
                txn_.del_data(*dst_ino);
            }
            txn_.del_child(sp, sn);
            txn_.put_child(dp, dn, *src_ino);
            src->parent = dp;
            src->info.name = std::string(dn);
            stamp(*src, false);
            txn_.put_entry(*src);
        }
        touch(sp);
        if (dp != sp) touch(dp);
        touched_ = {{*src_ino, dst_ino.value_or(0)}, {sp, dp}};
        return 0;
    }

    // Only a lock's holder (its writer: the node that took or last renewed it) may set
    // its mtime, and never backwards: the other nodes judge the lock's age by it.
    bool renews_lock(const Node& lock) const {
        return t_.origin == lock.info.writer && t_.size != 0 && t_.size >= lock.info.mtime_us;
    }

    int set_attr() {
        Node e;
        if (const int err = db::resolve(txn_, t_.path, e)) return err;
        if (t_.op == Op::set_mtime) {
            if (e.info.dir && is_lock_dir_path(t_.path) && !renews_lock(e)) return EACCES;
            e.info.mtime_us = t_.size;
            stamp(e, false);
        } else {
            e.info.mode = t_.mode & kModeMask;
            stamp(e, false);
        }
        txn_.put_entry(e);
        touched_.entries[0] = e.info.ino;
        return 0;
    }

    db::Txn& txn_;
    db::State& st_;
    const Transition& t_;
    const std::uint64_t version_;
    const Limits limits_;
    Touched& touched_;
};

}  // namespace

int apply_transition(db::Txn& txn, db::State& st, const Transition& t, std::uint64_t version, Touched* touched) {
    Touched scratch;
    const int err = Applier(txn, st, t, version, touched ? *touched : scratch).run();
    if (err != 0 && touched) *touched = {};
    return err;
}

}  // namespace conclave::store
