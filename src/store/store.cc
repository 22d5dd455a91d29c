// The LMDB store (store.h): environment, batched apply with the hash chain and the
// retained log, reads, snapshots. The layout is in db.h, the per-op rules in apply.h,
// the snapshot and content-hash formats in format.h / store.h.
#include "store/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "base/thread_name.h"
#include "store/apply.h"
#include "store/db.h"
#include "store/format.h"
#include "store/journal.h"

namespace conclave::store {
namespace {

std::string lmdb_error(const char* what, int rc) { return std::string(what) + ": " + mdb_strerror(rc); }

struct VersionKey {
    std::uint8_t b[8];
    explicit VersionKey(std::uint64_t v) { format::put_be64(b, v); }
    wire::ByteView view() const { return wire::ByteView(b, 8); }
};

// A transaction that aborts unless committed.
class TxnGuard {
public:
    TxnGuard() = default;
    ~TxnGuard() {
        if (txn_) mdb_txn_abort(txn_);
    }
    TxnGuard(const TxnGuard&) = delete;
    TxnGuard& operator=(const TxnGuard&) = delete;
    int begin(MDB_env* env, bool read_only) { return mdb_txn_begin(env, nullptr, read_only ? MDB_RDONLY : 0, &txn_); }
    MDB_txn* get() const { return txn_; }
    int commit() {
        const int rc = mdb_txn_commit(txn_);
        txn_ = nullptr;
        return rc;
    }

private:
    MDB_txn* txn_ = nullptr;
};

// Walks a database's records in key order: fn(key, value) -> false stops. An LMDB error
// marks the transaction bad.
template <typename Fn>
void walk(db::Txn& txn, MDB_dbi dbi, wire::ByteView from, Fn&& fn) {
    if (!txn.ok()) return;
    MDB_cursor* cur = nullptr;
    if (const int rc = mdb_cursor_open(txn.raw(), dbi, &cur)) {
        txn.fail(rc);
        return;
    }
    MDB_val k{from.size(), const_cast<std::uint8_t*>(from.data())}, v{};
    int rc = mdb_cursor_get(cur, &k, &v, from.empty() ? MDB_FIRST : MDB_SET_RANGE);
    while (rc == 0) {
        const wire::ByteView key(static_cast<const std::uint8_t*>(k.mv_data), k.mv_size);
        const wire::ByteView value(static_cast<const std::uint8_t*>(v.mv_data), v.mv_size);
        if (!fn(key, value)) break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) txn.fail(rc);
    mdb_cursor_close(cur);
}

// Every entry of the tree in inode order, with its file bytes (empty for a directory):
// fn(node, data). A record that does not decode marks the transaction corrupted.
template <typename Fn>
void for_each_entry(db::Txn& txn, Fn&& fn) {
    walk(txn, txn.dbs().entries, {}, [&](wire::ByteView key, wire::ByteView value) {
        wire::Reader r(value);
        format::Node n;
        if (key.size() != 8 || !format::get_entry(r, n) || !r.at_end()) {
            txn.fail(MDB_CORRUPTED);
            return false;
        }
        n.info.ino = format::get_be64(key.data());
        fn(n, n.info.dir ? wire::ByteView() : txn.data(n.info.ino));
        return true;
    });
}

// Log records with version > `after`, in order.
std::vector<LogRecord> log_records(db::Txn& txn, std::uint64_t after) {
    std::vector<LogRecord> out;
    const VersionKey from(after + 1);
    walk(txn, txn.dbs().log, from.view(), [&](wire::ByteView key, wire::ByteView value) {
        LogRecord rec;
        if (key.size() != 8 || !db::get_log_value(value, format::get_be64(key.data()), rec)) {
            txn.fail(MDB_CORRUPTED);
            return false;
        }
        out.push_back(std::move(rec));
        return true;
    });
    return out;
}

// Drops the oldest records beyond `retain` records or `retain_bytes` of pages (keeping
// the newest record), moving the log base up to the last dropped.
void trim_log(db::Txn& txn, db::State& st, std::uint64_t retain, std::uint64_t retain_bytes) {
    std::size_t n = txn.count(txn.dbs().log);
    while (txn.ok() && (n > retain || (n > 1 && txn.page_bytes(txn.dbs().log) > retain_bytes))) {
        std::uint64_t version = 0;
        LogRecord rec;
        walk(txn, txn.dbs().log, {}, [&](wire::ByteView key, wire::ByteView value) {
            if (key.size() != 8 || !db::get_log_value(value, format::get_be64(key.data()), rec)) txn.fail(MDB_CORRUPTED);
            version = rec.version;
            return false;
        });
        if (!txn.ok()) return;
        st.base_version = version;
        st.base_hash = rec.hash;
        txn.del(txn.dbs().log, VersionKey(version).view());
        --n;
    }
}

EntryInfo info_of(const format::Node& n) { return n.info; }

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

Status fsync_path(const std::string& path, bool dir) {
    const int fd = ::open(path.c_str(), (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return Error{errno_text("store: cannot open " + path)};
    const int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) return Error{errno_text("store: cannot sync " + path)};
    return Ok{};
}

// The session record: "<boot id> clean|dirty", padded with spaces to a fixed size well
// inside one disk sector, written in place (a sector is written whole or not at all; a
// record that does not parse reads as no session, which makes the next open rebuild
// LMDB's file: the safe side).
constexpr std::size_t kSessionSize = 128;

Status write_session(const std::string& dir, const std::string& path, const std::string& boot, bool clean,
                     bool sync) {
    std::string text = boot + (clean ? " clean\n" : " dirty\n");
    if (text.size() > kSessionSize) return Error{"store: boot id too long"};
    text.resize(kSessionSize, ' ');
    const bool fresh = !exists(path);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Error{errno_text("store: cannot open " + path)};
    const bool written = ::pwrite(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size());
    const bool synced = !sync || ::fdatasync(fd) == 0;
    ::close(fd);
    if (!written || !synced) return Error{errno_text("store: cannot write " + path)};
    return sync && fresh ? fsync_path(dir, true) : Status{Ok{}};
}

// Copies `from` over `to` (through a temporary file renamed over it), durably if `sync`.
Status copy_file(const std::string& dir, const std::string& from, const std::string& to, bool sync) {
    const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) return Error{errno_text("store: cannot open " + from)};
    const std::string tmp = to + ".tmp";
    const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        ::close(in);
        return Error{errno_text("store: cannot create " + tmp)};
    }
    std::vector<std::uint8_t> buf(1u << 20);
    bool ok = true;
    std::uint64_t at = 0;
    for (;;) {
        const ssize_t n = ::read(in, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ok = n == 0;
            break;
        }
        // Short writes (a signal, a nearly full disk) are written on; ENOSPC fails below.
        if (!write_all(out, buf.data(), static_cast<std::size_t>(n), at, "", tmp)) {
            ok = false;
            break;
        }
        at += static_cast<std::uint64_t>(n);
    }
    ok = ok && (!sync || ::fsync(out) == 0);
    // The copy leaves the page cache: written 1 MiB at a time it sits in large folios,
    // and a store through LMDB's writable map into one makes the whole folio dirty
    // (Store::Impl::reserve). Read back by page faults, pages come in one at a time.
    if (ok) (void)::posix_fadvise(out, 0, 0, POSIX_FADV_DONTNEED);
    ::close(in);
    ::close(out);
    if (!ok) return Error{errno_text("store: cannot copy " + from + " to " + tmp)};
    if (::rename(tmp.c_str(), to.c_str()) != 0) return Error{errno_text("store: cannot rename " + tmp)};
    return sync ? fsync_path(dir, true) : Status{Ok{}};
}

std::string machine_boot_id() {
    std::ifstream f("/proc/sys/kernel/random/boot_id");
    std::string id;
    std::getline(f, id);
    return id.empty() ? "unknown" : id;
}

// The session file: "<boot id> clean|dirty". Missing: a fresh store (or one from before
// the journal, whose LMDB commits were synced).
struct Session {
    bool exists = false;
    std::string boot;
    bool clean = false;
};

Session read_session(const std::string& path) {
    Session s;
    std::ifstream f(path);
    std::string state;
    if (f >> s.boot >> state) {
        s.exists = true;
        s.clean = state == "clean";
    }
    return s;
}

}  // namespace

struct Store::Impl {
    MDB_env* env = nullptr;
    db::Dbs dbs;
    Options options;
    std::string dir;
    std::string boot;
    std::unique_ptr<Journal> journal;
    bool closed = false;
    std::string unsynced;  // a journal sync failed after its commit: why (Store::apply)
    std::uint64_t last_sync_us = 0;  // Store::last_sync_micros
    // The writable map (MDB_WRITEMAP) over data.mdb, which LMDB makes as long as the map
    // and sparse: a page fault on a hole needs a block, and on a full file system that
    // is a SIGBUS, not an error. So before every write transaction the blocks the
    // transaction may newly use (past LMDB's last used page) are allocated first
    // (reserve()): a full file system fails that with ENOSPC, which the node stops on,
    // like the failed commit of a pwrite would. Pages below the last used one were all
    // written before (freed pages are reused in place), so they have blocks.
    int data_fd = -1;
    std::uint64_t page_size = 4096;
    std::uint64_t reserved_end = 0;  // data.mdb is allocated up to here (bytes)
    std::uint64_t overruns = 0;      // transactions that went past it (Store::reserve_overruns)

    std::uint64_t retain_bytes() const { return options.retain_bytes ? options.retain_bytes : options.map_size / 4; }

    // The checkpointer: copies the environment to base.mdb when asked (background
    // thread, or inline when !options.background_checkpoint).
    std::mutex ck_mu;
    std::condition_variable ck_cv;
    bool ck_requested = false, ck_running = false, ck_stop = false;
    std::string ck_error;
    std::uint64_t base_size = 0;  // bytes of the last checkpoint
    std::thread ck_thread;

    ~Impl() {
        stop_checkpointer();
        if (env) mdb_env_close(env);
    }

    std::string path(const char* name) const { return dir + "/" + name; }

    // Bytes of data.mdb up to LMDB's last used page; 0 if LMDB cannot say.
    std::uint64_t bytes_in_use() const {
        MDB_envinfo info;
        if (mdb_env_info(env, &info) != 0) return 0;
        return (static_cast<std::uint64_t>(info.me_last_pgno) + 1) * page_size;
    }
    // Gives data.mdb blocks for `pages` new pages past the last one in use (see
    // data_fd), in steps of 1 MiB, by writing zeros there: those pages are unused (the
    // one writer is between transactions), and written blocks are plain data to the
    // file system (fallocate's unwritten extents made every later page fault and
    // writeback convert them, which cost what the writable map saves). One write per
    // page: the page cache holds what a write brings in as folios as large as the
    // write, and the first store to a page of the map after writeback makes the file
    // system dirty (and later write back) the whole folio: with 1 MiB writes that was
    // 256 pages per fault, a sixth of the apply thread's time in the 64-client bench.
    Status reserve(std::uint64_t pages) {
        const std::uint64_t in_use = bytes_in_use();
        if (in_use == 0) return Error{"store: cannot read the LMDB state of " + path("data.mdb")};
        if (reserved_end != 0 && in_use > reserved_end) ++overruns;  // pages_for() fell short
        reserved_end = std::max(reserved_end, in_use);
        const std::uint64_t need = std::min<std::uint64_t>(in_use + pages * page_size, options.map_size);
        if (need <= reserved_end) return Ok{};
        const std::uint64_t step = 1u << 20;
        const std::uint64_t end = std::min<std::uint64_t>((need + step - 1) / step * step, options.map_size);
        const std::vector<std::uint8_t> zeros(page_size);
        for (std::uint64_t at = reserved_end; at < end;) {
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(end - at, page_size));
            int err = 0;
            if (auto w = write_all(data_fd, zeros.data(), n, at, "store: cannot allocate disk space in ", path("data.mdb"),
                                   &err);
                !w)
                return Error{w.error() + (err == ENOSPC ? " (free some space and restart the node)" : "")};
            at += n;
            reserved_end = at;
        }
        return Ok{};
    }
    // An upper bound of the pages a batch can newly take (reserve()): per transition the bytes it
    // writes twice (the file and the retained log, overflow pages when large; a
    // truncate's zeros once more), copied and split B-tree paths in every database, and
    // the free list's own pages per commit.
    std::uint64_t pages_for(std::span<const Item> items) const {
        std::uint64_t pages = 256;
        for (const Item& item : items) {
            const Transition& t = item.t;
            std::uint64_t bytes = t.data.size() + t.path.size() + t.path2.size();
            if (t.op == Op::truncate) bytes += std::min<std::uint64_t>(t.size, kMaxData);
            pages += 96 + 2 * (bytes / page_size + 1);
        }
        return pages;
    }
    // ... and for installing a snapshot: large values in overflow pages of their own,
    // small records in leaves at least half full, plus branches and the free list.
    std::uint64_t pages_for(const SnapshotContents& s) const {
        std::uint64_t pages = 1024, leaf_bytes = 0;
        const auto value = [&](std::uint64_t bytes) {
            if (bytes >= 1024) pages += bytes / page_size + 2;
            else leaf_bytes += bytes;
        };
        for (const SnapshotEntry& e : s.entries) {
            value(e.data.size() + 16);
            leaf_bytes += 2 * e.info.name.size() + 160;  // the entry and the directory's child record
        }
        for (const LogRecord& rec : s.log) value(rec.transition.size() + 96);
        pages += 2 * (leaf_bytes / page_size + 1);
        return pages + pages / 16;
    }
    std::string refused_after_unsynced() const {
        return "store: refusing to apply: an earlier commit was not made durable (" + unsynced +
               "); restart the node";
    }

    void stop_checkpointer() {
        {
            std::lock_guard l(ck_mu);
            ck_stop = true;
        }
        ck_cv.notify_all();
        if (ck_thread.joinable()) ck_thread.join();
    }

    // A compacted copy of the environment as base.mdb, durable when it returns.
    // Copying at full speed is cheaper overall than pacing the copy: a paced copy keeps its
    // read transaction (and with it every page the writer frees meanwhile) for longer,
    // and the journal's syncs are slow for as long as it runs (measured on the 3-node
    // bench: about the same loss, spread over three times as long).
    Status checkpoint() {
        const std::string tmp = path("base.mdb.tmp");
        const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) return Error{errno_text("store: checkpoint: cannot create " + tmp)};
        int rc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT);
        struct stat st {};
        if (rc == 0 && options.sync && ::fsync(fd) != 0) rc = errno;
        if (rc == 0 && ::fstat(fd, &st) != 0) rc = errno;
        ::close(fd);
        if (rc != 0) {
            ::unlink(tmp.c_str());  // a partial copy only takes space (a full disk, say)
            return Error{lmdb_error(("store: checkpoint: cannot write " + tmp).c_str(), rc)};
        }
        if (::rename(tmp.c_str(), path("base.mdb").c_str()) != 0)
            return Error{errno_text("store: checkpoint: cannot rename " + tmp)};
        if (options.sync)
            if (auto s = fsync_path(dir, true); !s) return s;
        std::lock_guard l(ck_mu);
        base_size = static_cast<std::uint64_t>(st.st_size);
        return Ok{};
    }

    void checkpointer() {
        name_this_thread("cv-checkpoint");
        std::unique_lock l(ck_mu);
        for (;;) {
            ck_cv.wait(l, [&] { return ck_requested || ck_stop; });
            if (!ck_requested) return;
            ck_requested = false;
            ck_running = true;
            l.unlock();
            Status s = checkpoint();
            // The next journal file at its next size, now rather than at the rotation. Only
            // an optimisation: a file that could not grow (a full disk) stays as it is,
            // and a rotation grows it if a batch needs it.
            if (s) (void)journal->grow_other(next_journal_size());
            l.lock();
            ck_running = false;
            if (!s && ck_error.empty()) ck_error = s.error();
            ck_cv.notify_all();
        }
    }

    // Waits for the checkpoint in progress (if any); its error, if it failed.
    Status wait_checkpoint() {
        std::unique_lock l(ck_mu);
        ck_cv.wait(l, [&] { return !ck_requested && !ck_running; });
        if (!ck_error.empty()) return Error{ck_error};
        return Ok{};
    }

    // A journal file at least four times the last checkpoint: a checkpoint then writes at
    // most about a quarter as many bytes as the journal took since the previous one (a
    // checkpoint slows every commit while it runs). At most 256 MiB: a state near the
    // largest allowed checkpoints more often instead of holding gigabytes of journal.
    std::uint64_t next_journal_size() {
        std::lock_guard l(ck_mu);
        const std::uint64_t want = std::min<std::uint64_t>(4 * base_size, 256u << 20);
        return std::max<std::uint64_t>(options.journal_capacity, want);
    }

    // The active journal file is full: the batch after `head` goes to the other one, and
    // a checkpoint (at or past `head`) frees the file that held the records up to it.
    Status rotate_journal(const Head& head, std::size_t room) {
        if (auto s = wait_checkpoint(); !s) return s;
        journal->release_retired();  // the last checkpoint covers it
        // The checkpointer grew the file already (grow_other); only a batch larger than
        // that grows it here.
        if (auto s = journal->rotate(head.version, head.hash, room); !s) return s;
        if (!options.background_checkpoint) {
            if (auto s = checkpoint(); !s) return s;
            (void)journal->grow_other(next_journal_size());
            journal->release_retired();
            return Ok{};
        }
        {
            std::lock_guard l(ck_mu);
            ck_requested = true;
        }
        ck_cv.notify_all();
        return Ok{};
    }

    Result<std::vector<Applied>> apply(std::span<const Item> items, bool journaled);
    // One attempt; `lmdb_rc` gets the LMDB error it failed with (0: none, or another kind).
    Result<std::vector<Applied>> apply_once(std::span<const Item> items, bool journaled, int& lmdb_rc);

    // A read transaction (MVCC snapshot) for fn(db::Txn&); false if LMDB failed.
    template <typename Fn>
    bool read(Fn&& fn) const {
        TxnGuard g;
        if (g.begin(env, true) != 0) return false;
        db::Txn txn(g.get(), dbs);
        fn(txn);
        return txn.ok();
    }

    // The entry reads, by path or by inode number: find(txn, node) finds the entry,
    // use(txn, node) reads it, each 0 or an errno; EIO when LMDB failed.
    template <typename Find, typename Use>
    int read_entry(Find&& find, Use&& use) const {
        int err = EIO;
        const bool ok = read([&](db::Txn& txn) {
            format::Node n;
            err = find(txn, n);
            if (err == 0) err = use(txn, n);
        });
        return ok ? err : EIO;
    }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(const std::string& dir, Options options) {
    auto impl = std::make_unique<Impl>();
    impl->options = options;
    impl->dir = dir;
    impl->boot = options.boot_id.empty() ? machine_boot_id() : options.boot_id;

    // Is LMDB's file what was last committed? Its commits are not synced: only the page
    // cache holds them until the kernel writes them back, so after a stop that was not
    // clean on an earlier boot it may be torn. Then it is rebuilt from the last
    // checkpoint, and the journal brings it to the last durable commit.
    const Session session = read_session(impl->path("session"));
    const bool journal_exists = exists(impl->path("journal.0")) || exists(impl->path("journal.1"));
    const bool trusted = session.exists ? session.clean || session.boot == impl->boot : !journal_exists;
    if (!trusted) {
        if (!exists(impl->path("base.mdb")))
            return Error{"store: " + dir + " was not closed cleanly on an earlier boot and has no checkpoint "
                         "(base.mdb) to recover from; remove the directory and start again: the node then "
                         "syncs the state from the cluster"};
        if (auto st = copy_file(dir, impl->path("base.mdb"), impl->path("data.mdb"), options.sync); !st)
            return Error{st.error()};
    }
    // From here on LMDB commits without syncing: the next open must know.
    if (auto st = write_session(dir, impl->path("session"), impl->boot, false, options.sync); !st)
        return Error{st.error()};

    int rc = mdb_env_create(&impl->env);
    if (rc) return Error{lmdb_error("store: cannot create LMDB environment", rc)};
    mdb_env_set_maxdbs(impl->env, 8);
    if ((rc = mdb_env_set_mapsize(impl->env, options.map_size)))
        return Error{lmdb_error("store: cannot set the LMDB map size", rc)};
    // MDB_NOTLS: read transactions are not tied to a thread (FUSE workers, any thread).
    // MDB_NOSYNC: durability is the journal's. MDB_WRITEMAP: a transaction writes its
    // pages in the map, not in malloc'd copies written with one pwrite per page at commit
    // (those were a third of the apply thread's CPU with 64 clients; 3-node bench at 64
    // clients: ~13.3k puts/s with them, ~16.5k without); Impl::reserve() keeps a full
    // file system an error rather than a SIGBUS.
    // MDB_NORDAHEAD: reads touch few pages; readahead would only fill the page cache.
    if ((rc = mdb_env_open(impl->env, dir.c_str(), MDB_NOTLS | MDB_NOSYNC | MDB_WRITEMAP | MDB_NORDAHEAD, 0600)))
        return Error{lmdb_error(("store: cannot open LMDB environment in " + dir).c_str(), rc) +
                     (trusted ? "" : " (rebuilt from the checkpoint base.mdb after an unclean stop on an earlier "
                                     "boot); remove the directory and start again: the node then syncs the state "
                                     "from the cluster")};
    {
        mdb_filehandle_t fd = -1;
        MDB_stat est;
        if ((rc = mdb_env_get_fd(impl->env, &fd)) || (rc = mdb_env_stat(impl->env, &est)))
            return Error{lmdb_error("store: cannot read the LMDB environment", rc)};
        impl->data_fd = fd;
        impl->page_size = est.ms_psize;
    }
    if (auto r = impl->reserve(256); !r) return Error{r.error()};

    TxnGuard g;
    if ((rc = g.begin(impl->env, false))) return Error{lmdb_error("store: cannot begin a transaction", rc)};
    struct Named {
        const char* name;
        MDB_dbi* dbi;
    } named[] = {{"state", &impl->dbs.state},
                 {"entries", &impl->dbs.entries},
                 {"children", &impl->dbs.children},
                 {"data", &impl->dbs.data},
                 {"log", &impl->dbs.log}};
    for (const Named& n : named)
        if ((rc = mdb_dbi_open(g.get(), n.name, MDB_CREATE, n.dbi)))
            return Error{lmdb_error("store: cannot open database", rc)};

    db::Txn txn(g.get(), impl->dbs);
    db::State st;
    if (!txn.load_state(st)) {
        if (const std::uint32_t f = txn.stored_state_format(); f > db::kStateFormat)
            return Error{"store: " + dir + " was written by a newer conclaved (state format " + std::to_string(f) +
                         "; this one reads formats 1 to " + std::to_string(db::kStateFormat) +
                         "): run that version or a newer one, or remove the directory to sync the state "
                         "from the cluster"};
        if (!txn.ok()) return Error{lmdb_error("store: state record unreadable", txn.rc())};
        // A fresh store: the empty state is just the root directory.
        format::Node root;
        root.info.ino = format::kRootIno;
        root.info.dir = true;
        root.info.mode = format::kDefaultDirMode;
        txn.put_entry(root);
        txn.save_state(st);
    }
    if (!txn.ok()) return Error{lmdb_error("store: cannot initialise", txn.rc())};
    if ((rc = g.commit())) return Error{lmdb_error("store: cannot commit", rc)};

    // What the journal holds past the head: committed durably, but not (or no longer)
    // in LMDB's file. Applied again, each record checked against the hash it recorded.
    // New journal files start small (a fresh node zero-fills 8 MiB, not 128); the
    // checkpointer grows each to its working size before it is used again.
    auto journal = Journal::open(dir, std::min<std::uint64_t>(options.journal_capacity, 4u << 20), options.sync);
    if (!journal) return Error{"store: " + journal.error()};
    impl->journal = std::move(journal.value());
    auto records = impl->journal->read_all();
    if (!records) return Error{"store: " + records.error()};
    Store store(std::move(impl));
    Head head = st.head;  // the state as the transaction above read (or made) it
    // Segments below journal_from hold a history that an install replaced (a power
    // failure came between its checkpoint and its journal reset): none of it is replayed.
    store.impl_->journal->raise_next_seq(st.journal_from);
    for (const JournalRecord& rec : records.value()) {
        if (rec.segment_seq < st.journal_from) continue;
        if (rec.last_version() <= head.version) continue;
        if (rec.first_version > head.version + 1)
            return Error{"store: the journal in " + dir + " does not continue the state (it resumes at version " +
                         std::to_string(rec.first_version) + ", the state is at " + std::to_string(head.version) +
                         "); remove the directory and start again: the node then syncs the state from the cluster"};
        // A record may begin before the head: a merged batch whose commit failed is
        // journaled, and applied again in smaller batches (the apply worker's retry), so a
        // crash can leave LMDB inside it. Its entries past the head are applied; the hash
        // they end at shows they continue this history.
        std::vector<Item> items;
        for (std::size_t i = head.version + 1 - rec.first_version; i < rec.entries.size(); ++i) {
            const JournalEntry& e = rec.entries[i];
            auto t = decode(e.transition);
            if (!t) return Error{"store: a journal record does not decode: " + t.error()};
            items.push_back(Item{e.epoch, std::move(t.value()), std::nullopt});
        }
        if (auto r = store.impl_->apply(items, false); !r) return Error{r.error()};
        head = store.head();
        if (head.hash != rec.last_hash)
            return Error{"store: replaying the journal in " + dir + " gave another history at version " +
                         std::to_string(head.version) + "; remove the directory and start again: the node then "
                         "syncs the state from the cluster"};
    }
    // A checkpoint at the head: the journal starts afresh.
    if (auto c = store.impl_->checkpoint(); !c) return Error{c.error()};
    if (auto r = store.impl_->journal->reset(head.version, head.hash); !r) return Error{"store: " + r.error()};
    if (options.background_checkpoint) {
        Impl* i = store.impl_.get();
        i->ck_thread = std::thread([i] { i->checkpointer(); });
    }
    return std::unique_ptr<Store>(new Store(std::move(store.impl_)));
}

Status Store::close() {
    Impl& i = *impl_;
    if (i.closed) return Ok{};
    i.closed = true;
    auto waited = i.wait_checkpoint();
    i.stop_checkpointer();
    if (!waited) return waited;
    if (i.options.sync)
        if (const int rc = mdb_env_sync(i.env, 1)) return Error{lmdb_error("store: cannot sync", rc)};
    return write_session(i.dir, i.path("session"), i.boot, true, i.options.sync);
}

std::uint64_t Store::last_sync_micros() const { return impl_->last_sync_us; }

std::uint64_t Store::reserve_overruns() const {
    // With the last transaction's, not seen by a reserve() yet.
    return impl_->overruns + (impl_->bytes_in_use() > impl_->reserved_end ? 1 : 0);
}

Head Store::head() const {
    db::State st;
    impl_->read([&](db::Txn& txn) { txn.load_state(st); });
    return st.head;
}

Meta Store::meta() const {
    db::State st;
    impl_->read([&](db::Txn& txn) { txn.load_state(st); });
    return st.meta;
}

Result<std::vector<Applied>> Store::apply(std::span<const Item> items) { return impl_->apply(items, true); }

Result<std::vector<Applied>> Store::Impl::apply(std::span<const Item> items, bool journaled) {
    if (items.empty()) return std::vector<Applied>{};
    if (!unsynced.empty()) return Error{refused_after_unsynced()};
    int rc = 0;
    auto r = apply_once(items, journaled, rc);
    // A full map while the checkpointer copies the environment: its read transaction
    // keeps every page the writer frees meanwhile from being reused. They are free again
    // once the copy ends; the batch is applied again then (the same result: apply is
    // deterministic, and a journal record the failed attempt appended is written again,
    // which replay skips). A map that is truly full fails the same way again.
    if (!r && rc == MDB_MAP_FULL && options.background_checkpoint)
        if (wait_checkpoint()) r = apply_once(items, journaled, rc);
    return r;
}

Result<std::vector<Applied>> Store::Impl::apply_once(std::span<const Item> items, bool journaled, int& lmdb_rc) {
    lmdb_rc = 0;
    if (auto r = reserve(pages_for(items)); !r) return Error{r.error()};
    TxnGuard g;
    if (const int rc = g.begin(env, false)) return Error{lmdb_error("store: cannot begin a transaction", rc)};
    db::Txn txn(g.get(), dbs);
    db::State st;
    if (!txn.load_state(st)) return Error{lmdb_error("store: state record unreadable", txn.ok() ? MDB_CORRUPTED : txn.rc())};
    const Head before = st.head;

    std::vector<Applied> applied;
    applied.reserve(items.size());
    std::vector<JournalEntry> journal_entries;  // the batch's, split into records below
    if (journaled) journal_entries.reserve(items.size());
    wire::Bytes value;
    for (const Item& item : items) {
        const Transition& t = item.t;
        if (const char* why = validate(t)) return Error{std::string("store: refusing a malformed transition: ") + why};
        if (st.meta.empty() && t.op != Op::genesis)
            return Error{std::string("store: ") + op_name(t.op) + " before genesis (no cluster in this store)"};
        const std::uint64_t version = st.head.version + 1;
        // Encoded once: hashed into the chain, kept in the retained log and the journal.
        LogRecord rec{item.epoch, version, {}, 0, {}};
        encode(t, rec.transition);
        const Hash hash = chain_encoded(st.head.hash, item.epoch, version, rec.transition);
        if (item.expect && *item.expect != hash)
            return Error{"store: hash mismatch at version " + std::to_string(version) + " (expected " +
                         hex(*item.expect) + ", computed " + hex(hash) + ")"};
        Touched touched;
        const int err = apply_transition(txn, st, t, version, &touched);
        st.head = Head{item.epoch, version, hash};

        rec.hash = hash;
        rec.err = err;
        value.clear();
        wire::Writer w(value);
        db::put_log_value(w, rec);
        txn.put(dbs.log, VersionKey(version).view(), value);
        if (!txn.ok()) return Error{lmdb_error("store: apply failed", lmdb_rc = txn.rc())};
        applied.push_back(Applied{item.epoch, version, hash, err, t.origin, t.request, touched});
        if (journaled) journal_entries.push_back(JournalEntry{item.epoch, std::move(rec.transition)});
    }
    trim_log(txn, st, options.retain, retain_bytes());
    txn.save_state(st);
    if (!txn.ok()) return Error{lmdb_error("store: apply failed", lmdb_rc = txn.rc())};
    if (journaled) {
        // The batch goes to the journal before LMDB commits it, in records of a few MiB.
        std::vector<JournalRecord> records;
        std::size_t bytes = 0, total = 0;
        for (std::size_t i = 0; i < journal_entries.size(); ++i) {
            const std::size_t n = kJournalEntryOverhead + journal_entries[i].transition.size();
            if (records.empty() || bytes + n > kJournalRecordTarget) {
                records.emplace_back();
                records.back().first_version = before.version + 1 + i;
                bytes = kJournalRecordOverhead;
                total += kJournalRecordOverhead;
            }
            records.back().entries.push_back(std::move(journal_entries[i]));
            records.back().last_hash = applied[i].hash;
            bytes += n;
            total += n;
        }
        if (!journal->fits(total))
            if (auto r = rotate_journal(before, total); !r) return Error{r.error()};
        for (const JournalRecord& r : records)
            if (auto a = journal->append(r); !a) return Error{"store: " + a.error()};
    }
    if ((lmdb_rc = g.commit())) return Error{lmdb_error("store: commit failed", lmdb_rc)};
    if (journaled) {
        Status synced = Ok{};
        if (options.sync_fault)
            if (const int e = options.sync_fault())
                synced = Error{std::string("journal: cannot sync (injected fault): ") + std::strerror(e)};
        if (synced) {
            const auto began = std::chrono::steady_clock::now();
            synced = journal->sync();
            last_sync_us = static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - began).count());
        }
        if (!synced) {
            // Committed to LMDB, perhaps not on the disk: applying anything more (the
            // same transitions again, or the next ones) would build on a state this node
            // may not have after a restart.
            unsynced = synced.error();
            return Error{"store: " + synced.error() + " (versions " + std::to_string(before.version + 1) + "-" +
                         std::to_string(st.head.version) + " committed but not durable; restart the node)"};
        }
    }
    return applied;
}

std::optional<std::vector<LogRecord>> Store::log_after(std::uint64_t version, const Hash& hash) const {
    std::optional<std::vector<LogRecord>> out;
    impl_->read([&](db::Txn& txn) {
        db::State st;
        if (!txn.load_state(st) || version > st.head.version) return;
        if (version == st.head.version) {
            if (hash == st.head.hash) out.emplace();
            return;
        }
        if (version < st.base_version) return;
        if (version == st.base_version) {
            if (hash != st.base_hash) return;
        } else {
            wire::ByteView v;
            LogRecord rec;
            if (!txn.get(txn.dbs().log, VersionKey(version).view(), v) || !db::get_log_value(v, version, rec) ||
                rec.hash != hash)
                return;
        }
        out = log_records(txn, version);
        if (!txn.ok()) out.reset();
    });
    return out;
}

std::vector<LogRecord> Store::retained_log() const {
    std::vector<LogRecord> out;
    impl_->read([&](db::Txn& txn) { out = log_records(txn, 0); });
    return out;
}

std::vector<Applied> Store::retained_from(std::uint32_t origin) const {
    std::vector<Applied> out;
    impl_->read([&](db::Txn& txn) {
        for (const LogRecord& rec : log_records(txn, 0)) {
            auto t = decode(rec.transition);
            if (t.ok() && t->origin == origin)
                out.push_back(Applied{rec.epoch, rec.version, rec.hash, rec.err, t->origin, t->request, {}});
        }
    });
    return out;
}

Result<wire::Bytes> Store::snapshot() const {
    wire::Bytes out;
    const bool ok = impl_->read([&](db::Txn& txn) {
        db::State st;
        if (!txn.load_state(st)) return txn.fail(MDB_CORRUPTED);
        const std::size_t entries = txn.count(txn.dbs().entries);
        format::SnapshotBuilder b(st.head, st.meta, st.next_ino, st.base_version, st.base_hash,
                                  static_cast<std::uint32_t>(entries));
        for_each_entry(txn, [&](const format::Node& n, wire::ByteView data) { b.entry(n.info.ino, n, data); });
        const std::vector<LogRecord> log = log_records(txn, 0);
        b.log_count(static_cast<std::uint32_t>(log.size()));
        for (const LogRecord& rec : log) b.log_record(rec);
        out = b.finish();
    });
    if (!ok) return Error{"store: snapshot failed (LMDB read error)"};
    return out;
}

Result<Head> Store::install(wire::ByteView snapshot) {
    if (!impl_->unsynced.empty()) return Error{impl_->refused_after_unsynced()};
    auto parsed = parse_snapshot(snapshot);
    if (!parsed.ok()) return Error{"store: snapshot refused: " + parsed.error()};
    const SnapshotContents& s = parsed.value();
    // The journal's records lead to the state being replaced: a checkpoint of the new
    // state ends them (after the one in progress, which may still need its file).
    if (auto w = impl_->wait_checkpoint(); !w) return Error{w.error()};
    // Everything is written anew (the old pages are free only after the commit).
    if (auto r = impl_->reserve(impl_->pages_for(s)); !r) return Error{r.error()};

    TxnGuard g;
    if (const int rc = g.begin(impl_->env, false)) return Error{lmdb_error("store: cannot begin a transaction", rc)};
    db::Txn txn(g.get(), impl_->dbs);
    const db::Dbs& d = impl_->dbs;
    for (MDB_dbi dbi : {d.state, d.entries, d.children, d.data, d.log})
        if (const int rc = mdb_drop(g.get(), dbi, 0)) return Error{lmdb_error("store: cannot clear", rc)};

    db::State st;
    st.head = s.head;
    st.meta = s.meta;
    st.next_ino = s.next_ino;
    st.base_version = s.log_base_version;
    st.base_hash = s.log_base_hash;
    // The journal's records lead to the history being replaced, and the reset below ends
    // them; until it is durable, this tells a restart not to replay them.
    st.journal_from = impl_->journal->next_seq();
    for (const SnapshotEntry& e : s.entries) {
        txn.put_entry(format::Node{e.parent, e.info});
        if (e.parent != 0) txn.put_child(e.parent, e.info.name, e.info.ino);
        txn.put_data(e.info.ino, e.data);
        st.total += e.info.size + e.info.name.size();
    }
    wire::Bytes value;
    for (const LogRecord& rec : s.log) {
        value.clear();
        wire::Writer w(value);
        db::put_log_value(w, rec);
        txn.put(d.log, VersionKey(rec.version).view(), value);
    }
    trim_log(txn, st, impl_->options.retain, impl_->retain_bytes());
    txn.save_state(st);
    if (!txn.ok()) return Error{lmdb_error("store: install failed", txn.rc())};
    if (const int rc = g.commit()) return Error{lmdb_error("store: commit failed", rc)};
    // Committed (not yet durable): a record appended to the old journal now would be
    // skipped by a restart (journal_from), so a failure from here on refuses every later
    // apply, and the restart recovers what is durable.
    auto durable = [&]() -> Status {
        if (auto c = impl_->checkpoint(); !c) return Error{c.error()};
        if (auto r = impl_->journal->reset(s.head.version, s.head.hash); !r) return Error{"store: " + r.error()};
        return Ok{};
    }();
    if (!durable) {
        impl_->unsynced = "installing a snapshot: " + durable.error();
        return Error{durable.error()};
    }
    return s.head;
}

Hash Store::content_hash(Head* at) const {
    Hash out{};
    impl_->read([&](db::Txn& txn) {
        db::State st;
        if (!txn.load_state(st)) return;
        if (at) *at = st.head;
        format::ContentHasher h(st.meta, st.next_ino);
        for_each_entry(txn, [&](const format::Node& n, wire::ByteView data) { h.entry(n.info.ino, n, data); });
        if (txn.ok()) out = h.finish();
    });
    return out;
}

namespace {

auto by_path(std::string_view path) {
    return [path](db::Txn& txn, format::Node& n) { return db::resolve(txn, path, n); };
}

auto by_ino(std::uint64_t ino) {
    return [ino](db::Txn& txn, format::Node& n) {
        auto e = txn.entry(ino);
        if (!e) return ENOENT;
        n = std::move(*e);
        return 0;
    };
}

auto stat_of(EntryInfo& out) {
    return [&out](db::Txn&, const format::Node& n) {
        out = info_of(n);
        return 0;
    };
}

auto data_of(wire::Bytes& out, EntryInfo* info) {
    return [&out, info](db::Txn& txn, const format::Node& n) {
        if (n.info.dir) return EISDIR;
        const wire::ByteView data = txn.data(n.info.ino);
        out.assign(data.begin(), data.end());
        if (info) *info = info_of(n);
        return 0;
    };
}

auto children_of(std::vector<EntryInfo>& out) {
    return [&out](db::Txn& txn, const format::Node& n) {
        if (!n.info.dir) return ENOTDIR;
        out.clear();
        for (const auto& [name, ino] : txn.children(n.info.ino)) {
            auto e = txn.entry(ino);
            if (!e) {
                txn.fail(MDB_CORRUPTED);
                return EIO;
            }
            out.push_back(info_of(*e));
        }
        return 0;
    };
}

// Walks from an entry up to the root. Every step must reach an existing directory and
// a path has fewer components than the tree has entries, so a longer walk is a cycle.
int path_from(db::Txn& txn, const format::Node& start, std::string& out) {
    std::vector<std::string> names;  // leaf first
    std::size_t length = 0, steps = 0;
    const std::size_t max_steps = txn.count(txn.dbs().entries);
    format::Node n = start;
    while (n.info.ino != format::kRootIno) {
        if (n.parent == 0 || ++steps >= max_steps) return EIO;
        length += 1 + n.info.name.size();
        if (length <= kMaxPath) names.push_back(std::move(n.info.name));  // else only walk on
        auto parent = txn.entry(n.parent);
        if (!parent || !parent->info.dir) return EIO;
        n = std::move(*parent);
    }
    if (length > kMaxPath) return ENAMETOOLONG;
    std::string path;
    path.reserve(length == 0 ? 1 : length);
    for (auto it = names.rbegin(); it != names.rend(); ++it) path += "/" + *it;
    out = path.empty() ? "/" : std::move(path);
    return 0;
}

}  // namespace

int Store::stat(std::string_view path, EntryInfo& out) const {
    if (!valid_path(path)) return EINVAL;
    return impl_->read_entry(by_path(path), stat_of(out));
}

int Store::read(std::string_view path, wire::Bytes& out, EntryInfo* info) const {
    if (!valid_path(path)) return EINVAL;
    return impl_->read_entry(by_path(path), data_of(out, info));
}

int Store::list(std::string_view path, std::vector<EntryInfo>& out) const {
    if (!valid_path(path)) return EINVAL;
    return impl_->read_entry(by_path(path), children_of(out));
}

int Store::stat_ino(std::uint64_t ino, EntryInfo& out) const { return impl_->read_entry(by_ino(ino), stat_of(out)); }

int Store::read_ino(std::uint64_t ino, wire::Bytes& out, EntryInfo* info) const {
    return impl_->read_entry(by_ino(ino), data_of(out, info));
}

int Store::list_ino(std::uint64_t dir, std::vector<EntryInfo>& out) const {
    return impl_->read_entry(by_ino(dir), children_of(out));
}

int Store::lookup(std::uint64_t parent, std::string_view name, EntryInfo& out) const {
    return impl_->read_entry(by_ino(parent), [&](db::Txn& txn, const format::Node& dir) {
        if (!dir.info.dir) return ENOTDIR;
        const auto ino = txn.child(dir.info.ino, name);
        if (!ino) return ENOENT;
        auto e = txn.entry(*ino);
        if (!e) {
            txn.fail(MDB_CORRUPTED);  // a child record without its entry
            return EIO;
        }
        out = info_of(*e);
        return 0;
    });
}

int Store::path_of(std::uint64_t ino, std::string& out) const {
    return impl_->read_entry(by_ino(ino), [&](db::Txn& txn, const format::Node& n) { return path_from(txn, n, out); });
}

Store::Usage Store::usage() const {
    Usage u;
    impl_->read([&](db::Txn& txn) {
        db::State st;
        txn.load_state(st);
        u.entries = txn.count(txn.dbs().entries);
        u.bytes = st.total;
        u.log_records = txn.count(txn.dbs().log);
    });
    return u;
}

}  // namespace conclave::store
