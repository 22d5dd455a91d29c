// LMDB transaction wrapper and tree navigation (db.h).
#include "store/db.h"

#include <cerrno>

namespace conclave::store::db {
namespace {

// LMDB's default maximum key size; a longer child name cannot exist (names are limited to
// 255 bytes at creation), so looking it up answers "missing" without asking LMDB.
constexpr std::size_t kMaxKey = 511;
constexpr char kStateKey[] = "state";

MDB_val val(wire::ByteView b) { return MDB_val{b.size(), const_cast<std::uint8_t*>(b.data())}; }
wire::ByteView view(const MDB_val& v) { return wire::ByteView(static_cast<const std::uint8_t*>(v.mv_data), v.mv_size); }

struct InoKey {
    std::uint8_t b[8];
    explicit InoKey(std::uint64_t ino) { format::put_be64(b, ino); }
    wire::ByteView view() const { return wire::ByteView(b, 8); }
};

wire::Bytes child_key(std::uint64_t parent, std::string_view name) {
    wire::Bytes k(8 + name.size());
    format::put_be64(k.data(), parent);
    if (!name.empty()) std::memcpy(k.data() + 8, name.data(), name.size());
    return k;
}

wire::ByteView state_key() { return wire::ByteView(reinterpret_cast<const std::uint8_t*>(kStateKey), sizeof kStateKey - 1); }

}  // namespace

std::uint32_t Txn::stored_state_format() {
    MDB_val k = val(state_key()), v{};
    if (mdb_get(txn_, dbs_.state, &k, &v) != 0 || v.mv_size < 4) return 0;
    return wire::load_u32(static_cast<const std::uint8_t*>(v.mv_data));
}

bool Txn::get(MDB_dbi dbi, wire::ByteView key, wire::ByteView& out) {
    if (!ok()) return false;
    MDB_val k = val(key), v{};
    const int rc = mdb_get(txn_, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) return false;
    if (rc != 0) {
        fail(rc);
        return false;
    }
    out = view(v);
    return true;
}

void Txn::put(MDB_dbi dbi, wire::ByteView key, wire::ByteView value) {
    if (!ok()) return;
    MDB_val k = val(key), v = val(value);
    if (const int rc = mdb_put(txn_, dbi, &k, &v, 0)) fail(rc);
}

void Txn::del(MDB_dbi dbi, wire::ByteView key) {
    if (!ok()) return;
    MDB_val k = val(key);
    const int rc = mdb_del(txn_, dbi, &k, nullptr);
    if (rc != 0 && rc != MDB_NOTFOUND) fail(rc);
}

MDB_stat Txn::stat(MDB_dbi dbi) {
    MDB_stat st{};
    if (ok())
        if (const int rc = mdb_stat(txn_, dbi, &st)) fail(rc);
    return st;
}

std::uint64_t Txn::page_bytes(MDB_dbi dbi) {
    const MDB_stat st = stat(dbi);
    return std::uint64_t{st.ms_psize} * (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages);
}

std::size_t Txn::count(MDB_dbi dbi) { return stat(dbi).ms_entries; }

bool Txn::load_state(State& out) {
    wire::ByteView v;
    if (!get(dbs_.state, state_key(), v)) return false;
    if (!decode_state(v, out)) {
        fail(MDB_CORRUPTED);
        return false;
    }
    return true;
}

void Txn::save_state(const State& s) {
    wire::Bytes b;
    encode_state(s, b);
    put(dbs_.state, state_key(), b);
}

std::optional<format::Node> Txn::entry(std::uint64_t ino) {
    wire::ByteView v;
    if (!get(dbs_.entries, InoKey(ino).view(), v)) return std::nullopt;
    wire::Reader r(v);
    format::Node n;
    if (!format::get_entry(r, n) || !r.at_end()) {
        fail(MDB_CORRUPTED);
        return std::nullopt;
    }
    n.info.ino = ino;
    return n;
}

void Txn::put_entry(const format::Node& n) {
    wire::Bytes b;
    wire::Writer w(b);
    format::put_entry(w, n);
    put(dbs_.entries, InoKey(n.info.ino).view(), b);
}

void Txn::del_entry(std::uint64_t ino) { del(dbs_.entries, InoKey(ino).view()); }

std::optional<std::uint64_t> Txn::child(std::uint64_t parent, std::string_view name) {
    if (8 + name.size() > kMaxKey) return std::nullopt;
    wire::ByteView v;
    if (!get(dbs_.children, child_key(parent, name), v)) return std::nullopt;
    if (v.size() != 8) {
        fail(MDB_CORRUPTED);
        return std::nullopt;
    }
    return wire::load_u64(v.data());
}

void Txn::put_child(std::uint64_t parent, std::string_view name, std::uint64_t ino) {
    std::uint8_t b[8];
    wire::store_u64(b, ino);
    put(dbs_.children, child_key(parent, name), wire::ByteView(b, 8));
}

void Txn::del_child(std::uint64_t parent, std::string_view name) { del(dbs_.children, child_key(parent, name)); }

std::vector<std::pair<std::string, std::uint64_t>> Txn::children(std::uint64_t dir) {
    std::vector<std::pair<std::string, std::uint64_t>> out;
    if (!ok()) return out;
    MDB_cursor* cur = nullptr;
    if (const int rc = mdb_cursor_open(txn_, dbs_.children, &cur)) {
        fail(rc);
        return out;
    }
    InoKey prefix(dir);
    MDB_val k = val(prefix.view()), v{};
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        const wire::ByteView key = view(k);
        if (key.size() < 8 || format::get_be64(key.data()) != dir) break;
        if (v.mv_size != 8) {
            rc = MDB_CORRUPTED;
            break;
        }
        out.emplace_back(std::string(key.begin() + 8, key.end()), wire::load_u64(static_cast<const std::uint8_t*>(v.mv_data)));
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) fail(rc);
    mdb_cursor_close(cur);
    return out;
}

bool Txn::has_children(std::uint64_t dir) {
    if (!ok()) return false;
    MDB_cursor* cur = nullptr;
    if (const int rc = mdb_cursor_open(txn_, dbs_.children, &cur)) {
        fail(rc);
        return false;
    }
    InoKey prefix(dir);
    MDB_val k = val(prefix.view()), v{};
    const int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    bool any = false;
    if (rc == 0)
        any = k.mv_size >= 8 && format::get_be64(static_cast<const std::uint8_t*>(k.mv_data)) == dir;
    else if (rc != MDB_NOTFOUND)
        fail(rc);
    mdb_cursor_close(cur);
    return any;
}

wire::ByteView Txn::data(std::uint64_t ino) {
    wire::ByteView v;
    if (!get(dbs_.data, InoKey(ino).view(), v)) return {};
    return v;
}

void Txn::put_data(std::uint64_t ino, wire::ByteView bytes) {
    if (bytes.empty())
        del_data(ino);
    else
        put(dbs_.data, InoKey(ino).view(), bytes);
}

void Txn::del_data(std::uint64_t ino) { del(dbs_.data, InoKey(ino).view()); }

int lookup_parent(Txn& txn, std::string_view path, std::uint64_t& parent, std::string_view& name) {
    parent = 0;
    name = {};
    if (path == "/") return 0;
    std::uint64_t at = format::kRootIno;
    std::size_t start = 1;
    for (;;) {
        const std::size_t end = path.find('/', start);
        if (end == std::string_view::npos) {
            parent = at;
            name = path.substr(start);
            return 0;
        }
        const auto ino = txn.child(at, path.substr(start, end - start));
        if (!ino) return ENOENT;
        const auto e = txn.entry(*ino);
        if (!e) return ENOENT;
        if (!e->info.dir) return ENOTDIR;
        at = *ino;
        start = end + 1;
    }
}

int resolve(Txn& txn, std::string_view path, format::Node& out) {
    std::uint64_t parent = 0;
    std::string_view name;
    if (const int err = lookup_parent(txn, path, parent, name)) return err;
    const auto ino = parent == 0 ? std::optional<std::uint64_t>(format::kRootIno) : txn.child(parent, name);
    if (!ino) return ENOENT;
    auto e = txn.entry(*ino);
    if (!e) return ENOENT;
    out = std::move(*e);
    return 0;
}

void put_log_value(wire::Writer& w, const LogRecord& rec) {
    w.u64(rec.epoch);
    w.bytes(wire::ByteView(rec.hash));
    w.u32(static_cast<std::uint32_t>(rec.err));
    w.bytes(wire::ByteView(rec.transition));
}

void encode_state(const State& s, wire::Bytes& out) {
    wire::Writer w(out);
    w.u32(kStateFormat);
    w.u64(s.head.epoch);
    w.u64(s.head.version);
    w.bytes(wire::ByteView(s.head.hash));
    encode_meta(s.meta, w);
    w.u64(s.next_ino);
    w.u64(s.total);
    w.u64(s.base_version);
    w.bytes(wire::ByteView(s.base_hash));
    w.u64(s.journal_from);
}

bool decode_state(wire::ByteView value, State& out) {
    wire::Reader r(value);
    State s;
    std::uint32_t fmt = 0;
    r.u32(fmt);
    r.u64(s.head.epoch);
    r.u64(s.head.version);
    r.bytes(s.head.hash);
    if (!decode_meta(r, s.meta)) return false;
    r.u64(s.next_ino);
    r.u64(s.total);
    r.u64(s.base_version);
    r.bytes(s.base_hash);
    if (fmt == kStateFormat)
        r.u64(s.journal_from);
    else if (fmt != 1)
        return false;
    if (!r.at_end()) return false;
    out = std::move(s);
    return true;
}

bool get_log_value(wire::ByteView value, std::uint64_t version, LogRecord& out) {
    wire::Reader r(value);
    std::uint32_t err = 0;
    r.u64(out.epoch);
    r.bytes(out.hash);
    r.u32(err);
    if (!r.ok()) return false;
    const wire::ByteView t = r.rest();
    out.version = version;
    out.err = static_cast<int>(err);
    out.transition.assign(t.begin(), t.end());
    return true;
}

}  // namespace conclave::store::db
