#include "config/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <cerrno>
#include <charconv>
#include <functional>
#include <map>
#include <optional>
#include <sstream>

namespace conclave::config {
namespace {

// Cluster-wide settings (DESIGN.md §2.1, one book): a leftover in conclave.conf, as a
// Corosync operator would write it, is refused with the command that changes it.
std::string cluster_wide(std::string_view name) {
    static const std::vector<std::pair<std::string_view, std::string_view>> table = {
        {"totem", "`conclavectl totem set KEY VALUE`"},
        {"quorum", "`conclavectl quorum set KEY VALUE`"},
        {"nodelist", "`conclavectl node add NAME --id N [--votes V]`"},
        {"nodes", "`conclavectl node add NAME --id N [--votes V]`"},
        {"votes", "`conclavectl votes NODE V`"},
        {"quorum_votes", "`conclavectl votes NODE V`"},
        {"expected_votes", "`conclavectl expected N` (a runtime override; expected votes follow the node list)"},
        {"two_node", "`conclavectl quorum set two_node 1`"},
        {"wait_for_all", "`conclavectl quorum set wait_for_all 1`"},
        {"last_man_standing", "`conclavectl quorum set last_man_standing 1`"},
        {"last_man_standing_window", "`conclavectl quorum set last_man_standing_window MS`"},
        {"auto_tie_breaker", "`conclavectl quorum set auto_tie_breaker lowest|highest|list`"},
        {"auto_tie_breaker_node", "`conclavectl quorum set auto_tie_breaker list --nodes ID,...`"},
        {"token", "`conclavectl totem set token MS`"},
        {"consensus", "`conclavectl totem set consensus MS`"},
        {"join", "`conclavectl totem set join MS`"},
        {"merge", "`conclavectl totem set merge MS`"},
        {"hold", "`conclavectl totem set hold MS`"},
        {"token_retransmit", "`conclavectl totem set token_retransmit MS`"},
        {"window_size", "`conclavectl totem set window_size N`"},
        {"max_messages", "`conclavectl totem set max_messages N`"},
    };
    for (const auto& [k, v] : table)
        if (k == name) return std::string(v);
    return {};
}


// Where a token stands, 1-based.
struct Pos {
    std::size_t line = 1;
    std::size_t column = 1;
};

// A value check returns an error text (without position) or nothing.
using Setter = std::function<std::optional<std::string>(std::string_view value, Config& c)>;

struct KeySpec {
    std::string_view name;
    Setter set;
    bool required = false;
};

struct SectionSpec {
    std::string_view name;
    std::vector<KeySpec> keys;
};

bool is_ipv4(std::string_view s) {
    in_addr a{};
    return inet_pton(AF_INET, std::string(s).c_str(), &a) == 1;
}
bool is_ipv6(std::string_view s) {
    in6_addr a{};
    return inet_pton(AF_INET6, std::string(s).c_str(), &a) == 1;
}
bool is_multicast(std::string_view s) {
    std::string str(s);
    in_addr a4{};
    if (inet_pton(AF_INET, str.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 28) == 0xE;
    in6_addr a6{};
    if (inet_pton(AF_INET6, str.c_str(), &a6) == 1) return a6.s6_addr[0] == 0xFF;
    return false;
}

std::optional<std::string> parse_uint(std::string_view v, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec == std::errc::result_out_of_range)
        return std::string(v) + " is out of range (" + std::to_string(lo) + "-" + std::to_string(hi) + ")";
    if (ec != std::errc() || end != v.data() + v.size())
        return "'" + std::string(v) + "' is not a whole number";
    if (n < lo || n > hi)
        return std::string(v) + " is out of range (" + std::to_string(lo) + "-" + std::to_string(hi) + ")";
    out = n;
    return std::nullopt;
}

template <typename T>
Setter uint_setter(T Config::*field, std::uint64_t lo, std::uint64_t hi) {
    return [=](std::string_view v, Config& c) -> std::optional<std::string> {
        std::uint64_t n = 0;
        if (auto err = parse_uint(v, lo, hi, n)) return err;
        c.*field = static_cast<T>(n);
        return std::nullopt;
    };
}

bool all_of(std::string_view s, std::string_view allowed_extra) {
    for (char ch : s) {
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && allowed_extra.find(ch) == std::string_view::npos) return false;
    }
    return true;
}

Setter name_setter(std::string Config::*field, std::size_t max_len, std::string_view extra, std::string_view what) {
    return [=](std::string_view v, Config& c) -> std::optional<std::string> {
        if (v.size() > max_len) return std::string(what) + " is longer than " + std::to_string(max_len) + " characters";
        if (!all_of(v, extra))
            return "'" + std::string(v) + "' is not a valid " + std::string(what) + " (letters, digits and '" +
                   std::string(extra) + "' only)";
        c.*field = std::string(v);
        return std::nullopt;
    };
}

// Every boolean key takes the same spellings, whichever an admin is used to.
Setter bool_setter(bool Config::*field) {
    return [=](std::string_view v, Config& c) -> std::optional<std::string> {
        if (v == "yes" || v == "true" || v == "on" || v == "1") c.*field = true;
        else if (v == "no" || v == "false" || v == "off" || v == "0") c.*field = false;
        else return "'" + std::string(v) + "' is not yes or no (also accepted: true/false, on/off, 1/0)";
        return std::nullopt;
    };
}

Setter path_setter(std::string Config::*field) {
    return [=](std::string_view v, Config& c) -> std::optional<std::string> {
        if (v.front() != '/') return "'" + std::string(v) + "' is not an absolute path";
        if (v.size() > 4095) return "path is longer than 4095 characters";
        c.*field = std::string(v);
        return std::nullopt;
    };
}

std::optional<std::string> parse_peer(std::string_view item, Peer& out) {
    std::string_view addr = item;
    std::string_view port;
    bool has_port = false;  // a ':' that starts a port (which may then be empty: an error)
    if (item.front() == '[') {
        auto close = item.find(']');
        if (close == std::string_view::npos) return "peer '" + std::string(item) + "' lacks its closing ']'";
        addr = item.substr(1, close - 1);
        std::string_view after = item.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return "peer '" + std::string(item) + "': expected ':PORT' after ']'";
            port = after.substr(1);
            has_port = true;
        }
        if (!is_ipv6(addr)) return "peer '" + std::string(item) + "' is not an IPv6 address";
    } else {
        auto colon = item.find(':');
        if (colon != std::string_view::npos && item.find(':', colon + 1) == std::string_view::npos) {
            addr = item.substr(0, colon);
            port = item.substr(colon + 1);
            has_port = true;
        }
        if (!is_ipv4(addr) && !is_ipv6(addr))
            return "peer '" + std::string(item) + "' is not an IP address (write IPv6 with a port as [ADDR]:PORT)";
    }
    out.address = std::string(addr);
    out.port = 0;
    // Not item.back() == ':': a bare IPv6 address may end in "::" (fd00::).
    if (has_port) {
        std::uint64_t n = 0;
        if (auto err = parse_uint(port, 1, 65535, n)) return "peer '" + std::string(item) + "': port " + *err;
        out.port = static_cast<std::uint16_t>(n);
    }
    return std::nullopt;
}

// An absolute path's components, with "." and empty ones dropped and ".." applied. Purely
// lexical: the file is checked without looking at the file system (symbolic links are not
// followed), so that /a//b/. and /a/b compare equal and /a/b and /a/bc do not overlap.
std::vector<std::string_view> components(std::string_view path) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < path.size()) {
        std::size_t slash = path.find('/', i);
        if (slash == std::string_view::npos) slash = path.size();
        std::string_view part = path.substr(i, slash - i);
        if (part == "..") {
            if (!out.empty()) out.pop_back();
        } else if (!part.empty() && part != ".") {
            out.push_back(part);
        }
        i = slash + 1;
    }
    return out;
}

// Whether `inner` is `outer` or lies beneath it.
bool within(std::string_view inner, std::string_view outer) {
    auto in = components(inner);
    auto out = components(outer);
    return in.size() >= out.size() && std::equal(out.begin(), out.end(), in.begin());
}

const std::vector<SectionSpec>& schema() {
    static const std::vector<SectionSpec> s = {
        {"cluster",
         {
             {"name", name_setter(&Config::cluster_name, 64, "-_.", "cluster name"), true},
         }},
        {"node",
         {
             {"id", uint_setter(&Config::node_id, kMinNodeId, kMaxNodeId), true},
             {"name",
              [](std::string_view v, Config& c) -> std::optional<std::string> {
                  if (auto problem = node_name_problem(v); !problem.empty()) return problem;
                  c.node_name = std::string(v);
                  return std::nullopt;
              },
              true},
         }},
        {"network",
         {
             {"transport",
              [](std::string_view v, Config& c) -> std::optional<std::string> {
                  if (v == "multicast") c.transport = Transport::multicast;
                  else if (v == "unicast") c.transport = Transport::unicast;
                  else return "'" + std::string(v) + "' is not a transport (multicast or unicast)";
                  return std::nullopt;
              }},
             {"bind_address",
              [](std::string_view v, Config& c) -> std::optional<std::string> {
                  if (!is_ipv4(v) && !is_ipv6(v)) return "'" + std::string(v) + "' is not an IPv4 or IPv6 address";
                  if (is_multicast(v)) return "'" + std::string(v) + "' is a multicast address; bind to this node's own address";
                  c.bind_address = std::string(v);
                  return std::nullopt;
              }},
             {"interface",
              [](std::string_view v, Config& c) -> std::optional<std::string> {
                  if (v.size() > 15) return "interface names are at most 15 characters";
                  if (!all_of(v, "-_.@:")) return "'" + std::string(v) + "' is not a valid interface name";
                  c.interface = std::string(v);
                  return std::nullopt;
              }},
             {"mcast_group",
              [](std::string_view v, Config& c) -> std::optional<std::string> {
                  if (!is_multicast(v))
                      return "'" + std::string(v) + "' is not a multicast address (224.0.0.0/4 or ff00::/8)";
                  c.mcast_group = std::string(v);
                  return std::nullopt;
              }},
             {"port", uint_setter(&Config::port, 1, 65535)},
             {"peers",
              [](std::string_view v, Config& c) -> std::optional<std::string> {
                  c.peers.clear();
                  std::size_t i = 0;
                  while (i < v.size()) {
                      while (i < v.size() && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) ++i;
                      std::size_t start = i;
                      while (i < v.size() && v[i] != ' ' && v[i] != '\t' && v[i] != ',') ++i;
                      if (i == start) break;
                      Peer p;
                      if (auto err = parse_peer(v.substr(start, i - start), p)) return err;
                      c.peers.push_back(p);
                      if (c.peers.size() > 256) return "more than 256 peers";
                  }
                  if (c.peers.empty()) return "no peer addresses given";
                  return std::nullopt;
              }},
             {"mtu", uint_setter(&Config::mtu, 576, 65535)},
             {"ttl", uint_setter(&Config::ttl, 1, 255)},
         }},
        {"crypto",
         {
             {"key_file", path_setter(&Config::key_file)},
             {"next_key_file", path_setter(&Config::next_key_file)},
             {"cipher",
              [](std::string_view v, Config& c) -> std::optional<std::string> {
                  auto cipher = crypto::cipher_from_name(v);
                  if (!cipher) return "'" + std::string(v) + "' is not a cipher (aes-256-gcm or chacha20-poly1305)";
                  c.cipher = *cipher;
                  return std::nullopt;
              }},
         }},
        {"paths",
         {
             {"state_dir", path_setter(&Config::state_dir)},
             {"mount_point", path_setter(&Config::mount_point)},
             {"control_socket",
              [](std::string_view v, Config& c) -> std::optional<std::string> {
                  if (v.front() != '/') return "'" + std::string(v) + "' is not an absolute path";
                  // sockaddr_un holds 108 bytes including the terminating NUL.
                  if (v.size() > 107) return "socket paths are at most 107 characters";
                  c.control_socket = std::string(v);
                  return std::nullopt;
              }},
         }},
        {"tree",
         {
             {"mount", bool_setter(&Config::mount)},
             {"group", name_setter(&Config::group, 32, "-_.", "group name")},
             {"lock_timeout", uint_setter(&Config::lock_timeout, 1, 86400)},
         }},
        {"system",
         {
             {"sched_rr", bool_setter(&Config::sched_rr)},
             // Below the shortest token retransmit interval (5 ms), which it must stay under.
             {"token_linger", uint_setter(&Config::token_linger, 0, 4000)},
         }},
        {"logging",
         {
             {"level",
              [](std::string_view v, Config& c) -> std::optional<std::string> {
                  static const std::map<std::string_view, LogLevel> levels = {
                      {"error", LogLevel::error}, {"warning", LogLevel::warning}, {"notice", LogLevel::notice},
                      {"info", LogLevel::info},   {"debug", LogLevel::debug}};
                  auto it = levels.find(v);
                  if (it == levels.end())
                      return "'" + std::string(v) + "' is not a log level (error, warning, notice, info, debug)";
                  c.log_level = it->second;
                  return std::nullopt;
              }},
         }},
    };
    return s;
}

std::string_view trim(std::string_view s, std::size_t& offset) {
    std::size_t b = 0;
    while (b < s.size() && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
    std::size_t e = s.size();
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
    offset += b;
    return s.substr(b, e - b);
}

bool is_key_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
           ch == '-' || ch == '.';
}

class Parser {
public:
    explicit Parser(std::string_view filename) : filename_(filename) {}

    Result<Config> run(std::string_view text) {
        Config c;
        std::size_t line_no = 0;
        std::size_t at = 0;
        while (at <= text.size() && !failed_) {
            std::size_t nl = text.find('\n', at);
            std::string_view raw = text.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
            ++line_no;
            line(raw, line_no, c);
            if (nl == std::string_view::npos) break;
            at = nl + 1;
        }
        if (failed_) return Error{error_};
        if (section_)
            return fail_at({section_line_, 1}, "section '" + std::string(section_->name) + "' is never closed (add '}')");
        for (const auto& sec : schema()) {
            for (const auto& key : sec.keys) {
                if (!key.required) continue;
                std::string full = std::string(sec.name) + "." + std::string(key.name);
                if (!seen_keys_.count(full)) {
                    auto opened = section_lines_.find(std::string(sec.name));
                    Pos pos{opened == section_lines_.end() ? 1 : opened->second, 1};
                    std::string hint = opened == section_lines_.end()
                                           ? " (add '" + std::string(sec.name) + " { " + std::string(key.name) + ": ... }')"
                                           : "";
                    return fail_at(pos, full + ": required key is missing" + hint);
                }
            }
        }
        return check(c);
    }

private:
    Error fail_at(Pos pos, const std::string& msg) {
        failed_ = true;
        // Escaped as a whole: messages quote values, and a value may hold any byte.
        error_ = escape(std::string(filename_) + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) +
                        ": " + msg);
        return Error{error_};
    }

    void line(std::string_view raw, std::size_t line_no, Config& c) {
        std::size_t hash = raw.find('#');
        if (hash != std::string_view::npos) raw = raw.substr(0, hash);
        std::size_t col = 0;
        std::string_view s = trim(raw, col);
        if (s.empty()) return;
        Pos pos{line_no, col + 1};

        if (s == "}") {
            if (!section_) {
                fail_at(pos, "'}' closes no section");
                return;
            }
            section_ = nullptr;
            return;
        }
        if (s.back() == '{') {
            std::size_t name_col = col;
            std::string_view name = trim(s.substr(0, s.size() - 1), name_col);
            if (name.empty() || !std::all_of(name.begin(), name.end(), is_key_char)) {
                fail_at(pos, "expected 'NAME {' to open a section");
                return;
            }
            if (section_) {
                fail_at(pos, "section '" + std::string(name) + "' inside section '" + std::string(section_->name) +
                                 "': sections do not nest (close it with '}' first)");
                return;
            }
            const SectionSpec* spec = nullptr;
            for (const auto& sec : schema())
                if (sec.name == name) spec = &sec;
            if (!spec && !cluster_wide(name).empty()) {
                fail_at(pos, "section '" + std::string(name) +
                                 "' holds cluster-wide settings: they live in the replicated state, not in "
                                 "conclave.conf (one book). Remove the section and use " + cluster_wide(name));
                return;
            }
            if (!spec) {
                // Listed from the schema itself, so that a new section cannot be left out.
                std::string known;
                for (const auto& sec : schema()) known += (known.empty() ? "" : ", ") + std::string(sec.name);
                fail_at(pos, "unknown section '" + std::string(name) + "' (known: " + known + ")");
                return;
            }
            if (section_lines_.count(std::string(name))) {
                fail_at(pos, "duplicate section '" + std::string(name) + "' (first at line " +
                                 std::to_string(section_lines_[std::string(name)]) + ")");
                return;
            }
            section_lines_[std::string(name)] = line_no;
            section_ = spec;
            section_line_ = line_no;
            return;
        }
        std::size_t colon = s.find(':');
        std::string_view key = s.substr(0, colon == std::string_view::npos ? s.size() : colon);
        std::size_t key_col = col;
        key = trim(key, key_col);
        if (colon == std::string_view::npos || key.empty() || !std::all_of(key.begin(), key.end(), is_key_char)) {
            fail_at(pos, "expected 'key: value', 'section {' or '}'");
            return;
        }
        if (!section_) {
            fail_at(pos, "key '" + std::string(key) + "' outside a section (put it inside e.g. 'network { ... }')");
            return;
        }
        std::string full = std::string(section_->name) + "." + std::string(key);
        const KeySpec* spec = nullptr;
        for (const auto& k : section_->keys)
            if (k.name == key) spec = &k;
        if (!spec && !cluster_wide(key).empty()) {
            fail_at(pos, full + " is cluster-wide: it lives in the replicated state, not in conclave.conf (one book). "
                                "Remove it and use " + cluster_wide(key));
            return;
        }
        if (!spec) {
            std::string known;
            for (const auto& k : section_->keys) known += (known.empty() ? "" : ", ") + std::string(k.name);
            fail_at(pos, full + ": unknown key (section '" + std::string(section_->name) + "' knows: " + known + ")");
            return;
        }
        if (auto it = seen_keys_.find(full); it != seen_keys_.end()) {
            fail_at(pos, full + ": duplicate key (first set at line " + std::to_string(it->second.line) + ")");
            return;
        }
        std::size_t value_col = col + colon + 1;
        std::string_view value = trim(s.substr(colon + 1), value_col);
        Pos vpos{line_no, value_col + 1};
        if (value.empty()) {
            fail_at(vpos, full + ": missing value");
            return;
        }
        if (auto err = spec->set(value, c)) {
            fail_at(vpos, full + ": " + *err);
            return;
        }
        seen_keys_[full] = vpos;
    }

    // Checks that involve more than one key.
    Result<Config> check(Config& c) {
        auto at = [&](const char* key) {
            auto it = seen_keys_.find(key);
            return it == seen_keys_.end() ? Pos{1, 1} : it->second;
        };
        if (c.transport == Transport::unicast && c.peers.empty())
            return fail_at(at("network.transport"), "network.peers: transport unicast needs the peers' addresses");
        if (c.transport == Transport::multicast && !c.peers.empty())
            return fail_at(at("network.peers"), "network.peers: only used with 'transport: unicast'");
        // The mirror case: the unicast transport never reads these, and a setting that
        // silently does nothing misleads whoever reads the file. (network.interface is
        // let through: tools/cluster writes it for both transports; conclave.conf(5) says
        // unicast ignores it.)
        if (c.transport == Transport::unicast)
            for (const char* key : {"network.mcast_group", "network.ttl"})
                if (seen_keys_.count(key))
                    return fail_at(at(key), std::string(key) + ": only used with 'transport: multicast'");
        if (!c.bind_address.empty()) {
            bool v6 = is_ipv6(c.bind_address);
            if (c.transport == Transport::multicast && v6 != is_ipv6(c.mcast_group))
                return fail_at(at(seen_keys_.count("network.mcast_group") ? "network.mcast_group" : "network.bind_address"),
                               "network.mcast_group: " + c.mcast_group + " and bind_address " + c.bind_address +
                                   " are of different address families");
            for (const auto& p : c.peers)
                if (is_ipv6(p.address) != v6)
                    return fail_at(at("network.peers"), "network.peers: " + p.address + " and bind_address " +
                                                            c.bind_address + " are of different address families");
        }
        if (auto err = check_paths(c)) return Error{*err};
        if (!c.next_key_file.empty() && c.next_key_file == c.key_file)
            return fail_at(at("crypto.next_key_file"), "crypto.next_key_file: is the same file as key_file");
        return c;
    }

    // Paths the daemon would trip over at start: a tree mounted over its own state, its
    // control socket or its key, or a socket where a directory must be.
    std::optional<std::string> check_paths(const Config& c) {
        auto at = [&](const std::string& key) {
            auto it = seen_keys_.find(key);
            return it == seen_keys_.end() ? Pos{1, 1} : it->second;
        };
        auto value = [&](const std::string& key) -> const std::string& {
            if (key == "paths.state_dir") return c.state_dir;
            if (key == "paths.mount_point") return c.mount_point;
            if (key == "paths.control_socket") return c.control_socket;
            if (key == "crypto.key_file") return c.key_file;
            return c.next_key_file;
        };
        // Reported at the key of the pair that the file sets last (a default has no line).
        auto clash = [&](const std::string& a, const std::string& b, const std::string& why) {
            const char* relation = " lies inside ";
            if (within(value(b), value(a))) relation = within(value(a), value(b)) ? " is the same path as " : " contains ";
            auto pa = at(a), pb = at(b);
            bool b_later = pb.line > pa.line || (pb.line == pa.line && pb.column > pa.column);
            return fail_at(b_later ? pb : pa,
                           a + ": " + value(a) + relation + b + " " + value(b) + ": " + why).message;
        };
        auto overlap = [&](const std::string& a, const std::string& b) {
            return within(value(a), value(b)) || within(value(b), value(a));
        };
        if (c.mount) {
            if (overlap("paths.mount_point", "paths.state_dir"))
                return clash("paths.mount_point", "paths.state_dir",
                             "the tree mounted there would cover the daemon's state; give them separate directories");
            if (within(value("paths.control_socket"), value("paths.mount_point")))
                return clash("paths.mount_point", "paths.control_socket",
                             "the tree mounted there would hide the socket from conclavectl; put the socket "
                             "outside the mount point");
            for (const char* key : {"crypto.key_file", "crypto.next_key_file"})
                if (!value(key).empty() && within(value(key), value("paths.mount_point")))
                    return clash("paths.mount_point", key,
                                 "the tree mounted there would hide the key (and a stale mount left by a crash "
                                 "would keep the daemon from reading it); keep the key outside the mount point");
        }
        if (within(value("paths.state_dir"), value("paths.control_socket")))
            return clash("paths.control_socket", "paths.state_dir",
                         "the socket cannot be where the state directory is; put it elsewhere");
        if (c.mount && within(value("paths.mount_point"), value("paths.control_socket")))
            return clash("paths.control_socket", "paths.mount_point",
                         "the socket cannot be where the tree is mounted; put it elsewhere");
        return std::nullopt;
    }

    std::string_view filename_;
    const SectionSpec* section_ = nullptr;
    std::size_t section_line_ = 0;
    std::map<std::string, std::size_t> section_lines_;
    std::map<std::string, Pos> seen_keys_;
    bool failed_ = false;
    std::string error_;
};

}  // namespace

std::string node_name_problem(std::string_view name) {
    if (name.empty()) return "the node name is empty";
    if (name.size() > kMaxNodeNameLength)
        return "node name is longer than " + std::to_string(kMaxNodeNameLength) + " characters";
    if (!all_of(name, "-_."))
        return escape("'" + std::string(name) + "' is not a valid node name (letters, digits and '-_.' only)");
    if (std::all_of(name.begin(), name.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        return "'" + std::string(name) +
               "' is not a valid node name (all digits: it would read as a node id; add a letter)";
    return {};
}

std::string escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char ch : s) {
        auto b = static_cast<unsigned char>(ch);
        if (b == 0) {
            out += "\\0";
        } else if (b < 0x20 || b == 0x7F) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[b >> 4];
            out += hex[b & 0xF];
        } else {
            out += ch;
        }
    }
    return out;
}

std::string_view transport_name(Transport t) { return t == Transport::multicast ? "multicast" : "unicast"; }

std::string_view log_level_name(LogLevel l) {
    switch (l) {
        case LogLevel::error: return "error";
        case LogLevel::warning: return "warning";
        case LogLevel::notice: return "notice";
        case LogLevel::info: return "info";
        case LogLevel::debug: return "debug";
    }
    return "?";
}

Result<Config> parse(std::string_view text, std::string_view filename) {
    if (text.size() > kMaxConfigSize)
        return Error{escape(filename) + ":1:1: file is larger than 1 MiB; is this the right file?"};
    return Parser(filename).run(text);
}

Result<Config> load(const std::string& path) {
    std::string shown = escape(path);
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever;
    // what is not a regular file is refused below before anything is read.
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return Error{shown + ": cannot read the config file: " + std::strerror(err) +
                     (err == ENOENT ? " (write one; see conclave.conf(5))" : "")};
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        int err = errno;
        ::close(fd);
        return Error{shown + ": cannot read the config file: " + std::strerror(err)};
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return Error{shown + (S_ISDIR(st.st_mode) ? ": is a directory, not a config file; name the file itself"
                                                  : ": is not a regular file; the config must be one (see conclave.conf(5))")};
    }
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            return Error{shown + ": error while reading the config file: " + std::strerror(err)};
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > kMaxConfigSize) {
            ::close(fd);
            return Error{shown + ":1:1: file is larger than 1 MiB; is this the right file?"};
        }
    }
    ::close(fd);
    return parse(text, path);
}

std::string format(const Config& c) {
    std::ostringstream o;
    o << "cluster {\n    name: " << c.cluster_name << "\n}\n";
    o << "node {\n    id: " << c.node_id << "\n    name: " << c.node_name << "\n}\n";
    o << "network {\n    transport: " << transport_name(c.transport) << "\n";
    if (!c.bind_address.empty()) o << "    bind_address: " << c.bind_address << "\n";
    if (!c.interface.empty()) o << "    interface: " << c.interface << "\n";
    if (c.transport == Transport::multicast) o << "    mcast_group: " << c.mcast_group << "\n";
    o << "    port: " << c.port << "\n";
    if (!c.peers.empty()) {
        o << "    peers:";
        for (const auto& p : c.peers) {
            bool v6 = p.address.find(':') != std::string::npos;
            o << ' ' << (v6 && p.port ? "[" : "") << p.address << (v6 && p.port ? "]" : "");
            if (p.port) o << ':' << p.port;
        }
        o << "\n";
    }
    o << "    mtu: " << c.mtu << "\n";
    if (c.transport == Transport::multicast) o << "    ttl: " << c.ttl << "\n";
    o << "}\n";
    o << "crypto {\n    key_file: " << c.key_file << "\n";
    if (!c.next_key_file.empty()) o << "    next_key_file: " << c.next_key_file << "\n";
    o << "    cipher: " << crypto::cipher_name(c.cipher) << "\n}\n";
    o << "paths {\n    state_dir: " << c.state_dir << "\n    mount_point: " << c.mount_point
      << "\n    control_socket: " << c.control_socket << "\n}\n";
    o << "tree {\n    mount: " << (c.mount ? "yes" : "no") << "\n";
    if (!c.group.empty()) o << "    group: " << c.group << "\n";
    o << "    lock_timeout: " << c.lock_timeout << "\n}\n";
    o << "system {\n    sched_rr: " << (c.sched_rr ? "yes" : "no") << "\n    token_linger: " << c.token_linger
      << "\n}\n";
    o << "logging {\n    level: " << log_level_name(c.log_level) << "\n}\n";
    return o.str();
}

}  // namespace conclave::config
