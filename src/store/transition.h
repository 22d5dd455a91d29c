// Transitions: the only way the replicated state changes (DESIGN.md §6). A transition is
// decided entirely by its origin: it carries the origin's node id, request id and
// timestamp, and applying it is a pure function of (state, transition), so every replica
// computes the same result and the same errno.
//
// Wire form (the payload of a state message on the ring, in the retained log and in the
// snapshot), little-endian, every length checked:
//   u8 op, u32 origin, u64 request, u64 timestamp_us, u32 flags, u32 mode, u64 size,
//   u64 expect, u16 path length + path, u16 path2 length + path2,
//   u32 data length + data, u32 node_id, u8 node name length + name, u32 votes,
//   16 bytes cluster id
// Paths are absolute ("/a/b"), normalised (no "//", ".", ".." or trailing "/", no NUL), at
// most kMaxPath bytes; "/" is the root. Tree ops (create .. set_mode) need a valid path,
// rename a valid path2 too; every path field an op does not use must be empty. Node names
// are at most kMaxNodeName bytes, data at most kMaxData. At most one of kIfInode and
// kIfVersion, only on an op that honours it (below); `expect` is zero without one. The
// decoder refuses anything else (a fuzz target).
//
// The node list (cluster metadata) is changed by node_add / node_remove / node_votes and
// created by genesis; apply_node_op() is the one pure function both the store and the
// protocol core use for it, so quorum is computed from exactly what the store holds.
#pragma once

#include <array>
#include <map>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "wire/bytes.h"

namespace conclave::store {

enum class Op : std::uint8_t {
    genesis = 1,      // a fresh cluster: cluster_id, the first node (node_id, node_name, votes),
                      // limits in data (encode_limits(); empty data: the default Limits)
    create = 2,       // a file; flags & kExclusive: EEXIST if it exists, else truncates an existing file
    write = 3,        // whole file contents = data (creates the file if missing), mode if flags & kSetMode
    truncate = 4,     // file size = size (zero-filled when growing)
    mkdir = 5,        // mode
    rmdir = 6,        // ENOTEMPTY unless empty
    unlink = 7,       // files only (EISDIR on a directory)
    rename = 8,       // path -> path2; flags kNoReplace / kExchange; EACCES for lock paths
    set_mtime = 9,    // mtime = size field (microseconds since the epoch); lock dirs: renewal only
    set_mode = 10,    // mode (permission bits within kModeMask)
    node_add = 11,    // node_id, node_name, votes
    node_remove = 12, // node_id
    node_votes = 13,  // node_id, votes
    quorum_set = 14,  // quorum option node_name = value `size` (tie-breaker list: data, u32 LE ids)
    totem_set = 15,   // cluster-wide ring setting node_name = value `size` (0: back to the default)
    limits_set = 16,  // cluster limit node_name (limits_keys()) = value `size` (0: back to the default)
};
const char* op_name(Op op);

inline constexpr std::uint32_t kExclusive = 1u << 0;   // create
inline constexpr std::uint32_t kSetMode = 1u << 1;     // write / create: apply `mode`
inline constexpr std::uint32_t kNoReplace = 1u << 2;   // rename
inline constexpr std::uint32_t kExchange = 1u << 3;    // rename
// Conditions on the entry `path` names when the transition is applied, so that a client
// acting on what it saw earlier (an open file's inode, a lock it read) cannot hit an
// entry that replaced or changed it meanwhile: ESTALE if the condition fails, ENOENT if
// the path names nothing (a write or create then does not create it).
inline constexpr std::uint32_t kIfInode = 1u << 4;     // its ino == expect: create, write,
                                                       // truncate, set_mtime, set_mode, unlink
inline constexpr std::uint32_t kIfVersion = 1u << 5;   // its version == expect: rmdir, unlink
inline constexpr std::uint32_t kModeMask = 07777;
inline constexpr std::size_t kMaxPath = 4096;
inline constexpr std::size_t kMaxNodeName = 64;
// The longest name any entry can have (Limits::max_name is at most this; a name longer
// than the cluster's max_name may exist from before it was lowered).
inline constexpr std::uint32_t kMaxName = 255;
inline constexpr std::uint32_t kMaxData = 64u << 20;   // decoder bound; the cluster limit is lower

using ClusterId = std::array<std::uint8_t, 16>;        // all zero: no cluster yet
using Hash = std::array<std::uint8_t, 32>;             // SHA-256

struct Transition {
    Op op = Op::write;
    std::uint32_t origin = 0;       // node id of the node that decided it
    std::uint64_t request = 0;      // origin's request number (unique per origin boot epoch)
    std::uint64_t timestamp_us = 0; // origin's wall clock: the mtime it sets
    std::uint32_t flags = 0;
    std::uint32_t mode = 0;
    std::uint64_t size = 0;         // truncate: new size; set_mtime: mtime in µs
    std::uint64_t expect = 0;       // kIfInode: inode number; kIfVersion: entry version
    std::string path;
    std::string path2;              // rename target
    wire::Bytes data;               // write
    std::uint32_t node_id = 0;      // node ops, genesis
    std::string node_name;
    std::uint32_t votes = 0;
    ClusterId cluster_id{};         // genesis
    bool operator==(const Transition&) const = default;
};

void encode(const Transition& t, wire::Bytes& out);
// Refuses malformed bytes, unknown ops, bad paths, trailing bytes, anything validate()
// refuses.
Result<Transition> decode(wire::ByteView bytes);
// nullptr when decode(encode(t)) would give t back, else why not (unknown op, bad or
// unused-but-set paths, too long a node name or data, a kIfInode/kIfVersion/expect
// combination the op does not honour). Store::apply refuses such a transition: what is
// in the history must travel the wire (sync log, snapshot).
const char* validate(const Transition& t);

// True for a valid absolute normalised path (see above).
bool valid_path(std::string_view path);

// Cluster locks (pmxcfs's priv/lock/): a lock is a directory /priv/lock/NAME, taken by
// mkdir (one winner: apply is ordered), renewed by its holder's set_mtime, released or
// broken by rmdir (kIfVersion: only if nobody renewed it meanwhile). True when `path` is
// exactly /priv/lock/NAME (a direct child of /priv/lock); apply.h has the rules.
bool is_lock_dir_path(std::string_view path);

// The names the mounted tree shows its virtual files under (/.members, /.version,
// /.quorum; fuse/tree_impl.h): no transition makes an entry there, which the virtual file
// would hide on every node (apply.h: EACCES).
bool is_reserved_path(std::string_view path);

// Cluster-wide limits: part of the replicated state (set at genesis), so every replica
// enforces the same ones and computes the same errno.
struct Limits {
    std::uint64_t max_file_size = 1u << 20;     // EFBIG beyond
    std::uint64_t max_total_size = 128u << 20;  // ENOSPC beyond (sum of file sizes + names)
    std::uint32_t max_name = 255;               // ENAMETOOLONG beyond (one path component)
    bool operator==(const Limits&) const = default;
};

struct NodeEntry {
    std::uint32_t id = 0;
    std::string name;
    std::uint32_t votes = 1;
    bool operator==(const NodeEntry&) const = default;
};

// A genesis transition's data: u64 max_file_size, u64 max_total_size, u32 max_name.
wire::Bytes encode_limits(const Limits& limits);
// False unless exactly that, with every limit non-zero, max_file_size <= kMaxData and
// max_name <= 255.
bool decode_limits(wire::ByteView bytes, Limits& out);

// Quorum options (votequorum's, DESIGN.md §7), cluster-wide: in the replicated state only.
struct QuorumSettings {
    bool two_node = false;
    bool wait_for_all = false;
    bool last_man_standing = false;
    std::uint32_t last_man_standing_window_ms = 10'000;
    std::uint8_t auto_tie_breaker = 0;  // 0 off, 1 lowest, 2 highest, 3 list
    std::vector<std::uint32_t> tie_breaker_nodes;  // for list, in priority order
    bool operator==(const QuorumSettings&) const = default;
};
inline constexpr std::size_t kMaxTieBreakers = 32;

// The quorum option keys `conclavectl quorum set` takes, and the ring settings
// `conclavectl totem set` takes (milliseconds unless noted), each with its bounds.
struct SettingKey {
    const char* name;
    std::uint64_t min, max;
    const char* what;
};
const std::vector<SettingKey>& quorum_keys();
const std::vector<SettingKey>& totem_keys();
// The key called `name` among `keys` (nullptr: none), and the keys' names, comma-separated.
const SettingKey* find_setting(const std::vector<SettingKey>& keys, std::string_view name);
std::string setting_names(const std::vector<SettingKey>& keys);
// The cluster's limits (Limits) that limits_set changes. A lower limit binds what is
// written from then on; what the tree holds already stays (a file larger than a lowered
// max_file_size can be read, and rewritten only within the limit). The upper bounds keep
// a whole file in one ring message (wire::totem::kMaxMessageSize) and the store's map
// able to hold the state twice while a snapshot is installed.
const std::vector<SettingKey>& limits_keys();
// A limit by its limits_keys() name: its value in `l` (0 for another name), and setting it
// (nothing for another name).
std::uint64_t limit_of(const Limits& l, std::string_view key);
void set_limit(Limits& l, std::string_view key, std::uint64_t value);

// Cluster metadata held in the replicated state.
struct Meta {
    ClusterId cluster_id{};
    std::vector<NodeEntry> nodes;  // ascending id
    Limits limits;
    QuorumSettings quorum;
    std::map<std::string, std::uint64_t> totem;  // ring settings set explicitly (totem_keys())
    bool empty() const { return cluster_id == ClusterId{}; }
    bool operator==(const Meta&) const = default;
};

// Meta's wire form (state messages, the store, snapshots), little-endian:
//   16 cluster id, u64 max_file_size, u64 max_total_size, u32 max_name,
//   u32 count, count x (u32 id, u8 name length, name, u32 votes),
//   u8 quorum flags (1 two_node, 2 wait_for_all, 4 last_man_standing), u32 lms window ms,
//   u8 auto_tie_breaker, u8 count, count x u32 tie-breaker node,
//   u8 count, count x (u8 key length, key, u64 value)   (totem settings, keys ascending)
// decode_meta refuses more than kMaxNodes nodes, node ids that are zero or not strictly
// ascending, names longer than kMaxNodeName (the reader is marked bad on failure).
inline constexpr std::uint32_t kMaxNodes = 1024;
// The node list's limit for node_add (ENOSPC past it): the most members one ring holds
// (wire::totem::kMaxMembers). A node beyond it could never join the ring, yet its votes
// would count in expected votes.
inline constexpr std::uint32_t kMaxClusterNodes = 64;
void encode_meta(const Meta& meta, wire::Writer& w);
bool decode_meta(wire::Reader& r, Meta& out);

// Applies a genesis or node op to `meta` (unchanged on error). Returns 0 or an errno; the
// arguments are checked first (EINVAL), then the node list:
//   genesis      EEXIST if the cluster exists; EINVAL for a zero cluster id, node id 0,
//                an empty/too long name, votes 0 or > 255, or data that is neither empty
//                nor valid limits (decode_limits)
//   node_add     EEXIST id or name taken; EINVAL id 0, empty/too long name, votes 0 or > 255
//   node_remove  ENOENT unknown; EBUSY for the last node
//   node_votes   ENOENT unknown; EINVAL votes 0 or > 255
//   quorum_set   EINVAL unknown key, value out of bounds, last_man_standing with a node
//                of more than one vote, a tie-breaker list that is empty or too long
//   totem_set    EINVAL unknown key or value out of bounds (0 resets to the default)
//   limits_set   EINVAL unknown key or value out of bounds (0 resets to the default)
// Any other op: returns 0 and leaves meta alone. (Ops other than genesis are never
// applied to an empty meta: with no node list there is no quorum.)
int apply_node_op(Meta& meta, const Transition& t);

// The history hash chain: H(v) = SHA-256(H(v-1) || u64 epoch || u64 version || encoded t).
Hash chain(const Hash& previous, std::uint64_t epoch, std::uint64_t version, const Transition& t);
// The same from `encoded` = encode(t)'s bytes, for a caller that has them already.
Hash chain_encoded(const Hash& previous, std::uint64_t epoch, std::uint64_t version, wire::ByteView encoded);
std::string hex(const Hash& h);
std::string hex(const ClusterId& c);

}  // namespace conclave::store
