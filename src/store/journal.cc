#include "store/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace conclave::store {
namespace {

constexpr char kMagic[8] = {'C', 'N', 'C', 'L', 'J', 'R', 'N', 'L'};
constexpr std::uint32_t kFormat = 1;
// A record's body is at most this large (a batch is split into records below it); so a
// hostile length field never drives an allocation past it.
constexpr std::uint32_t kMaxBody = 64u << 20;

// CRC32C (Castagnoli), reflected polynomial 0x82F63B78, slice-by-8.
struct CrcTables {
    std::uint32_t t[8][256];
    constexpr CrcTables() : t{} {
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            t[0][i] = c;
        }
        for (std::uint32_t i = 0; i < 256; ++i)
            for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    }
};
constexpr CrcTables kCrc;

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

Status fsync_dir(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Error{errno_text("journal: cannot open " + dir)};
    const int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) return Error{errno_text("journal: cannot sync " + dir)};
    return Ok{};
}

}  // namespace

Status write_all(int fd, const std::uint8_t* data, std::size_t size, std::uint64_t offset, const char* what,
                 const std::string& path, int* error_number) {
    while (size > 0) {
        const ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            if (n == 0) errno = ENOSPC;
            if (error_number) *error_number = errno;
            return Error{errno_text(what + path)};
        }
        data += n;
        size -= static_cast<std::size_t>(n);
        offset += static_cast<std::uint64_t>(n);
    }
    return Ok{};
}

namespace {

std::uint32_t crc32c_table(std::uint32_t crc, const std::uint8_t* p, std::size_t n) {
    crc = ~crc;
    while (n >= 8) {
        const std::uint32_t lo = wire::load_u32(p) ^ crc;
        const std::uint32_t hi = wire::load_u32(p + 4);
        crc = kCrc.t[7][lo & 0xff] ^ kCrc.t[6][(lo >> 8) & 0xff] ^ kCrc.t[5][(lo >> 16) & 0xff] ^ kCrc.t[4][lo >> 24] ^
              kCrc.t[3][hi & 0xff] ^ kCrc.t[2][(hi >> 8) & 0xff] ^ kCrc.t[1][(hi >> 16) & 0xff] ^ kCrc.t[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- > 0) crc = (crc >> 8) ^ kCrc.t[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The SSE4.2 crc32 instruction computes CRC32C: 8 bytes a cycle or so, where the tables
// take several (every commit's journal record passes through here).
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(std::uint32_t crc, const std::uint8_t* p,
                                                              std::size_t n) {
    std::uint64_t c = ~crc;
    while (n >= 8) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    auto c32 = static_cast<std::uint32_t>(c);
    while (n-- > 0) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}

using CrcFn = std::uint32_t (*)(std::uint32_t, const std::uint8_t*, std::size_t);
CrcFn pick_crc32c() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? crc32c_sse42 : crc32c_table;
}
#endif

}  // namespace

std::uint32_t crc32c(std::uint32_t crc, const std::uint8_t* p, std::size_t n) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    static const CrcFn fn = pick_crc32c();
    return fn(crc, p, n);
#else
    return crc32c_table(crc, p, n);
#endif
}

void encode_journal_record(std::uint64_t segment_seq, const JournalRecord& r, wire::Bytes& out) {
    const std::size_t start = out.size();
    wire::Writer w(out);
    w.u32(0);  // body length, patched below
    w.u32(0);  // CRC, patched below
    const std::size_t body = out.size();
    w.u64(segment_seq);
    w.u64(r.first_version);
    w.u32(static_cast<std::uint32_t>(r.entries.size()));
    for (const JournalEntry& e : r.entries) {
        w.u64(e.epoch);
        w.u32(static_cast<std::uint32_t>(e.transition.size()));
        w.bytes(wire::ByteView(e.transition));
    }
    w.bytes(wire::ByteView(r.last_hash));
    const std::size_t size = out.size() - body;
    w.patch_u32(start, static_cast<std::uint32_t>(size));
    w.patch_u32(start + 4, crc32c(0, out.data() + body, size));
}

std::size_t decode_journal_record(wire::ByteView data, std::uint64_t segment_seq, JournalRecord& out) {
    if (data.size() < 8) return 0;
    const std::uint32_t size = wire::load_u32(data.data());
    const std::uint32_t crc = wire::load_u32(data.data() + 4);
    if (size < kJournalRecordOverhead - 8 || size > kMaxBody || size > data.size() - 8) return 0;
    const wire::ByteView body = data.subspan(8, size);
    if (crc32c(0, body.data(), body.size()) != crc) return 0;
    wire::Reader r(body);
    std::uint64_t seq = 0;
    std::uint32_t count = 0;
    JournalRecord rec;
    if (!r.u64(seq) || seq != segment_seq || !r.u64(rec.first_version) ||
        !r.count(count, kJournalEntryOverhead, kMaxBody) || count == 0)
        return 0;
    rec.entries.resize(count);
    for (JournalEntry& e : rec.entries) {
        std::uint32_t n = 0;
        wire::ByteView t;
        if (!r.u64(e.epoch) || !r.u32(n) || !r.view(n, t)) return 0;
        e.transition.assign(t.begin(), t.end());
    }
    if (!r.bytes(rec.last_hash) || !r.at_end() || rec.first_version == 0 ||
        rec.first_version > UINT64_MAX - count)
        return 0;
    out = std::move(rec);
    return 8 + size;
}

void encode_journal_header(const JournalHeader& h, wire::Bytes& out) {
    const std::size_t start = out.size();
    wire::Writer w(out);
    w.bytes(wire::ByteView(reinterpret_cast<const std::uint8_t*>(kMagic), sizeof kMagic));
    w.u32(kFormat);
    w.u64(h.seq);
    w.u64(h.base_version);
    w.bytes(wire::ByteView(h.base_hash));
    w.u32(crc32c(0, out.data() + start, out.size() - start));
    out.resize(start + kJournalHeaderSize, 0);
}

bool decode_journal_header(wire::ByteView data, JournalHeader& out) {
    constexpr std::size_t kUsed = 8 + 4 + 8 + 8 + 32;
    if (data.size() < kUsed + 4) return false;
    if (std::memcmp(data.data(), kMagic, sizeof kMagic) != 0) return false;
    if (crc32c(0, data.data(), kUsed) != wire::load_u32(data.data() + kUsed)) return false;
    wire::Reader r(data.subspan(8, kUsed - 8));
    std::uint32_t format = 0;
    JournalHeader h;
    if (!r.u32(format) || format != kFormat || !r.u64(h.seq) || !r.u64(h.base_version) || !r.bytes(h.base_hash) ||
        h.seq == 0)
        return false;
    out = h;
    return true;
}

// ---- Journal ----

Journal::~Journal() {
    for (int fd : fd_)
        if (fd >= 0) ::close(fd);
}

Result<std::unique_ptr<Journal>> Journal::open(const std::string& dir, std::uint64_t capacity, bool sync) {
    std::unique_ptr<Journal> j(new Journal());
    j->sync_ = sync;
    capacity = std::max<std::uint64_t>(capacity, kJournalHeaderSize * 2);
    bool created = false;
    for (int i = 0; i < 2; ++i) {
        j->path_[i] = dir + "/journal." + std::to_string(i);
        j->fd_[i] = ::open(j->path_[i].c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (j->fd_[i] < 0) return Error{errno_text("journal: cannot open " + j->path_[i])};
        struct stat st {};
        if (::fstat(j->fd_[i], &st) != 0) return Error{errno_text("journal: cannot stat " + j->path_[i])};
        j->capacity_[i] = static_cast<std::uint64_t>(st.st_size);
        if (j->capacity_[i] < capacity) {
            created = true;
            if (auto s = j->grow(i, capacity); !s) return Error{s.error()};
        }
        wire::Bytes head(kJournalHeaderSize);
        const ssize_t n = ::pread(j->fd_[i], head.data(), head.size(), 0);
        JournalHeader h;
        if (n == static_cast<ssize_t>(head.size()) && decode_journal_header(head, h)) j->seq_[i] = h.seq;
    }
    if (created && sync)
        if (auto s = fsync_dir(dir); !s) return Error{s.error()};
    j->active_ = j->seq_[1] > j->seq_[0] ? 1 : 0;
    return j;
}

// Zero-fills the file up to `capacity` bytes: appends to a preallocated file then change
// no metadata, so their fdatasync is a data flush only (fallocate's unwritten extents
// would be converted, and journaled, at the first write). The aligned middle goes out with
// O_DIRECT: no copy into the page cache and no dirty pages for the next flush to wait on
// (tens of MiB per file, while the node serves writes). Where O_DIRECT is refused (tmpfs),
// or for an unaligned head and tail, ordinary writes.
Status Journal::grow(int index, std::uint64_t capacity) {
    constexpr std::uint64_t kAlign = 4096;
    constexpr std::size_t kChunk = 1u << 20;
    struct Zeros {
        std::uint8_t* p = nullptr;
        Zeros() {
            p = static_cast<std::uint8_t*>(std::aligned_alloc(kAlign, kChunk));
            if (p) std::memset(p, 0, kChunk);
        }
        ~Zeros() { std::free(p); }
    };
    static const Zeros zeros;
    if (!zeros.p) return Error{"journal: out of memory"};
    std::uint64_t at = capacity_[index];
    auto buffered = [&](std::uint64_t until) -> Status {
        while (at < until) {
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, until - at));
            if (auto s = write_all(fd_[index], zeros.p, n, at, "journal: cannot write ", path_[index]); !s) return s;
            at += n;
        }
        return Ok{};
    };
    const std::uint64_t aligned_end = capacity / kAlign * kAlign;
    if (auto s = buffered(std::min(capacity, (at + kAlign - 1) / kAlign * kAlign)); !s) return s;
    if (at < aligned_end) {
        const int dfd = ::open(path_[index].c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
        while (dfd >= 0 && at < aligned_end) {
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, aligned_end - at));
            const ssize_t w = ::pwrite(dfd, zeros.p, n, static_cast<off_t>(at));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0 || static_cast<std::uint64_t>(w) % kAlign != 0) {
                if (w > 0) at += static_cast<std::uint64_t>(w);
                break;  // the rest buffered (an error there is reported)
            }
            at += static_cast<std::uint64_t>(w);
        }
        if (dfd >= 0) ::close(dfd);
    }
    if (auto s = buffered(capacity); !s) return s;
    if (sync_ && ::fsync(fd_[index]) != 0) return Error{errno_text("journal: cannot sync " + path_[index])};
    capacity_[index] = capacity;
    return Ok{};
}

Result<std::vector<JournalRecord>> Journal::read_all() const {
    struct Seg {
        JournalHeader h;
        int index;
    };
    std::vector<Seg> segs;
    for (int i = 0; i < 2; ++i) {
        wire::Bytes head(kJournalHeaderSize);
        JournalHeader h;
        if (::pread(fd_[i], head.data(), head.size(), 0) == static_cast<ssize_t>(head.size()) &&
            decode_journal_header(head, h))
            segs.push_back({h, i});
    }
    std::sort(segs.begin(), segs.end(), [](const Seg& a, const Seg& b) { return a.h.seq < b.h.seq; });
    std::vector<JournalRecord> out;
    wire::Bytes buf;
    for (std::size_t k = 0; k < segs.size(); ++k) {
        const Seg& s = segs[k];
        const std::size_t first = out.size();  // this segment's records begin here
        // Read on while records continue: a window that grows to hold the next record.
        const std::uint64_t end = capacity_[s.index];
        std::uint64_t at = kJournalHeaderSize;  // file offset of buf[0]
        std::size_t used = 0;                   // bytes of buf decoded
        buf.clear();
        for (;;) {
            JournalRecord rec;
            const wire::ByteView rest(buf.data() + used, buf.size() - used);
            const std::size_t n = decode_journal_record(rest, s.h.seq, rec);
            if (n > 0) {
                rec.segment_seq = s.h.seq;
                out.push_back(std::move(rec));
                used += n;
                continue;
            }
            // Not a whole valid record in the window: read more, unless the window
            // already holds the record its length field announces (then it is invalid).
            const std::uint64_t wanted = rest.size() >= 4 ? 8ull + wire::load_u32(rest.data()) : 8;
            if (rest.size() >= wanted || wanted > 8ull + kMaxBody || at + buf.size() >= end) break;
            buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(used));
            at += used;
            used = 0;
            const std::size_t old = buf.size();
            const std::uint64_t more = std::min<std::uint64_t>(std::max<std::uint64_t>(wanted - old, 64u << 10),
                                                               end - at - old);
            buf.resize(old + more);
            std::size_t got = 0;
            while (got < more) {
                const ssize_t r = ::pread(fd_[s.index], buf.data() + old + got, more - got,
                                          static_cast<off_t>(at + old + got));
                if (r < 0 && errno == EINTR) continue;
                if (r < 0) return Error{errno_text("journal: cannot read " + path_[s.index])};
                if (r == 0) break;
                got += static_cast<std::size_t>(r);
            }
            buf.resize(old + got);
            if (got == 0) break;
        }
        // A newer segment starts at its base: what an older one holds past it is of a
        // history that a snapshot replaced (Store::install resets the journal at its
        // head), never needed (a rotation starts the new segment where the old one ends).
        if (k + 1 < segs.size()) {
            const std::uint64_t base = segs[k + 1].h.base_version;
            auto past = std::find_if(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
                                     [&](const JournalRecord& r) { return r.last_version() > base; });
            out.erase(past, out.end());
        }
    }
    return out;
}

Status Journal::write_header(int index, const JournalHeader& h) {
    wire::Bytes head;
    encode_journal_header(h, head);
    if (auto s = write_all(fd_[index], head.data(), head.size(), 0, "journal: cannot write ", path_[index]); !s) return s;
    // The header must be durable before a record of its segment is: a record is only
    // valid under the header whose seq it carries.
    if (sync_ && ::fdatasync(fd_[index]) != 0) return Error{errno_text("journal: cannot sync " + path_[index])};
    seq_[index] = h.seq;
    return Ok{};
}

Status Journal::grow_other(std::uint64_t capacity) {
    const int other = 1 - active_;
    return capacity_[other] < capacity ? grow(other, capacity) : Status{Ok{}};
}

Status Journal::reset(std::uint64_t base_version, const Hash& base_hash) {
    if (auto s = rotate(base_version, base_hash, 0); !s) return s;
    retired_ = false;
    return Ok{};
}

Status Journal::rotate(std::uint64_t base_version, const Hash& base_hash, std::size_t room) {
    const int next = 1 - active_;
    if (capacity_[next] < kJournalHeaderSize + room)
        if (auto s = grow(next, kJournalHeaderSize + room); !s) return s;
    JournalHeader h;
    h.seq = next_seq();
    h.base_version = base_version;
    h.base_hash = base_hash;
    if (auto s = write_header(next, h); !s) return s;
    active_ = next;
    retired_ = true;
    tail_ = kJournalHeaderSize;
    block_used_ = 0;
    active_base_ = base_version;
    return Ok{};
}

Status Journal::append(const JournalRecord& r) {
    constexpr std::uint64_t kBlock = 4096;
    // framed_ holds the tail block's records (block_used_ bytes) from the last append.
    framed_.resize(block_used_);
    encode_journal_record(seq_[active_], r, framed_);
    const std::size_t record = framed_.size() - block_used_;
    if (!fits(record)) return Error{"journal: a record does not fit the segment"};
    const std::uint64_t start = tail_ - block_used_;  // block-aligned
    const std::uint64_t end = std::min<std::uint64_t>((start + framed_.size() + kBlock - 1) / kBlock * kBlock,
                                                      capacity_[active_]);
    const std::size_t used = framed_.size();
    framed_.resize(static_cast<std::size_t>(end - start), 0);
    if (auto s = write_all(fd_[active_], framed_.data(), framed_.size(), start, "journal: cannot write ", path_[active_]); !s) return s;
    tail_ += record;
    // Keep the records of the new tail block for the next append.
    const std::size_t keep = static_cast<std::size_t>(tail_ % kBlock);
    if (keep > 0) std::memmove(framed_.data(), framed_.data() + used - keep, keep);
    block_used_ = keep;
    return Ok{};
}

Status Journal::sync() {
    if (sync_ && ::fdatasync(fd_[active_]) != 0) return Error{errno_text("journal: cannot sync " + path_[active_])};
    return Ok{};
}

}  // namespace conclave::store
