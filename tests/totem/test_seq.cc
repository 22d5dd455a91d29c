// Serial-number arithmetic around the 2^32 wrap.
#include <doctest/doctest.h>

#include "totem/seq.h"

using namespace conclave::totem;

TEST_CASE("seq comparisons are wraparound-safe") {
    CHECK(seq_lt(1, 2));
    CHECK(seq_lt(0xFFFFFFFFu, 0u));
    CHECK(seq_lt(0xFFFFFFF0u, 5u));
    CHECK(seq_gt(5u, 0xFFFFFFF0u));
    CHECK(seq_le(7u, 7u));
    CHECK(seq_ge(0u, 0xFFFFFFFFu));
    CHECK(seq_diff(0xFFFFFFFEu, 1u) == 3);
    CHECK(seq_diff(1u, 0xFFFFFFFEu) == -3);
    CHECK(seq_min(0xFFFFFFFFu, 2u) == 0xFFFFFFFFu);
    CHECK(seq_max(0xFFFFFFFFu, 2u) == 2u);
    // Just under half the space apart still orders correctly.
    CHECK(seq_lt(0u, 0x7FFFFFFFu));
    CHECK(seq_lt(0x90000001u, 0x10000000u));  // 2^31 - 1 apart, across the wrap
}

TEST_CASE("incrementing across the wrap keeps order") {
    Seq s = 0xFFFFFFFAu;
    for (int i = 0; i < 12; ++i) {
        const Seq next = s + 1;
        CHECK(seq_lt(s, next));
        CHECK(seq_diff(s, next) == 1);
        s = next;
    }
    CHECK(s == 6u);
}
