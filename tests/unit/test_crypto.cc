#include <doctest/doctest.h>

#include <set>

#include "crypto/channel.h"
#include "crypto/replay_window.h"

using namespace conclave;
using crypto::Channel;
using crypto::Cipher;
using crypto::Reject;

namespace {

crypto::AuthKey make_key(std::uint8_t seed) {
    crypto::AuthKey k;
    for (std::size_t i = 0; i < k.bytes.size(); ++i) k.bytes[i] = static_cast<std::uint8_t>(seed * 31 + i);
    crypto::compute_key_id(k);
    return k;
}

crypto::ChannelConfig config(std::uint32_t node, std::uint64_t epoch = 1, Cipher cipher = Cipher::aes_256_gcm,
                             std::uint8_t key_seed = 1, const char* cluster = "pve") {
    crypto::ChannelConfig c;
    c.cluster_id = wire::cluster_id_of(cluster);
    c.node_id = node;
    c.boot = {epoch, 0x9E3779B97F4A7C15ULL ^ (epoch * 1000 + node)};
    c.cipher = cipher;
    c.current = make_key(key_seed);
    return c;
}

wire::Bytes body_of(std::size_t n) {
    wire::Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 13 + 5);
    return b;
}

wire::Bytes seal(Channel& ch, const wire::Bytes& body, std::uint32_t receiver = 0) {
    wire::Bytes out;
    REQUIRE(ch.seal(body, out, receiver));
    return out;
}

// Opens and returns the reason, or nullopt on success (checking the body came back).
std::optional<Reject> open(Channel& ch, const wire::Bytes& datagram, const wire::Bytes* expect = nullptr) {
    wire::Bytes scratch;
    auto r = ch.open(datagram, scratch);
    if (auto* rej = std::get_if<Reject>(&r)) return *rej;
    auto& opened = std::get<Channel::Opened>(r);
    if (expect) CHECK(wire::Bytes(opened.body.begin(), opened.body.end()) == *expect);
    return std::nullopt;
}

}  // namespace

TEST_CASE("seal and open round-trip with both ciphers and any body size") {
    for (Cipher c : {Cipher::aes_256_gcm, Cipher::chacha20_poly1305}) {
        Channel a(config(1, 1, c)), b(config(2, 1, c));
        for (std::size_t n : {0, 1, 15, 16, 17, 1024, 1436, 9000}) {
            auto body = body_of(n);
            auto d = seal(a, body);
            CHECK(d.size() == n + wire::kDatagramOverhead);
            CHECK(open(b, d, &body) == std::nullopt);
        }
        CHECK(b.opened() == 8);
        CHECK(b.rejects().total() == 0);
    }
}

TEST_CASE("a receiver accepts either cipher, whatever it seals with") {
    Channel aes(config(1, 1, Cipher::aes_256_gcm)), chacha(config(2, 1, Cipher::chacha20_poly1305));
    auto body = body_of(100);
    CHECK(open(chacha, seal(aes, body), &body) == std::nullopt);
    CHECK(open(aes, seal(chacha, body), &body) == std::nullopt);
}

TEST_CASE("one flipped bit anywhere in a sealed datagram is rejected and changes nothing") {
    for (Cipher c : {Cipher::aes_256_gcm, Cipher::chacha20_poly1305}) {
        Channel a(config(1, 5, c)), b(config(2, 1, c));
        auto body = body_of(200);
        // The receiver knows the sender's boot 5, so header flips that lower the epoch
        // hit the "older boot" rule and flips that raise it must fail the tag.
        auto first = seal(a, body);
        REQUIRE(open(b, first, &body) == std::nullopt);
        auto d = seal(a, body);
        std::set<Reject> seen;
        for (std::size_t bit = 0; bit < d.size() * 8; ++bit) {
            auto bad = d;
            bad[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
            auto r = open(b, bad);
            REQUIRE_MESSAGE(r.has_value(), "bit " << bit << " flipped yet accepted");
            seen.insert(*r);
        }
        CHECK(b.opened() == 1);  // nothing but `first`
        CHECK(seen.count(Reject::bad_tag));
        CHECK(seen.count(Reject::malformed));
        CHECK(seen.count(Reject::unknown_version));
        CHECK(seen.count(Reject::other_cluster));
        CHECK(seen.count(Reject::unknown_key));
        CHECK(seen.count(Reject::too_old));
        CHECK(seen.count(Reject::misdirected));  // a receiver field that names another node
        CHECK(b.rejects().total() == d.size() * 8);
        // The untouched datagram still opens: no flip moved the replay window.
        CHECK(open(b, d, &body) == std::nullopt);
    }
}

TEST_CASE("every truncation of a sealed datagram is rejected") {
    Channel a(config(1)), b(config(2));
    auto d = seal(a, body_of(300));
    for (std::size_t n = 0; n < d.size(); ++n) {
        wire::Bytes cut(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(n));
        auto r = open(b, cut);
        REQUIRE(r.has_value());
        CHECK(*r == (n < wire::kDatagramOverhead ? Reject::malformed : Reject::bad_tag));
    }
    CHECK(open(b, d) == std::nullopt);
}

TEST_CASE("replayed, far-behind and far-ahead counters") {
    Channel a(config(1)), b(config(2));
    auto body = body_of(10);
    std::vector<wire::Bytes> sent;
    for (int i = 0; i < 5000; ++i) sent.push_back(seal(a, body));  // counters 1..5000

    SUBCASE("the same datagram twice is a replay") {
        CHECK(open(b, sent[0]) == std::nullopt);
        CHECK(open(b, sent[0]) == Reject::replay);
        CHECK(b.rejects()[Reject::replay] == 1);
    }
    SUBCASE("reordering inside the window is fine, repeats are not") {
        CHECK(open(b, sent[100]) == std::nullopt);
        CHECK(open(b, sent[50]) == std::nullopt);
        CHECK(open(b, sent[99]) == std::nullopt);
        CHECK(open(b, sent[50]) == Reject::replay);
    }
    SUBCASE("a far-ahead counter is accepted and slides the window") {
        CHECK(open(b, sent[0]) == std::nullopt);     // counter 1
        CHECK(open(b, sent[4999]) == std::nullopt);  // counter 5000: far ahead
        CHECK(open(b, sent[1]) == Reject::too_old);  // counter 2 fell behind the window
        // sent[i] carries counter i + 1; the window holds counters 2953..5000.
        CHECK(open(b, sent[5000 - 2049]) == Reject::too_old);  // counter 2952: just outside
        CHECK(open(b, sent[5000 - 2048]) == std::nullopt);     // counter 2953: the oldest inside
        CHECK(open(b, sent[4999]) == Reject::replay);
        CHECK(b.rejects()[Reject::too_old] == 2);
    }
}

TEST_CASE("a unicast opens only at its receiver; a datagram bearing my own id never") {
    Channel n1(config(1)), n2(config(2)), n3(config(3));
    auto body = body_of(40);
    // Node 1's unicasts to node 3 carry counters node 2 never saw: without the receiver
    // in the sealed header, a copy sent to node 2 would open there as new.
    auto to3 = seal(n1, body, 3);
    auto to2 = seal(n1, body, 2);
    CHECK(open(n2, to3) == Reject::misdirected);
    CHECK(n2.rejects()[Reject::misdirected] == 1);
    CHECK(open(n2, to2, &body) == std::nullopt);  // the rejection changed nothing
    CHECK(open(n3, to3, &body) == std::nullopt);
    // A datagram for every member opens everywhere, except at its sender: one that
    // comes back to it (a capture sent on, or a second node with the same id) is refused.
    auto all = seal(n1, body);
    CHECK(open(n2, all, &body) == std::nullopt);
    CHECK(open(n3, all, &body) == std::nullopt);
    CHECK(open(n1, all) == Reject::misdirected);
    CHECK(open(n1, seal(n2, body, 1), &body) == std::nullopt);
    // Even a flip that makes the receiver field name me fails the tag.
    auto forged = seal(n1, body, 3);
    forged[48] = 2;
    CHECK(open(n2, forged) == Reject::bad_tag);
}

TEST_CASE("only a sender's newest datagram is marked newest") {
    Channel a(config(1)), b(config(2));
    auto body = body_of(10);
    auto first = seal(a, body), second = seal(a, body), third = seal(a, body);
    wire::Bytes scratch;
    auto newest = [&](const wire::Bytes& d) {
        auto r = b.open(d, scratch);
        REQUIRE(std::holds_alternative<Channel::Opened>(r));
        return std::get<Channel::Opened>(r).newest;
    };
    CHECK(newest(first));
    CHECK(newest(third));
    CHECK_FALSE(newest(second));  // late: a copy from elsewhere must not move the address
    Channel restarted(config(1, 2));
    CHECK(newest(seal(restarted, body)));  // a new boot's first datagram is its newest
}

TEST_CASE("replay window bit bookkeeping across word boundaries") {
    crypto::ReplayWindow w;
    using V = crypto::ReplayWindow::Verdict;
    for (std::uint64_t c = 1; c <= 3000; c += 3) {
        REQUIRE(w.check(c) == V::fresh);
        w.accept(c);
    }
    CHECK(w.check(2998) == V::replay);
    CHECK(w.check(2999) == V::fresh);
    CHECK(w.top() == 2998);
    CHECK(w.check(2998 - 2048) == V::too_old);
    CHECK(w.check(2998 - 2047) == V::fresh);
    CHECK(w.check(2998 - 2046) == V::replay);
    w.accept(100000);
    CHECK(w.check(2999) == V::too_old);
    CHECK(w.check(99999) == V::fresh);
    CHECK(w.check(100000) == V::replay);
    // After a jump of exactly a few words, stale bits of old counters must be gone.
    crypto::ReplayWindow v;
    v.accept(64);
    v.accept(64 + 2112);  // same slot as 64 in a 33-word ring
    CHECK(v.check(64 + 2112 - 64 * 2) == V::fresh);
}

TEST_CASE("a wrong key and another cluster are told apart and counted") {
    Channel a(config(1)), wrong_key(config(2, 1, Cipher::aes_256_gcm, 9)), other(config(3, 1, Cipher::aes_256_gcm, 1, "other"));
    auto d = seal(a, body_of(64));
    CHECK(open(wrong_key, d) == Reject::unknown_key);
    CHECK(wrong_key.rejects()[Reject::unknown_key] == 1);
    CHECK(open(other, d) == Reject::other_cluster);
    CHECK(other.rejects()[Reject::other_cluster] == 1);
}

TEST_CASE("a key with the right id but other bytes fails the tag") {
    auto cfg = config(2);
    cfg.current.bytes[100] ^= 0xFF;  // keep the id: simulates corruption, not a different key file
    Channel a(config(1)), b(cfg);
    CHECK(open(b, seal(a, body_of(64))) == Reject::bad_tag);
    CHECK(b.rejects()[Reject::bad_tag] == 1);
}

TEST_CASE("a packet from an older boot of a restarted node is dropped") {
    Channel boot1(config(1, 1)), b(config(2));
    auto body = body_of(32);
    auto old1 = seal(boot1, body);
    auto old2 = seal(boot1, body);
    CHECK(open(b, old1) == std::nullopt);

    Channel boot2(config(1, 2));  // node 1 restarted
    CHECK(open(b, seal(boot2, body)) == std::nullopt);
    CHECK(open(b, old2) == Reject::too_old);  // delayed packet of the dead process
    CHECK(b.rejects()[Reject::too_old] == 1);
    CHECK(open(b, seal(boot2, body)) == std::nullopt);
}

TEST_CASE("a forged packet claiming a newer boot does not retire the current one") {
    Channel a(config(1, 1)), b(config(2));
    auto body = body_of(32);
    CHECK(open(b, seal(a, body)) == std::nullopt);
    Channel liar(config(1, 7, Cipher::aes_256_gcm, 1));
    auto forged = seal(liar, body);
    forged[wire::kHeaderSize] ^= 1;  // no valid tag
    CHECK(open(b, forged) == Reject::bad_tag);
    CHECK(open(b, seal(a, body)) == std::nullopt);  // boot 1 still current
}

TEST_CASE("unknown version and counter zero") {
    Channel a(config(1)), b(config(2));
    auto d = seal(a, body_of(16));
    auto v = d;
    v[4] = 9;
    CHECK(open(b, v) == Reject::unknown_version);
    auto z = d;
    wire::store_u64(z.data() + 40, 0);
    CHECK(open(b, z) == Reject::malformed);
    CHECK(b.rejects()[Reject::unknown_version] == 1);
    CHECK(b.rejects()[Reject::malformed] == 1);
}

TEST_CASE("key rotation: current and next are both accepted") {
    auto old_key = make_key(1), new_key = make_key(2);
    auto body = body_of(50);
    auto rcfg = config(2);
    rcfg.next = new_key;
    Channel receiver(rcfg);

    Channel on_old(config(1, 1, Cipher::aes_256_gcm, 1));
    Channel on_new(config(3, 1, Cipher::aes_256_gcm, 2));
    CHECK(open(receiver, seal(on_old, body), &body) == std::nullopt);
    CHECK(open(receiver, seal(on_new, body), &body) == std::nullopt);

    // Step 2 of a rolling change: everyone seals with the new key, keeping the old one.
    on_old.set_keys(new_key, old_key);
    CHECK(open(receiver, seal(on_old, body), &body) == std::nullopt);

    // Step 3: the old key is retired.
    receiver.set_keys(new_key, std::nullopt);
    Channel still_old(config(4, 1, Cipher::aes_256_gcm, 1));
    CHECK(open(receiver, seal(still_old, body)) == Reject::unknown_key);
    CHECK(open(receiver, seal(on_new, body), &body) == std::nullopt);
    CHECK(open(receiver, seal(on_old, body), &body) == std::nullopt);
}

TEST_CASE("session keys differ per boot and per cluster") {
    auto k = make_key(1);
    auto a = crypto::derive_session_key(k, {1, 2}, 3);
    CHECK(a == crypto::derive_session_key(k, {1, 2}, 3));
    CHECK(a != crypto::derive_session_key(k, {1, 3}, 3));
    CHECK(a != crypto::derive_session_key(k, {2, 2}, 3));
    CHECK(a != crypto::derive_session_key(k, {1, 2}, 4));
}
