#include <doctest/doctest.h>

#include <string>

#include "wire/group.h"

using namespace conclave::wire;
using namespace conclave::wire::group;

namespace {
ByteView view(const std::string& s) { return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }
std::string str(ByteView v) { return std::string(v.begin(), v.end()); }
}  // namespace

TEST_CASE("group frames round-trip through the stream parser, split anywhere") {
    Bytes stream;
    encode_send(1, view("hello"), stream);
    const std::string payload = "payload";
    Deliver d{7, 0, 42, view(payload)};
    encode_deliver(d, stream);
    encode_config(Config{2, 1, 0x1a8, {1, 2, 3}}, stream);
    encode_error("bad", stream);
    encode_send(0, view(""), stream);

    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        FrameParser p;
        p.feed(ByteView(stream.data(), cut));
        std::vector<std::pair<FrameType, std::string>> got;
        FrameType t;
        ByteView body;
        while (p.next(t, body) == FrameParser::Status::frame) got.emplace_back(t, str(body));
        p.feed(ByteView(stream.data() + cut, stream.size() - cut));
        while (p.next(t, body) == FrameParser::Status::frame) got.emplace_back(t, str(body));
        REQUIRE(got.size() == 5);
        CHECK(p.buffered() == 0);
        Send s;
        REQUIRE(decode_send(view(got[0].second), s));
        CHECK(s.guarantee == 1);
        CHECK(str(s.payload) == "hello");
        Deliver dd;
        REQUIRE(decode_deliver(view(got[1].second), dd));
        CHECK(dd.sender == 7);
        CHECK(dd.number == 42);
        CHECK(str(dd.payload) == "payload");
        Config c;
        REQUIRE(decode_config(view(got[2].second), c));
        CHECK(c.ring_seq == 0x1a8);
        CHECK(c.members == std::vector<std::uint32_t>{1, 2, 3});
        CHECK(got[3].first == FrameType::error);
        CHECK(got[3].second == "bad");
    }
}

TEST_CASE("malformed frames and bodies are refused") {
    FrameParser p;
    Bytes zero = {0, 0, 0, 0};
    p.feed(zero);
    FrameType t;
    ByteView body;
    CHECK(p.next(t, body) == FrameParser::Status::malformed);

    FrameParser huge;
    Bytes big = {0xff, 0xff, 0xff, 0x7f, 1};
    huge.feed(big);
    CHECK(huge.next(t, body) == FrameParser::Status::malformed);

    FrameParser badtype;
    Bytes bt = {1, 0, 0, 0, 9};
    badtype.feed(bt);
    CHECK(badtype.next(t, body) == FrameParser::Status::malformed);

    Send s;
    Bytes g2 = {2, 'x'};
    CHECK_FALSE(decode_send(g2, s));  // guarantee 2 does not exist
    CHECK_FALSE(decode_send({}, s));
    Config c;
    Bytes cfg;
    encode_config(Config{2, 1, 1, {1, 2}}, cfg);
    ByteView cbody(cfg.data() + 5, cfg.size() - 5);
    for (std::size_t n = 0; n < cbody.size(); ++n) CHECK_FALSE(decode_config(cbody.first(n), c));
    Bytes lying(cbody.begin(), cbody.end());
    lying[13] = 0xff;  // member count far beyond the bytes present
    CHECK_FALSE(decode_config(lying, c));
}

TEST_CASE("ring envelope carries the group name") {
    Bytes m;
    encode_envelope("vm-config", view("data"), m);
    std::string_view g;
    ByteView payload;
    REQUIRE(decode_envelope(m, g, payload));
    CHECK(g == "vm-config");
    CHECK(str(payload) == "data");
    CHECK_FALSE(valid_group_name(""));
    CHECK_FALSE(valid_group_name("a b"));
    CHECK_FALSE(valid_group_name(std::string(65, 'a')));
    Bytes bad = {1, 10, 'a'};
    CHECK_FALSE(decode_envelope(bad, g, payload));
    Bytes other = {2, 1, 'a'};
    CHECK_FALSE(decode_envelope(other, g, payload));
}
