// Flow-control arithmetic (Totem §8): window, max_messages, fair share, contributions.
#include <doctest/doctest.h>

#include "totem/flow_control.h"

using conclave::totem::FlowControl;

TEST_CASE("an empty ring grants max_messages") {
    FlowControl fc(50, 17);
    CHECK(fc.allowance(0, 0, 5) == 17);
}

TEST_CASE("the window caps what the rest of the ring already sent this rotation") {
    FlowControl fc(50, 17);
    CHECK(fc.allowance(40, 0, 5) == 10);
    CHECK(fc.allowance(50, 0, 5) == 0);
    CHECK(fc.allowance(70, 0, 5) == 0);  // inconsistent fcc never underflows
}

TEST_CASE("my own previous contribution is replaced, not counted against me") {
    FlowControl fc(50, 17);
    std::uint32_t fcc = 40, backlog = 0;
    fc.update_token(fcc, backlog, 10, 3);  // I sent 10, 3 frames left
    CHECK(fcc == 50);
    CHECK(backlog == 3);
    // Next visit: fcc still 50 (others sent nothing), my 10 are not "others".
    CHECK(fc.allowance(fcc, backlog, 3) == 10);
    fc.update_token(fcc, backlog, 3, 0);
    CHECK(fcc == 43);
    CHECK(backlog == 0);
    CHECK(fc.previous_sent() == 3);
    CHECK(fc.previous_backlog() == 0);
}

TEST_CASE("a congested ring gives each node its fair share of the window") {
    FlowControl fc(50, 17);
    // Others have 90 frames queued, I have 10: ring backlog 100 > 50 -> 50*10/100 = 5.
    CHECK(fc.allowance(0, 90, 10) == 5);
    // A tiny queue still gets at least one frame (nobody starves).
    CHECK(fc.allowance(0, 1000, 1) == 1);
    // Below the window, no fair-share cap.
    CHECK(fc.allowance(0, 20, 10) == 17);
}

TEST_CASE("backlog contributions never underflow") {
    FlowControl fc(50, 17);
    std::uint32_t fcc = 0, backlog = 0;
    fc.update_token(fcc, backlog, 5, 20);
    std::uint32_t bogus_fcc = 1, bogus_backlog = 2;  // a token that lost my contribution
    fc.update_token(bogus_fcc, bogus_backlog, 0, 0);
    CHECK(bogus_fcc == 0);
    CHECK(bogus_backlog == 0);
}
