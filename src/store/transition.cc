// Transitions: codec, path rules, node-list ops and the history hash chain (transition.h).
#include "store/transition.h"

#include <algorithm>
#include <cerrno>

#include "store/sha256.h"

namespace conclave::store {
namespace {

constexpr std::uint32_t kMaxVotes = 255;

bool tree_op(Op op) { return op >= Op::create && op <= Op::set_mode; }

bool known_op(std::uint8_t v) {
    return v >= static_cast<std::uint8_t>(Op::genesis) && v <= static_cast<std::uint8_t>(Op::limits_set);
}

// The ops that honour each condition flag (transition.h).
bool honours_if_inode(Op op) {
    return op == Op::create || op == Op::write || op == Op::truncate || op == Op::set_mtime || op == Op::set_mode ||
           op == Op::unlink;
}
bool honours_if_version(Op op) { return op == Op::rmdir || op == Op::unlink; }

bool valid_node_name(std::string_view name) { return !name.empty() && name.size() <= kMaxNodeName; }
bool valid_votes(std::uint32_t votes) { return votes != 0 && votes <= kMaxVotes; }

// Reads a length-prefixed string of at most `max` bytes.
bool get_string(wire::Reader& r, std::size_t len, std::size_t max, std::string& out) {
    if (len > max) {
        r.fail();
        return false;
    }
    wire::ByteView v;
    if (!r.view(len, v)) return false;
    out.assign(v.begin(), v.end());
    return true;
}

}  // namespace

const char* op_name(Op op) {
    switch (op) {
        case Op::genesis: return "genesis";
        case Op::create: return "create";
        case Op::write: return "write";
        case Op::truncate: return "truncate";
        case Op::mkdir: return "mkdir";
        case Op::rmdir: return "rmdir";
        case Op::unlink: return "unlink";
        case Op::rename: return "rename";
        case Op::set_mtime: return "set_mtime";
        case Op::set_mode: return "set_mode";
        case Op::node_add: return "node_add";
        case Op::node_remove: return "node_remove";
        case Op::node_votes: return "node_votes";
        case Op::quorum_set: return "quorum_set";
        case Op::totem_set: return "totem_set";
        case Op::limits_set: return "limits_set";
    }
    return "unknown";
}

bool valid_path(std::string_view path) {
    if (path.empty() || path.size() > kMaxPath || path[0] != '/') return false;
    if (path.size() == 1) return true;  // the root
    if (path.back() == '/') return false;
    // Every component between two slashes: non-empty, not "." or "..", no NUL.
    std::size_t start = 1;
    while (start <= path.size()) {
        std::size_t end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        const std::string_view c = path.substr(start, end - start);
        if (c.empty() || c == "." || c == ".." || c.find('\0') != std::string_view::npos) return false;
        start = end + 1;
    }
    return true;
}

bool is_reserved_path(std::string_view path) {
    return path == "/.members" || path == "/.version" || path == "/.quorum";
}

bool is_lock_dir_path(std::string_view path) {
    constexpr std::string_view prefix = "/priv/lock/";
    return path.size() > prefix.size() && path.substr(0, prefix.size()) == prefix &&
           path.find('/', prefix.size()) == std::string_view::npos && valid_path(path);
}

void encode(const Transition& t, wire::Bytes& out) {
    constexpr std::size_t fixed = 62;  // every field below but the variable-length ones
    out.reserve(out.size() + fixed + t.path.size() + t.path2.size() + t.data.size() + t.node_name.size() +
                t.cluster_id.size());
    wire::Writer w(out);
    w.u8(static_cast<std::uint8_t>(t.op));
    w.u32(t.origin);
    w.u64(t.request);
    w.u64(t.timestamp_us);
    w.u32(t.flags);
    w.u32(t.mode);
    w.u64(t.size);
    w.u64(t.expect);
    w.u16(static_cast<std::uint16_t>(t.path.size()));
    w.bytes(std::string_view(t.path));
    w.u16(static_cast<std::uint16_t>(t.path2.size()));
    w.bytes(std::string_view(t.path2));
    w.u32(static_cast<std::uint32_t>(t.data.size()));
    w.bytes(wire::ByteView(t.data));
    w.u32(t.node_id);
    w.u8(static_cast<std::uint8_t>(t.node_name.size()));
    w.bytes(std::string_view(t.node_name));
    w.u32(t.votes);
    w.bytes(wire::ByteView(t.cluster_id));
}

Result<Transition> decode(wire::ByteView bytes) {
    wire::Reader r(bytes);
    Transition t;
    std::uint8_t op = 0;
    r.u8(op);
    if (!r.ok()) return Error{"transition truncated"};
    if (!known_op(op)) return Error{"transition op unknown"};
    t.op = static_cast<Op>(op);
    r.u32(t.origin);
    r.u64(t.request);
    r.u64(t.timestamp_us);
    r.u32(t.flags);
    r.u32(t.mode);
    r.u64(t.size);
    r.u64(t.expect);
    std::uint16_t path_len = 0, path2_len = 0;
    std::uint32_t data_len = 0;
    std::uint8_t name_len = 0;
    if (!r.u16(path_len) || !get_string(r, path_len, kMaxPath, t.path)) return Error{"transition path malformed"};
    if (!r.u16(path2_len) || !get_string(r, path2_len, kMaxPath, t.path2))
        return Error{"transition path2 malformed"};
    wire::ByteView data;
    if (!r.u32(data_len) || data_len > kMaxData || !r.view(data_len, data)) return Error{"transition data malformed"};
    t.data.assign(data.begin(), data.end());
    r.u32(t.node_id);
    if (!r.u8(name_len) || !get_string(r, name_len, kMaxNodeName, t.node_name))
        return Error{"transition node name malformed"};
    r.u32(t.votes);
    r.bytes(t.cluster_id);
    if (!r.ok()) return Error{"transition truncated"};
    if (!r.at_end()) return Error{"transition has trailing bytes"};
    if (const char* err = validate(t)) return Error{err};
    return t;
}

const char* validate(const Transition& t) {
    if (!known_op(static_cast<std::uint8_t>(t.op))) return "transition op unknown";
    if (t.node_name.size() > kMaxNodeName) return "transition node name too long";
    if (t.data.size() > kMaxData) return "transition data too large";
    // Paths: exactly the ones the op uses, each valid (valid_path bounds the length).
    const bool needs_path = tree_op(t.op);
    const bool needs_path2 = t.op == Op::rename;
    if (needs_path ? !valid_path(t.path) : !t.path.empty()) return "transition path invalid for its op";
    if (needs_path2 ? !valid_path(t.path2) : !t.path2.empty()) return "transition path2 invalid for its op";
    // Conditions: at most one, on an op that checks it, and `expect` only with one (an
    // ignored condition would let a client believe it was checked).
    const bool if_inode = t.flags & kIfInode, if_version = t.flags & kIfVersion;
    if (if_inode && if_version) return "transition has both kIfInode and kIfVersion";
    if (if_inode && !honours_if_inode(t.op)) return "transition has kIfInode on an op that does not honour it";
    if (if_version && !honours_if_version(t.op)) return "transition has kIfVersion on an op that does not honour it";
    if (!if_inode && !if_version && t.expect != 0) return "transition has expect without kIfInode or kIfVersion";
    return nullptr;
}

wire::Bytes encode_limits(const Limits& limits) {
    wire::Bytes out;
    wire::Writer w(out);
    w.u64(limits.max_file_size);
    w.u64(limits.max_total_size);
    w.u32(limits.max_name);
    return out;
}

bool decode_limits(wire::ByteView bytes, Limits& out) {
    wire::Reader r(bytes);
    Limits l;
    r.u64(l.max_file_size);
    r.u64(l.max_total_size);
    r.u32(l.max_name);
    if (!r.at_end()) return false;
    if (l.max_file_size == 0 || l.max_file_size > kMaxData || l.max_total_size == 0 || l.max_name == 0 ||
        l.max_name > kMaxName)
        return false;
    out = l;
    return true;
}

void encode_meta(const Meta& meta, wire::Writer& w) {
    w.bytes(wire::ByteView(meta.cluster_id));
    w.u64(meta.limits.max_file_size);
    w.u64(meta.limits.max_total_size);
    w.u32(meta.limits.max_name);
    w.u32(static_cast<std::uint32_t>(meta.nodes.size()));
    for (const NodeEntry& n : meta.nodes) {
        w.u32(n.id);
        w.u8(static_cast<std::uint8_t>(n.name.size()));
        w.bytes(std::string_view(n.name));
        w.u32(n.votes);
    }
    const QuorumSettings& q = meta.quorum;
    w.u8(static_cast<std::uint8_t>((q.two_node ? 1 : 0) | (q.wait_for_all ? 2 : 0) | (q.last_man_standing ? 4 : 0)));
    w.u32(q.last_man_standing_window_ms);
    w.u8(q.auto_tie_breaker);
    w.u8(static_cast<std::uint8_t>(q.tie_breaker_nodes.size()));
    for (auto id : q.tie_breaker_nodes) w.u32(id);
    w.u8(static_cast<std::uint8_t>(meta.totem.size()));
    for (const auto& [k, v] : meta.totem) {
        w.u8(static_cast<std::uint8_t>(k.size()));
        w.bytes(std::string_view(k));
        w.u64(v);
    }
}

bool decode_meta(wire::Reader& r, Meta& out) {
    Meta m;
    r.bytes(m.cluster_id);
    r.u64(m.limits.max_file_size);
    r.u64(m.limits.max_total_size);
    r.u32(m.limits.max_name);
    std::uint32_t n = 0;
    if (!r.count(n, 9, kMaxNodes)) return false;  // 9: id, name length, votes
    m.nodes.resize(n);
    for (std::size_t i = 0; i < m.nodes.size(); ++i) {
        NodeEntry& e = m.nodes[i];
        std::uint8_t name_len = 0;
        r.u32(e.id);
        if (!r.u8(name_len) || !get_string(r, name_len, kMaxNodeName, e.name)) return false;
        r.u32(e.votes);
        if (!r.ok()) return false;
        // Canonical: non-zero ids, strictly ascending (lookups and quorum rely on it).
        if (e.id == 0 || (i > 0 && m.nodes[i - 1].id >= e.id)) {
            r.fail();
            return false;
        }
    }
    std::uint8_t flags = 0, tb = 0, count = 0;
    r.u8(flags);
    r.u32(m.quorum.last_man_standing_window_ms);
    r.u8(m.quorum.auto_tie_breaker);
    r.u8(tb);
    if (!r.ok() || (flags & ~7u) != 0 || m.quorum.auto_tie_breaker > 3 || tb > kMaxTieBreakers) {
        r.fail();
        return false;
    }
    m.quorum.two_node = flags & 1;
    m.quorum.wait_for_all = flags & 2;
    m.quorum.last_man_standing = flags & 4;
    m.quorum.tie_breaker_nodes.resize(tb);
    for (auto& id : m.quorum.tie_breaker_nodes) r.u32(id);
    if (!r.u8(count)) return false;
    for (std::uint8_t i = 0; i < count; ++i) {
        std::uint8_t len = 0;
        std::string key;
        std::uint64_t v = 0;
        if (!r.u8(len) || !get_string(r, len, 32, key) || !r.u64(v)) return false;
        // Canonical: ascending unique keys.
        if (!m.totem.empty() && m.totem.rbegin()->first >= key) {
            r.fail();
            return false;
        }
        m.totem.emplace(std::move(key), v);
    }
    if (!r.ok()) return false;
    out = std::move(m);
    return true;
}

const std::vector<SettingKey>& quorum_keys() {
    static const std::vector<SettingKey> keys = {
        {"two_node", 0, 1, "a two-node cluster: quorum 1, implies wait_for_all (0/1)"},
        {"wait_for_all", 0, 1, "after a start, quorate only once every node was present at once (0/1)"},
        {"last_man_standing", 0, 1, "lower expected votes after nodes left, once the window passed (0/1)"},
        {"last_man_standing_window", 1'000, 3'600'000, "last_man_standing's window, milliseconds"},
        {"auto_tie_breaker", 0, 3, "in an exact half split the half with the tie-breaker node is quorate: "
                                   "0 off, 1 lowest id, 2 highest id, 3 the list given"},
    };
    return keys;
}

const std::vector<SettingKey>& totem_keys() {
    static const std::vector<SettingKey> keys = {
        {"token", 200, 60'000, "token loss timeout: a silent node is out after this, milliseconds"},
        {"consensus", 50, 60'000, "longest wait for joins when forming a ring, milliseconds"},
        {"join", 10, 10'000, "join retransmit interval while forming a ring, milliseconds"},
        {"merge", 20, 60'000, "interval of the merge-detect that finds healed partitions, milliseconds"},
        {"hold", 1, 1'000, "how long the representative holds the token of an idle ring, milliseconds"},
        {"token_retransmit", 5, 10'000, "token retransmit interval, milliseconds"},
        {"window_size", 10, 2'000, "frames one token rotation may carry, all nodes together"},
        {"max_messages", 1, 1'000, "frames one node may send per token visit"},
    };
    return keys;
}

int apply_node_op(Meta& meta, const Transition& t) {
    auto find = [&](std::uint32_t id) {
        return std::find_if(meta.nodes.begin(), meta.nodes.end(), [&](const NodeEntry& n) { return n.id == id; });
    };
    switch (t.op) {
        case Op::genesis: {
            Limits limits;
            if (t.cluster_id == ClusterId{} || t.node_id == 0 || !valid_node_name(t.node_name) ||
                !valid_votes(t.votes) || (!t.data.empty() && !decode_limits(t.data, limits)))
                return EINVAL;
            if (!meta.empty()) return EEXIST;
            Meta m;
            m.cluster_id = t.cluster_id;
            m.nodes.push_back(NodeEntry{t.node_id, t.node_name, t.votes});
            m.limits = limits;
            meta = std::move(m);
            return 0;
        }
        case Op::node_add: {
            if (t.node_id == 0 || !valid_node_name(t.node_name) || !valid_votes(t.votes)) return EINVAL;
            for (const NodeEntry& n : meta.nodes)
                if (n.id == t.node_id || n.name == t.node_name) return EEXIST;
            if (meta.nodes.size() >= kMaxClusterNodes) return ENOSPC;
            // Keep the list ascending by id.
            auto at = std::find_if(meta.nodes.begin(), meta.nodes.end(),
                                   [&](const NodeEntry& n) { return n.id > t.node_id; });
            meta.nodes.insert(at, NodeEntry{t.node_id, t.node_name, t.votes});
            return 0;
        }
        case Op::node_remove: {
            auto it = find(t.node_id);
            if (it == meta.nodes.end()) return ENOENT;
            if (meta.nodes.size() == 1) return EBUSY;  // a cluster keeps at least one node
            meta.nodes.erase(it);
            return 0;
        }
        case Op::node_votes: {
            if (!valid_votes(t.votes)) return EINVAL;
            auto it = find(t.node_id);
            if (it == meta.nodes.end()) return ENOENT;
            it->votes = t.votes;
            return 0;
        }
        case Op::quorum_set: {
            const SettingKey* key = find_setting(quorum_keys(), t.node_name);
            if (!key || t.size < key->min || t.size > key->max) return EINVAL;
            QuorumSettings q = meta.quorum;
            const std::string& name = t.node_name;
            if (name == "two_node") q.two_node = t.size != 0;
            if (name == "wait_for_all") q.wait_for_all = t.size != 0;
            if (name == "last_man_standing") q.last_man_standing = t.size != 0;
            if (name == "last_man_standing_window") q.last_man_standing_window_ms = static_cast<std::uint32_t>(t.size);
            if (name == "auto_tie_breaker") {
                q.auto_tie_breaker = static_cast<std::uint8_t>(t.size);
                q.tie_breaker_nodes.clear();
                if (t.size == 3) {
                    if (t.data.empty() || t.data.size() % 4 != 0 || t.data.size() / 4 > kMaxTieBreakers) return EINVAL;
                    wire::Reader r(t.data);
                    for (std::size_t i = 0; i < t.data.size() / 4; ++i) {
                        std::uint32_t id = 0;
                        r.u32(id);
                        if (id == 0) return EINVAL;
                        q.tie_breaker_nodes.push_back(id);
                    }
                } else if (!t.data.empty()) {
                    return EINVAL;
                }
            } else if (!t.data.empty()) {
                return EINVAL;
            }
            if (q.last_man_standing)
                for (const NodeEntry& n : meta.nodes)
                    if (n.votes != 1) return EINVAL;
            meta.quorum = std::move(q);
            return 0;
        }
        case Op::totem_set: {
            const SettingKey* key = find_setting(totem_keys(), t.node_name);
            if (!key || !t.data.empty() || (t.size != 0 && (t.size < key->min || t.size > key->max))) return EINVAL;
            if (t.size == 0)
                meta.totem.erase(t.node_name);
            else
                meta.totem[t.node_name] = t.size;
            return 0;
        }
        case Op::limits_set: {
            const SettingKey* key = find_setting(limits_keys(), t.node_name);
            if (!key || !t.data.empty() || (t.size != 0 && (t.size < key->min || t.size > key->max))) return EINVAL;
            set_limit(meta.limits, t.node_name, t.size ? t.size : limit_of(Limits{}, t.node_name));
            return 0;
        }
        default:
            return 0;
    }
}

const SettingKey* find_setting(const std::vector<SettingKey>& keys, std::string_view name) {
    for (const auto& k : keys)
        if (name == k.name) return &k;
    return nullptr;
}

std::string setting_names(const std::vector<SettingKey>& keys) {
    std::string s;
    for (const auto& k : keys) s += (s.empty() ? "" : ", ") + std::string(k.name);
    return s;
}

const std::vector<SettingKey>& limits_keys() {
    static const std::vector<SettingKey> keys = {
        {"max_file_size", 4096, 2u << 20, "the largest file, bytes (EFBIG beyond)"},
        {"max_total_size", 1u << 20, 128u << 20, "file bytes and name bytes of the whole tree, bytes (ENOSPC beyond)"},
        {"max_name", 16, kMaxName, "the longest name of one path component, bytes (ENAMETOOLONG beyond)"},
    };
    return keys;
}

std::uint64_t limit_of(const Limits& l, std::string_view key) {
    if (key == "max_file_size") return l.max_file_size;
    if (key == "max_total_size") return l.max_total_size;
    if (key == "max_name") return l.max_name;
    return 0;
}

void set_limit(Limits& l, std::string_view key, std::uint64_t value) {
    if (key == "max_file_size") l.max_file_size = value;
    if (key == "max_total_size") l.max_total_size = value;
    if (key == "max_name") l.max_name = static_cast<std::uint32_t>(value);
}

Hash chain(const Hash& previous, std::uint64_t epoch, std::uint64_t version, const Transition& t) {
    wire::Bytes encoded;
    encode(t, encoded);
    return chain_encoded(previous, epoch, version, encoded);
}

Hash chain_encoded(const Hash& previous, std::uint64_t epoch, std::uint64_t version, wire::ByteView encoded) {
    Sha256 h;
    h.update(wire::ByteView(previous));
    h.u64(epoch);
    h.u64(version);
    h.update(encoded);
    return h.finish();
}

namespace {
template <std::size_t N>
std::string to_hex(const std::array<std::uint8_t, N>& a) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(2 * N);
    for (std::uint8_t b : a) {
        s.push_back(digits[b >> 4]);
        s.push_back(digits[b & 15]);
    }
    return s;
}
}  // namespace

std::string hex(const Hash& h) { return to_hex(h); }
std::string hex(const ClusterId& c) { return to_hex(c); }

}  // namespace conclave::store
