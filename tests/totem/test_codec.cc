// The ring's packet codec: round trips, canonical form, and rejection of malformed input
// at every truncation length (DESIGN.md §4).
#include <doctest/doctest.h>

#include <string>

#include "wire/totem.h"

using namespace conclave::wire;
using namespace conclave::wire::totem;

namespace {

Token sample_token() {
    Token t;
    t.header = {{1, 0x1122334455667788ull}, 3};
    t.token_seq = 99;
    t.seq = 0xFFFFFFF0u;
    t.aru = 0xFFFFFFE0u;
    t.aru_id = 2;
    t.backlog = 7;
    t.fcc = 12;
    t.idle_rotations = 1;
    t.watermark_ring = 5;
    t.watermark_partial = 9;
    t.rtr = {0xFFFFFFE1u, 0xFFFFFFE5u, 3};
    return t;
}

McastFrame sample_frame() {
    McastFrame f;
    f.header = {{1, 42}, 2};
    f.originator = 4;
    f.seq = 17;
    f.first_msg_id = 1000;
    f.flags = kFrameSafe;
    f.chunks.push_back(Chunk{kChunkLast, 5, {3, 4}});                      // tail of m1000
    f.chunks.push_back(Chunk{kChunkFirst | kChunkLast | kChunkSafe, 0, {}});  // empty m1001
    f.chunks.push_back(Chunk{kChunkFirst, 300, {9, 9, 9}});                 // head of m1002
    return f;
}

template <typename T>
void check_round_trip(const T& value) {
    Bytes b;
    encode(value, b);
    CHECK(b.size() == encoded_size(value));
    DecodeResult r = decode(b);
    REQUIRE(r.ok());
    REQUIRE(std::holds_alternative<T>(r.packet));
    CHECK(std::get<T>(r.packet) == value);
    Bytes again;
    encode(r.packet, again);
    CHECK(again == b);
    // Every proper prefix is refused, and so is one trailing byte.
    for (std::size_t n = 0; n < b.size(); ++n) {
        CAPTURE(n);
        CHECK_FALSE(decode(ByteView(b.data(), n)).ok());
    }
    Bytes longer = b;
    longer.push_back(0);
    CHECK_FALSE(decode(longer).ok());
}

}  // namespace

TEST_CASE("token round trip and truncation") { check_round_trip(sample_token()); }

TEST_CASE("token without retransmit requests") {
    Token t = sample_token();
    t.rtr.clear();
    check_round_trip(t);
}

TEST_CASE("mcast frame round trip and truncation") { check_round_trip(sample_frame()); }

TEST_CASE("hold-cancel round trip and truncation") {
    HoldCancel h{{{1, 7}, 5}};
    Bytes b;
    encode(h, b);
    CHECK(b.size() == kHeaderSize);
    DecodeResult r = decode(b);
    REQUIRE(r.ok());
    CHECK(std::get<HoldCancel>(r.packet) == h);
    for (std::size_t n = 0; n < b.size(); ++n) CHECK_FALSE(decode(ByteView(b.data(), n)).ok());
}

TEST_CASE("malformed headers are refused with a reason") {
    Bytes b;
    encode(sample_token(), b);
    Bytes bad = b;
    bad[0] ^= 1;
    CHECK(std::string(decode(bad).error) == "bad magic");
    bad = b;
    bad[2] = 9;
    CHECK(std::string(decode(bad).error) == "unsupported version");
    bad = b;
    bad[3] = 77;
    CHECK(std::string(decode(bad).error) == "unknown packet type");
}

TEST_CASE("hostile counts and flags are refused before any allocation") {
    Token t = sample_token();
    Bytes b;
    encode(t, b);
    // rtr count field sits right before the list.
    const std::size_t count_at = kTokenFixedSize - 2;
    Bytes bad = b;
    bad[count_at] = 0xFF;
    bad[count_at + 1] = 0xFF;
    CHECK_FALSE(decode(bad).ok());
    bad = b;
    bad[count_at - 1] = 8;  // token flags: an unknown bit
    CHECK_FALSE(decode(bad).ok());

    McastFrame f = sample_frame();
    Bytes fb;
    encode(f, fb);
    Bytes fbad = fb;
    fbad[kMcastFixedSize - 2] = 0xFF;  // chunk count
    fbad[kMcastFixedSize - 1] = 0xFF;
    CHECK_FALSE(decode(fbad).ok());
    fbad = fb;
    fbad[kMcastFixedSize - 3] = 0;  // safe flag cleared although a chunk is safe
    CHECK_FALSE(decode(fbad).ok());
    fbad = fb;
    fbad[kMcastFixedSize] = 0x80;  // unknown chunk flag
    CHECK_FALSE(decode(fbad).ok());

    McastFrame big = f;
    big.chunks[0].total_size = kMaxMessageSize + 1;
    Bytes bb;
    encode(big, bb);
    CHECK_FALSE(decode(bb).ok());
    McastFrame lying = f;
    lying.chunks[1].total_size = 4;  // whole-message chunk shorter than its message
    Bytes lb;
    encode(lying, lb);
    CHECK_FALSE(decode(lb).ok());
}

TEST_CASE("the largest token fits the frame budget of the smallest MTU we accept") {
    static_assert(kDatagramOverhead == 112);
    CHECK(frame_budget(1500) == 1388);
    CHECK(frame_budget(100) == 0);
    Token t = sample_token();
    t.rtr.assign(kMaxRtrEntries, 1);
    Bytes b;
    encode(t, b);
    CHECK(b.size() == kMaxTokenSize);
    CHECK(b.size() <= frame_budget(576));
    t.rtr.push_back(2);  // one too many: refused by the decoder
    Bytes over;
    encode(t, over);
    CHECK_FALSE(decode(over).ok());
}

namespace {
template <typename T>
void check_round_trip_sized(const T& value) {
    Bytes b;
    encode(value, b);
    DecodeResult r = decode(b);
    REQUIRE(r.ok());
    REQUIRE(std::holds_alternative<T>(r.packet));
    CHECK(std::get<T>(r.packet) == value);
    Bytes again;
    encode(r.packet, again);
    CHECK(again == b);
    for (std::size_t n = 0; n < b.size(); ++n) CHECK_FALSE(decode(ByteView(b.data(), n)).ok());
    Bytes longer = b;
    longer.push_back(0);
    CHECK_FALSE(decode(longer).ok());
}
}  // namespace

TEST_CASE("membership packets round trip: join, commit token, merge-detect, leave") {
    Join j;
    j.header = {{1, 40}, 3};
    j.ring_seq = 44;
    j.proc = {1, 2, 3, 7};
    j.fail = {7};
    check_round_trip_sized(j);
    CommitToken c;
    c.header = {{1, 48}, 2};
    c.token_seq = 5;
    c.members = {1, 2, 5};
    c.entries.resize(3);
    c.entries[0] = {{1, 40}, 10, 12, 9, 8};
    c.entries[1] = {{2, 36}, 0xFFFFFFF0u, 3, 2, 1};
    c.filled = 2;
    check_round_trip_sized(c);
    Bytes cb;
    encode(c, cb);
    CHECK(cb.size() == commit_token_size(3));
    check_round_trip_sized(MergeDetect{{{4, 8}, 4}});
    check_round_trip_sized(Leave{{{4, 8}, 5}});
}

TEST_CASE("non-canonical membership packets are refused") {
    Join j;
    j.header = {{1, 40}, 3};
    j.proc = {2, 1};  // not sorted
    Bytes b;
    encode(j, b);
    CHECK_FALSE(decode(b).ok());
    CommitToken c;
    c.header = {{1, 48}, 1};
    c.members = {1, 2};
    c.entries.resize(2);
    c.entries[1].old_aru = 3;  // an unfilled entry must be zero
    c.filled = 1;
    b.clear();
    encode(c, b);
    CHECK_FALSE(decode(b).ok());
}

TEST_CASE("an encapsulated old-ring frame round trips and fits the budget") {
    McastFrame inner = sample_frame();
    inner.header = {{1, 8}, 2};
    McastFrame outer;
    outer.header = {{1, 12}, 3};
    outer.originator = 3;
    outer.seq = 1;
    outer.flags = kFrameEncapsulated;
    Chunk ch;
    ch.flags = kChunkFirst | kChunkLast;
    encode(inner, ch.data);
    ch.total_size = static_cast<std::uint32_t>(ch.data.size());
    outer.chunks.push_back(ch);
    check_round_trip(outer);
    Bytes a, o;
    encode(inner, a);
    encode(outer, o);
    CHECK(o.size() == a.size() + kEncapsulationOverhead);
    // Nesting is refused.
    McastFrame twice = outer;
    twice.chunks[0].data = o;
    twice.chunks[0].total_size = static_cast<std::uint32_t>(o.size());
    Bytes t;
    encode(twice, t);
    CHECK_FALSE(decode(t).ok());
}

TEST_CASE("watermark and safe notices round trip; their sizes are fixed") {
    const WatermarkNotice w{{{2, 12}, 3}, 0x0102030405060708ull};
    const SafeNotice n{{{2, 12}, 3}, 0xfffffff0u};
    check_round_trip_sized(w);
    check_round_trip_sized(n);
    Bytes bw, bn;
    encode(w, bw);
    encode(n, bn);
    CHECK(bw.size() == kWatermarkNoticeSize);
    CHECK(bn.size() == kSafeNoticeSize);
}

TEST_CASE("receipt notices round trip; their size is fixed; a short one is refused") {
    const ReceiptNotice r{{{5, 40}, 7}, 0x80000001u};
    check_round_trip_sized(r);
    Bytes b;
    encode(r, b);
    CHECK(b.size() == kReceiptNoticeSize);
    CHECK(b[3] == static_cast<std::uint8_t>(PacketType::receipt));
    b.pop_back();
    CHECK_FALSE(decode(b).ok());
    b.push_back(0);
    b.push_back(0);
    CHECK(std::string(decode(b).error) == "trailing bytes");
}
