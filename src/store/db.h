// The store's LMDB layout and a write/read transaction wrapper with tree accessors
// (store-internal). Databases of one environment:
//   state     "state" -> u32 format, head, meta, u64 next_ino, u64 total, log base,
//             u64 journal_from (format 2; format 1, without it, reads as 0)
//   entries   u64 ino (big-endian) -> entry record (format.h)
//   children  u64 parent ino (big-endian) + name -> u64 ino (little-endian)
//   data      u64 ino (big-endian) -> a file's bytes (absent when empty)
//   log       u64 version (big-endian) -> u64 epoch, 32 hash, i32 err, transition bytes
// Big-endian keys make LMDB's byte order the numeric order (content hash and snapshot
// walk entries by ino; list() walks a directory's children by name).
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/format.h"
#include "store/store.h"

namespace conclave::store::db {

struct Dbs {
    MDB_dbi state = 0, entries = 0, children = 0, data = 0, log = 0;
};

inline constexpr std::uint32_t kStateFormat = 2;

// The scalar part of the replicated state (plus the local log base), one record.
struct State {
    Head head;
    Meta meta;
    std::uint64_t next_ino = format::kRootIno + 1;
    std::uint64_t total = 0;  // file bytes + name bytes: what max_total_size limits
    std::uint64_t base_version = 0;  // the retained log starts after (version, hash)
    Hash base_hash{};
    // Local, not replicated: journal records of segments numbered below this belong to a
    // history that Store::install replaced (the segment install's journal reset starts).
    // A power failure between install's checkpoint and that reset leaves them on disk.
    std::uint64_t journal_from = 0;
};

// Like wire::Reader, the first LMDB failure makes the transaction bad for good (rc()),
// so a run of operations is checked once: apply() aborts the batch when !ok(). A missing
// key is not a failure; a record that does not parse is (MDB_CORRUPTED).
class Txn {
public:
    Txn(MDB_txn* txn, const Dbs& dbs) : txn_(txn), dbs_(dbs) {}

    bool ok() const { return rc_ == 0; }
    int rc() const { return rc_; }
    void fail(int rc) {
        if (rc_ == 0) rc_ = rc;
    }
    MDB_txn* raw() const { return txn_; }
    const Dbs& dbs() const { return dbs_; }

    // False when the record is missing (a fresh environment) or bad.
    bool load_state(State& out);
    // The format number the state record starts with (0: no record, or too short to
    // have one): tells a record of a newer format from a damaged one. Reads even after a
    // failure of this transaction's wrapper.
    std::uint32_t stored_state_format();
    void save_state(const State& s);

    std::optional<format::Node> entry(std::uint64_t ino);
    void put_entry(const format::Node& n);  // keyed by n.info.ino
    void del_entry(std::uint64_t ino);
    std::optional<std::uint64_t> child(std::uint64_t parent, std::string_view name);
    void put_child(std::uint64_t parent, std::string_view name, std::uint64_t ino);
    void del_child(std::uint64_t parent, std::string_view name);
    bool has_children(std::uint64_t dir);
    // (name, ino) of a directory's children in name (byte) order.
    std::vector<std::pair<std::string, std::uint64_t>> children(std::uint64_t dir);
    // A file's bytes; the view is valid until the next write in this transaction.
    wire::ByteView data(std::uint64_t ino);
    void put_data(std::uint64_t ino, wire::ByteView bytes);  // empty: no record
    void del_data(std::uint64_t ino);
    std::size_t count(MDB_dbi dbi);
    std::uint64_t page_bytes(MDB_dbi dbi);  // bytes of the pages the database uses

    bool get(MDB_dbi dbi, wire::ByteView key, wire::ByteView& out);
    void put(MDB_dbi dbi, wire::ByteView key, wire::ByteView value);
    void del(MDB_dbi dbi, wire::ByteView key);  // a missing key is fine

private:
    MDB_stat stat(MDB_dbi dbi);  // zeros (and the txn failed) on an error
    MDB_txn* txn_;
    const Dbs& dbs_;
    int rc_ = 0;
};

// The directory holding path's last component: 0, ENOENT (a missing component) or ENOTDIR
// (a component is a file). For "/": parent 0 and name "". `path` must be valid_path().
int lookup_parent(Txn& txn, std::string_view path, std::uint64_t& parent, std::string_view& name);
// The entry at path: 0, ENOENT or ENOTDIR.
int resolve(Txn& txn, std::string_view path, format::Node& out);

// The state record (the value of "state"); decode_state is false for anything but
// exactly one record of kStateFormat or of format 1 (a store written before
// journal_from; encode_state always writes kStateFormat).
void encode_state(const State& s, wire::Bytes& out);
bool decode_state(wire::ByteView value, State& out);

// Log record values (the version is the key).
void put_log_value(wire::Writer& w, const LogRecord& rec);
bool get_log_value(wire::ByteView value, std::uint64_t version, LogRecord& out);

}  // namespace conclave::store::db
