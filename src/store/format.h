// Record formats shared by the LMDB store and the snapshot blob, and the canonical
// content hash (store-internal). Everything here is LMDB-free.
//
// An entry record (the value in the "entries" database, and in a snapshot after the
// ino), little-endian:
//   u64 parent, u8 dir, u32 mode, u64 mtime_us, u64 size, u64 version, u32 writer,
//   u16 name length, name
// The content hash (Store::content_hash) is SHA-256 over
//   "conclave-content-1", meta (encode_meta), u64 next_ino,
//   then per entry in ascending ino: u64 ino, entry record, the file's bytes.
// Replicas with equal state have equal hashes; the head and the log are not part of it.
#pragma once

#include <cstdint>
#include <optional>

#include "store/sha256.h"
#include "store/store.h"
#include "store/transition.h"
#include "wire/bytes.h"

namespace conclave::store::format {

inline constexpr std::uint64_t kRootIno = 1;
inline constexpr std::uint32_t kDefaultFileMode = 0644;
inline constexpr std::uint32_t kDefaultDirMode = 0755;
inline constexpr std::size_t kEntryRecordMin = 8 + 1 + 4 + 8 + 8 + 8 + 4 + 2;

// An entry as stored: where it hangs in the tree plus what stat() shows.
struct Node {
    std::uint64_t parent = 0;
    EntryInfo info;
};

void put_entry(wire::Writer& w, const Node& n);
// Refuses a name longer than kMaxPath and a dir flag other than 0/1 (reader marked bad).
bool get_entry(wire::Reader& r, Node& n);
// A valid entry name: non-empty, no '/', no NUL, not "." or "..".
bool valid_name(std::string_view name);

class ContentHasher {
public:
    ContentHasher(const Meta& meta, std::uint64_t next_ino);
    // In ascending ino order.
    void entry(std::uint64_t ino, const Node& n, wire::ByteView data);
    Hash finish() { return sha_.finish(); }

private:
    Sha256 sha_;
    wire::Bytes buf_;
};

// Writes a snapshot blob (store.h) front to back; the caller supplies the entries in
// ascending ino and the log records in ascending version.
class SnapshotBuilder {
public:
    SnapshotBuilder(const Head& head, const Meta& meta, std::uint64_t next_ino, std::uint64_t base_version,
                    const Hash& base_hash, std::uint32_t entry_count);
    void entry(std::uint64_t ino, const Node& n, wire::ByteView data);
    void log_count(std::uint32_t count);
    void log_record(const LogRecord& rec);
    wire::Bytes finish();

private:
    wire::Bytes out_;
    ContentHasher content_;
};

// parse_snapshot() without the SHA-256 checks (trailer, content hash, log hash chain):
// every structural check still runs. For the fuzz target only, which cannot forge hashes.
Result<SnapshotContents> parse_snapshot_structure(wire::ByteView snapshot);

// Big-endian u64 keys, so LMDB's byte order is numeric order.
inline void put_be64(std::uint8_t* p, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
}
inline std::uint64_t get_be64(const std::uint8_t* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
    return v;
}

}  // namespace conclave::store::format
