// Encoder and decoder of the ring's packets; format described in totem.h.
#include "wire/totem.h"

namespace conclave::wire::totem {
namespace {

DecodeResult decode_packet(ByteView data, bool nested);

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
    if ((t.flags & ~kTokenFlagsMask) != 0) return "token flags unknown";
    if (n > kMaxRtrEntries) return "token rtr count too large";
    if (r.remaining() != std::size_t{n} * 4) return "token rtr list length mismatch";
    t.rtr.resize(n);
    for (auto& s : t.rtr) r.u32(s);
    return r.ok() ? nullptr : "token rtr truncated";
}

const char* decode_mcast(Reader& r, McastFrame& f, bool nested) {
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
    if (f.flags & kFrameEncapsulated) {
        if (nested) return "nested encapsulation";
        if (f.chunks.size() != 1 || f.chunks[0].flags != (kChunkFirst | kChunkLast))
            return "encapsulated frame must carry one whole chunk";
        const DecodeResult inner = decode_packet(ByteView(f.chunks[0].data), true);
        if (!inner.ok()) return "encapsulated frame malformed";
        const auto* m = std::get_if<McastFrame>(&inner.packet);
        if (!m) return "encapsulated packet is not a frame";
    }
    return nullptr;
}

bool get_node_list(Reader& r, std::uint16_t n, std::vector<std::uint32_t>& out) {
    out.resize(n);
    for (auto& v : out) r.u32(v);
    if (!r.ok()) return false;
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (out[i] == 0) return false;
        if (i > 0 && out[i - 1] >= out[i]) return false;  // sorted, unique: canonical
    }
    return true;
}

const char* decode_join(Reader& r, Join& j) {
    std::uint16_t np = 0, nf = 0;
    r.u64(j.ring_seq);
    r.u16(np);
    r.u16(nf);
    if (!r.ok()) return "join truncated";
    if (np > kMaxMembers || nf > kMaxMembers) return "join list too long";
    if (r.remaining() != (std::size_t{np} + nf) * 4) return "join list length mismatch";
    if (!get_node_list(r, np, j.proc) || !get_node_list(r, nf, j.fail)) return "join list not sorted node ids";
    return nullptr;
}

const char* decode_commit(Reader& r, CommitToken& c) {
    std::uint16_t n = 0;
    r.u32(c.token_seq);
    r.u16(c.filled);
    r.u16(n);
    if (!r.ok()) return "commit token truncated";
    if (n == 0 || n > kMaxMembers) return "commit token member count out of range";
    if (c.filled > n) return "commit token filled past its members";
    if (r.remaining() != std::size_t{n} * (4 + kCommitEntrySize)) return "commit token length mismatch";
    if (!get_node_list(r, n, c.members)) return "commit token members not sorted node ids";
    c.entries.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        CommitEntry& e = c.entries[i];
        r.u32(e.old_ring_id.rep);
        r.u64(e.old_ring_id.seq);
        r.u32(e.old_aru);
        r.u32(e.old_high);
        r.u32(e.high_delivered);
        r.u32(e.old_safe);
        // Unfilled entries are all zero: one encoding per token.
        if (i >= c.filled && !(e == CommitEntry{})) return "commit token unfilled entry not zero";
    }
    return r.ok() ? nullptr : "commit token truncated";
}

void put_node_list(Writer& w, const std::vector<std::uint32_t>& v) {
    for (auto n : v) w.u32(n);
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

void encode(const Join& j, Bytes& out) {
    Writer w(out);
    put_header(w, PacketType::join, j.header);
    w.u64(j.ring_seq);
    w.u16(static_cast<std::uint16_t>(j.proc.size()));
    w.u16(static_cast<std::uint16_t>(j.fail.size()));
    put_node_list(w, j.proc);
    put_node_list(w, j.fail);
}

void encode(const CommitToken& c, Bytes& out) {
    Writer w(out);
    put_header(w, PacketType::commit_token, c.header);
    w.u32(c.token_seq);
    w.u16(c.filled);
    w.u16(static_cast<std::uint16_t>(c.members.size()));
    put_node_list(w, c.members);
    for (const auto& e : c.entries) {
        w.u32(e.old_ring_id.rep);
        w.u64(e.old_ring_id.seq);
        w.u32(e.old_aru);
        w.u32(e.old_high);
        w.u32(e.high_delivered);
        w.u32(e.old_safe);
    }
}

void encode(const MergeDetect& m, Bytes& out) {
    Writer w(out);
    put_header(w, PacketType::merge_detect, m.header);
}

void encode(const Leave& l, Bytes& out) {
    Writer w(out);
    put_header(w, PacketType::leave, l.header);
}

void encode(const WatermarkNotice& n, Bytes& out) {
    Writer w(out);
    put_header(w, PacketType::watermark, n.header);
    w.u64(n.value);
}

void encode(const SafeNotice& n, Bytes& out) {
    Writer w(out);
    put_header(w, PacketType::safe, n.header);
    w.u32(n.seq);
}

void encode(const ReceiptNotice& n, Bytes& out) {
    Writer w(out);
    put_header(w, PacketType::receipt, n.header);
    w.u32(n.aru);
}

const Header& header_of(const Packet& p) {
    return std::visit([](const auto& v) -> const Header& { return v.header; }, p);
}

void encode(const Packet& p, Bytes& out) {
    std::visit([&](const auto& v) { encode(v, out); }, p);
}

DecodeResult decode(ByteView data) { return decode_packet(data, false); }

namespace {
DecodeResult decode_packet(ByteView data, bool nested) {
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
            res.error = decode_mcast(r, f, nested);
            if (!res.error) res.packet = std::move(f);
            break;
        }
        case PacketType::hold_cancel:
            res.packet = HoldCancel{h};
            break;
        case PacketType::join: {
            Join j;
            j.header = h;
            res.error = decode_join(r, j);
            if (!res.error) res.packet = std::move(j);
            break;
        }
        case PacketType::commit_token: {
            CommitToken c;
            c.header = h;
            res.error = decode_commit(r, c);
            if (!res.error) res.packet = std::move(c);
            break;
        }
        case PacketType::merge_detect:
            res.packet = MergeDetect{h};
            break;
        case PacketType::leave:
            res.packet = Leave{h};
            break;
        case PacketType::watermark: {
            WatermarkNotice n{h};
            if (!r.u64(n.value)) {
                res.error = "watermark notice truncated";
                return res;
            }
            res.packet = n;
            break;
        }
        case PacketType::safe: {
            SafeNotice n{h};
            if (!r.u32(n.seq)) {
                res.error = "safe notice truncated";
                return res;
            }
            res.packet = n;
            break;
        }
        case PacketType::receipt: {
            ReceiptNotice n{h};
            if (!r.u32(n.aru)) {
                res.error = "receipt notice truncated";
                return res;
            }
            res.packet = n;
            break;
        }
        default:
            res.error = "unknown packet type";
            return res;
    }
    if (!res.error && !r.at_end()) res.error = "trailing bytes";
    return res;
}
}  // namespace

}  // namespace conclave::wire::totem
