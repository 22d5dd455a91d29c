// conclavectl(8): the admin tool.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <sys/stat.h>

#include "config/config.h"
#include "crypto/authkey.h"
#include "runtime/control.h"
#include "store/transition.h"

namespace {

constexpr const char* kUsage =
    "usage: conclavectl [-s SOCKET] [-c FILE] [--timeout SECONDS] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  status [--json]              this node's view: quorum, members, replicated state, ring,\n"
    "                               datagram counters (exit 0 quorate, 2 not quorate, 1 error)\n"
    "  links [--json]               who this node hears, and how long ago\n"
    "  counters [--json]            datagram, rejection, ring and group counters\n"
    "  keygen [-o PATH] [--force]   write a new 256-byte cluster authkey (mode 0400)\n"
    "                               to PATH (default /etc/conclave/authkey); refuses to\n"
    "                               overwrite an existing file unless --force is given\n"
    "\n"
    "The replicated tree (paths are absolute and UTF-8, e.g. /nodes/a/config; repeated '/'\n"
    "collapse, a trailing '/' is ignored; '.' and '..' are refused):\n"
    "  put PATH [FILE|-]            write a whole file from FILE or stdin; returns once every\n"
    "                               node of the quorate ring holds it durably\n"
    "  get PATH                     the file's bytes to stdout\n"
    "  ls [-l] [PATH]               one name per line (directories end in /; control characters\n"
    "                               and '\\' escaped as by ls -b, e.g. \\n, \\033); -l: details\n"
    "  rm PATH                      remove a file\n"
    "  mkdir PATH                   make a directory\n"
    "  rmdir PATH                   remove an empty directory\n"
    "  mv [--no-replace|--exchange] FROM TO\n"
    "                               rename atomically (replaces TO unless --no-replace;\n"
    "                               --exchange swaps the two)\n"
    "\n"
    "The cluster:\n"
    "  create                       a new cluster whose node list is this node (once, on the\n"
    "                               first node); refused if this node has a cluster already\n"
    "  node add NAME --id N [--votes V]\n"
    "                               add a node to the node list (on a quorate member); the new\n"
    "                               node then joins with an empty state and syncs\n"
    "  node remove ID|NAME          remove a node from the node list (stop it first)\n"
    "  votes ID|NAME V              change a node's votes (1 to 255); also 'node votes'\n"
    "  node list [--json]           the node list in the replicated state\n"
    "                               (node list changes go one at a time: another one from\n"
    "                               this node while one is in progress is refused, EBUSY)\n"
    "  quorum set OPTION VALUE      a cluster-wide quorum option (votequorum's):\n"
    "                                 two_node 0|1, wait_for_all 0|1, last_man_standing 0|1\n"
    "                                 (also on/off, yes/no), last_man_standing_window MS,\n"
    "                                 auto_tie_breaker off|lowest|highest, or\n"
    "                                 auto_tie_breaker list --nodes ID,ID,...\n"
    "  quorum show [--json]         the cluster's quorum options\n"
    "  totem set KEY VALUE          a cluster-wide ring setting (ms unless noted): token,\n"
    "                               consensus, join, merge, hold, token_retransmit,\n"
    "                               window_size, max_messages; VALUE 0 or 'default' resets\n"
    "  totem show [--json]          the ring settings in force, and which are set\n"
    "  limits set KEY VALUE         a cluster limit (bytes; K and M suffixes for KiB, MiB):\n"
    "                               max_file_size (4K to 2M, default 1M), max_total_size\n"
    "                               (1M to 128M, default 128M), max_name (16 to 255);\n"
    "                               VALUE 0 or 'default' resets; a lower limit binds new\n"
    "                               writes only\n"
    "  limits show [--json]         the cluster limits in force\n"
    "  expected N                   lower expected votes on this partition to recover from a\n"
    "                               fragmented cluster (refused below the votes present or\n"
    "                               above the node list's); never written to the cluster\n"
    "                               state, cleared when every node is back. Writes made under\n"
    "                               it may be replaced when partitions merge: see conclavectl(8)\n"
    "  help                         show this text\n"
    "\n"
    "Options:\n"
    "  -s, --socket PATH            the daemon's control socket; without -s: paths.control_socket\n"
    "                               of the -c file, else $CONCLAVE_SOCKET, else paths.control_socket\n"
    "                               of /etc/conclave/conclave.conf, else /run/conclave/control.sock\n"
    "  -c, --config FILE            read the socket path from this conclave.conf (an error if it\n"
    "                               cannot be read or parsed)\n"
    "  --timeout SECONDS            how long to wait for the daemon's answer (decimal, default 30)\n"
    "  -h, --help                   show this text\n"
    "  --version                    show the version\n"
    "\n"
    "Errors are printed as 'conclavectl: COMMAND PATH: reason' (errno text, e.g. 'Read-only\n"
    "file system' when this node's partition is not quorate).\n"
    "Each option at most once. Exit status: 0 success, 1 failure, 2 bad usage (status: 2 also\n"
    "when not quorate; a usage error prints nothing on stdout). See conclavectl(8).\n";

int usage_error(const std::string& msg) {
    std::fprintf(stderr, "conclavectl: %s\n(see 'conclavectl --help')\n", msg.c_str());
    return 2;
}

using conclave::runtime::utf8_sequence;
using conclave::runtime::valid_utf8;

// A name as text for a terminal, in the C-style escapes of GNU ls -b: names in the tree
// may hold any byte but '/' and NUL, and printed raw a newline would look like two
// entries and an escape sequence would reach the terminal. Control characters (C0, DEL
// and the C1 range), bytes that are not UTF-8 and the backslash itself are escaped;
// UTF-8 text and spaces stay as they are. --json output is exact instead.
std::string escaped(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size();) {
        std::size_t n = utf8_sequence(s, i);
        auto c = static_cast<unsigned char>(s[i]);
        bool c1 = n == 2 && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0;
        if (n > 1 && !c1) {
            out.append(s.substr(i, n));
            i += n;
            continue;
        }
        // One byte: printable ASCII as is, the rest escaped (a C1 control byte by byte).
        for (std::size_t k = 0; k < (c1 ? 2u : 1u); ++k, ++i) {
            c = static_cast<unsigned char>(s[i]);
            const char* named = nullptr;
            switch (c) {
                case '\\': named = "\\\\"; break;
                case '\a': named = "\\a"; break;
                case '\b': named = "\\b"; break;
                case '\t': named = "\\t"; break;
                case '\n': named = "\\n"; break;
                case '\v': named = "\\v"; break;
                case '\f': named = "\\f"; break;
                case '\r': named = "\\r"; break;
                default: break;
            }
            if (named) {
                out += named;
            } else if (c < 0x20 || c >= 0x7f) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\%03o", c);
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    return out;
}

// Whether everything printed to standard output reached it (a full disk, a closed pipe
// or descriptor): a command whose output was lost has failed. Reports it once, after
// "conclavectl: CONTEXT: ".
bool g_stdout_failed = false;
bool stdout_written(const std::string& context) {
    if (g_stdout_failed) return false;
    // A write that failed inside an earlier printf left its errno (nothing but output runs
    // between the last printf and here); the flush may then have nothing left to write.
    int earlier = errno;
    errno = 0;
    if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return true;
    int err = errno != 0 ? errno : earlier != 0 ? earlier : EIO;
    g_stdout_failed = true;
    std::fprintf(stderr, "conclavectl: %scannot write stdout: %s\n", context.empty() ? "" : (context + ": ").c_str(),
                 std::strerror(err));
    return false;
}

// An argument echoed in a message.
std::string in_quotes(std::string_view s) { return "'" + escaped(s) + "'"; }

// The control protocol is JSON, which carries only UTF-8 text: a path or name in another
// encoding cannot be sent at all (dumping the request would throw). Returns 0, or the
// usage error's exit status once printed.
int check_utf8(const std::string& cmd, const char* what, std::string_view arg) {
    if (valid_utf8(arg)) return 0;
    std::string why = std::string(what) == "path"
                          ? "the control protocol is JSON, which carries only UTF-8, so such names are reachable "
                            "only through the mounted tree (paths.mount_point)"
                          : "the control protocol is JSON, which carries only UTF-8";
    return usage_error(cmd + ": the " + what + " " + in_quotes(arg) + " is not valid UTF-8; " + why);
}

// Every option at most once: given twice, which one was meant is a guess.
// Returns 0, or the usage error's exit status once printed.
int once(std::set<std::string>& seen, const std::string& cmd, const std::string& option) {
    if (seen.insert(option).second) return 0;
    return usage_error(cmd + ": " + option + " given twice");
}

// JSON of the daemon's answers: never throws on a string that is not UTF-8.
std::string json_text(const nlohmann::json& j, int indent = -1) {
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// --json, once, and nothing else: the options of the read-only views.
int json_option(const std::string& cmd, const std::vector<std::string_view>& args, std::size_t from, bool& as_json) {
    std::set<std::string> seen;
    for (std::size_t i = from; i < args.size(); ++i) {
        if (args[i] != "--json") return usage_error(cmd + ": unknown argument " + in_quotes(args[i]));
        if (int rc = once(seen, cmd, "--json")) return rc;
        as_json = true;
    }
    return 0;
}

int cmd_keygen(const std::vector<std::string_view>& args) {
    std::string path = conclave::crypto::kDefaultAuthKeyPath;
    bool force = false;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view a = args[i];
        if (a == "-o" || a == "--output") {
            if (i + 1 >= args.size()) return usage_error("keygen: " + std::string(a) + " needs a path");
            if (int rc = once(seen, "keygen", "-o/--output")) return rc;
            path = std::string(args[++i]);
            if (path.empty()) return usage_error("keygen: the output path is empty");
        } else if (a.starts_with("--output=")) {
            if (int rc = once(seen, "keygen", "-o/--output")) return rc;
            path = std::string(a.substr(9));
            if (path.empty()) return usage_error("keygen: the output path is empty");
        } else if (a == "-f" || a == "--force") {
            if (int rc = once(seen, "keygen", "-f/--force")) return rc;
            force = true;
        } else if (a == "-h" || a == "--help") {
            std::fputs("usage: conclavectl keygen [-o PATH] [--force]\n", stdout);
            return 0;
        } else {
            return usage_error("keygen: unknown argument " + in_quotes(a));
        }
    }
    auto st = conclave::crypto::write_auth_key(path, force);
    if (!st) {
        std::fprintf(stderr, "conclavectl: keygen: %s\n", st.error().c_str());
        return 1;
    }
    std::printf("wrote a new authkey to %s (256 bytes, mode 0400); copy it to every node, keeping the mode\n",
                path.c_str());
    return 0;
}

std::optional<std::string> g_socket;       // -s
std::optional<std::string> g_config_path;  // -c
double g_timeout_s = 30;                   // --timeout

// The control socket and where its path came from (for the hint when it is wrong).
struct SocketChoice {
    std::string path;
    std::string hint;  // what to check
};

// The first of: -s, paths.control_socket of -c's file, $CONCLAVE_SOCKET, paths.control_socket
// of the default conclave.conf, the default socket. Options given on the command line win
// over the environment; a file named with -c must be readable and valid (a wrong file must
// not quietly lead to some other daemon). Prints the error and returns nullopt.
std::optional<SocketChoice> choose_socket() {
    namespace config = conclave::config;
    if (g_socket) return SocketChoice{*g_socket, "is -s right?"};
    if (g_config_path) {
        auto cfg = config::load(*g_config_path);
        if (!cfg) {
            std::fprintf(stderr, "conclavectl: %s\n(-c names the conclave.conf to take the control socket from)\n",
                         cfg.error().c_str());
            return std::nullopt;
        }
        return SocketChoice{cfg->control_socket, "is paths.control_socket in " + *g_config_path + " right?"};
    }
    if (const char* env = std::getenv(conclave::runtime::kControlSocketEnv); env && *env)
        return SocketChoice{env, std::string("is $") + conclave::runtime::kControlSocketEnv + " right?"};
    // No conclave.conf at the default place is fine (the default socket then); one that is
    // there but broken is reported, not guessed around.
    struct stat st {};
    if (::stat(config::kDefaultConfigPath, &st) != 0 && errno == ENOENT)
        return SocketChoice{conclave::runtime::kDefaultControlSocket, "the default path; give conclaved's socket with -s"};
    auto cfg = config::load(config::kDefaultConfigPath);
    if (!cfg) {
        std::fprintf(stderr, "conclavectl: %s\n(the control socket's path comes from it; give it with -s instead)\n",
                     cfg.error().c_str());
        return std::nullopt;
    }
    return SocketChoice{cfg->control_socket,
                        std::string("is paths.control_socket in ") + config::kDefaultConfigPath + " right?"};
}

// The socket, chosen once. Prints the error and returns nullopt.
std::optional<SocketChoice> socket_choice() {
    static std::optional<std::optional<SocketChoice>> chosen;
    if (!chosen) chosen = choose_socket();
    return *chosen;
}

void row(const char* label, const std::string& value) { std::printf("%-17s %s\n", label, value.c_str()); }

std::chrono::milliseconds timeout() {
    return std::chrono::milliseconds(static_cast<long long>(g_timeout_s * 1000));
}

std::string seconds_text() {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g s", g_timeout_s);
    return buf;
}

// Sends one request. On failure prints "conclavectl: CONTEXT: reason" and returns nullopt.
// A daemon-side error with an errno prints the errno's text (and the node's reason).
// `explain`: what an errno means for this command, when the daemon gave no reason.
std::optional<nlohmann::json> call(const nlohmann::json& request, const std::string& context,
                                   const std::map<int, std::string>& explain = {}) {
    auto prefix = context.empty() ? std::string("conclavectl: ") : "conclavectl: " + context + ": ";
    auto socket = socket_choice();
    if (!socket) return std::nullopt;
    // Something else at the socket's path: connect() would say ECONNREFUSED or ENOTSOCK,
    // read as "conclaved is not running", which sends the operator the wrong way.
    if (struct stat st {}; ::stat(socket->path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
        std::fprintf(stderr, "%s%s is not a socket but a %s (%s)\n", prefix.c_str(), in_quotes(socket->path).c_str(),
                     S_ISDIR(st.st_mode) ? "directory" : S_ISREG(st.st_mode) ? "regular file" : "special file",
                     socket->hint.c_str());
        return std::nullopt;
    }
    auto r = conclave::runtime::control_request(socket->path, request, timeout());
    if (!r) {
        std::string why = r.error();
        if (why.find("within the timeout") != std::string::npos)
            why = "no answer from conclaved within " + seconds_text() +
                  (request.value("cmd", "") == "status" || request.value("cmd", "") == "get" ||
                           request.value("cmd", "") == "ls"
                       ? std::string()
                       : std::string(" (the change may still be applied; check with 'conclavectl status')"));
        std::fprintf(stderr, "%s%s\n", prefix.c_str(), why.c_str());
        return std::nullopt;
    }
    const auto& reply = r.value();
    if (!reply.value("ok", false)) {
        std::string why;
        if (auto e = reply.find("errno"); e != reply.end() && e->is_number_integer()) {
            why = std::strerror(e->get<int>());
            if (auto w = reply.find("why"); w != reply.end() && w->is_string() && !w->get_ref<const std::string&>().empty())
                why += " (" + w->get<std::string>() + ")";
            else if (auto x = explain.find(e->get<int>()); x != explain.end())
                why += " (" + x->second + ")";
            else if (auto m = reply.find("error"); m != reply.end() && m->is_string() && m->get_ref<const std::string&>() != why)
                why += " (" + m->get<std::string>() + ")";
        } else {
            why = reply.value("error", std::string("the daemon refused"));
        }
        std::fprintf(stderr, "%s%s\n", prefix.c_str(), why.c_str());
        return std::nullopt;
    }
    return reply;
}

// Fetches the daemon's status; prints the error and returns nullopt.
std::optional<nlohmann::json> fetch_status() { return call({{"cmd", "status"}}, ""); }

int cmd_status(const std::vector<std::string_view>& args) {
    bool as_json = false;
    if (int rc = json_option("status", args, 0, as_json)) return rc;
    auto status = fetch_status();
    if (!status) return 1;
    // Not const: operator[] on a const json asserts (aborts) on a missing key, while on
    // this copy it gives null; an answer of the wrong shape then ends in a type_error,
    // which main() reports.
    auto& s = *status;
    bool quorate = s.value("quorate", false);
    if (as_json) {
        std::printf("%s\n", json_text(s, 2).c_str());
        return quorate ? 0 : 2;
    }
    // The layout of corosync-quorumtool -siH (what `pvecm status` shows), then conclave's own.
    char date[64];
    std::time_t t = std::time(nullptr);
    std::strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", std::localtime(&t));
    auto hexid = [](unsigned long long v) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "0x%08llx", v);
        return std::string(buf);
    };
    auto& q = s["quorum"];
    std::puts("Quorum information\n------------------");
    row("Date:", date);
    row("Quorum provider:", "conclave");
    row("Nodes:", std::to_string(s["members"].size()));
    row("Node ID:", hexid(s.value("node_id", 0ull)));
    row("Ring ID:", s["ring"].is_string() ? s["ring"].get<std::string>()
                                          : std::string("none (") + s.value("ring_state", std::string("?")) + ")");
    row("Quorate:", quorate ? "Yes" : "No");
    std::puts("\nVotequorum information\n----------------------");
    row("Expected votes:", std::to_string(q.value("expected_votes", 0)));
    row("Highest expected:", std::to_string(q.value("highest_expected", 0)));
    row("Total votes:", std::to_string(q.value("total_votes", 0)));
    row("Quorum:", std::to_string(q.value("quorum", 0)) + (quorate ? " " : " Activity blocked"));
    // corosync-quorumtool's flag names, in its order; ExpectedOverride is conclave's
    // (`conclavectl expected` in force on this partition).
    std::string flags;
    bool override_expected = false;
    if (q.contains("flags") && q["flags"].is_object()) {
        const auto& f = q["flags"];
        if (f.value("two_node", false)) flags += "2Node ";
        if (quorate) flags += "Quorate ";
        if (f.value("wait_for_all", false)) flags += "WaitForAll ";
        if (f.value("last_man_standing", false)) flags += "LastManStanding ";
        if (f.value("auto_tie_breaker", false)) flags += "AutoTieBreaker ";
        override_expected = f.value("override_expected", false);
        if (override_expected) flags += "ExpectedOverride ";
    } else if (quorate) {
        flags += "Quorate ";
    }
    row("Flags:", flags);
    if (q.value("waiting_for_all", false))
        row("", "waiting for all nodes: wait_for_all holds quorum back until every node was present at once");
    if (q.value("last_man_standing_unsettled", 0) > 0)
        row("", "a last_man_standing lowering arrived as a configuration ended: quorum also needs a majority of its "
                "nodes until a later lowering, a raise or the whole node list settles it");
    if (override_expected)
        row("", "expected votes lowered by an operator (conclavectl expected); cleared when every node is back");
    std::puts("\nMembership information\n----------------------");
    std::printf("%10s %10s %s\n", "Nodeid", "Votes", "Name");
    for (const auto& m : s["members"]) {
        // Votes come from the node list in the replicated state: 0 for a ring member
        // that is not in it (yet).
        std::string name = m.contains("name") ? escaped(m.value("name", std::string())) : "(not in the node list)";
        name += " " + m.value("address", std::string("?"));
        if (m.value("local", false)) name += " (local)";
        std::printf("%s %10d %s\n", hexid(m.value("node_id", 0ull)).c_str(), m.value("votes", 0), name.c_str());
    }
    std::puts("\nState information\n-----------------");
    auto& st = s["state"];
    if (st.is_object()) {
        row("Cluster id:", st["cluster_id"].is_string() ? st["cluster_id"].get<std::string>()
                                                        : std::string("none (run 'conclavectl create' on the first "
                                                                      "node, 'conclavectl node add' for the others)"));
        row("Phase:", st.value("phase", std::string("?")) +
                          (st["sync_source"].is_number() ? ", source node " + json_text(st["sync_source"]) : std::string()));
        row("Version:", std::to_string(st.value("version", 0ull)));
        row("Epoch:", std::to_string(st.value("epoch", 0ull)));
        row("Hash:", st.value("hash", std::string("?")).substr(0, 16));
        row("Content hash:", st.value("content_hash", std::string("?")).substr(0, 16));
        row("Node list:", std::to_string(st["nodes"].size()) + " nodes, " + std::to_string(q.value("expected_votes", 0)) +
                              " votes");
        row("Pending:", std::to_string(st.value("pending", 0ull)) + " requests, " +
                            std::to_string(st.value("outstanding_jobs", 0ull)) + " store jobs");
        // The disk under every write (each waits for every node's journal fdatasync).
        // (Looked up with find: operator[] on a missing key of a const object is undefined.)
        const nlohmann::json* f = nullptr;
        if (auto a = st.find("apply"); a != st.end() && a->is_object())
            if (auto l = a->find("latency_us"); l != a->end() && l->is_object())
                if (auto x = l->find("fsync"); x != l->end() && x->is_object()) f = &*x;
        if (f && f->value("samples", 0ull) > 0)
            row("Journal fsync:", "p50 " + std::to_string(f->value("p50", 0ull)) + " µs, p99 " +
                                      std::to_string(f->value("p99", 0ull)) + " µs, max " +
                                      std::to_string(f->value("max", 0ull)) + " µs (last " +
                                      std::to_string(f->value("samples", 0ull)) + " commits)");
    }
    std::puts("\nNode information\n----------------");
    row("Cluster:", escaped(s.value("cluster", std::string("?"))));
    row("Node:", std::to_string(s.value("node_id", 0u)) + " (" + escaped(s.value("node_name", std::string("?"))) + ")");
    row("Transport:", s.value("transport", std::string("?")) + ", port " + std::to_string(s.value("port", 0)));
    row("Ring state:", s.value("ring_state", std::string("?")));
    if (auto t = s.find("tree"); t != s.end() && t->is_object()) {
        bool mounted = t->value("mounted", false);
        std::string where = t->value("mount_point", std::string("?"));
        row("Tree:", mounted ? "mounted at " + where + (t->value("local_mode", false) ? " (local mode)" : "")
                             : "not mounted (tree.mount: no)");
    }
    std::puts("\nDatagrams\n---------");
    const auto& d = s["datagrams"];
    for (const char* k : {"sent", "received", "authenticated", "send_errors", "unroutable"}) {
        std::string label = std::string(k) + ":";
        label[0] = static_cast<char>(std::toupper(label[0]));
        std::replace(label.begin(), label.end(), '_', ' ');
        row(label.c_str(), std::to_string(d.value(k, 0ull)));
    }
    std::string rejected;
    for (const auto& [reason, n] : s["rejected"].items())
        rejected += (rejected.empty() ? "" : ", ") + reason + " " + json_text(n);
    row("Rejected:", rejected);
    return quorate ? 0 : 2;
}

int cmd_links(const std::vector<std::string_view>& args) {
    bool as_json = false;
    if (int rc = json_option("links", args, 0, as_json)) return rc;
    auto s = fetch_status();
    if (!s) return 1;
    if (as_json) {
        std::printf("%s\n", json_text((*s)["links"], 2).c_str());
        return 0;
    }
    // Who this node hears: a peer missing here, or heard long ago, while it is in the
    // ring elsewhere, points at one-way or non-transitive connectivity.
    std::printf("%10s  %-40s %s\n", "Nodeid", "Address", "Last heard");
    for (const auto& l : (*s)["links"]) {
        unsigned id = l.value("node", 0u);
        double ago = l.value("last_heard_ms_ago", -1.0);
        std::printf("%10u  %-40s %.0f ms ago%s\n", id, escaped(l.value("address", std::string("?"))).c_str(), ago,
                    l.value("in_ring", false) ? "" : "  (not in this node's ring)");
    }
    return 0;
}

int cmd_counters(const std::vector<std::string_view>& args) {
    bool as_json = false;
    if (int rc = json_option("counters", args, 0, as_json)) return rc;
    auto s = fetch_status();
    if (!s) return 1;
    nlohmann::json c{{"datagrams", (*s)["datagrams"]},
                     {"rejected", (*s)["rejected"]},
                     {"ring", (*s)["ring_counters"]},
                     {"groups", (*s)["groups"]},
                     {"configuration_changes", (*s)["configuration_changes"]}};
    if (as_json) {
        std::printf("%s\n", json_text(c, 2).c_str());
        return 0;
    }
    for (const auto& [section, values] : c.items()) {
        if (!values.is_object()) {
            std::printf("%s: %s\n", section.c_str(), json_text(values).c_str());
            continue;
        }
        for (const auto& [k, v] : values.items()) std::printf("%s.%s: %s\n", section.c_str(), escaped(k).c_str(), json_text(v).c_str());
    }
    return 0;
}

// ---- The replicated tree ----

// "a//b/" -> "a/b": repeated slashes collapse and a trailing one is ignored, as in POSIX
// path resolution; the daemon checks the rest ('.', '..', relative, length).
std::string clean_path(std::string_view p) {
    std::string out;
    for (char c : p) {
        if (c == '/' && !out.empty() && out.back() == '/') continue;
        out += c;
    }
    if (out.size() > 1 && out.back() == '/') out.pop_back();
    return out;
}

// Files travel in base64 inside a JSON line (control.h's kMaxRequest); nothing beyond the
// largest max_file_size the cluster can be given is accepted anyway.
constexpr std::size_t kMaxPut = 2u << 20;
static_assert(kMaxPut * 4 / 3 + 65536 < conclave::runtime::kMaxRequest);

bool read_all(std::FILE* f, std::string& out) {
    char buf[65536];
    for (;;) {
        std::size_t n = std::fread(buf, 1, sizeof buf, f);
        out.append(buf, n);
        if (out.size() > kMaxPut) return true;  // the caller reports EFBIG
        if (n < sizeof buf) return !std::ferror(f);
    }
}

int cmd_put(const std::vector<std::string_view>& args) {
    if (args.empty() || args.size() > 2) return usage_error("put needs PATH [FILE|-]");
    if (int rc = check_utf8("put", "path", args[0])) return rc;
    std::string path = clean_path(args[0]);
    std::string ctx = "put " + escaped(path);
    std::string data;
    std::string source = args.size() == 2 ? std::string(args[1]) : "-";
    if (source == "-") {
        if (!read_all(stdin, data)) {
            std::fprintf(stderr, "conclavectl: %s: cannot read stdin: %s\n", ctx.c_str(), std::strerror(errno));
            return 1;
        }
    } else {
        std::FILE* f = std::fopen(source.c_str(), "rb");
        if (!f) {
            std::fprintf(stderr, "conclavectl: %s: %s: %s\n", ctx.c_str(), escaped(source).c_str(), std::strerror(errno));
            return 1;
        }
        bool ok = read_all(f, data);
        int err = errno;
        std::fclose(f);
        if (!ok) {
            std::fprintf(stderr, "conclavectl: %s: %s: %s\n", ctx.c_str(), escaped(source).c_str(), std::strerror(err));
            return 1;
        }
    }
    if (data.size() > kMaxPut) {
        std::fprintf(stderr, "conclavectl: %s: %s\n", ctx.c_str(), std::strerror(EFBIG));
        return 1;
    }
    return call({{"cmd", "put"}, {"path", path}, {"data", conclave::runtime::base64_encode(data)}}, ctx) ? 0 : 1;
}

int cmd_get(const std::vector<std::string_view>& args) {
    if (args.size() != 1) return usage_error("get needs PATH");
    if (int rc = check_utf8("get", "path", args[0])) return rc;
    std::string path = clean_path(args[0]);
    std::string ctx = "get " + escaped(path);
    auto r = call({{"cmd", "get"}, {"path", path}}, ctx);
    if (!r) return 1;
    std::string data;
    if (!conclave::runtime::base64_decode((*r).value("data", std::string()), data)) {
        std::fprintf(stderr, "conclavectl: %s: the daemon's answer is malformed\n", ctx.c_str());
        return 1;
    }
    std::fwrite(data.data(), 1, data.size(), stdout);
    return stdout_written(ctx) ? 0 : 1;
}

std::string mode_text(bool dir, unsigned mode) {
    std::string s = dir ? "d" : "-";
    const char* rwx = "rwxrwxrwx";
    for (int i = 0; i < 9; ++i) s += (mode & (0400u >> i)) ? rwx[i] : '-';
    return s;
}

int cmd_ls(const std::vector<std::string_view>& args) {
    bool longer = false;
    std::optional<std::string> path;
    std::set<std::string> seen;
    for (auto a : args) {
        if (a == "-l") {
            if (int rc = once(seen, "ls", "-l")) return rc;
            longer = true;
        } else if (!path && !a.starts_with("-")) {
            if (int rc = check_utf8("ls", "path", a)) return rc;
            path = clean_path(a);
        } else {
            return usage_error("ls: unknown argument " + in_quotes(a));
        }
    }
    if (!path) path = "/";
    auto r = call({{"cmd", "ls"}, {"path", *path}}, "ls " + escaped(*path));
    if (!r) return 1;
    for (const auto& e : (*r)["entries"]) {
        bool dir = e.value("dir", false);
        std::string name = escaped(e.value("name", std::string("?"))) + (dir ? "/" : "");
        if (!longer) {
            std::printf("%s\n", name.c_str());
            continue;
        }
        std::time_t t = static_cast<std::time_t>(e.value("mtime_us", 0ull) / 1000000);
        char date[32];
        std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
        std::printf("%s %10llu %s v%-8llu node %-4u %s\n", mode_text(dir, e.value("mode", 0u)).c_str(),
                    static_cast<unsigned long long>(e.value("size", 0ull)), date,
                    static_cast<unsigned long long>(e.value("version", 0ull)), e.value("writer", 0u), name.c_str());
    }
    return 0;
}

int cmd_path_op(const char* cmd, const std::vector<std::string_view>& args) {
    if (args.size() != 1) return usage_error(std::string(cmd) + " needs PATH");
    if (int rc = check_utf8(cmd, "path", args[0])) return rc;
    std::string path = clean_path(args[0]);
    return call({{"cmd", cmd}, {"path", path}}, std::string(cmd) + " " + escaped(path)) ? 0 : 1;
}

int cmd_mv(const std::vector<std::string_view>& args) {
    bool no_replace = false, exchange = false;
    std::vector<std::string> paths;
    std::set<std::string> seen;
    for (auto a : args) {
        if (a == "--no-replace" || a == "--exchange") {
            if (int rc = once(seen, "mv", std::string(a))) return rc;
            (a == "--no-replace" ? no_replace : exchange) = true;
        } else if (a.starts_with("-") && a.size() > 1) {
            return usage_error("mv: unknown option " + in_quotes(a));
        } else {
            if (int rc = check_utf8("mv", "path", a)) return rc;
            paths.push_back(clean_path(a));
        }
    }
    if (paths.size() != 2) return usage_error("mv needs FROM TO");
    if (no_replace && exchange) return usage_error("mv: --no-replace and --exchange exclude each other");
    return call({{"cmd", "mv"}, {"from", paths[0]}, {"to", paths[1]}, {"no_replace", no_replace}, {"exchange", exchange}},
                "mv " + escaped(paths[0]) + " " + escaped(paths[1]))
               ? 0
               : 1;
}

// ---- The cluster ----

int cmd_create(const std::vector<std::string_view>& args) {
    if (!args.empty()) return usage_error("create takes no arguments");
    auto r = call({{"cmd", "create"}}, "create");
    if (!r) return 1;
    std::printf("created a new cluster with this node as its only member; add the others with\n"
                "'conclavectl node add NAME --id N' (one at a time)\n");
    return 0;
}

std::optional<std::uint64_t> parse_number(std::string_view s) {
    if (s.empty() || s.size() > 10) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v;
}

// Node ops answer with errnos from the node list rules; say what they mean here.
int node_call(const nlohmann::json& request, const std::string& ctx) {
    static const std::map<int, std::string> explain{
        {EEXIST, "a node with this id or name is in the node list already"},
        {ENOENT, "no such node in the node list"},
        {EBUSY, "the last node cannot be removed"},
        {EINVAL, "invalid id, name or votes"},
        {EAGAIN, "the ring is forming or syncing; try again in a moment"},
    };
    auto reply = call(request, ctx, explain);
    if (!reply) return 1;
    if (auto w = reply->find("warning"); w != reply->end() && w->is_string())
        std::fprintf(stderr, "conclavectl: %s: warning: %s\n", ctx.c_str(), w->get_ref<const std::string&>().c_str());
    return 0;
}

// A node named on the command line: an id or a name (the daemon resolves names against
// the node list).
std::optional<std::string> node_ref(std::string_view a) {
    if (a.empty() || a.size() > conclave::store::kMaxNodeName || a.starts_with("-") || !valid_utf8(a))
        return std::nullopt;
    if (auto id = parse_number(a); id && (*id == 0 || *id > 0xffffffffu)) return std::nullopt;
    return std::string(a);
}

int cmd_votes(const std::vector<std::string_view>& args, const std::string& name = "votes") {
    if (args.size() != 2) return usage_error(name + " needs NODE VOTES (NODE: an id or a name)");
    auto node = node_ref(args[0]);
    if (!node) {
        if (int rc = check_utf8(name, "node name", args[0])) return rc;
        return usage_error(name + ": " + in_quotes(args[0]) + " is neither a node id nor a node name");
    }
    auto votes = parse_number(args[1]);
    if (!votes || *votes == 0 || *votes > 255)
        return usage_error(name + ": votes are 1 to 255, not " + in_quotes(args[1]));
    return node_call({{"cmd", "node.votes"}, {"node", *node}, {"votes", *votes}}, name + " " + escaped(args[0]));
}

int cmd_node(const std::vector<std::string_view>& args) {
    if (args.empty()) return usage_error("node needs add, remove, votes or list");
    std::string_view sub = args[0];
    if (sub == "list") {
        bool as_json = false;
        if (int rc = json_option("node list", args, 1, as_json)) return rc;
        auto s = fetch_status();
        if (!s) return 1;
        const auto& nodes = (*s)["state"]["nodes"];
        if (as_json) {
            std::printf("%s\n", json_text(nodes, 2).c_str());
            return 0;
        }
        std::set<unsigned> in_ring;
        for (const auto& m : (*s)["members"]) in_ring.insert(m.value("node_id", 0u));
        std::printf("%10s %6s  %-20s %s\n", "Nodeid", "Votes", "Name", "In this ring");
        for (const auto& n : nodes)
            std::printf("%10u %6u  %-20s %s\n", n.value("id", 0u), n.value("votes", 0u),
                        escaped(n.value("name", std::string("?"))).c_str(), in_ring.count(n.value("id", 0u)) ? "yes" : "no");
        return 0;
    }
    if (sub == "add") {
        std::optional<std::string> name;
        std::optional<std::uint64_t> id, votes;
        std::set<std::string> seen;
        for (std::size_t i = 1; i < args.size(); ++i) {
            std::string_view a = args[i];
            if (a == "--id" || a == "--votes") {
                if (i + 1 >= args.size()) return usage_error("node add: " + std::string(a) + " needs a number");
                if (int rc = once(seen, "node add", std::string(a))) return rc;
                auto v = parse_number(args[++i]);
                if (!v) return usage_error("node add: " + std::string(a) + " needs a number, not " + in_quotes(args[i]));
                (a == "--id" ? id : votes) = v;
            } else if (!name && !a.starts_with("-")) {
                if (int rc = check_utf8("node add", "node name", a)) return rc;
                name = std::string(a);
            } else {
                return usage_error("node add: unknown argument " + in_quotes(a));
            }
        }
        if (!name || !id) return usage_error("node add needs NAME --id N");
        nlohmann::json req{{"cmd", "node.add"}, {"name", *name}, {"id", *id}};
        if (votes) req["votes"] = *votes;
        return node_call(req, "node add " + escaped(*name));
    }
    if (sub == "remove") {
        if (args.size() != 2) return usage_error("node remove needs ID or NAME");
        auto node = node_ref(args[1]);
        if (!node) {
            if (int rc = check_utf8("node remove", "node name", args[1])) return rc;
            return usage_error("node remove: " + in_quotes(args[1]) + " is neither a node id nor a node name");
        }
        return node_call({{"cmd", "node.remove"}, {"node", *node}}, "node remove " + escaped(args[1]));
    }
    if (sub == "votes") return cmd_votes(std::vector<std::string_view>(args.begin() + 1, args.end()), "node votes");
    return usage_error("node: unknown subcommand " + in_quotes(sub));
}

// ---- Quorum and ring settings ----

std::optional<bool> parse_bool(std::string_view v) {
    std::string s(v);
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (s == "1" || s == "on" || s == "yes" || s == "true") return true;
    if (s == "0" || s == "off" || s == "no" || s == "false") return false;
    return std::nullopt;
}

int cmd_quorum(const std::vector<std::string_view>& args) {
    if (args.empty()) return usage_error("quorum needs set or show");
    if (args[0] == "show") {
        bool as_json = false;
        if (int rc = json_option("quorum show", args, 1, as_json)) return rc;
        auto s = fetch_status();
        if (!s) return 1;
        auto& q = (*s)["quorum"];  // not const: see cmd_status
        auto& o = q["options"];
        if (as_json) {
            std::printf("%s\n", json_text(o, 2).c_str());
            return 0;
        }
        auto onoff = [&](const char* k) { return o.value(k, false) ? std::string("1 (on)") : std::string("0 (off)"); };
        std::printf("%-26s %s\n", "two_node", (onoff("two_node") + (q["flags"].value("two_node", false)
                                                                         ? ", in force"
                                                                         : o.value("two_node", false)
                                                                               ? ", not in force (the node list does not have "
                                                                                 "exactly two nodes)"
                                                                               : ""))
                                                 .c_str());
        std::printf("%-26s %s\n", "wait_for_all",
                    (onoff("wait_for_all") + (o.value("two_node", false) && !o.value("wait_for_all", false)
                                                  ? " (implied by two_node)"
                                                  : ""))
                        .c_str());
        std::printf("%-26s %s\n", "last_man_standing", onoff("last_man_standing").c_str());
        std::printf("%-26s %d ms\n", "last_man_standing_window", o.value("last_man_standing_window", 0));
        std::string atb = o.value("auto_tie_breaker", std::string("off"));
        if (atb == "list") {
            std::string ids;
            for (const auto& n : o["auto_tie_breaker_nodes"]) ids += (ids.empty() ? "" : ",") + json_text(n);
            atb += " --nodes " + ids;
        }
        std::printf("%-26s %s\n", "auto_tie_breaker", atb.c_str());
        return 0;
    }
    if (args[0] != "set") return usage_error("quorum: unknown subcommand " + in_quotes(args[0]) + " (set or show)");
    std::vector<std::string_view> pos;
    std::optional<std::string> nodes_arg;
    std::set<std::string> seen;
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--nodes") {
            if (i + 1 >= args.size()) return usage_error("quorum set: --nodes needs ID,ID,...");
            if (int rc = once(seen, "quorum set", "--nodes")) return rc;
            nodes_arg = std::string(args[++i]);
        } else if (args[i].starts_with("--nodes=")) {
            if (int rc = once(seen, "quorum set", "--nodes")) return rc;
            nodes_arg = std::string(args[i].substr(8));
        } else {
            pos.push_back(args[i]);
        }
    }
    if (pos.size() != 2) return usage_error("quorum set needs OPTION VALUE (options: " + conclave::store::setting_names(conclave::store::quorum_keys()) + ")");
    std::string key(pos[0]);
    std::string_view value = pos[1];
    const auto* k = conclave::store::find_setting(conclave::store::quorum_keys(), key);
    if (!k) return usage_error("quorum set: unknown option " + in_quotes(key) + " (options: " + conclave::store::setting_names(conclave::store::quorum_keys()) + ")");
    std::uint64_t v = 0;
    nlohmann::json ids = nlohmann::json::array();
    if (key == "auto_tie_breaker") {
        if (value == "off" || value == "0") v = 0;
        else if (value == "lowest") v = 1;
        else if (value == "highest") v = 2;
        else if (value == "list") v = 3;
        else return usage_error("quorum set auto_tie_breaker: the value is off, lowest, highest or list, not " + in_quotes(value));
        if (v == 3) {
            if (!nodes_arg) return usage_error("quorum set auto_tie_breaker list needs --nodes ID,ID,... (in priority order)");
            std::string_view rest = *nodes_arg;
            while (true) {
                auto comma = rest.find(',');
                auto part = rest.substr(0, comma);
                auto id = parse_number(part);
                if (!id || *id == 0 || *id > 0xffffffffu)
                    return usage_error("quorum set: --nodes wants node ids (1 to 4294967295) separated by commas, not " +
                                       in_quotes(*nodes_arg));
                // A repeated id adds nothing to the priority order and is likely a typo.
                if (std::find(ids.begin(), ids.end(), *id) != ids.end())
                    return usage_error("quorum set: --nodes lists node " + std::to_string(*id) +
                                       " twice; give each node once, in priority order");
                ids.push_back(*id);
                if (comma == std::string_view::npos) break;
                rest = rest.substr(comma + 1);
            }
            if (ids.size() > conclave::store::kMaxTieBreakers)
                return usage_error("quorum set: at most " + std::to_string(conclave::store::kMaxTieBreakers) + " tie-breaker nodes");
        } else if (nodes_arg) {
            return usage_error("quorum set: --nodes goes only with auto_tie_breaker list");
        }
    } else {
        if (nodes_arg) return usage_error("quorum set: --nodes goes only with auto_tie_breaker list");
        if (k->max == 1) {
            auto b = parse_bool(value);
            if (!b) return usage_error("quorum set " + key + ": the value is 0 or 1 (on/off, yes/no), not " + in_quotes(value));
            v = *b ? 1 : 0;
        } else {
            auto n = parse_number(value);
            if (!n || *n < k->min || *n > k->max)
                return usage_error("quorum set " + key + ": the value is " + std::to_string(k->min) + " to " +
                                   std::to_string(k->max) + " (" + k->what + "), not " + in_quotes(value));
            v = *n;
        }
    }
    nlohmann::json req{{"cmd", "quorum.set"}, {"key", key}, {"value", v}};
    if (!ids.empty()) req["nodes"] = ids;
    std::string ctx = "quorum set " + key + " " + std::string(value);
    if (!call(req, ctx)) return 1;
    std::printf("quorum option %s = %s (in the replicated state, for every node)\n", key.c_str(), std::string(value).c_str());
    return 0;
}

// A size in bytes: digits, optionally followed by K or M (KiB, MiB; also KiB, MiB).
std::optional<std::uint64_t> parse_size(std::string_view s) {
    std::uint64_t unit = 1;
    for (auto [suffix, u] : {std::pair<std::string_view, std::uint64_t>{"KiB", 1u << 10}, {"MiB", 1u << 20},
                             {"K", 1u << 10}, {"M", 1u << 20}})
        if (s.size() > suffix.size() && s.ends_with(suffix)) {
            s.remove_suffix(suffix.size());
            unit = u;
            break;
        }
    auto n = parse_number(s);
    if (!n) return std::nullopt;
    return *n * unit;
}

// `CMD set KEY VALUE` for a cluster-wide setting among `keys` (totem, limits): VALUE within
// the key's bounds, or 0 / default for the default, read by parse_number or by `sizes`
// (K and M suffixes) when given; sent as CMD.set; `noun` names the setting in the answer.
int set_setting(const std::string& cmd, const std::vector<conclave::store::SettingKey>& keys,
                const std::vector<std::string_view>& args, const char* noun,
                std::optional<std::uint64_t> (*sizes)(std::string_view)) {
    if (args.size() != 3) return usage_error(cmd + " set needs KEY VALUE (keys: " + conclave::store::setting_names(keys) + ")");
    std::string key(args[1]);
    const auto* k = conclave::store::find_setting(keys, key);
    if (!k) return usage_error(cmd + " set: unknown key " + in_quotes(key) + " (keys: " + conclave::store::setting_names(keys) + ")");
    std::uint64_t v = 0;
    if (args[2] != "default") {
        auto n = sizes ? sizes(args[2]) : parse_number(args[2]);
        if (!n || (*n != 0 && (*n < k->min || *n > k->max)))
            return usage_error(cmd + " set " + key + ": the value is " + std::to_string(k->min) + " to " +
                               std::to_string(k->max) + " (" + k->what +
                               (sizes ? "; K and M suffixes count KiB and MiB" : "") +
                               "), or 0 / default for the default; not " + in_quotes(args[2]));
        v = *n;
    }
    std::string ctx = cmd + " set " + key + " " + std::string(args[2]);
    if (!call({{"cmd", cmd + ".set"}, {"key", key}, {"value", v}}, ctx)) return 1;
    if (v == 0)
        std::printf("%s %s back to its default (in the replicated state, for every node)\n", noun, key.c_str());
    else
        std::printf("%s %s = %llu (in the replicated state, for every node)\n", noun, key.c_str(),
                    static_cast<unsigned long long>(v));
    return 0;
}

int cmd_totem(const std::vector<std::string_view>& args) {
    if (args.empty()) return usage_error("totem needs set or show");
    if (args[0] == "show") {
        bool as_json = false;
        if (int rc = json_option("totem show", args, 1, as_json)) return rc;
        auto s = fetch_status();
        if (!s) return 1;
        auto& t = (*s)["totem"];  // not const: see cmd_status
        if (as_json) {
            std::printf("%s\n", json_text(t, 2).c_str());
            return 0;
        }
        std::printf("%-18s %10s  %s\n", "Setting", "In force", "");
        for (const auto& k : conclave::store::totem_keys()) {
            std::string unit = std::string_view(k.what).ends_with("milliseconds") ? " ms" : "";
            bool set = t["settings"].contains(k.name);
            std::printf("%-18s %10s  %s\n", k.name,
                        (t["in_force"].value(k.name, 0ull) == 0 && !t["in_force"].contains(k.name)
                             ? std::string("?")
                             : std::to_string(t["in_force"].value(k.name, 0ull)) + unit)
                            .c_str(),
                        set ? "set (conclavectl totem set)" : "default");
        }
        return 0;
    }
    if (args[0] != "set") return usage_error("totem: unknown subcommand " + in_quotes(args[0]) + " (set or show)");
    return set_setting("totem", conclave::store::totem_keys(), args, "ring setting", nullptr);
}

int cmd_limits(const std::vector<std::string_view>& args) {
    using conclave::store::limits_keys;
    if (args.empty()) return usage_error("limits needs set or show");
    if (args[0] == "show") {
        bool as_json = false;
        if (int rc = json_option("limits show", args, 1, as_json)) return rc;
        auto s = fetch_status();
        if (!s) return 1;
        auto& l = (*s)["state"]["limits"];  // not const: see cmd_status
        if (as_json) {
            std::printf("%s\n", json_text(l, 2).c_str());
            return 0;
        }
        std::printf("%-16s %12s  %s\n", "Limit", "In force", "");
        for (const auto& k : limits_keys()) {
            const std::string name = k.name;
            const std::uint64_t def = conclave::store::limit_of(conclave::store::Limits{}, name);
            const bool known = l.contains(name) && l[name].is_number_unsigned();
            const std::uint64_t v = known ? l[name].get<std::uint64_t>() : 0;
            std::printf("%-16s %12s  %s\n", k.name, known ? std::to_string(v).c_str() : "?",
                        !known ? "" : v == def ? "default" : "set (conclavectl limits set)");
        }
        return 0;
    }
    if (args[0] != "set") return usage_error("limits: unknown subcommand " + in_quotes(args[0]) + " (set or show)");
    return set_setting("limits", limits_keys(), args, "cluster limit", parse_size);
}

int cmd_expected(const std::vector<std::string_view>& args) {
    if (args.size() != 1) return usage_error("expected needs N (the expected votes for this partition)");
    auto n = parse_number(args[0]);
    if (!n || *n == 0 || *n > 0xffffffffu) return usage_error("expected: N is a number of votes from 1, not " + in_quotes(args[0]));
    static const std::map<int, std::string> explain{{EAGAIN, "the ring is forming or syncing; try again in a moment"}};
    if (!call({{"cmd", "expected"}, {"expected", *n}}, "expected " + std::string(args[0]), explain)) return 1;
    std::printf("expected votes are %llu on this partition until every node is back (not written to the cluster\n"
                "state). Writes made now may be replaced when the partitions merge: see conclavectl(8).\n",
                static_cast<unsigned long long>(*n));
    return 0;
}

// Runs the command; its exit status.
int run(std::vector<std::string_view> args) {
    // Global options before the command.
    std::set<std::string> seen;
    while (!args.empty() && (args.front() == "-s" || args.front() == "--socket" || args.front() == "-c" ||
                             args.front() == "--config" || args.front() == "--timeout")) {
        if (args.front() == "--timeout") {
            if (args.size() < 2) return usage_error("--timeout needs a number of seconds");
            if (int rc = once(seen, "conclavectl", "--timeout")) return rc;
            std::string v(args[1]);
            // Decimal, with an optional fraction, like every other number here: strtod
            // alone would also take hex ("0x10"), exponents, "inf" and leading blanks.
            bool decimal = v.find_first_not_of("0123456789.") == std::string::npos &&
                           std::count(v.begin(), v.end(), '.') <= 1 && v.find_first_of("0123456789") != std::string::npos;
            double secs = decimal ? std::strtod(v.c_str(), nullptr) : 0;
            if (!decimal || !(secs > 0) || secs > 86400)
                return usage_error("--timeout needs a number of seconds (0 < S <= 86400, decimal), not " + in_quotes(v));
            g_timeout_s = secs;
            args.erase(args.begin(), args.begin() + 2);
            continue;
        }
        bool socket = args.front() == "-s" || args.front() == "--socket";
        std::string option = socket ? "-s/--socket" : "-c/--config";
        if (args.size() < 2) return usage_error(std::string(args.front()) + " needs a path");
        if (int rc = once(seen, "conclavectl", option)) return rc;
        // An empty path is a mistake (an unset variable in a script), not "the default".
        if (args[1].empty())
            return usage_error(std::string(args.front()) + ": the path is empty" +
                               (socket ? "" : "; leave -c out for /etc/conclave/conclave.conf"));
        (socket ? g_socket : g_config_path) = std::string(args[1]);
        args.erase(args.begin(), args.begin() + 2);
    }
    if (args.empty()) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    std::string_view cmd = args.front();
    args.erase(args.begin());
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
        std::fputs(kUsage, stdout);
        return 0;
    }
    if (cmd == "--version") {
        std::printf("conclavectl %s\n", CONCLAVE_VERSION);
        return 0;
    }
    if (cmd == "keygen") return cmd_keygen(args);
    if (cmd == "status") return cmd_status(args);
    if (cmd == "links") return cmd_links(args);
    if (cmd == "counters") return cmd_counters(args);
    if (cmd == "put") return cmd_put(args);
    if (cmd == "get") return cmd_get(args);
    if (cmd == "ls") return cmd_ls(args);
    if (cmd == "rm") return cmd_path_op("rm", args);
    if (cmd == "mkdir") return cmd_path_op("mkdir", args);
    if (cmd == "rmdir") return cmd_path_op("rmdir", args);
    if (cmd == "mv") return cmd_mv(args);
    if (cmd == "create") return cmd_create(args);
    if (cmd == "node") return cmd_node(args);
    if (cmd == "votes") return cmd_votes(args);
    if (cmd == "quorum") return cmd_quorum(args);
    if (cmd == "totem") return cmd_totem(args);
    if (cmd == "limits") return cmd_limits(args);
    if (cmd == "expected") return cmd_expected(args);
    return usage_error("unknown command " + in_quotes(cmd));
}

}  // namespace

int main(int argc, char** argv) {
    int rc = 1;
    try {
        rc = run(std::vector<std::string_view>(argv + 1, argv + argc));
    } catch (const std::exception& e) {
        // A bug, not the operator's mistake: say so rather than abort with a core dump.
        std::fprintf(stderr, "conclavectl: internal error: %s\n", e.what());
        return 1;
    }
    // Output that did not reach stdout is a failure, whatever the command made of it.
    if (!stdout_written("")) return 1;
    return rc;
}
