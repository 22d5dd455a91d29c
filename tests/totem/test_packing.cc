// Packing and fragmentation edges: 0 bytes, exactly the frame budget, budget + 1, 1 MiB;
// the bounded send queue; reassembly and its refusal of broken chunk sequences.
#include <doctest/doctest.h>

#include "totem/packing.h"

using namespace conclave;
using namespace conclave::totem;
namespace wt = conclave::wire::totem;

namespace {

constexpr std::size_t kMtu = 1500;
const std::size_t kBudget = wt::frame_budget(kMtu);
const std::size_t kChunkBudget = kBudget - wt::kMcastFixedSize;
// The largest message that fits one frame: one chunk header plus its bytes.
const std::size_t kOneFrame = kChunkBudget - wt::kChunkHeaderSize;

wire::Bytes pattern(std::size_t n, std::uint8_t salt = 0) {
    wire::Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 31 + salt);
    return b;
}

// Cuts everything queued into frames, checks each against the budget, and reassembles.
std::vector<Delivery> round_trip(SendQueue& q, std::size_t* frames_out = nullptr) {
    Reassembler r;
    std::vector<Delivery> out;
    std::size_t frames = 0;
    Seq seq = 100;
    while (!q.empty()) {
        wt::McastFrame f = q.next_frame();
        f.originator = 7;
        f.seq = ++seq;
        wire::Bytes bytes;
        wt::encode(f, bytes);
        CHECK(bytes.size() <= kBudget);
        auto d = wt::decode(bytes);
        REQUIRE(d.ok());
        CHECK(r.on_frame(std::get<wt::McastFrame>(d.packet), out));
        ++frames;
    }
    CHECK(r.partial_bytes() == 0);
    if (frames_out) *frames_out = frames;
    return out;
}

}  // namespace

TEST_CASE("a 0-byte message travels as one empty chunk") {
    SendQueue q(kChunkBudget, 1 << 22, 100);
    CHECK(q.push({}, Guarantee::agreed).status == SubmitStatus::ok);
    std::size_t frames = 0;
    auto d = round_trip(q, &frames);
    CHECK(frames == 1);
    REQUIRE(d.size() == 1);
    CHECK(d[0].payload.empty());
    CHECK(d[0].msg_id == 1);
    CHECK(d[0].sender == 7);
}

TEST_CASE("a message of exactly the frame budget fills one frame to the byte") {
    SendQueue q(kChunkBudget, 1 << 22, 100);
    q.push(pattern(kOneFrame), Guarantee::safe);
    wt::McastFrame f = q.next_frame();
    wire::Bytes bytes;
    wt::encode(f, bytes);
    CHECK(bytes.size() == kBudget);
    CHECK(q.empty());
    CHECK(f.chunks.size() == 1);
    CHECK(f.chunks[0].flags == (wt::kChunkFirst | wt::kChunkLast | wt::kChunkSafe));
    CHECK(f.flags == wt::kFrameSafe);
}

TEST_CASE("budget + 1 bytes needs two frames") {
    SendQueue q(kChunkBudget, 1 << 22, 100);
    const auto msg = pattern(kOneFrame + 1);
    q.push(msg, Guarantee::agreed);
    CHECK(q.frames_needed() == 2);
    std::size_t frames = 0;
    auto d = round_trip(q, &frames);
    CHECK(frames == 2);
    REQUIRE(d.size() == 1);
    CHECK(d[0].payload == msg);
}

TEST_CASE("a 1 MiB message is fragmented within budget and reassembled") {
    SendQueue q(kChunkBudget, 1 << 22, 100);
    const auto msg = pattern(wt::kMaxMessageSize, 5);
    CHECK(q.push(msg, Guarantee::safe).status == SubmitStatus::ok);
    std::size_t frames = 0;
    auto d = round_trip(q, &frames);
    CHECK(frames == (wt::kMaxMessageSize + kOneFrame - 1) / kOneFrame);
    REQUIRE(d.size() == 1);
    CHECK(d[0].payload == msg);
    CHECK(d[0].guarantee == Guarantee::safe);
}

TEST_CASE("larger than 1 MiB is refused outright") {
    SendQueue q(kChunkBudget, 1 << 22, 100);
    CHECK(q.push(pattern(wt::kMaxMessageSize + 1), Guarantee::agreed).status == SubmitStatus::too_large);
    CHECK(q.empty());
}

TEST_CASE("many small messages share one frame, in order, with consecutive ids") {
    SendQueue q(kChunkBudget, 1 << 22, 1000);
    for (int i = 0; i < 40; ++i) q.push(pattern(10, static_cast<std::uint8_t>(i)), Guarantee::agreed);
    std::size_t frames = 0;
    auto d = round_trip(q, &frames);
    CHECK(frames == 1);
    REQUIRE(d.size() == 40);
    for (int i = 0; i < 40; ++i) {
        CHECK(d[i].msg_id == static_cast<std::uint64_t>(i + 1));
        CHECK(d[i].payload == pattern(10, static_cast<std::uint8_t>(i)));
    }
}

TEST_CASE("mixed sizes keep submission order across frames") {
    SendQueue q(kChunkBudget, 1 << 22, 1000);
    std::vector<wire::Bytes> sent;
    for (std::size_t n : {3u, 5000u, 0u, 1300u, 1u, 70000u, 2u}) {
        sent.push_back(pattern(n, static_cast<std::uint8_t>(n)));
        q.push(sent.back(), n % 2 ? Guarantee::safe : Guarantee::agreed);
    }
    auto d = round_trip(q);
    REQUIRE(d.size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) CHECK(d[i].payload == sent[i]);
}

TEST_CASE("the send queue pushes back with TryAgain, never grows without bound") {
    SendQueue q(kChunkBudget, 1000, 3);
    CHECK(q.push(pattern(5000), Guarantee::agreed).status == SubmitStatus::ok);  // empty queue takes it
    CHECK(q.push(pattern(10), Guarantee::agreed).status == SubmitStatus::try_again);  // bytes bound
    SendQueue small(kChunkBudget, 1 << 20, 2);
    CHECK(small.push(pattern(1), Guarantee::agreed).status == SubmitStatus::ok);
    CHECK(small.push(pattern(1), Guarantee::agreed).status == SubmitStatus::ok);
    CHECK(small.push(pattern(1), Guarantee::agreed).status == SubmitStatus::try_again);  // count bound
    small.next_frame();
    CHECK(small.push(pattern(1), Guarantee::agreed).status == SubmitStatus::ok);
}

TEST_CASE("the reassembler refuses a continuation without its start") {
    Reassembler r;
    std::vector<Delivery> out;
    wt::McastFrame f;
    f.originator = 3;
    f.first_msg_id = 9;
    f.chunks.push_back(wt::Chunk{wt::kChunkLast, 4, {1, 2}});
    CHECK_FALSE(r.on_frame(f, out));
    CHECK(out.empty());
    // A message whose fragments add up to more than announced is dropped too.
    wt::McastFrame a;
    a.originator = 3;
    a.first_msg_id = 10;
    a.chunks.push_back(wt::Chunk{wt::kChunkFirst, 3, {1, 2}});
    CHECK(r.on_frame(a, out));
    wt::McastFrame b = a;
    b.chunks[0] = wt::Chunk{wt::kChunkLast, 3, {3, 4}};
    CHECK_FALSE(r.on_frame(b, out));
    CHECK(out.empty());
    CHECK(r.partial_bytes() == 0);
}
