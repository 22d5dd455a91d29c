// conclave.conf(5): what one node needs to find the ring, and nothing cluster-wide
// (DESIGN.md §2.1 "one book": node list, votes, quorum options and totem timing live in
// the replicated state).
//
// Syntax, familiar to Corosync admins:
//     # comment
//     section {
//         key: value
//     }
// Sections do not nest. Unknown sections and keys, duplicate sections and keys, values
// out of range and contradictions are errors that name file:line:column and the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "crypto/aead.h"

namespace conclave::config {

enum class Transport { multicast, unicast };
enum class LogLevel { error, warning, notice, info, debug };

std::string_view transport_name(Transport t);
std::string_view log_level_name(LogLevel l);

struct Peer {
    std::string address;  // IPv4 or IPv6 literal
    std::uint16_t port = 0;  // 0: the ring's port
};

struct Config {
    // cluster { }
    std::string cluster_name;
    // node { }
    std::uint32_t node_id = 0;
    std::string node_name;
    // network { }
    Transport transport = Transport::multicast;
    std::string bind_address;  // empty: any address of the family of mcast_group / peers
    std::string interface;     // empty: let the kernel choose by route
    std::string mcast_group = "239.192.76.1";
    std::uint16_t port = 5405;
    std::vector<Peer> peers;  // unicast only
    std::uint32_t mtu = 1500;
    std::uint32_t ttl = 1;
    // crypto { }
    std::string key_file = "/etc/conclave/authkey";
    std::string next_key_file;  // empty: none
    crypto::Cipher cipher = crypto::Cipher::aes_256_gcm;
    // paths { }
    std::string state_dir = "/var/lib/conclave";
    std::string mount_point = "/etc/pve";
    std::string control_socket = "/run/conclave/control.sock";
    // tree { }
    bool mount = true;              // mount the configuration tree at mount_point
    std::string group;              // group of the tree's entries; empty: www-data if it exists, else root
    std::uint32_t lock_timeout = 120;  // seconds before an unchanged priv/lock/NAME may be unlocked
    // system { }
    bool sched_rr = true;  // the protocol thread runs SCHED_RR at the highest priority (Corosync's default)
    std::uint32_t token_linger = 500;  // microseconds (totem::Config::linger_us); 0: off
    // logging { }
    LogLevel log_level = LogLevel::info;
};

// node.id's range, as conclave.conf(5) documents it.
inline constexpr std::uint32_t kMinNodeId = 1;
inline constexpr std::uint32_t kMaxNodeId = 0xFFFFFFFEu;
inline constexpr std::size_t kMaxNodeNameLength = 63;

// The one rule for node names, shared by conclave.conf's node.name and `conclavectl node
// add`: 1 to 63 letters, digits, '-', '_' and '.', not all digits (a name "2" would read
// as node id 2 wherever a command takes either). Returns what is wrong, "" when the name
// is fine; any offending bytes in the text are escaped.
std::string node_name_problem(std::string_view name);

// `s` with NUL written as \0 and the other control bytes (below 0x20, and 0x7F) as \xNN, so
// that an error message quoting a value can never be cut short by a NUL or drive a
// terminal. Other bytes, '\\' and UTF-8 included, stay as they are (applying it twice
// changes nothing).
std::string escape(std::string_view s);

inline constexpr const char* kDefaultConfigPath = "/etc/conclave/conclave.conf";
inline constexpr std::size_t kMaxConfigSize = 1 << 20;

// Parses the text of a config file; `filename` only labels error messages.
Result<Config> parse(std::string_view text, std::string_view filename);

// Reads and parses a file (refusing one over 1 MiB).
Result<Config> load(const std::string& path);

// The file back as text, every key written (for `conclaved --print-config`).
std::string format(const Config& c);

}  // namespace conclave::config
