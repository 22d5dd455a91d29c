// Encoder and decoder of the state messages; format described in messages.h.
#include "node/messages.h"

namespace conclave::node {
namespace {

enum class Type : std::uint8_t {
    transition = 1,
    sync_state = 2,
    sync_plan = 3,
    sync_log = 4,
    sync_chunk = 5,
    sync_done = 6,
    expected = 7,
    lms = 8,
};

constexpr std::uint32_t kMaxActions = 4096;
constexpr std::uint32_t kMaxLogRecords = 1u << 20;

void put_ring(wire::Writer& w, const RingRef& r) {
    w.u32(r.rep);
    w.u64(r.seq);
}
bool get_ring(wire::Reader& r, RingRef& ring) {
    r.u32(ring.rep);
    return r.u64(ring.seq);
}
void put_head(wire::Writer& w, const store::Head& h) {
    w.u64(h.epoch);
    w.u64(h.version);
    w.bytes(wire::ByteView(h.hash));
}
bool get_head(wire::Reader& r, store::Head& h) {
    r.u64(h.epoch);
    r.u64(h.version);
    return r.bytes(h.hash);
}

// u32 count, count x u32 id (ascending and distinct, so that decoding is canonical).
void put_ids(wire::Writer& w, const std::vector<std::uint32_t>& ids) {
    w.u32(static_cast<std::uint32_t>(ids.size()));
    for (std::uint32_t id : ids) w.u32(id);
}
bool get_ids(wire::Reader& r, std::vector<std::uint32_t>& ids) {
    std::uint32_t count = 0;
    r.u32(count);
    // Each id takes 4 bytes: a count the rest cannot hold is malformed (and never
    // allocates for it).
    if (!r.ok() || count > r.remaining() / 4) return false;
    ids.resize(count);
    for (auto& id : ids) r.u32(id);
    for (std::size_t i = 1; i < ids.size(); ++i)
        if (ids[i] <= ids[i - 1]) return false;
    return r.ok();
}

void encode_body(wire::Writer& w, wire::Bytes& out, const MsgTransition& m) {
    w.u8(static_cast<std::uint8_t>(Type::transition));
    store::encode(m.t, out);
}
void encode_body(wire::Writer& w, wire::Bytes&, const MsgSyncState& m) {
    w.u8(static_cast<std::uint8_t>(Type::sync_state));
    put_ring(w, m.ring);
    put_head(w, m.head);
    store::encode_meta(m.meta, w);
    w.u8(m.all_seen ? 1 : 0);
    w.u64(m.lms_seq);
    put_ids(w, m.lms_members);
    w.u32(m.override_expected);
    w.u64(m.yellow_epoch);
    w.u32(m.yellow_count);
    w.bytes(wire::ByteView(m.yellow_hash));
    w.u32(static_cast<std::uint32_t>(m.lms_doubts.size()));
    for (const auto& d : m.lms_doubts) {
        w.u64(d.seq);
        put_ids(w, d.members);
    }
}
void encode_body(wire::Writer& w, wire::Bytes&, const MsgExpected& m) {
    w.u8(static_cast<std::uint8_t>(Type::expected));
    put_ring(w, m.ring);
    w.u32(m.expected);
}
void encode_body(wire::Writer& w, wire::Bytes&, const MsgLms& m) {
    w.u8(static_cast<std::uint8_t>(Type::lms));
    put_ring(w, m.ring);
    w.u32(m.expected);
}
void encode_body(wire::Writer& w, wire::Bytes&, const MsgSyncPlan& m) {
    w.u8(static_cast<std::uint8_t>(Type::sync_plan));
    put_ring(w, m.ring);
    w.u32(m.source);
    put_head(w, m.head);
    w.u32(static_cast<std::uint32_t>(m.actions.size()));
    for (const auto& [node, action] : m.actions) {
        w.u32(node);
        w.u8(static_cast<std::uint8_t>(action));
    }
}
void encode_body(wire::Writer& w, wire::Bytes&, const MsgSyncLog& m) {
    w.u8(static_cast<std::uint8_t>(Type::sync_log));
    put_ring(w, m.ring);
    w.u32(static_cast<std::uint32_t>(m.records.size()));
    for (const store::LogRecord& rec : m.records) store::encode_log_record(rec, w);
}
void encode_body(wire::Writer& w, wire::Bytes&, const MsgSyncChunk& m) {
    w.u8(static_cast<std::uint8_t>(Type::sync_chunk));
    put_ring(w, m.ring);
    w.u64(m.total);
    w.u64(m.offset);
    w.u32(static_cast<std::uint32_t>(m.data.size()));
    w.bytes(wire::ByteView(m.data));
}
void encode_body(wire::Writer& w, wire::Bytes&, const MsgSyncDone& m) {
    w.u8(static_cast<std::uint8_t>(Type::sync_done));
    put_ring(w, m.ring);
    put_head(w, m.head);
    store::encode_meta(m.meta, w);
}

std::optional<Message> decode_plan(wire::Reader& r) {
    MsgSyncPlan m;
    get_ring(r, m.ring);
    r.u32(m.source);
    get_head(r, m.head);
    std::uint32_t n = 0;
    if (!r.count(n, 5, kMaxActions)) return std::nullopt;
    m.actions.resize(n);
    for (auto& [node, action] : m.actions) {
        std::uint8_t a = 0;
        r.u32(node);
        if (!r.u8(a) || a > static_cast<std::uint8_t>(SyncAction::snapshot)) return std::nullopt;
        action = static_cast<SyncAction>(a);
    }
    return m;
}

std::optional<Message> decode_log(wire::Reader& r) {
    MsgSyncLog m;
    get_ring(r, m.ring);
    std::uint32_t n = 0;
    if (!r.count(n, store::kLogRecordMinSize, kMaxLogRecords)) return std::nullopt;
    m.records.resize(n);
    for (store::LogRecord& rec : m.records) {
        if (!store::decode_log_record(r, rec)) return std::nullopt;
        // A record carries a transition the receiver will apply: refuse it here rather
        // than half-way through applying a log.
        if (!store::decode(rec.transition).ok()) return std::nullopt;
    }
    return m;
}

std::optional<Message> decode_chunk(wire::Reader& r) {
    MsgSyncChunk m;
    get_ring(r, m.ring);
    r.u64(m.total);
    r.u64(m.offset);
    std::uint32_t len = 0;
    wire::ByteView data;
    if (!r.u32(len) || !r.view(len, data)) return std::nullopt;
    if (m.offset > m.total || len > m.total - m.offset) return std::nullopt;
    m.data.assign(data.begin(), data.end());
    return m;
}

}  // namespace

void encode(const Message& m, wire::Bytes& out) {
    wire::Writer w(out);
    w.u8(kStateKind);
    std::visit([&](const auto& body) { encode_body(w, out, body); }, m);
}

std::optional<Message> decode(wire::ByteView bytes) {
    wire::Reader r(bytes);
    std::uint8_t kind = 0, type = 0;
    r.u8(kind);
    r.u8(type);
    if (!r.ok() || kind != kStateKind) return std::nullopt;
    std::optional<Message> m;
    switch (static_cast<Type>(type)) {
        case Type::transition: {
            auto t = store::decode(r.rest());
            if (!t.ok()) return std::nullopt;
            return MsgTransition{std::move(t.value())};
        }
        case Type::sync_state: {
            MsgSyncState s;
            get_ring(r, s.ring);
            get_head(r, s.head);
            if (!store::decode_meta(r, s.meta)) return std::nullopt;
            std::uint8_t all_seen = 0;
            r.u8(all_seen);
            r.u64(s.lms_seq);
            if (!get_ids(r, s.lms_members)) return std::nullopt;
            r.u32(s.override_expected);
            r.u64(s.yellow_epoch);
            r.u32(s.yellow_count);
            r.bytes(s.yellow_hash);
            std::uint32_t doubts = 0;
            r.u32(doubts);
            // Each takes at least 12 bytes.
            if (!r.ok() || doubts > r.remaining() / 12) return std::nullopt;
            s.lms_doubts.resize(doubts);
            for (auto& d : s.lms_doubts) {
                r.u64(d.seq);
                if (!get_ids(r, d.members)) return std::nullopt;
            }
            if (all_seen > 1) return std::nullopt;
            if ((s.yellow_count == 0) != (s.yellow_epoch == 0)) return std::nullopt;
            s.all_seen = all_seen == 1;
            m = std::move(s);
            break;
        }
        case Type::expected: {
            MsgExpected e;
            get_ring(r, e.ring);
            r.u32(e.expected);
            m = e;
            break;
        }
        case Type::lms: {
            MsgLms e;
            get_ring(r, e.ring);
            r.u32(e.expected);
            m = e;
            break;
        }
        case Type::sync_plan: m = decode_plan(r); break;
        case Type::sync_log: m = decode_log(r); break;
        case Type::sync_chunk: m = decode_chunk(r); break;
        case Type::sync_done: {
            MsgSyncDone d;
            get_ring(r, d.ring);
            get_head(r, d.head);
            if (!store::decode_meta(r, d.meta)) return std::nullopt;
            m = std::move(d);
            break;
        }
        default: return std::nullopt;
    }
    if (!m || !r.at_end()) return std::nullopt;
    return m;
}

}  // namespace conclave::node
