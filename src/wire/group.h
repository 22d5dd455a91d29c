// Process groups: the frames a client and conclaved exchange on the control socket after
// a "group.join" request, and the envelope a group message travels in on the ring.
//
// Client stream (both directions), each frame:
//   u32 length of what follows (type + body), u8 type, body
//     SEND     client -> daemon   u8 guarantee (0 agreed, 1 safe), payload
//     DELIVER  daemon -> client   u32 sender node, u8 guarantee, u64 delivery number, payload
//     CONFIG   daemon -> client   u8 kind (1 transitional, 2 regular), u32 ring rep,
//                                 u64 ring seq, u32 count, count x u32 member node ids
//     ERROR    daemon -> client   UTF-8 text; the daemon closes the connection after it
// Ring envelope of a group message (the totem payload):
//   u8 kind (1 = group message), u8 group name length (1..64), name, payload
//
// Binary, not JSON: a saturated ring moves tens of thousands of messages a second through
// these frames. All fields little-endian; every length checked before use.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "wire/bytes.h"

namespace conclave::wire::group {

inline constexpr std::uint32_t kMaxPayload = 1u << 20;  // the ring's message limit
inline constexpr std::size_t kMaxGroupName = 64;
inline constexpr std::uint32_t kMaxFrame = kMaxPayload + 256;
inline constexpr std::uint32_t kMaxMembers = 4096;

enum class FrameType : std::uint8_t { send = 1, deliver = 2, config = 3, error = 4 };

struct Send {
    std::uint8_t guarantee = 0;
    ByteView payload;
};
struct Deliver {
    std::uint32_t sender = 0;
    std::uint8_t guarantee = 0;
    std::uint64_t number = 0;
    ByteView payload;
};
struct Config {
    std::uint8_t kind = 0;  // 1 transitional, 2 regular
    std::uint32_t rep = 0;
    std::uint64_t ring_seq = 0;
    std::vector<std::uint32_t> members;
};

// Encoders append one whole frame.
void encode_send(std::uint8_t guarantee, ByteView payload, Bytes& out);
void encode_deliver(const Deliver& d, Bytes& out);
void encode_config(const Config& c, Bytes& out);
void encode_error(std::string_view text, Bytes& out);

// Cuts a byte stream into frames. feed() appends (or prepare() + commit() let a reader
// receive straight into the buffer, without a copy); next() yields the type and body of
// the next whole frame (views into the parser's buffer, valid until the next
// feed/prepare/next).
class FrameParser {
public:
    enum class Status { frame, need_more, malformed };
    void feed(ByteView data);
    // Room for at least n more bytes at the end of the buffered stream; commit(k) (k <= n)
    // appends the first k bytes written there.
    std::span<std::uint8_t> prepare(std::size_t n);
    void commit(std::size_t n) { end_ += n; }
    Status next(FrameType& type, ByteView& body);
    std::size_t buffered() const { return end_ - pos_; }

private:
    Bytes buf_;            // storage; [pos_, end_) is the unparsed stream
    std::size_t pos_ = 0;
    std::size_t end_ = 0;
};

// Body decoders: false on any malformation (wrong size, bad guarantee, bad kind...).
bool decode_send(ByteView body, Send& out);
bool decode_deliver(ByteView body, Deliver& out);
bool decode_config(ByteView body, Config& out);

// Ring envelope.
bool valid_group_name(std::string_view name);
void encode_envelope(std::string_view group, ByteView payload, Bytes& out);
bool decode_envelope(ByteView message, std::string_view& group, ByteView& payload);

}  // namespace conclave::wire::group
