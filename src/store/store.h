// The replicated state on disk (DESIGN.md §3, §6): one LMDB environment per node holding
//   * the tree: directories and files (bytes, mode, mtime, per-entry version, writer),
//     each entry with a stable inode number assigned deterministically (a counter in the
//     replicated state), so every replica and the FUSE frontend agree on inode numbers
//   * cluster metadata (Meta: cluster id, node list with votes, limits)
//   * the head: (epoch, version, H) of the last applied transition
//   * a bounded retained log of recent transitions (for sync by log)
// One writer (the apply worker) and many lock-free readers (MVCC read transactions, any
// thread). Every apply() is one write transaction and, unless Options::sync is off (the
// simulator), one fsync: group commit. The fsync is the journal's (journal.h): LMDB
// commits without syncing, each batch is appended to the journal and synced there, and
// a background checkpoint (a compacted copy, base.mdb) bounds the journal. Files in the
// directory: data.mdb and lock.mdb (LMDB), journal.0, journal.1, base.mdb, session (this
// boot's id and whether the store was closed cleanly).
//
// Determinism: apply() computes the result and errno of each transition from the state
// and the transition only; the same sequence gives the same tree, meta, head and
// content hash on every replica.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "store/transition.h"
#include "wire/bytes.h"

namespace conclave::store {

struct Options {
    bool sync = true;                        // fsync at every commit (off in the simulator)
    // LMDB map size: address space, and data.mdb's length (sparse: only the pages in
    // use and a few MiB ahead of them take disk blocks).
    std::uint64_t map_size = 1ull << 30;
    std::uint64_t retain = 10000;            // transitions kept in the retained log
    // ... and at most this many bytes of LMDB pages for it (0: a quarter of map_size), so
    // that 10,000 large writes cannot fill the map (MDB_MAP_FULL would stop every node
    // at the same version). Trimmed further, a lagging node syncs by snapshot instead.
    std::uint64_t retain_bytes = 0;
    // Each of the two journal files (zero-filled; they start at 4 MiB and grow in the
    // background). A full one starts a checkpoint; the next file is made four times the
    // last checkpoint's size (at least this, at most 256 MiB), so a checkpoint writes at
    // most about a quarter as much as the journal took.
    std::uint64_t journal_capacity = 64u << 20;
    bool background_checkpoint = true;       // off: checkpoints run inside apply() (simulator)
    // This machine's boot (empty: /proc/sys/kernel/random/boot_id). The simulator gives
    // a new one for a power failure.
    std::string boot_id;
    // Tests: asked before each journal sync; an errno it returns fails that sync as the
    // device would (the commit is then in LMDB but not durable).
    std::function<int()> sync_fault;
};

struct Head {
    std::uint64_t epoch = 0;    // ring seq of the configuration the last transition was applied in
    std::uint64_t version = 0;  // number of transitions applied since genesis (0: empty state)
    Hash hash{};                // H(version); all zero for version 0
    bool operator==(const Head&) const = default;
};
// (epoch, version) order: the sync source is the member with the highest (DESIGN.md §6.4).
inline bool operator<(const Head& a, const Head& b) {
    return a.epoch != b.epoch ? a.epoch < b.epoch : a.version < b.version;
}

// One transition to apply, with the epoch it was delivered in. `expect` (sync by log)
// is the hash the source recorded: a mismatch aborts the whole batch with an error.
struct Item {
    std::uint64_t epoch = 0;
    Transition t;
    std::optional<Hash> expect;
};

// The inodes a transition changed (0: none), for the caches of the tree (the FUSE
// frontend drops the kernel's) without resolving its paths again:
// - entries: create, write, truncate, set_mtime, set_mode and mkdir: the entry; unlink and
//   rmdir: the entry removed; rename: the source, and the destination it exchanged with
//   or replaced;
// - dirs: the directories whose children changed, [0] holding t.path's name, [1] t.path2's
//   (create and mkdir of a new entry, unlink, rmdir, rename).
struct Touched {
    std::array<std::uint64_t, 2> entries{};
    std::array<std::uint64_t, 2> dirs{};
};

struct Applied {
    std::uint64_t epoch = 0;
    std::uint64_t version = 0;
    Hash hash{};
    int err = 0;  // 0 or the errno the transition failed with (the state is then unchanged)
    std::uint32_t origin = 0;
    std::uint64_t request = 0;
    Touched touched;  // apply() fills it (not the retained log's records)
};

struct LogRecord {
    std::uint64_t epoch = 0;
    std::uint64_t version = 0;
    Hash hash{};
    int err = 0;
    wire::Bytes transition;  // encode(Transition)
};

// A log record's wire form, shared by sync messages and snapshots: u64 epoch, u64 version,
// 32 hash, i32 err, u32 length, transition bytes (not decoded here).
inline constexpr std::size_t kLogRecordMinSize = 8 + 8 + 32 + 4 + 4;
void encode_log_record(const LogRecord& rec, wire::Writer& w);
// False when the bytes end early (the reader is then bad).
bool decode_log_record(wire::Reader& r, LogRecord& out);

struct EntryInfo {
    std::uint64_t ino = 0;      // 1 is the root
    std::string name;           // last path component ("" for the root)
    bool dir = false;
    std::uint32_t mode = 0;     // permission bits
    std::uint64_t mtime_us = 0;
    std::uint64_t size = 0;     // file bytes; 0 for directories
    std::uint64_t version = 0;  // the state version that last changed this entry
    std::uint32_t writer = 0;   // node id of that transition's origin
};

class Store {
public:
    // Opens (creating if needed) the environment in directory `dir` (which must exist).
    // After a stop that was not clean on an earlier boot (a power failure), LMDB's file
    // may be torn: it is rebuilt from base.mdb and the journal. Otherwise it is used as
    // it is and the journal's records past its head are applied again. Either way a
    // checkpoint at the head starts the new journal.
    static Result<std::unique_ptr<Store>> open(const std::string& dir, Options options = {});
    // A clean stop: LMDB synced, the session marked clean (the next open needs no
    // journal). REQUIRES: no apply() or install() afterwards; reads still work.
    Status close();
    // Without close(), the store stays as a crash would leave it.
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    Head head() const;
    Meta meta() const;

    // Applies the items in order in one write transaction and commits it (durable when
    // it returns, with Options::sync: journaled and synced). Each gets version = previous + 1. An error (LMDB
    // failure, `expect` mismatch, non-genesis transition on an empty state, a transition
    // validate() refuses) aborts the whole batch: nothing is applied. The per-op errno
    // rules are in apply.h. The one exception: a failed journal sync (the batch is
    // committed to LMDB but may not be durable). The store then refuses every later
    // apply() and install() with an error, so that nothing is applied twice or on top of
    // a state the disk may not hold; the node stops, and recovery at its restart decides
    // what is durable.
    Result<std::vector<Applied>> apply(std::span<const Item> items);

    // The retained log after `version`, if (version, hash) is on this store's history
    // (version == head or a retained record's version, or the snapshot base the log
    // starts from, or 0 with a zero hash when the log reaches back to genesis);
    // otherwise nullopt (the caller sends a snapshot instead).
    std::optional<std::vector<LogRecord>> log_after(std::uint64_t version, const Hash& hash) const;
    // Every retained record, oldest first.
    std::vector<LogRecord> retained_log() const;
    // Retained records whose transition has this origin (to find out which of a node's
    // own pending requests survived a sync).
    std::vector<Applied> retained_from(std::uint32_t origin) const;

    // The whole state (tree, meta, head, retained log) as one self-checking blob, and
    // its inverse: install() verifies it (format, content hash) and replaces everything
    // in one transaction.
    Result<wire::Bytes> snapshot() const;
    Result<Head> install(wire::ByteView snapshot);

    // Write transactions that took more new pages than were given disk blocks for them
    // beforehand: 0 unless the store's bound on a transaction's pages is wrong (on a full
    // file system such a transaction could be killed by SIGBUS). The simulator and the
    // tests check it. Call from the applying thread, between applies.
    std::uint64_t reserve_overruns() const;

    // How long the journal's fdatasync of the last apply() took, in µs (0 without
    // Options::sync, or before the first apply). Call from the applying thread.
    std::uint64_t last_sync_micros() const;

    // Hash of the tree and meta only (not the log): equal on replicas with equal state.
    // `at`, when given, gets the head of the version hashed (one read transaction).
    Hash content_hash(Head* at = nullptr) const;

    // Reads from a consistent MVCC snapshot, from any thread; 0 or an errno: EINVAL (not
    // a valid_path), ENOENT, ENOTDIR (a file where a directory is needed), EISDIR (read
    // of a directory), EIO (LMDB failed, or the database is corrupt).
    int stat(std::string_view path, EntryInfo& out) const;
    int read(std::string_view path, wire::Bytes& out, EntryInfo* info = nullptr) const;
    int list(std::string_view path, std::vector<EntryInfo>& out) const;  // children, by name

    // The same by inode number (the FUSE frontend's handles; 1 is the root). An inode
    // number that names no entry (never used, or removed) is ENOENT.
    int stat_ino(std::uint64_t ino, EntryInfo& out) const;
    // The child `name` of directory `parent`: ENOENT (no parent, no such child), ENOTDIR.
    int lookup(std::uint64_t parent, std::string_view name, EntryInfo& out) const;
    int list_ino(std::uint64_t dir, std::vector<EntryInfo>& out) const;  // children, by name
    int read_ino(std::uint64_t ino, wire::Bytes& out, EntryInfo* info = nullptr) const;
    // The entry's absolute path ("/" for the root), by its parent pointers: ENOENT,
    // ENAMETOOLONG (deeper than kMaxPath: renames can move a subtree that deep, and no
    // path-addressed transition could name it), EIO (a broken chain or a cycle).
    int path_of(std::uint64_t ino, std::string& out) const;

    // bytes: what counts against Limits::max_total_size: file sizes plus the name bytes
    // of every entry.
    struct Usage {
        std::uint64_t entries = 0, bytes = 0, log_records = 0;
    };
    Usage usage() const;

private:
    struct Impl;
    explicit Store(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// ---- The snapshot blob (snapshot.cc; no LMDB, so the parser can be fuzzed) ----
// Little-endian:
//   8 magic "CNCLSNAP", u32 format (1), head (u64 epoch, u64 version, 32 hash), meta
//   (encode_meta), u64 next_ino, log base (u64 version, 32 hash),
//   u32 count, count x entry (u64 ino, u64 parent, u8 dir, u32 mode, u64 mtime_us,
//       u64 size, u64 version, u32 writer, u16 name length, name, size bytes of data
//       for a file), ascending ino, the root (ino 1, parent 0, name "") first,
//   u32 count, count x log record (u64 epoch, u64 version, 32 hash, i32 err,
//       u32 length, transition), versions base+1 .. head.version,
//   32 content hash (content_hash() of the state), 32 SHA-256 of everything before.
struct SnapshotEntry {
    std::uint64_t parent = 0;  // 0 for the root
    EntryInfo info;
    wire::Bytes data;          // a file's contents (info.size bytes); empty for a directory
};
struct SnapshotContents {
    Head head;
    Meta meta;
    std::uint64_t next_ino = 0;  // the inode number the next new entry gets
    std::uint64_t log_base_version = 0;  // the log starts after (version, hash)
    Hash log_base_hash{};
    std::vector<SnapshotEntry> entries;
    std::vector<LogRecord> log;
    Hash content{};
};
// Verifies everything: the trailer, every length, the tree (parents exist and are
// directories, unique valid names, no cycles, inode numbers below next_ino), the log's
// hash chain from the base to the head, and the content hash.
Result<SnapshotContents> parse_snapshot(wire::ByteView snapshot);

}  // namespace conclave::store
