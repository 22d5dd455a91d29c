// Token handling scenarios: given this ring and these events, these effects.
// A tiny in-test network moves packets one at a time, FIFO, with an optional drop rule;
// every packet any core emits is checked against the frame budget.
#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>

#include "totem/ring.h"

using namespace conclave;
using namespace conclave::totem;
namespace wt = conclave::wire::totem;

namespace {

struct InFlight {
    NodeId from, to;
    wire::Bytes bytes;
};

struct Harness {
    std::vector<std::unique_ptr<Ring>> rings;  // index = node id - 1
    std::deque<InFlight> net;
    std::map<std::pair<NodeId, int>, Micros> timers;
    std::map<NodeId, std::vector<Delivery>> delivered;
    std::map<NodeId, std::vector<std::uint64_t>> watermarks;
    std::function<bool(const InFlight&)> drop = [](const InFlight&) { return false; };
    Micros now = 0;
    std::size_t budget = 0;
    std::size_t oversized_commit_tokens = 0;

    explicit Harness(std::uint32_t n, Seq initial_seq = 0, std::function<void(Config&)> tweak = {}) {
        std::vector<NodeId> members;
        for (NodeId i = 1; i <= n; ++i) members.push_back(i);
        for (NodeId i = 1; i <= n; ++i) {
            Config c;
            c.self = i;
            c.members = members;
            c.ring_id = {1, 1};
            c.initial_seq = initial_seq;
            if (tweak) tweak(c);
            REQUIRE(validate(c).empty());
            rings.push_back(std::make_unique<Ring>(c));
        }
        budget = rings[0]->frame_budget();
    }
    Ring& node(NodeId id) { return *rings[id - 1]; }

    Effects collect(NodeId id) {
        Effects fx = node(id).take_effects();
        // As the drivers send: frames before the token that announces them.
        for (auto& m : fx.multicasts) {
            CHECK(m.size() <= budget);
            for (NodeId y = 1; y <= rings.size(); ++y)
                if (y != id) net.push_back({id, y, m});
        }
        for (auto& u : fx.unicasts) {
            if (u.bytes.size() > budget) {
                // A large ring's commit token is the one packet allowed above the budget.
                const auto d = wt::decode(u.bytes);
                const bool commit = d.ok() && std::holds_alternative<wt::CommitToken>(d.packet);
                CHECK(commit);
                CHECK(u.bytes.size() <= wt::kMaxCommitTokenSize);
                if (commit) ++oversized_commit_tokens;
            }
            net.push_back({id, u.to, u.bytes});
        }
        for (auto& t : fx.timers) {
            if (t.arm) timers[{id, static_cast<int>(t.timer)}] = t.deadline;
            else timers.erase({id, static_cast<int>(t.timer)});
        }
        for (auto& ev : fx.events)
            if (auto* d = std::get_if<Delivery>(&ev)) delivered[id].push_back(*d);
        if (fx.watermark) watermarks[id].push_back(*fx.watermark);
        return fx;
    }
    void start() {
        for (NodeId i = 1; i <= rings.size(); ++i) {
            node(i).start(now);
            collect(i);
        }
    }
    // Moves one packet; returns false when the network is empty.
    bool step() {
        if (net.empty()) return false;
        InFlight p = std::move(net.front());
        net.pop_front();
        if (drop(p)) return true;
        node(p.to).on_packet(p.from, p.bytes, now);
        collect(p.to);
        return true;
    }
    void steps(int n) {
        for (int i = 0; i < n && step(); ++i) {}
    }
    // Runs the network; when it is quiet, advances time to the next timer and fires it.
    void run_until(const std::function<bool()>& done, int max_events = 100000) {
        for (int i = 0; i < max_events && !done(); ++i) {
            if (step()) continue;
            if (timers.empty()) return;
            auto next = timers.begin();
            for (auto it = timers.begin(); it != timers.end(); ++it)
                if (it->second < next->second) next = it;
            const auto [key, deadline] = *next;
            timers.erase(next);
            now = std::max(now, deadline);
            node(key.first).on_timer(static_cast<TimerId>(key.second), now);
            collect(key.first);
        }
    }
    std::size_t count(NodeId id) { return delivered[id].size(); }
};

wt::Token decode_token(const wire::Bytes& b) {
    auto r = wt::decode(b);
    REQUIRE(r.ok());
    REQUIRE(std::holds_alternative<wt::Token>(r.packet));
    return std::get<wt::Token>(r.packet);
}

}  // namespace

TEST_CASE("the rep originates the token; it circulates in ascending node-id order") {
    Harness h(3);
    h.start();
    REQUIRE(h.net.size() == 1);
    CHECK(h.net.front().from == 1);
    CHECK(h.net.front().to == 2);
    CHECK(h.timers.count({1, static_cast<int>(TimerId::token_retransmit)}) == 1);
    h.step();  // 1 -> 2
    REQUIRE(h.net.size() == 1);
    CHECK(h.net.front().to == 3);
    // Receiving the next hop's... nothing: node 1's retransmit timer still armed.
    h.step();  // 2 -> 3
    REQUIRE(h.net.size() == 1);
    CHECK(h.net.front().to == 1);
    const wt::Token t = decode_token(h.net.front().bytes);
    CHECK(t.token_seq == 3);
    h.step();  // 3 -> 1: the token came back
    // Nothing was sent in two rotations (the origination counts as the first): the rep
    // holds the token; a submit anywhere gets it moving again.
    CHECK(h.net.empty());
    CHECK(h.node(1).holding_token());
    CHECK(h.timers.count({1, static_cast<int>(TimerId::token_hold)}) == 1);
}

TEST_CASE("a submitted message gets the next seq on the sender's visit and is delivered agreed everywhere") {
    Harness h(3, 500);
    h.start();
    const auto r = h.node(2).submit({1, 2, 3}, Guarantee::agreed, h.now);
    CHECK(r.status == SubmitStatus::ok);
    CHECK(r.msg_id == 1);
    h.run_until([&] { return h.count(1) == 1 && h.count(2) == 1 && h.count(3) == 1; });
    for (NodeId n = 1; n <= 3; ++n) {
        REQUIRE(h.count(n) == 1);
        const Delivery& d = h.delivered[n][0];
        CHECK(d.sender == 2);
        CHECK(d.msg_id == 1);
        CHECK(d.seq == 501);
        CHECK(d.guarantee == Guarantee::agreed);
        CHECK(d.payload == wire::Bytes{1, 2, 3});
    }
}

TEST_CASE("safe delivery waits until the token showed aru past the frame on two visits") {
    Harness h(3);
    h.start();
    h.node(1).submit({9}, Guarantee::safe, h.now);
    h.step();  // node 1 is idle-free: nothing yet... token 1->2 already in flight
    // Run until node 1 multicast the frame: the frame is held by everyone soon, but
    // node 1 must not deliver it before the token made its rounds.
    h.run_until([&] { return h.node(1).window().high() == 1; });
    CHECK(h.count(1) == 0);
    // Let the frame reach everybody, without more token visits to node 1.
    h.run_until([&] { return h.node(2).window().my_aru() == 1 && h.node(3).window().my_aru() == 1; });
    CHECK(h.count(2) == 0);
    CHECK(h.count(3) == 0);
    h.run_until([&] { return h.count(1) + h.count(2) + h.count(3) == 3; });
    for (NodeId n = 1; n <= 3; ++n) {
        REQUIRE(h.count(n) == 1);
        CHECK(h.delivered[n][0].guarantee == Guarantee::safe);
        CHECK(seq_le(1, *h.node(n).window().safe_point()));
    }
}

TEST_CASE("an originator's safe frame is safe for it one rotation after it sent it") {
    // It raised aru over its own frame: aru stayed there for the whole rotation that
    // followed, so every member held the frame when the token came back. (The token's
    // rule alone: no receipts.)
    Harness h(3, 0, [](Config& c) { c.receipts = false; });
    h.start();
    h.node(2).submit({9}, Guarantee::safe, h.now);
    h.run_until([&] { return h.node(2).window().high() == 1; });
    bool returned = false;
    while (!returned && !h.net.empty()) {
        const InFlight& p = h.net.front();
        returned = p.to == 2 && std::holds_alternative<wt::Token>(wt::decode(p.bytes).packet);
        h.step();
    }
    REQUIRE(returned);
    CHECK(h.count(2) == 1);
    // Node 3 had forwarded aru 0 before the frame existed: one more visit for it.
    CHECK(h.count(3) == 0);
    h.run_until([&] { return h.count(3) == 1; });
    CHECK(h.count(3) == 1);
}

TEST_CASE("the originator's safe notice lets the others deliver before their own next visit") {
    Harness h(3, 0, [](Config& c) { c.receipts = false; });
    h.start();
    h.node(1).submit({7}, Guarantee::safe, h.now);
    h.collect(1);
    // Until node 1 knows the frame is safe (the token came back to it once).
    h.run_until([&] { return h.count(1) == 1; });
    REQUIRE(h.count(1) == 1);
    CHECK(h.node(1).stats().safe_notices_sent == 1);
    // Deliver only the notices now, holding the token back: nodes 2 and 3 deliver from them.
    std::deque<InFlight> rest;
    while (!h.net.empty()) {
        InFlight p = std::move(h.net.front());
        h.net.pop_front();
        if (std::holds_alternative<wt::SafeNotice>(wt::decode(p.bytes).packet)) {
            h.node(p.to).on_packet(p.from, p.bytes, h.now);
            h.collect(p.to);
        } else {
            rest.push_back(std::move(p));
        }
    }
    CHECK(h.count(2) == 1);
    CHECK(h.count(3) == 1);
    CHECK(h.node(3).stats().safe_notices_received == 1);
    // An agreed message sends none.
    h.net = std::move(rest);
    h.node(1).submit({8}, Guarantee::agreed, h.now);
    h.run_until([&] { return h.count(1) == 2 && h.count(2) == 2 && h.count(3) == 2; });
    CHECK(h.node(1).stats().safe_notices_sent == 1);
}

namespace {
// Delivers everything in flight but tokens, until only tokens are left; returns them.
std::deque<InFlight> run_without_tokens(Harness& h) {
    std::deque<InFlight> tokens;
    while (!h.net.empty()) {
        InFlight p = std::move(h.net.front());
        h.net.pop_front();
        if (std::holds_alternative<wt::Token>(wt::decode(p.bytes).packet)) {
            tokens.push_back(std::move(p));
            continue;
        }
        if (h.drop(p)) continue;
        h.node(p.to).on_packet(p.from, p.bytes, h.now);
        h.collect(p.to);
    }
    return tokens;
}
}  // namespace

TEST_CASE("receipts: every member delivers a safe frame once all hold it, without the token going round") {
    Harness h(3);
    h.start();
    h.node(1).submit({7}, Guarantee::safe, h.now);
    h.collect(1);
    h.run_until([&] { return h.node(1).stats().frames_sent == 1; });
    REQUIRE(h.node(1).stats().frames_sent == 1);
    CHECK(h.count(1) + h.count(2) + h.count(3) == 0);
    h.net = run_without_tokens(h);
    CHECK(h.count(1) == 1);
    CHECK(h.count(2) == 1);
    CHECK(h.count(3) == 1);
    for (NodeId n = 1; n <= 3; ++n) {
        CHECK(h.node(n).stats().receipts_sent == 1);
        CHECK(h.node(n).stats().receipts_received == 2);
    }
    // The originator learnt it from the receipts: no safe notice is needed.
    h.run_until([&] { return h.node(1).holding_token(); });
    CHECK(h.node(1).stats().safe_notices_sent == 0);
    // An agreed message asks for no receipt.
    h.node(2).submit({8}, Guarantee::agreed, h.now);
    h.collect(2);
    h.run_until([&] { return h.count(1) == 2 && h.count(2) == 2 && h.count(3) == 2; });
    REQUIRE(h.count(3) == 2);
    for (NodeId n = 1; n <= 3; ++n) CHECK(h.node(n).stats().receipts_sent == 1);
}

TEST_CASE("receipts: a missing one holds the safe frame back until the token brings the safe point") {
    Harness h(3);
    h.start();
    h.node(2).submit({7}, Guarantee::safe, h.now);
    h.collect(2);
    h.run_until([&] { return h.node(2).stats().frames_sent == 1; });
    REQUIRE(h.node(2).stats().frames_sent == 1);
    // Node 3's receipt never reaches node 1.
    h.drop = [](const InFlight& p) {
        return p.from == 3 && p.to == 1 && std::holds_alternative<wt::ReceiptNotice>(wt::decode(p.bytes).packet);
    };
    h.net = run_without_tokens(h);
    CHECK(h.count(1) == 0);
    CHECK(h.count(2) == 1);
    CHECK(h.count(3) == 1);
    // A receipt claims no more than its sender holds: node 3 without the frame sends none.
    h.run_until([&] { return h.count(1) == 1; });
    CHECK(h.count(1) == 1);
}

TEST_CASE("receipts: the rep holds the token after one rotation; a member that missed a receipt asks for it") {
    Harness h(3, 0, [](Config& c) { c.hold_us = 500'000; });
    h.start();
    h.run_until([&] { return h.node(1).holding_token() && h.net.empty(); });
    REQUIRE(h.node(1).holding_token());
    const std::uint64_t held = h.node(1).stats().tokens_held;
    const Micros t0 = h.now;
    h.node(1).submit({7}, Guarantee::safe, h.now);
    h.collect(1);
    // Node 3's receipt never reaches node 2.
    h.drop = [](const InFlight& p) {
        return p.from == 3 && p.to == 2 && std::holds_alternative<wt::ReceiptNotice>(wt::decode(p.bytes).packet);
    };
    while (h.step()) {
    }
    // One rotation: the token came back to node 1, which held it at once.
    CHECK(h.node(1).holding_token());
    CHECK(h.node(1).stats().tokens_held == held + 1);
    CHECK(h.count(1) == 1);
    CHECK(h.count(3) == 1);
    CHECK(h.count(2) == 0);
    // Node 2 asks for the token after hold_cancel_retry_us instead of the 500 ms hold.
    h.run_until([&] { return h.count(2) == 1; });
    REQUIRE(h.count(2) == 1);
    CHECK(h.node(2).stats().hold_cancels_sent == 1);
    CHECK(h.now - t0 < 50'000);
}

TEST_CASE("receipts: every message of a one-at-a-time stream gets them, each after a one-rotation hold") {
    // The token a held rep releases carries its idle count: the members see an unloaded
    // ring although the only rotation they saw since the last message carried that one.
    Harness h(3);
    h.start();
    for (std::size_t i = 1; i <= 5; ++i) {
        h.run_until([&] { return h.node(1).holding_token() && h.net.empty(); });
        REQUIRE(h.node(1).holding_token());
        h.node(1).submit({static_cast<std::uint8_t>(i)}, Guarantee::safe, h.now);
        h.collect(1);
        h.run_until([&] { return h.count(2) == i && h.count(3) == i; });
        REQUIRE(h.count(3) == i);
        for (NodeId n = 1; n <= 3; ++n) CHECK(h.node(n).stats().receipts_sent == i);
    }
    CHECK(h.node(1).stats().safe_notices_sent == 0);
}

TEST_CASE("receipts: none on a ring larger than receipt_max_members; the token delivers the safe frame") {
    // Five members, receipts up to four: each lone safe message would cost 5 multicasts.
    Harness h(5, 0, [](Config& c) { c.receipt_max_members = 4; });
    h.start();
    for (std::size_t i = 1; i <= 3; ++i) {
        h.run_until([&] { return h.node(1).holding_token() && h.net.empty(); });
        REQUIRE(h.node(1).holding_token());
        h.node(1).submit({static_cast<std::uint8_t>(i)}, Guarantee::safe, h.now);
        h.collect(1);
        h.run_until([&] {
            for (NodeId n = 1; n <= 5; ++n)
                if (h.count(n) != i) return false;
            return true;
        });
        for (NodeId n = 1; n <= 5; ++n) REQUIRE(h.count(n) == i);
    }
    for (NodeId n = 1; n <= 5; ++n) {
        CHECK(h.node(n).stats().receipts_sent == 0);
        CHECK(h.node(n).stats().receipts_received == 0);
    }
}

TEST_CASE("receipts: none on a busy ring, where the token carries the same knowledge") {
    Harness h(3, 0, [](Config& c) { c.receipt_max_fcc = 2; });  // busier than the default allows
    h.start();
    for (int i = 0; i < 200; ++i) {
        h.node(1 + i % 3).submit(wire::Bytes(600, static_cast<std::uint8_t>(i)), Guarantee::safe, h.now);
        h.collect(1 + i % 3);
    }
    const std::uint64_t before = h.node(1).stats().receipts_sent + h.node(2).stats().receipts_sent +
                                 h.node(3).stats().receipts_sent;
    h.run_until([&] { return h.count(1) == 200 && h.count(2) == 200 && h.count(3) == 200; });
    REQUIRE(h.count(3) == 200);
    const std::uint64_t sent = h.node(1).stats().receipts_sent + h.node(2).stats().receipts_sent +
                               h.node(3).stats().receipts_sent - before;
    const std::uint64_t frames =
        h.node(1).stats().frames_sent + h.node(2).stats().frames_sent + h.node(3).stats().frames_sent;
    // Only the ramp up and down of the burst, when a token showed little traffic.
    INFO("receipts ", sent, " frames ", frames, " high ", h.node(1).window().high());
    CHECK(sent * 4 < frames);
    for (NodeId n = 2; n <= 3; ++n)
        for (std::size_t i = 0; i < 200; ++i) {
            CHECK(h.delivered[n][i].sender == h.delivered[1][i].sender);
            CHECK(h.delivered[n][i].msg_id == h.delivered[1][i].msg_id);
        }
}

TEST_CASE("a safe message holds back the agreed message behind it (EVS order)") {
    Harness h(2);
    h.start();
    h.node(1).submit({1}, Guarantee::safe, h.now);
    h.node(1).submit(wire::Bytes(2000, 7), Guarantee::agreed, h.now);  // next frame(s)
    h.run_until([&] { return h.count(2) == 2; });
    REQUIRE(h.count(2) == 2);
    CHECK(h.delivered[2][0].msg_id == 1);
    CHECK(h.delivered[2][1].msg_id == 2);
}

TEST_CASE("a duplicate token (same token_seq) is dropped") {
    Harness h(3);
    h.start();
    const InFlight first = h.net.front();
    h.step();                                    // node 2 accepts token_seq 1
    const std::size_t before = h.net.size();
    h.node(2).on_packet(first.from, first.bytes, h.now);  // the same copy again
    h.collect(2);
    CHECK(h.net.size() == before);
    CHECK(h.node(2).stats().duplicate_tokens == 1);
}

TEST_CASE("a token lost downstream is retransmitted until it gets through") {
    Harness h(3);
    int dropped = 0;
    h.drop = [&](const InFlight& p) {
        auto r = wt::decode(p.bytes);
        if (p.from == 2 && p.to == 3 && std::holds_alternative<wt::Token>(r.packet) && dropped < 2) {
            ++dropped;
            return true;
        }
        return false;
    };
    h.start();
    h.node(3).submit({4}, Guarantee::agreed, h.now);
    h.run_until([&] { return h.count(1) == 1 && h.count(2) == 1 && h.count(3) == 1; });
    CHECK(dropped == 2);
    CHECK(h.node(2).stats().token_retransmits >= 2);
    CHECK(h.count(3) == 1);
}

TEST_CASE("a lost frame is requested on the token and re-multicast by a holder") {
    Harness h(3);
    bool dropped = false;
    h.drop = [&](const InFlight& p) {
        auto r = wt::decode(p.bytes);
        if (!dropped && p.to == 3 && std::holds_alternative<wt::McastFrame>(r.packet)) {
            dropped = true;
            return true;
        }
        return false;
    };
    h.start();
    h.node(1).submit({1, 1}, Guarantee::agreed, h.now);
    h.run_until([&] { return h.count(3) == 1; });
    CHECK(dropped);
    REQUIRE(h.count(3) == 1);
    CHECK(h.delivered[3][0].payload == wire::Bytes{1, 1});
    CHECK(h.node(1).stats().retransmits_sent + h.node(2).stats().retransmits_sent >= 1);
}

TEST_CASE("an idle ring's rep holds the token; a submit elsewhere cancels the hold at once") {
    Harness h(3);
    h.start();
    h.run_until([&] { return h.node(1).holding_token(); });
    REQUIRE(h.node(1).holding_token());
    CHECK(h.net.empty());
    CHECK(h.timers.count({1, static_cast<int>(TimerId::token_hold)}) == 1);
    const Micros held_at = h.now;
    h.node(3).submit({5}, Guarantee::agreed, h.now);
    Effects fx = h.collect(3);
    REQUIRE(fx.multicasts.size() == 1);  // the hold-cancel
    CHECK(std::holds_alternative<wt::HoldCancel>(wt::decode(fx.multicasts[0]).packet));
    h.run_until([&] { return h.count(1) == 1 && h.count(2) == 1 && h.count(3) == 1; });
    CHECK(h.count(3) == 1);
    CHECK(h.now == held_at);  // no timer had to fire: the hold-cancel released the token
}

TEST_CASE("an idle ring resends no token while the rep holds it, and still resends one that is lost") {
    Harness h(3);
    const Config c = h.node(1).config();
    REQUIRE(c.hold_us > c.token_retransmit_us);  // else the test shows nothing
    h.start();
    h.run_until([&] { return h.node(1).stats().tokens_held >= 3; });
    REQUIRE(h.node(1).stats().tokens_held >= 3);
    std::uint64_t before[3];
    for (NodeId n = 1; n <= 3; ++n) before[n - 1] = h.node(n).stats().token_retransmits;
    // Twenty holds of an idle ring: every member forwards the token each time, and no
    // sign of its arrival comes while the rep holds it.
    const std::uint64_t held = h.node(1).stats().tokens_held;
    const Micros start = h.now;
    h.run_until([&] { return h.node(1).stats().tokens_held >= held + 20; });
    CHECK(h.node(1).stats().tokens_held >= held + 20);
    CHECK(h.now >= start + 19 * c.hold_us);
    for (NodeId n = 1; n <= 3; ++n) CHECK(h.node(n).stats().token_retransmits == before[n - 1]);

    // A token lost on the idle ring (2 -> 3) is resent after the hold, before the
    // ring would be given up: the same ring goes on and a message gets through.
    int dropped = 0;
    h.drop = [&](const InFlight& p) {
        auto r = wt::decode(p.bytes);
        if (p.from == 2 && p.to == 3 && std::holds_alternative<wt::Token>(r.packet) && dropped == 0) {
            ++dropped;
            return true;
        }
        return false;
    };
    const auto ring = h.node(1).ring_id();
    h.run_until([&] { return dropped == 1; });
    REQUIRE(dropped == 1);
    const Micros lost_at = h.now;
    h.run_until([&] { return h.node(2).stats().token_retransmits > before[1]; });
    CHECK(h.node(2).stats().token_retransmits == before[1] + 1);
    CHECK(h.now <= lost_at + c.hold_us + c.token_retransmit_us);
    CHECK(h.now < lost_at + c.token_loss_us);
    h.node(3).submit({9}, Guarantee::agreed, h.now);
    h.collect(3);
    h.run_until([&] { return h.count(1) == 1 && h.count(2) == 1 && h.count(3) == 1; });
    CHECK(h.count(1) == 1);
    CHECK(h.node(1).ring_id() == ring);
    CHECK(h.node(3).ring_id() == ring);
}

TEST_CASE("the rep holds the token one idle rotation after agreed frames, never before every safe frame is delivered") {
    // From node 3, the last before the rep: when the rep first sees the ring idle, node 2
    // has not yet had the visit that makes the frame safe for it.
    for (Guarantee g : {Guarantee::agreed, Guarantee::safe})
    for (NodeId sender : {2u, 3u}) {
        CAPTURE(g == Guarantee::safe);
        CAPTURE(sender);
        Harness h(3);
        h.start();
        h.run_until([&] { return h.node(1).holding_token(); });
        h.node(sender).submit({5}, g, h.now);
        h.collect(sender);  // a hold-cancel
        h.run_until([&] { return !h.node(1).holding_token(); });
        // Until the rep holds again: every member has delivered the message by then.
        h.run_until([&] { return h.node(1).holding_token(); });
        REQUIRE(h.node(1).holding_token());
        for (NodeId n = 1; n <= 3; ++n) CHECK(h.count(n) == 1);
    }
}

TEST_CASE("the rep's own submit releases its held token") {
    // The frame goes out at once; the token follows at once without a linger.
    Harness h(2, 0, [](Config& c) { c.linger_us = 0; });
    h.start();
    h.run_until([&] { return h.node(1).holding_token(); });
    REQUIRE(h.node(1).holding_token());
    h.node(1).submit({8}, Guarantee::agreed, h.now);
    Effects fx = h.collect(1);
    CHECK_FALSE(h.node(1).holding_token());
    CHECK(fx.multicasts.size() == 1);
    CHECK(fx.unicasts.size() == 1);
    CHECK(h.node(1).stats().lingers == 0);
}

TEST_CASE("linger: a sender keeps the token for its client's next message, up to linger_us") {
    Harness h(3);
    h.start();
    h.run_until([&] { return h.node(1).holding_token() && h.net.empty(); });
    REQUIRE(h.node(1).holding_token());
    const Micros released = h.now;
    // Out of the idle hold: the frame goes out and the token stays for the next one.
    h.node(1).submit({1}, Guarantee::agreed, h.now);
    Effects fx = h.collect(1);
    CHECK(fx.multicasts.size() == 1);
    CHECK(fx.unicasts.empty());
    CHECK(h.node(1).holding_token());
    CHECK(h.node(1).stats().lingers == 1);
    CHECK(h.count(1) == 1);  // agreed: delivered to its sender at once
    // The next message, 100 us later, goes out at once: no rotation in between.
    h.steps(100);
    h.now = released + 100;
    h.node(1).submit({2}, Guarantee::agreed, h.now);
    fx = h.collect(1);
    CHECK(fx.multicasts.size() == 1);
    CHECK(fx.unicasts.empty());
    CHECK(h.count(1) == 2);
    CHECK(h.node(1).stats().lingers == 1);  // one linger per visit
    // At the deadline the token goes on; every member has both, in order.
    h.steps(100);
    REQUIRE(h.timers.count({1, static_cast<int>(TimerId::token_hold)}) == 1);
    CHECK(h.timers[{1, static_cast<int>(TimerId::token_hold)}] == released + Config{}.linger_us);
    h.run_until([&] { return !h.node(1).holding_token(); });
    CHECK(h.now == released + Config{}.linger_us);
    h.run_until([&] { return h.count(2) == 2 && h.count(3) == 2; });
    for (NodeId n = 2; n <= 3; ++n) {
        REQUIRE(h.count(n) == 2);
        CHECK(h.delivered[n][0].payload == wire::Bytes{1});
        CHECK(h.delivered[n][1].payload == wire::Bytes{2});
    }
}

TEST_CASE("linger: not for a safe message; a hold-cancel ends it") {
    Harness h(3);
    h.start();
    h.run_until([&] { return h.node(1).holding_token() && h.net.empty(); });
    // Safe: the rotation is what delivers it (or the receipts, which need no linger).
    h.node(1).submit({1}, Guarantee::safe, h.now);
    h.collect(1);
    CHECK_FALSE(h.node(1).holding_token());
    CHECK(h.node(1).stats().lingers == 0);
    h.run_until([&] { return h.count(1) == 1 && h.count(2) == 1 && h.count(3) == 1 && h.node(1).holding_token() &&
                             h.net.empty(); });
    REQUIRE(h.node(1).holding_token());
    // An agreed message lingers; another member's hold-cancel sends the token on at once.
    h.node(1).submit({2}, Guarantee::agreed, h.now);
    h.collect(1);
    REQUIRE(h.node(1).holding_token());
    h.node(3).submit({3}, Guarantee::agreed, h.now);  // its last token looked idle: it asks for the token
    Effects fx3 = h.collect(3);
    CHECK(fx3.multicasts.size() == 1);
    h.run_until([&] { return !h.node(1).holding_token(); }, 10);
    CHECK_FALSE(h.node(1).holding_token());
    h.run_until([&] { return h.count(1) == 3 && h.count(2) == 3 && h.count(3) == 3; });
    REQUIRE(h.count(2) == 3);
}

TEST_CASE("linger: another member's message asks the lingering writer for the token at once") {
    // Any member but the rep asks whenever its queue was empty (idle_rotations_before_hold
    // is 1); the rep, which holds the token of an idle ring itself, asks when it saw
    // only others send at its last visit.
    Harness h(3);
    h.start();
    h.run_until([&] { return h.node(1).holding_token() && h.net.empty(); });
    // Node 2 writes alone, one message per visit; each visit lingers to its deadline.
    h.node(2).submit({1}, Guarantee::agreed, h.now);
    h.collect(2);  // a hold-cancel: the rep holds the token
    for (std::uint8_t k = 1; k <= 3; ++k) {
        h.run_until([&] { return h.node(2).stats().lingers == k; });
        REQUIRE(h.node(2).holding_token());
        if (k == 3) break;
        h.run_until([&] { return !h.node(2).holding_token(); });
        h.node(2).submit({static_cast<std::uint8_t>(k + 1)}, Guarantee::agreed, h.now);
        h.collect(2);
    }
    const Micros lingering_at = h.now;
    REQUIRE(h.node(1).stats().hold_cancels_sent == 0);
    h.node(1).submit({4}, Guarantee::agreed, h.now);
    Effects fx = h.collect(1);
    REQUIRE(fx.multicasts.size() == 1);
    CHECK(std::holds_alternative<wt::HoldCancel>(wt::decode(fx.multicasts[0]).packet));
    h.run_until([&] { return h.count(3) == 4; });
    REQUIRE(h.count(3) == 4);
    CHECK(h.now == lingering_at);  // no timer had to fire: node 2 passed the token on at once
    CHECK(h.delivered[3][3].payload == wire::Bytes{4});
}

TEST_CASE("linger: not while another member sends or has a backlog") {
    Harness h(3, 0, [](Config& c) { c.max_messages = 1; });  // one frame per visit
    h.start();
    h.run_until([&] { return h.node(1).holding_token() && h.net.empty(); });
    h.node(3).submit({1}, Guarantee::agreed, h.now);
    h.node(3).submit({2}, Guarantee::agreed, h.now);
    h.collect(3);
    h.run_until([&] { return h.node(3).stats().frames_sent == 1; });
    REQUIRE(h.node(3).stats().frames_sent == 1);
    // The token now says node 3 sent a frame and has one more queued.
    h.node(1).submit({3}, Guarantee::agreed, h.now);
    h.collect(1);
    h.run_until([&] { return h.count(1) == 3 && h.count(2) == 3 && h.count(3) == 3; });
    REQUIRE(h.count(2) == 3);
    CHECK(h.node(1).stats().frames_sent == 1);
    CHECK(h.node(1).stats().lingers == 0);
}

TEST_CASE("the ring watermark is the minimum of the members' values over a rotation") {
    Harness h(3);
    h.node(1).set_local_watermark(5);
    h.node(2).set_local_watermark(3);
    h.node(3).set_local_watermark(7);
    h.start();
    h.run_until([&] { return h.node(3).ring_watermark() == 3 && h.node(2).ring_watermark() == 3; });
    CHECK(h.node(1).ring_watermark() == 3);
    CHECK(h.watermarks[1] == std::vector<std::uint64_t>{3});
    h.node(2).set_local_watermark(9);
    h.node(1).submit({1}, Guarantee::agreed, h.now);  // keep the token moving
    h.run_until([&] { return h.node(1).ring_watermark() == 5; });
    CHECK(h.node(1).ring_watermark() == 5);
}

TEST_CASE("watermark notices raise the ring watermark without the token, once every member sent one") {
    Harness h(3);  // the fixed ring starts operational
    h.start();
    h.net.clear();  // no token moves in this test
    h.node(1).set_local_watermark(4, h.now, {});
    CHECK(h.collect(1).unicasts.empty());  // nobody to tell
    h.node(2).set_local_watermark(5, h.now, {1, 2});  // itself and duplicates are ignored
    Effects fx = h.collect(2);
    REQUIRE(fx.unicasts.size() == 1);
    CHECK(fx.unicasts[0].to == 1);
    CHECK(std::holds_alternative<wt::WatermarkNotice>(wt::decode(fx.unicasts[0].bytes).packet));
    h.net.clear();
    h.node(1).on_packet(2, fx.unicasts[0].bytes, h.now);
    CHECK_FALSE(h.collect(1).watermark);  // node 3 has not said anything: min is 0
    CHECK(h.node(1).ring_watermark() == 0);
    h.node(3).set_local_watermark(9, h.now, {1});
    fx = h.collect(3);
    REQUIRE(fx.unicasts.size() == 1);
    h.node(1).on_packet(3, fx.unicasts[0].bytes, h.now);
    fx = h.collect(1);
    REQUIRE(fx.watermark);
    CHECK(*fx.watermark == 4);  // min(own 4, 5, 9)
    // A rise of its own value is folded in at once.
    h.node(1).set_local_watermark(7, h.now, {});
    fx = h.collect(1);
    REQUIRE(fx.watermark);
    CHECK(*fx.watermark == 5);
    // A reordered (lower) notice changes nothing; a notice of another ring is stale and
    // starts no membership change.
    wire::Bytes old_notice, other_ring;
    wt::encode(wt::WatermarkNotice{{{1, 1}, 2}, 3}, old_notice);
    wt::encode(wt::WatermarkNotice{{{1, 99}, 2}, 50}, other_ring);
    h.node(1).on_packet(2, old_notice, h.now);
    h.node(1).on_packet(2, other_ring, h.now);
    fx = h.collect(1);
    CHECK_FALSE(fx.watermark);
    CHECK(h.node(1).ring_watermark() == 5);
    CHECK(h.node(1).state() == State::operational);
    CHECK(h.node(1).stats().stale == 1);
}

TEST_CASE("submit refuses with TryAgain past the bounded queue") {
    Harness h(2, 0, [](Config& c) {
        c.send_queue_messages = 4;
        c.send_queue_bytes = 1000;
    });
    int ok = 0, again = 0;
    for (int i = 0; i < 10; ++i) {
        const auto r = h.node(2).submit(wire::Bytes(100), Guarantee::agreed, 0);
        (r.status == SubmitStatus::ok ? ok : again)++;
    }
    CHECK(ok == 4);
    CHECK(again == 6);
    CHECK(h.node(2).submit(wire::Bytes(wt::kMaxMessageSize + 1), Guarantee::agreed, 0).status ==
          SubmitStatus::too_large);
}

TEST_CASE("flow control: one visit sends at most max_messages frames") {
    Harness h(2, 0, [](Config& c) { c.max_messages = 3; });
    for (int i = 0; i < 10; ++i) h.node(2).submit(wire::Bytes(1300), Guarantee::agreed, 0);
    h.start();
    h.step();  // node 2 gets the first token
    Effects none = h.node(2).take_effects();
    (void)none;
    int frames = 0;
    for (const auto& p : h.net)
        if (std::holds_alternative<wt::McastFrame>(wt::decode(p.bytes).packet)) ++frames;
    CHECK(frames == 3);
}

TEST_CASE("seqs wrap past 2^32 without disturbing order or delivery") {
    Harness h(3, 0xFFFFFFF0u);
    h.start();
    for (int i = 0; i < 60; ++i)
        h.node(static_cast<NodeId>(1 + i % 3)).submit(wire::Bytes(700, static_cast<std::uint8_t>(i)),
                                                      i % 2 ? Guarantee::safe : Guarantee::agreed, 0);
    h.run_until([&] { return h.count(1) == 60 && h.count(2) == 60 && h.count(3) == 60; });
    REQUIRE(h.count(1) == 60);
    for (NodeId n = 2; n <= 3; ++n) {
        REQUIRE(h.count(n) == 60);
        for (std::size_t i = 0; i < 60; ++i) {
            CHECK(h.delivered[n][i].sender == h.delivered[1][i].sender);
            CHECK(h.delivered[n][i].msg_id == h.delivered[1][i].msg_id);
        }
    }
    CHECK(seq_lt(0xFFFFFFF0u, h.node(1).window().my_aru()));
    CHECK(h.node(1).window().my_aru() < 0x1000u);  // it did wrap
}

TEST_CASE("malformed, stale and foreign packets: counted, and a newer foreign ring starts GATHER") {
    Harness h(2);
    h.start();
    h.step();  // the first token: node 2 has installed the ring and had a visit
    h.node(2).take_effects();
    h.node(2).on_packet(1, wire::Bytes{1, 2, 3}, 0);
    CHECK(h.node(2).stats().malformed == 1);
    wt::HoldCancel stale{{{1, 0}, 1}};  // an older ring than ours: a copy still in flight
    wire::Bytes b;
    wt::encode(stale, b);
    h.node(2).on_packet(1, b, 0);
    CHECK(h.node(2).stats().stale == 1);
    h.node(2).on_packet(3, b, 0);  // the transport says 3, the header says 1
    CHECK(h.node(2).stats().not_member == 1);
    CHECK(h.node(2).take_effects().empty());
    CHECK(h.node(2).state() == State::operational);
    wt::HoldCancel foreign{{{1, 999}, 1}};  // a newer ring that can hear us: merge
    b.clear();
    wt::encode(foreign, b);
    h.node(2).on_packet(1, b, 0);
    CHECK(h.node(2).stats().foreign_ring == 1);
    CHECK(h.node(2).state() == State::gather);
    const Effects fx = h.node(2).take_effects();
    REQUIRE(fx.multicasts.size() == 1);
    auto j = wt::decode(fx.multicasts[0]);
    REQUIRE(std::holds_alternative<wt::Join>(j.packet));
    CHECK(std::get<wt::Join>(j.packet).proc == std::vector<std::uint32_t>{1, 2});
    CHECK_FALSE(fx.log.empty());
}

TEST_CASE("gather: agreeing joins whose sender never sends the commit token are forgotten, not waited on forever") {
    // Node 3 agrees with an old join of node 1 (node 1 builds the commit token, being the
    // lowest) but hears nothing more: node 1 has formed a ring without it and ignores
    // joins that give up on one of its members. Node 3 must not wait for that commit
    // token forever: it forgets the agreement, fails node 1 and forms a ring of its own
    // (from which it can merge back; Totem §4.3 merges need an empty fail set).
    Harness h(3);
    h.start();
    h.drop = [](const InFlight& p) { return p.from == 3 || p.to == 3; };
    h.net.clear();
    h.timers.clear();
    wt::Join j{{{1, 1}, 1}, 1, {1, 2, 3}, {2}};
    wire::Bytes b;
    wt::encode(j, b);
    h.node(3).on_packet(1, b, h.now);
    h.collect(3);
    REQUIRE(h.node(3).state() == State::gather);
    const Micros began = h.now;
    const Micros consensus = Config{}.consensus_us;
    const Micros patience = Config{}.token_loss_us;  // its commit token could still come until then
    h.run_until([&] { return h.node(3).state() == State::operational || h.now > began + patience + 10 * consensus; });
    CHECK(h.node(3).state() == State::operational);
    CHECK(h.node(3).ring_id().rep == 3);
    CHECK(h.now <= began + patience + 3 * consensus);
}

TEST_CASE("gather: a late copy of a commit token of a round this node left does not draw it back in") {
    Harness h(3);
    h.start();
    h.drop = [](const InFlight& p) { return p.from == 3 || p.to == 3; };
    h.net.clear();
    const auto inject = [&](NodeId from, const auto& packet) {
        wire::Bytes b;
        wt::encode(packet, b);
        h.node(3).on_packet(from, b, h.now);
        h.collect(3);
    };
    inject(1, wt::Join{{{1, 1}, 1}, 1, {1, 2, 3}, {}});
    REQUIRE(h.node(3).state() == State::gather);
    wt::CommitToken c{{{1, 100}, 2}, 7, 2, {1, 2, 3}, std::vector<wt::CommitEntry>(3)};
    inject(2, c);
    REQUIRE(h.node(3).state() == State::commit);
    inject(1, wt::Join{{{1, 1}, 1}, 104, {1, 2, 3}, {}});  // node 1 moved past ring 100
    REQUIRE(h.node(3).state() == State::gather);
    // Node 2 still retransmits its copy of ring 100's first pass.
    c.header.sender = 2;
    inject(2, c);
    CHECK(h.node(3).state() == State::gather);
    // A new round is entered as usual.
    c.header.ring_id.seq = 108;
    inject(2, c);
    CHECK(h.node(3).state() == State::commit);
}

TEST_CASE("merge: a non-member's join waits until the ring has come round once since it was installed") {
    Harness h(3);
    h.start();  // node 1 sent the first token; nodes 2 and 3 have had no visit yet
    wire::Bytes b;
    wt::encode(wt::Join{{{9, 5}, 9}, 5, {9}, {}}, b);
    h.node(2).on_packet(9, b, h.now);
    CHECK(h.node(2).state() == State::operational);  // members may still be in RECOVERY
    h.net.erase(std::remove_if(h.net.begin(), h.net.end(), [](const InFlight& p) { return p.to != 2; }), h.net.end());
    REQUIRE(h.net.size() == 1);  // the first token, to node 2
    h.step();
    REQUIRE(std::any_of(h.net.begin(), h.net.end(), [](const InFlight& p) { return p.from == 2 && p.to == 3; }));
    h.node(2).on_packet(9, b, h.now);
    CHECK(h.node(2).state() == State::gather);
}

TEST_CASE("merge: a foreign ring's packets wait until the ring has come round once since it was installed") {
    // Two rings of a split that hear each other just as they form: gathering at once
    // cut the members still in RECOVERY short, round after round (conclave-sim seed 60134).
    Harness h(3);
    h.start();
    wire::Bytes b;
    wt::encode(wt::MergeDetect{{{9, 5}, 9}}, b);
    h.node(3).on_packet(9, b, h.now);
    CHECK(h.node(3).state() == State::operational);
    CHECK(h.node(3).stats().foreign_ring == 1);
    h.run_until([&] { return std::any_of(h.net.begin(), h.net.end(), [](const InFlight& p) { return p.from == 3; }); });
    h.node(3).on_packet(9, b, h.now);
    CHECK(h.node(3).state() == State::gather);
}

TEST_CASE("a 50-member ring forms at MTU 1500: its commit token goes above the frame budget") {
    // 42 members fill a commit token of one frame at MTU 1500; up to 64 form a ring.
    Harness h(50);
    REQUIRE(wt::commit_token_size(50) > h.budget);
    h.start();
    h.steps(50);  // the token's first rotation: a merge waits for it (on_foreign)
    wt::HoldCancel foreign{{{1, 999}, 1}};  // a newer ring heard: everyone gathers
    wire::Bytes b;
    wt::encode(foreign, b);
    h.node(50).on_packet(1, b, h.now);
    h.collect(50);
    const auto formed = [&] {
        for (NodeId n = 1; n <= 50; ++n)
            if (h.node(n).state() != State::operational || h.node(n).ring_id().seq <= 1) return false;
        return true;
    };
    h.run_until(formed, 1000000);
    REQUIRE(formed());
    CHECK(h.oversized_commit_tokens > 0);
    for (NodeId n = 1; n <= 50; ++n) CHECK(h.node(n).ring_id() == h.node(1).ring_id());
    h.node(50).submit({7}, Guarantee::agreed, h.now);
    h.collect(50);
    h.run_until([&] { return h.count(1) == 1 && h.count(25) == 1; });
    CHECK(h.count(25) == 1);
}

TEST_CASE("configuration is validated") {
    Config c;
    c.self = 1;
    c.members = {1};
    c.ring_id = {1, 1};
    CHECK_FALSE(validate(c).empty());
    c.members = {1, 2};
    CHECK(validate(c).empty());
    c.mtu = 400;
    CHECK_FALSE(validate(c).empty());
    c.mtu = 1500;
    c.ring_id.rep = 2;
    CHECK_FALSE(validate(c).empty());
}
