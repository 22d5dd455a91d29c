// The store's write-ahead journal (DESIGN.md §6.7: durable per node, one fsync per
// commit). LMDB's own durable commit costs two fsyncs (data pages, then the meta page);
// the store instead commits LMDB without syncing and makes each batch durable by
// appending it here and syncing this file once. A checkpoint (a compacted copy of the
// LMDB environment, `base.mdb`, written and synced in the background) bounds how much of
// the journal a recovery replays:
//
//   durable state = base.mdb + every journal record after its version
//                   (of a segment numbered at or above its state's journal_from, db.h)
//
// LMDB's own file is trusted as it is only when the page cache that holds its unsynced
// commits survived: after a clean stop, or a process crash on the same boot. After a
// power failure or a kernel crash it may be torn, and the store rebuilds it from the
// base and the journal (store.cc).
//
// Two segment files, journal.0 and journal.1, each preallocated and zero-filled, so an
// append changes no file metadata and fdatasync is one device flush. One is active (the
// appends go there); the other is free, or retired: it holds the records before the
// active segment's base until a checkpoint at or past that base is durable. Recycled
// files keep stale records; every record carries its segment's sequence number and a
// CRC32C, so a reader stops at the first stale, torn or zero record.
//
// Formats (little-endian):
//   segment header (the first kHeaderSize bytes): 8 magic "CNCLJRNL", u32 format (1),
//     u64 segment seq, u64 base version, 32 base hash, u32 CRC32C of the preceding bytes
//   record: u32 body length, u32 CRC32C of the body, body:
//     u64 segment seq, u64 first version, u32 count,
//     count x (u64 epoch, u32 length, encoded transition), 32 hash of the last version
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "store/transition.h"
#include "wire/bytes.h"

namespace conclave::store {

std::uint32_t crc32c(std::uint32_t crc, const std::uint8_t* data, std::size_t size);
// pwrite of all `size` bytes at `offset`, again after a short write or EINTR; on failure
// the error is `what` + `path` + the errno text (a write of 0 bytes counts as ENOSPC),
// and *error_number (if given) the errno.
Status write_all(int fd, const std::uint8_t* data, std::size_t size, std::uint64_t offset, const char* what,
                 const std::string& path, int* error_number = nullptr);

// One journal record: consecutive transitions of one commit, from first_version on.
struct JournalEntry {
    std::uint64_t epoch = 0;
    wire::Bytes transition;  // encode(Transition)
};
struct JournalRecord {
    std::uint64_t first_version = 0;
    std::vector<JournalEntry> entries;
    Hash last_hash{};  // H(first_version + entries.size() - 1)
    std::uint64_t segment_seq = 0;  // read_all: the segment it was read from
    std::uint64_t last_version() const { return first_version + entries.size() - 1; }
};

inline constexpr std::size_t kJournalHeaderSize = 4096;
inline constexpr std::size_t kJournalRecordOverhead = 4 + 4 + 8 + 8 + 4 + 32;
inline constexpr std::size_t kJournalEntryOverhead = 8 + 4;
// A commit's batch is split into records of about this many bytes (at least one entry).
inline constexpr std::size_t kJournalRecordTarget = 4u << 20;

// Appends one framed record (length, CRC, body) to `out`.
void encode_journal_record(std::uint64_t segment_seq, const JournalRecord& r, wire::Bytes& out);
// Reads the framed record at the start of `data`. Returns the bytes it takes, or 0 when
// there is no valid record there of segment `segment_seq` (the end of the segment: zeros,
// a torn or stale record, or anything that does not parse).
std::size_t decode_journal_record(wire::ByteView data, std::uint64_t segment_seq, JournalRecord& out);

struct JournalHeader {
    std::uint64_t seq = 0;
    std::uint64_t base_version = 0;
    Hash base_hash{};
};
void encode_journal_header(const JournalHeader& h, wire::Bytes& out);  // kJournalHeaderSize bytes
bool decode_journal_header(wire::ByteView data, JournalHeader& out);

class Journal {
public:
    // Opens journal.0 and journal.1 in `dir`, creating each (zero-filled to `capacity`
    // bytes) if it is missing. `sync` off: no fsync (the simulator).
    static Result<std::unique_ptr<Journal>> open(const std::string& dir, std::uint64_t capacity, bool sync);
    ~Journal();
    Journal(const Journal&) = delete;
    Journal& operator=(const Journal&) = delete;

    // Every valid record of both files, oldest segment first; within a segment up to its
    // first invalid record, and in an older segment only up to the newer one's base.
    // Records of a segment whose header is not valid are skipped.
    Result<std::vector<JournalRecord>> read_all() const;

    // Makes every file free and starts a segment with this base in one of them (after a
    // checkpoint at the base: nothing before it is needed any more).
    Status reset(std::uint64_t base_version, const Hash& base_hash);
    // Starts the next segment in the free file with this base (the current head), with
    // room for at least `room` bytes of records (the file grows if it must); the active
    // segment is retired. REQUIRES: other_free().
    Status rotate(std::uint64_t base_version, const Hash& base_hash, std::size_t room);
    bool other_free() const { return !retired_; }
    // The seq the next segment (rotate, reset) gets; raise_next_seq makes it at least
    // `seq` (the store's journal_from, for journal files made anew under an older state).
    std::uint64_t next_seq() const { return std::max({seq_[0], seq_[1], min_next_seq_ - 1}) + 1; }
    void raise_next_seq(std::uint64_t seq) { min_next_seq_ = std::max(min_next_seq_, seq); }
    // Zero-fills the file that is not active up to `capacity` bytes, ahead of the next
    // rotation, so that the rotation does not have to. May run on another thread while
    // the active segment takes appends (it touches only the other file), never while
    // rotate() or reset() runs.
    Status grow_other(std::uint64_t capacity);
    // A checkpoint at or past the active segment's base is durable: the retired file is free.
    void release_retired() { retired_ = false; }
    std::uint64_t active_base() const { return active_base_; }

    bool fits(std::size_t bytes) const { return tail_ + bytes <= capacity_[active_]; }
    // Appends a record at the tail of the active segment (no sync): kJournalRecordOverhead
    // plus kJournalEntryOverhead and the transition's size per entry. The write covers
    // whole 4 KiB blocks, from the start of the tail's block (its records again, which
    // are on disk already) to the end of the last block (zeros past the record): a
    // partial block would make the kernel read it from the disk first, as the files were
    // zero-filled past the page cache.
    Status append(const JournalRecord& r);
    // Makes everything appended durable (one fdatasync).
    Status sync();

private:
    Journal() = default;
    Status write_header(int index, const JournalHeader& h);
    Status grow(int index, std::uint64_t capacity);

    std::string path_[2];
    int fd_[2] = {-1, -1};
    std::uint64_t capacity_[2] = {0, 0};
    std::uint64_t seq_[2] = {0, 0};  // segment seq in each file's header (0: none valid)
    std::uint64_t min_next_seq_ = 1;
    int active_ = 0;
    bool retired_ = false;
    std::uint64_t tail_ = kJournalHeaderSize;
    std::uint64_t active_base_ = 0;
    bool sync_ = true;
    wire::Bytes framed_;  // append()'s write: the tail block's records, the new record, zeros
    std::size_t block_used_ = 0;  // bytes of records in the tail block (framed_'s first block)
};

}  // namespace conclave::store
