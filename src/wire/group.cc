#include "wire/group.h"

#include <cstring>

namespace conclave::wire::group {
namespace {

constexpr std::uint8_t kEnvelopeGroup = 1;

// Reserves the length prefix and type; returns where the length goes.
std::size_t begin_frame(FrameType t, Bytes& out) {
    std::size_t at = out.size();
    Writer w(out);
    w.u32(0);
    w.u8(static_cast<std::uint8_t>(t));
    return at;
}
void end_frame(std::size_t at, Bytes& out) {
    Writer(out).patch_u32(at, static_cast<std::uint32_t>(out.size() - at - 4));
}

}  // namespace

void encode_send(std::uint8_t guarantee, ByteView payload, Bytes& out) {
    auto at = begin_frame(FrameType::send, out);
    Writer w(out);
    w.u8(guarantee);
    w.bytes(payload);
    end_frame(at, out);
}

void encode_deliver(const Deliver& d, Bytes& out) {
    auto at = begin_frame(FrameType::deliver, out);
    Writer w(out);
    w.u32(d.sender);
    w.u8(d.guarantee);
    w.u64(d.number);
    w.bytes(d.payload);
    end_frame(at, out);
}

void encode_config(const Config& c, Bytes& out) {
    auto at = begin_frame(FrameType::config, out);
    Writer w(out);
    w.u8(c.kind);
    w.u32(c.rep);
    w.u64(c.ring_seq);
    w.u32(static_cast<std::uint32_t>(c.members.size()));
    for (auto m : c.members) w.u32(m);
    end_frame(at, out);
}

void encode_error(std::string_view text, Bytes& out) {
    auto at = begin_frame(FrameType::error, out);
    Writer(out).bytes(text);
    end_frame(at, out);
}

std::span<std::uint8_t> FrameParser::prepare(std::size_t n) {
    if (pos_ == end_) pos_ = end_ = 0;
    if (buf_.size() - end_ < n && pos_ > 0) {
        // Compact before growing, so the buffer never holds more than one partial frame
        // of already-consumed bytes.
        std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
        end_ -= pos_;
        pos_ = 0;
    }
    if (buf_.size() - end_ < n) buf_.resize(end_ + n);
    return {buf_.data() + end_, n};
}

void FrameParser::feed(ByteView data) {
    if (data.empty()) return;
    auto room = prepare(data.size());
    std::memcpy(room.data(), data.data(), data.size());
    commit(data.size());
}

FrameParser::Status FrameParser::next(FrameType& type, ByteView& body) {
    std::size_t avail = end_ - pos_;
    if (avail < 4) return Status::need_more;
    std::uint32_t len = load_u32(buf_.data() + pos_);
    if (len < 1 || len > kMaxFrame) return Status::malformed;
    if (avail - 4 < len) return Status::need_more;
    std::uint8_t t = buf_[pos_ + 4];
    if (t < 1 || t > 4) return Status::malformed;
    type = static_cast<FrameType>(t);
    body = ByteView(buf_.data() + pos_ + 5, len - 1);
    pos_ += 4 + len;
    return Status::frame;
}

bool decode_send(ByteView body, Send& out) {
    Reader r(body);
    if (!r.u8(out.guarantee) || out.guarantee > 1) return false;
    out.payload = r.rest();
    return out.payload.size() <= kMaxPayload;
}

bool decode_deliver(ByteView body, Deliver& out) {
    Reader r(body);
    r.u32(out.sender);
    r.u8(out.guarantee);
    r.u64(out.number);
    if (!r.ok() || out.guarantee > 1) return false;
    out.payload = r.rest();
    return out.payload.size() <= kMaxPayload;
}

bool decode_config(ByteView body, Config& out) {
    Reader r(body);
    std::uint32_t n = 0;
    r.u8(out.kind);
    r.u32(out.rep);
    r.u64(out.ring_seq);
    if (!r.ok() || (out.kind != 1 && out.kind != 2) || !r.count(n, 4, kMaxMembers)) return false;
    out.members.resize(n);
    for (auto& m : out.members) r.u32(m);
    return r.ok() && r.at_end();
}

bool valid_group_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxGroupName) return false;
    for (char ch : name) {
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                  ch == '_' || ch == '.' || ch == ':';
        if (!ok) return false;
    }
    return true;
}

void encode_envelope(std::string_view group, ByteView payload, Bytes& out) {
    Writer w(out);
    w.u8(kEnvelopeGroup);
    w.u8(static_cast<std::uint8_t>(group.size()));
    w.bytes(group);
    w.bytes(payload);
}

bool decode_envelope(ByteView message, std::string_view& group, ByteView& payload) {
    Reader r(message);
    std::uint8_t kind = 0, len = 0;
    ByteView name;
    if (!r.u8(kind) || kind != kEnvelopeGroup || !r.u8(len) || !r.view(len, name)) return false;
    group = std::string_view(reinterpret_cast<const char*>(name.data()), name.size());
    if (!valid_group_name(group)) return false;
    payload = r.rest();
    return true;
}

}  // namespace conclave::wire::group
