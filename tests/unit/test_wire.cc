#include <doctest/doctest.h>

#include "wire/bytes.h"
#include "wire/datagram.h"

using namespace conclave::wire;

TEST_CASE("writer and reader round-trip fixed-width little-endian fields") {
    Bytes b;
    Writer w(b);
    w.u8(0xAB);
    w.u16(0x1234);
    w.u32(0xDEADBEEF);
    w.u64(0x0102030405060708ULL);
    w.bytes(std::string_view("xyz"));
    REQUIRE(b.size() == 1 + 2 + 4 + 8 + 3);
    CHECK(b[1] == 0x34);  // little-endian on every host
    CHECK(b[2] == 0x12);

    Reader r(b);
    std::uint8_t a = 0;
    std::uint16_t c = 0;
    std::uint32_t d = 0;
    std::uint64_t e = 0;
    std::uint8_t s[3];
    CHECK(r.u8(a));
    CHECK(r.u16(c));
    CHECK(r.u32(d));
    CHECK(r.u64(e));
    CHECK(r.bytes(s));
    CHECK(r.at_end());
    CHECK(a == 0xAB);
    CHECK(c == 0x1234);
    CHECK(d == 0xDEADBEEF);
    CHECK(e == 0x0102030405060708ULL);
    CHECK(s[2] == 'z');
}

TEST_CASE("a reader that runs out stays failed") {
    Bytes b = {1, 2, 3};
    Reader r(b);
    std::uint32_t v = 0;
    CHECK_FALSE(r.u32(v));
    CHECK_FALSE(r.ok());
    std::uint8_t x = 0;
    CHECK_FALSE(r.u8(x));  // even though a byte remains
    CHECK(r.remaining() == 0);
}

TEST_CASE("counts are checked against the remaining bytes before use") {
    Bytes b;
    Writer w(b);
    w.u32(1000);  // claims 1000 elements of 8 bytes
    w.u64(1);
    Reader r(b);
    std::uint32_t n = 0;
    CHECK_FALSE(r.count(n, 8, 1u << 20));
    CHECK_FALSE(r.ok());

    Bytes b2;
    Writer w2(b2);
    w2.u32(2);
    w2.u64(1);
    w2.u64(2);
    Reader r2(b2);
    CHECK(r2.count(n, 8, 10));
    CHECK(n == 2);
    Reader r3(b2);
    CHECK_FALSE(r3.count(n, 8, 1));  // over the caller's maximum
}

TEST_CASE("view and skip never pass the end") {
    Bytes b(10, 7);
    Reader r(b);
    ByteView v;
    CHECK(r.view(4, v));
    CHECK(v.size() == 4);
    CHECK_FALSE(r.skip(7));
    CHECK_FALSE(r.ok());
}

TEST_CASE("datagram header round-trips and rejects malformed headers") {
    DatagramHeader h;
    h.cipher = 1;
    h.cluster_id = cluster_id_of("pve");
    h.sender = 7;
    h.key_id = 0xCAFEBABE;
    h.boot = {42, 99};
    h.counter = 123456789;
    h.receiver = 0x01020304;
    Bytes d(kHeaderSize + kTagSize + 5, 0);
    encode_header(h, d.data());
    DatagramHeader back;
    REQUIRE(decode_header(d, back) == HeaderError::none);
    CHECK(back.cluster_id == h.cluster_id);
    CHECK(back.sender == 7);
    CHECK(back.key_id == 0xCAFEBABE);
    CHECK(back.boot == h.boot);
    CHECK(back.counter == 123456789);
    CHECK(back.receiver == 0x01020304);
    CHECK(load_u32(d.data() + 48) == 0x01020304);  // the layout of wire/datagram.h

    SUBCASE("too short for header and tag") {
        for (std::size_t n = 0; n < kHeaderSize + kTagSize; ++n)
            CHECK(decode_header(ByteView(d.data(), n), back) == HeaderError::malformed);
    }
    SUBCASE("another version is named as such at any length past magic and version") {
        d[4] = 1;  // version 1 had a 48-byte header
        for (std::size_t n = 8; n <= d.size(); ++n)
            CHECK(decode_header(ByteView(d.data(), n), back) == HeaderError::unknown_version);
    }
    SUBCASE("bad magic") {
        d[0] ^= 1;
        CHECK(decode_header(d, back) == HeaderError::malformed);
    }
    SUBCASE("another version") {
        d[4] = 3;
        CHECK(decode_header(d, back) == HeaderError::unknown_version);
    }
    SUBCASE("reserved bits") {
        d[7] = 1;
        CHECK(decode_header(d, back) == HeaderError::malformed);
    }
    SUBCASE("sender zero") {
        store_u32(d.data() + 16, 0);
        CHECK(decode_header(d, back) == HeaderError::malformed);
    }
}

TEST_CASE("cluster id is a stable hash of the name") {
    CHECK(cluster_id_of("pve") == cluster_id_of("pve"));
    CHECK(cluster_id_of("pve") != cluster_id_of("pve2"));
    // Pinned (SHA-256 of the empty string) so the wire format cannot drift.
    CHECK(cluster_id_of("") == 0x141cfc9842c4b0e3ULL);
}
