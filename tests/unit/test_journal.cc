// The store's write-ahead journal: record and header codecs, segments, rotation and
// recycling, torn and stale records.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "store/journal.h"
#include "temp_dir.h"
#include "why.h"

using namespace conclave;
using namespace conclave::store;

namespace {

JournalRecord record(std::uint64_t first, std::size_t entries, std::uint8_t fill) {
    JournalRecord r;
    r.first_version = first;
    for (std::size_t i = 0; i < entries; ++i)
        r.entries.push_back(JournalEntry{7 + i, wire::Bytes(10 + i * 3, static_cast<std::uint8_t>(fill + i))});
    r.last_hash.fill(fill);
    return r;
}

bool same(const JournalRecord& a, const JournalRecord& b) {
    if (a.first_version != b.first_version || a.last_hash != b.last_hash || a.entries.size() != b.entries.size())
        return false;
    for (std::size_t i = 0; i < a.entries.size(); ++i)
        if (a.entries[i].epoch != b.entries[i].epoch || a.entries[i].transition != b.entries[i].transition)
            return false;
    return true;
}

std::vector<JournalRecord> read_all(Journal& j) {
    auto r = j.read_all();
    REQUIRE_MESSAGE(r.ok(), test::why(r));
    return std::move(r.value());
}

}  // namespace

TEST_CASE("crc32c matches the Castagnoli check value") {
    const std::string s = "123456789";
    CHECK(crc32c(0, reinterpret_cast<const std::uint8_t*>(s.data()), s.size()) == 0xE3069283u);
    // Incremental over a split equals one pass.
    const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
    CHECK(crc32c(crc32c(0, p, 4), p + 4, 5) == 0xE3069283u);
    // Every length and alignment agrees with the bitwise definition (the hardware path
    // works 8 bytes at a time, then bytes).
    std::vector<std::uint8_t> data(300);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 131 + 7);
    auto bitwise = [](const std::uint8_t* d, std::size_t n) {
        std::uint32_t c = 0xFFFFFFFFu;
        for (std::size_t i = 0; i < n; ++i) {
            c ^= d[i];
            for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        return ~c;
    };
    for (std::size_t off = 0; off < 9; ++off)
        for (std::size_t n = 0; n + off <= data.size(); n += 7) CHECK(crc32c(0, data.data() + off, n) == bitwise(data.data() + off, n));
}

TEST_CASE("a journal record round trips; any damage, truncation or another segment's seq ends the journal there") {
    const JournalRecord r = record(41, 3, 5);
    wire::Bytes b;
    encode_journal_record(9, r, b);
    std::size_t expected = kJournalRecordOverhead;
    for (const auto& e : r.entries) expected += kJournalEntryOverhead + e.transition.size();
    CHECK(b.size() == expected);
    JournalRecord out;
    REQUIRE(decode_journal_record(b, 9, out) == b.size());
    CHECK(same(out, r));
    CHECK(out.last_version() == 43);
    CHECK(decode_journal_record(b, 8, out) == 0);  // a stale record of a recycled file
    for (std::size_t n = 0; n < b.size(); ++n) CHECK(decode_journal_record(wire::ByteView(b.data(), n), 9, out) == 0);
    for (std::size_t i = 0; i < b.size(); ++i) {
        wire::Bytes bad = b;
        bad[i] ^= 0x10;
        CAPTURE(i);
        CHECK(decode_journal_record(bad, 9, out) == 0);
    }
    CHECK(decode_journal_record(wire::Bytes(64, 0), 9, out) == 0);  // the zero-filled tail
    // Trailing bytes after a record are the next record's business.
    wire::Bytes two = b;
    encode_journal_record(9, record(44, 1, 6), two);
    CHECK(decode_journal_record(two, 9, out) == b.size());
}

TEST_CASE("a segment header round trips and refuses damage") {
    JournalHeader h;
    h.seq = 3;
    h.base_version = 77;
    h.base_hash.fill(0xab);
    wire::Bytes b;
    encode_journal_header(h, b);
    CHECK(b.size() == kJournalHeaderSize);
    JournalHeader out;
    REQUIRE(decode_journal_header(b, out));
    CHECK(out.seq == 3);
    CHECK(out.base_version == 77);
    CHECK(out.base_hash == h.base_hash);
    for (std::size_t i = 0; i < 64; ++i) {
        wire::Bytes bad = b;
        bad[i] ^= 1;
        CHECK_FALSE(decode_journal_header(bad, out));
    }
    CHECK_FALSE(decode_journal_header(wire::Bytes(kJournalHeaderSize, 0), out));
}

TEST_CASE("journal segments: appends survive a reopen; rotation keeps order; a recycled file's old records are not read") {
    test::TempDir dir;
    const std::uint64_t capacity = 16 << 10;
    {
        auto j = Journal::open(dir.path, capacity, false);
        REQUIRE(j.ok());
        CHECK(read_all(*j.value()).empty());  // fresh zero-filled files
        REQUIRE(j.value()->reset(0, Hash{}).ok());
        REQUIRE(j.value()->append(record(1, 2, 1)).ok());
        REQUIRE(j.value()->append(record(3, 1, 2)).ok());
        REQUIRE(j.value()->sync().ok());
    }
    auto opened = Journal::open(dir.path, capacity, false);
    REQUIRE(opened.ok());
    Journal& j = *opened.value();
    auto got = read_all(j);
    REQUIRE(got.size() == 2);
    CHECK(same(got[0], record(1, 2, 1)));
    CHECK(same(got[1], record(3, 1, 2)));

    // The next segment starts in the other file; the first is retired until released.
    REQUIRE(j.reset(3, Hash{}).ok());  // as Store::open does: a checkpoint at the head
    REQUIRE(j.append(record(4, 1, 3)).ok());
    CHECK(j.other_free());
    REQUIRE(j.rotate(4, Hash{}, 0).ok());
    CHECK_FALSE(j.other_free());
    REQUIRE(j.append(record(5, 1, 4)).ok());
    got = read_all(j);
    REQUIRE(got.size() == 2);
    CHECK(got[0].first_version == 4);
    CHECK(got[1].first_version == 5);
    // Released and recycled: the file that held version 4 now starts at 5; its old
    // records stay on disk, and are stale.
    j.release_retired();
    REQUIRE(j.rotate(5, Hash{}, 0).ok());
    got = read_all(j);
    REQUIRE(got.size() == 1);
    CHECK(got[0].first_version == 5);
    REQUIRE(j.append(record(6, 1, 5)).ok());
    got = read_all(j);
    REQUIRE(got.size() == 2);
    CHECK(got[1].first_version == 6);
}

TEST_CASE("a full segment refuses an append; a rotation grows the next file to the room asked") {
    test::TempDir dir;
    auto opened = Journal::open(dir.path, 12 << 10, false);
    REQUIRE(opened.ok());
    Journal& j = *opened.value();
    REQUIRE(j.reset(0, Hash{}).ok());
    JournalRecord big = record(1, 1, 1);
    big.entries[0].transition.assign(20 << 10, 7);
    wire::Bytes framed;
    encode_journal_record(1, big, framed);
    CHECK_FALSE(j.fits(framed.size()));
    CHECK_FALSE(j.append(big).ok());
    j.release_retired();
    REQUIRE(j.rotate(0, Hash{}, framed.size()).ok());
    CHECK(j.fits(framed.size()));
    REQUIRE(j.append(big).ok());
    auto got = read_all(j);
    REQUIRE(got.size() == 1);
    CHECK(same(got[0], big));
}

TEST_CASE("a torn last record ends the journal before it") {
    test::TempDir dir;
    std::size_t first_size = 0;
    {
        auto j = Journal::open(dir.path, 16 << 10, false);
        REQUIRE(j.ok());
        REQUIRE(j.value()->reset(0, Hash{}).ok());
        wire::Bytes b;
        encode_journal_record(0, record(1, 2, 1), b);
        first_size = b.size();
        REQUIRE(j.value()->append(record(1, 2, 1)).ok());
        REQUIRE(j.value()->append(record(3, 2, 2)).ok());
    }
    // reset() wrote the segment into journal.1 (journal.0 had no valid header).
    const std::string path = dir.path + "/journal.1";
    const int fd = ::open(path.c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    const std::uint8_t junk = 0x55;
    REQUIRE(::pwrite(fd, &junk, 1, static_cast<off_t>(kJournalHeaderSize + first_size + 20)) == 1);
    ::close(fd);
    auto j = Journal::open(dir.path, 16 << 10, false);
    REQUIRE(j.ok());
    auto got = read_all(*j.value());
    REQUIRE(got.size() == 1);
    CHECK(got[0].first_version == 1);
}

TEST_CASE("appends write whole blocks: every record survives, whatever its size and where it falls") {
    test::TempDir dir;
    auto opened = Journal::open(dir.path, 256 << 10, false);
    REQUIRE(opened.ok());
    Journal& j = *opened.value();
    REQUIRE(j.reset(0, Hash{}).ok());
    // Fill the other file with stale records, then recycle it: the whole-block writes
    // must leave no stale bytes readable after the tail.
    REQUIRE(j.append(record(1, 40, 9)).ok());
    REQUIRE(j.append(record(41, 40, 9)).ok());
    REQUIRE(j.rotate(80, Hash{}, 0).ok());
    j.release_retired();
    REQUIRE(j.rotate(80, Hash{}, 0).ok());
    std::vector<JournalRecord> written;
    std::uint64_t v = 81;
    wire::Bytes framed;
    std::size_t used = kJournalHeaderSize;
    for (std::size_t i = 0; i < 60; ++i) {
        // Sizes from a few bytes to over a block, and one that ends exactly on a block.
        JournalRecord r = record(v, 1 + i % 3, static_cast<std::uint8_t>(i));
        r.entries[0].transition.resize((i * 997) % 5000);
        framed.clear();
        encode_journal_record(0, r, framed);
        if (i == 30) {
            const std::size_t to_block = 4096 - (used + framed.size()) % 4096;
            r.entries[0].transition.resize(r.entries[0].transition.size() + to_block);
            framed.clear();
            encode_journal_record(0, r, framed);
            CHECK((used + framed.size()) % 4096 == 0);
        }
        used += framed.size();
        REQUIRE(j.append(r).ok());
        written.push_back(r);
        v = r.last_version() + 1;
        if (i % 7 == 0) {
            auto got = read_all(j);
            REQUIRE(got.size() == written.size());
            for (std::size_t k = 0; k < got.size(); ++k) CHECK(same(got[k], written[k]));
        }
    }
    auto got = read_all(j);
    REQUIRE(got.size() == written.size());
    for (std::size_t k = 0; k < got.size(); ++k) CHECK(same(got[k], written[k]));
}
