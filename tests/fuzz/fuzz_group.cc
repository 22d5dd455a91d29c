// Fuzz target: the process-group stream parser and frame bodies, and the ring envelope.
// Decoded frames must re-encode to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "wire/group.h"

using namespace conclave::wire;
using namespace conclave::wire::group;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FrameParser p;
    // Feed in two pieces to exercise reassembly.
    std::size_t half = size / 2;
    p.feed(ByteView(data, half));
    FrameType t;
    ByteView body;
    for (int round = 0; round < 2; ++round) {
        for (;;) {
            auto st = p.next(t, body);
            if (st != FrameParser::Status::frame) break;
            Bytes again;
            if (t == FrameType::send) {
                Send s;
                if (decode_send(body, s)) encode_send(s.guarantee, s.payload, again);
            } else if (t == FrameType::deliver) {
                Deliver d;
                if (decode_deliver(body, d)) encode_deliver(d, again);
            } else if (t == FrameType::config) {
                Config c;
                if (decode_config(body, c)) encode_config(c, again);
            }
            if (!again.empty() && (again.size() != body.size() + 5 || std::memcmp(again.data() + 5, body.data(), body.size()) != 0))
                std::abort();
        }
        if (round == 0) p.feed(ByteView(data + half, size - half));
    }
    std::string_view g;
    ByteView payload;
    if (decode_envelope(ByteView(data, size), g, payload)) {
        Bytes again;
        encode_envelope(g, payload, again);
        if (again.size() != size || std::memcmp(again.data(), data, size) != 0) std::abort();
    }
    return 0;
}
