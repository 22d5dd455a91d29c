// Encoder and decoder of the ring's packets; format described in totem.h.
#include "wire/totem.h"

namespace conclave::wire::totem {
namespace {

void put_header(Writer& w, PacketType type, const Header& h) {
    w.u16(kMagic);
    w.u8(kVersion);
    w.u8(static_cast<std::uint8_t>(type));
    w.u32(h.ring_id.rep);
    w.u64(h.ring_id.seq);
    w.u32(h.sender);
}

bool get_header_rest(Reader& r, Header& h) {
    r.u32(h.ring_id.rep);
    r.u64(h.ring_id.seq);
    r.u32(h.sender);
    return r.ok();
}

const char* decode_token(Reader& r, Token& t) {
    r.u32(t.token_seq);
    r.u32(t.seq);
    r.u32(t.aru);
    r.u32(t.aru_id);
    r.u32(t.backlog);
    r.u32(t.fcc);
    r.u32(t.idle_rotations);
    r.u64(t.watermark_ring);
    r.u64(t.watermark_partial);
    r.u8(t.flags);
    std::uint16_t n = 0;
    r.u16(n);
    if (!r.ok()) return "token truncated";
    if (t.flags != 0) return "token flags unknown";
    if (n > kMaxRtrEntries) return "token rtr count too large";
    if (r.remaining() != std::size_t{n} * 4) return "token rtr list length mismatch";
    t.rtr.resize(n);
    for (auto& s : t.rtr) r.u32(s);
    return r.ok() ? nullptr : "token rtr truncated";
}

const char* decode_mcast(Reader& r, McastFrame& f) {
    r.u32(f.originator);
    r.u32(f.seq);
    r.u64(f.first_msg_id);
    r.u8(f.flags);
    std::uint16_t n = 0;
    r.u16(n);
    if (!r.ok()) return "mcast truncated";
    if ((f.flags & ~kFrameFlagsMask) != 0) return "mcast flags unknown";
    if (n > kMaxChunks) return "mcast chunk count too large";
    if (n > r.remaining() / kChunkHeaderSize) return "mcast chunk count exceeds length";
    f.chunks.resize(n);
    bool any_safe = false;
    for (auto& c : f.chunks) {
        std::uint32_t len = 0;
        r.u8(c.flags);
        r.u32(c.total_size);
        r.u32(len);
        if (!r.ok()) return "chunk header truncated";
        if ((c.flags & ~kChunkFlagsMask) != 0) return "chunk flags unknown";
        if (c.total_size > kMaxMessageSize) return "chunk message too large";
        if (len > c.total_size) return "chunk longer than its message";
        if ((c.flags & kChunkFirst) && (c.flags & kChunkLast) && len != c.total_size)
            return "whole-message chunk size mismatch";
        ByteView v;
        if (!r.view(len, v)) return "chunk data truncated";
        c.data.assign(v.begin(), v.end());
        any_safe = any_safe || (c.flags & kChunkSafe) != 0;
    }
    // The frame flag is derived, so there is exactly one encoding of a frame.
    if (any_safe != ((f.flags & kFrameSafe) != 0)) return "mcast safe flag inconsistent";
    return nullptr;
}

}  // namespace

std::size_t encoded_size(const Token& t) { return kTokenFixedSize + 4 * t.rtr.size(); }

std::size_t encoded_size(const McastFrame& f) {
    std::size_t n = kMcastFixedSize;
    for (const auto& c : f.chunks) n += kChunkHeaderSize + c.data.size();
    return n;
}

void encode(const Token& t, Bytes& out) {
    Writer w(out);
    put_header(w, PacketType::token, t.header);
    w.u32(t.token_seq);
    w.u32(t.seq);
    w.u32(t.aru);
    w.u32(t.aru_id);
    w.u32(t.backlog);
    w.u32(t.fcc);
    w.u32(t.idle_rotations);
    w.u64(t.watermark_ring);
    w.u64(t.watermark_partial);
    w.u8(t.flags);
    w.u16(static_cast<std::uint16_t>(t.rtr.size()));
    for (auto s : t.rtr) w.u32(s);
}

void encode(const McastFrame& f, Bytes& out) {
    Writer w(out);
    put_header(w, PacketType::mcast, f.header);
    w.u32(f.originator);
    w.u32(f.seq);
    w.u64(f.first_msg_id);
    w.u8(f.flags);
    w.u16(static_cast<std::uint16_t>(f.chunks.size()));
    for (const auto& c : f.chunks) {
        w.u8(c.flags);
        w.u32(c.total_size);
        w.u32(static_cast<std::uint32_t>(c.data.size()));
        w.bytes(ByteView(c.data));
    }
}

void encode(const HoldCancel& h, Bytes& out) {
    Writer w(out);
    put_header(w, PacketType::hold_cancel, h.header);
}

void encode(const Packet& p, Bytes& out) {
    std::visit([&](const auto& v) { encode(v, out); }, p);
}

DecodeResult decode(ByteView data) {
    DecodeResult res;
    Reader r(data);
    std::uint16_t magic = 0;
    std::uint8_t version = 0, type = 0;
    r.u16(magic);
    r.u8(version);
    r.u8(type);
    Header h;
    if (!get_header_rest(r, h)) {
        res.error = "header truncated";
        return res;
    }
    if (magic != kMagic) {
        res.error = "bad magic";
        return res;
    }
    if (version != kVersion) {
        res.error = "unsupported version";
        return res;
    }
    switch (static_cast<PacketType>(type)) {
        case PacketType::token: {
            Token t;
            t.header = h;
            res.error = decode_token(r, t);
            if (!res.error) res.packet = std::move(t);
            break;
        }
        case PacketType::mcast: {
            McastFrame f;
            f.header = h;
            res.error = decode_mcast(r, f);
            if (!res.error) res.packet = std::move(f);
            break;
        }
        case PacketType::hold_cancel:
            res.packet = HoldCancel{h};
            break;
        default:
            res.error = "unknown packet type";
            return res;
    }
    if (!res.error && !r.at_end()) res.error = "trailing bytes";
    return res;
}

}  // namespace conclave::wire::totem
