// Entry records, the content hash and the snapshot blob (format.h, store.h). No LMDB:
// parse_snapshot() is a fuzz target and verifies everything before install() touches
// the database.
#include <algorithm>
#include <cstring>
#include <set>
#include <string_view>

#include "store/format.h"

namespace conclave::store {
namespace format {
namespace {

constexpr char kMagic[8] = {'C', 'N', 'C', 'L', 'S', 'N', 'A', 'P'};
constexpr std::uint32_t kFormat = 1;
constexpr char kContentTag[] = "conclave-content-1";
constexpr std::uint32_t kMaxEntries = 1u << 26;
constexpr std::uint32_t kMaxLog = 1u << 26;

void put_head(wire::Writer& w, const Head& h) {
    w.u64(h.epoch);
    w.u64(h.version);
    w.bytes(wire::ByteView(h.hash));
}

}  // namespace

void put_entry(wire::Writer& w, const Node& n) {
    const EntryInfo& e = n.info;
    w.u64(n.parent);
    w.u8(e.dir ? 1 : 0);
    w.u32(e.mode);
    w.u64(e.mtime_us);
    w.u64(e.size);
    w.u64(e.version);
    w.u32(e.writer);
    w.u16(static_cast<std::uint16_t>(e.name.size()));
    w.bytes(std::string_view(e.name));
}

bool get_entry(wire::Reader& r, Node& n) {
    EntryInfo& e = n.info;
    std::uint8_t dir = 0;
    std::uint16_t name_len = 0;
    r.u64(n.parent);
    r.u8(dir);
    r.u32(e.mode);
    r.u64(e.mtime_us);
    r.u64(e.size);
    r.u64(e.version);
    r.u32(e.writer);
    r.u16(name_len);
    wire::ByteView name;
    if (!r.ok() || dir > 1 || name_len > kMaxPath || !r.view(name_len, name)) {
        r.fail();
        return false;
    }
    e.dir = dir == 1;
    e.name.assign(name.begin(), name.end());
    return true;
}

bool valid_name(std::string_view name) {
    return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
           name.find('\0') == std::string_view::npos;
}

ContentHasher::ContentHasher(const Meta& meta, std::uint64_t next_ino) {
    sha_.update(wire::ByteView(reinterpret_cast<const std::uint8_t*>(kContentTag), sizeof kContentTag - 1));
    wire::Writer w(buf_);
    encode_meta(meta, w);
    w.u64(next_ino);
    sha_.update(buf_);
}

void ContentHasher::entry(std::uint64_t ino, const Node& n, wire::ByteView data) {
    buf_.clear();
    wire::Writer w(buf_);
    w.u64(ino);
    put_entry(w, n);
    sha_.update(buf_);
    sha_.update(data);
}

SnapshotBuilder::SnapshotBuilder(const Head& head, const Meta& meta, std::uint64_t next_ino,
                                 std::uint64_t base_version, const Hash& base_hash, std::uint32_t entry_count)
    : content_(meta, next_ino) {
    wire::Writer w(out_);
    w.bytes(wire::ByteView(reinterpret_cast<const std::uint8_t*>(kMagic), sizeof kMagic));
    w.u32(kFormat);
    put_head(w, head);
    encode_meta(meta, w);
    w.u64(next_ino);
    w.u64(base_version);
    w.bytes(wire::ByteView(base_hash));
    w.u32(entry_count);
}

void SnapshotBuilder::entry(std::uint64_t ino, const Node& n, wire::ByteView data) {
    wire::Writer w(out_);
    w.u64(ino);
    put_entry(w, n);
    w.bytes(data);
    content_.entry(ino, n, data);
}

void SnapshotBuilder::log_count(std::uint32_t count) { wire::Writer(out_).u32(count); }

void SnapshotBuilder::log_record(const LogRecord& rec) {
    wire::Writer w(out_);
    encode_log_record(rec, w);
}

wire::Bytes SnapshotBuilder::finish() {
    const Hash content = content_.finish();
    wire::Writer(out_).bytes(wire::ByteView(content));
    const Hash trailer = sha256(out_);
    wire::Writer(out_).bytes(wire::ByteView(trailer));
    return std::move(out_);
}

namespace {

// The tree's shape: every parent an earlier-parsed or later-parsed directory, names unique
// per parent, every entry reaching the root (no cycles).
const char* check_tree(const std::vector<SnapshotEntry>& entries) {
    auto index_of = [&](std::uint64_t ino) -> std::ptrdiff_t {
        auto it = std::lower_bound(entries.begin(), entries.end(), ino,
                                   [](const SnapshotEntry& e, std::uint64_t v) { return e.info.ino < v; });
        return it != entries.end() && it->info.ino == ino ? it - entries.begin() : -1;
    };
    std::set<std::pair<std::uint64_t, std::string_view>> names;
    for (std::size_t i = 1; i < entries.size(); ++i) {
        const SnapshotEntry& e = entries[i];
        const std::ptrdiff_t p = index_of(e.parent);
        if (p < 0) return "snapshot entry's parent missing";
        if (!entries[static_cast<std::size_t>(p)].info.dir) return "snapshot entry's parent is not a directory";
        if (!names.emplace(e.parent, std::string_view(e.info.name)).second) return "snapshot has duplicate names";
    }
    // 0: not yet known, 1: on the path being followed, 2: reaches the root.
    std::vector<std::uint8_t> state(entries.size(), 0);
    state[0] = 2;
    std::vector<std::size_t> path;
    for (std::size_t i = 1; i < entries.size(); ++i) {
        path.clear();
        std::size_t at = i;
        while (state[at] == 0) {
            state[at] = 1;
            path.push_back(at);
            at = static_cast<std::size_t>(index_of(entries[at].parent));
        }
        if (state[at] == 1) return "snapshot tree has a cycle";
        for (std::size_t k : path) state[k] = 2;
    }
    return nullptr;
}

const char* parse(wire::ByteView blob, SnapshotContents& s, bool verify_hashes) {
    if (blob.size() < sizeof kMagic + 64) return "snapshot truncated";
    const wire::ByteView body = blob.first(blob.size() - 32);
    Hash trailer{};
    std::memcpy(trailer.data(), blob.data() + body.size(), trailer.size());
    if (verify_hashes && sha256(body) != trailer) return "snapshot checksum mismatch";

    wire::Reader r(body.first(body.size() - 32));  // the content hash is checked below
    std::memcpy(s.content.data(), body.data() + body.size() - 32, 32);
    std::uint8_t magic[sizeof kMagic];
    std::uint32_t fmt = 0;
    r.bytes(magic);
    r.u32(fmt);
    if (!r.ok() || std::memcmp(magic, kMagic, sizeof kMagic) != 0) return "not a conclave snapshot";
    if (fmt != kFormat) return "snapshot format version unsupported";
    r.u64(s.head.epoch);
    r.u64(s.head.version);
    r.bytes(s.head.hash);
    if (!decode_meta(r, s.meta)) return "snapshot meta malformed";
    r.u64(s.next_ino);
    r.u64(s.log_base_version);
    r.bytes(s.log_base_hash);

    std::uint32_t n = 0;
    if (!r.count(n, 8 + kEntryRecordMin, kMaxEntries)) return "snapshot entry count malformed";
    if (n == 0) return "snapshot has no root";
    s.entries.resize(n);
    ContentHasher content(s.meta, s.next_ino);
    for (std::size_t i = 0; i < s.entries.size(); ++i) {
        SnapshotEntry& e = s.entries[i];
        Node node;
        r.u64(node.info.ino);
        if (!get_entry(r, node)) return "snapshot entry malformed";
        const EntryInfo& info = node.info;
        if (i == 0) {
            if (info.ino != kRootIno || node.parent != 0 || !info.name.empty() || !info.dir)
                return "snapshot root malformed";
        } else {
            if (info.ino <= s.entries[i - 1].info.ino) return "snapshot entries not in ino order";
            if (!valid_name(info.name)) return "snapshot entry name invalid";
        }
        if (info.ino >= s.next_ino) return "snapshot entry ino beyond next_ino";
        if (info.dir && info.size != 0) return "snapshot directory with a size";
        if (info.size > kMaxData) return "snapshot file too large";
        wire::ByteView data;
        if (!r.view(info.dir ? 0 : static_cast<std::size_t>(info.size), data)) return "snapshot file data truncated";
        content.entry(node.info.ino, node, data);
        e.parent = node.parent;
        e.info = std::move(node.info);
        e.data.assign(data.begin(), data.end());
    }
    if (const char* err = check_tree(s.entries)) return err;
    if (verify_hashes && content.finish() != s.content) return "snapshot content hash mismatch";

    if (!r.count(n, kLogRecordMinSize, kMaxLog)) return "snapshot log count malformed";
    s.log.resize(n);
    Hash prev = s.log_base_hash;
    std::uint64_t version = s.log_base_version;
    for (LogRecord& rec : s.log) {
        if (!decode_log_record(r, rec)) return "snapshot log record truncated";
        if (rec.version != version + 1) return "snapshot log versions not consecutive";
        auto decoded = decode(rec.transition);
        if (!decoded.ok()) return "snapshot log transition malformed";
        if (verify_hashes && chain(prev, rec.epoch, rec.version, decoded.value()) != rec.hash)
            return "snapshot log hash chain broken";
        prev = rec.hash;
        version = rec.version;
    }
    if (version != s.head.version || (verify_hashes && prev != s.head.hash)) return "snapshot log does not end at the head";
    if (!r.at_end()) return "snapshot has trailing bytes";
    return nullptr;
}

}  // namespace

Result<SnapshotContents> parse_snapshot_structure(wire::ByteView snapshot) {
    SnapshotContents s;
    if (const char* err = parse(snapshot, s, false)) return Error{err};
    return s;
}

}  // namespace format

Result<SnapshotContents> parse_snapshot(wire::ByteView snapshot) {
    SnapshotContents s;
    if (const char* err = format::parse(snapshot, s, true)) return Error{err};
    return s;
}

void encode_log_record(const LogRecord& rec, wire::Writer& w) {
    w.u64(rec.epoch);
    w.u64(rec.version);
    w.bytes(wire::ByteView(rec.hash));
    w.u32(static_cast<std::uint32_t>(rec.err));
    w.u32(static_cast<std::uint32_t>(rec.transition.size()));
    w.bytes(wire::ByteView(rec.transition));
}

bool decode_log_record(wire::Reader& r, LogRecord& out) {
    std::uint32_t err = 0, len = 0;
    r.u64(out.epoch);
    r.u64(out.version);
    r.bytes(out.hash);
    r.u32(err);
    wire::ByteView t;
    if (!r.u32(len) || !r.view(len, t)) return false;
    out.err = static_cast<int>(err);
    out.transition.assign(t.begin(), t.end());
    return true;
}

}  // namespace conclave::store
