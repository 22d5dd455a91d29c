// conclavectl(8): the admin tool.
#include <algorithm>
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

#include "config/config.h"
#include "crypto/authkey.h"
#include "runtime/control.h"

namespace {

constexpr const char* kUsage =
    "usage: conclavectl [-s SOCKET] [-c FILE] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  status [--json]              this node's view: cluster, node, ring, datagram counters\n"
    "                               (exit 0 quorate, 2 not quorate, 1 error)\n"
    "  links [--json]               who this node hears, and how long ago\n"
    "  counters [--json]            datagram, rejection, ring and group counters\n"
    "  keygen [-o PATH] [--force]   write a new 256-byte cluster authkey (mode 0400)\n"
    "                               to PATH (default /etc/conclave/authkey); refuses to\n"
    "                               overwrite an existing file unless --force is given\n"
    "  help                         show this text\n"
    "\n"
    "Options:\n"
    "  -s, --socket PATH            the daemon's control socket (default: $CONCLAVE_SOCKET,\n"
    "                               else paths.control_socket of /etc/conclave/conclave.conf,\n"
    "                               else /run/conclave/control.sock)\n"
    "  -c, --config FILE            read the socket path from this conclave.conf\n"
    "  -h, --help                   show this text\n"
    "  --version                    show the version\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 bad usage. See conclavectl(8).\n";

int usage_error(const std::string& msg) {
    std::fprintf(stderr, "conclavectl: %s\n(see 'conclavectl --help')\n", msg.c_str());
    return 2;
}

int cmd_keygen(const std::vector<std::string_view>& args) {
    std::string path = conclave::crypto::kDefaultAuthKeyPath;
    bool force = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view a = args[i];
        if (a == "-o" || a == "--output") {
            if (i + 1 >= args.size()) return usage_error("keygen: " + std::string(a) + " needs a path");
            path = std::string(args[++i]);
            if (path.empty()) return usage_error("keygen: the output path is empty");
        } else if (a.starts_with("--output=")) {
            path = std::string(a.substr(9));
            if (path.empty()) return usage_error("keygen: the output path is empty");
        } else if (a == "-f" || a == "--force") {
            force = true;
        } else if (a == "-h" || a == "--help") {
            std::fputs("usage: conclavectl keygen [-o PATH] [--force]\n", stdout);
            return 0;
        } else {
            return usage_error("keygen: unknown argument '" + std::string(a) + "'");
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

std::string g_socket;       // -s
std::string g_config_path;  // -c

std::string socket_path() {
    if (!g_socket.empty()) return g_socket;
    if (const char* env = std::getenv(conclave::runtime::kControlSocketEnv); env && *env) return env;
    std::string cfg_path = g_config_path.empty() ? conclave::config::kDefaultConfigPath : g_config_path;
    auto cfg = conclave::config::load(cfg_path);
    if (cfg) return cfg->control_socket;
    if (!g_config_path.empty()) std::fprintf(stderr, "conclavectl: %s\n", cfg.error().c_str());
    return conclave::runtime::kDefaultControlSocket;
}

void row(const char* label, const std::string& value) { std::printf("%-17s %s\n", label, value.c_str()); }

// Fetches the daemon's status; prints the error and returns nullopt.
std::optional<nlohmann::json> fetch_status() {
    auto r = conclave::runtime::control_request(socket_path(), {{"cmd", "status"}});
    if (!r) {
        std::fprintf(stderr, "conclavectl: %s\n", r.error().c_str());
        return std::nullopt;
    }
    if (!r.value().value("ok", false)) {
        std::fprintf(stderr, "conclavectl: %s\n", r.value().value("error", std::string("the daemon refused")).c_str());
        return std::nullopt;
    }
    return r.value();
}

int cmd_status(const std::vector<std::string_view>& args) {
    bool as_json = false;
    for (auto a : args) {
        if (a == "--json") as_json = true;
        else return usage_error("status: unknown argument '" + std::string(a) + "'");
    }
    auto status = fetch_status();
    if (!status) return 1;
    const auto& s = *status;
    bool quorate = s.value("quorate", false);
    if (as_json) {
        std::printf("%s\n", s.dump(2).c_str());
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
    const auto& q = s["quorum"];
    std::puts("Quorum information\n------------------");
    row("Date:", date);
    row("Quorum provider:", "conclave");
    row("Nodes:", std::to_string(s["members"].size()));
    row("Node ID:", hexid(s.value("node_id", 0ull)));
    row("Ring ID:", s["ring"].is_string() ? s["ring"].get<std::string>() : std::string("none (") +
                                                                              s.value("state", std::string("?")) + ")");
    row("Quorate:", quorate ? "Yes" : "No");
    std::puts("\nVotequorum information\n----------------------");
    row("Expected votes:", std::to_string(q.value("expected_votes", 0)));
    row("Highest expected:", std::to_string(q.value("highest_expected", 0)));
    row("Total votes:", std::to_string(q.value("total_votes", 0)));
    row("Quorum:", std::to_string(q.value("quorum", 0)) + (quorate ? " " : " Activity blocked"));
    row("Flags:", quorate ? "Quorate " : "");
    std::puts("\nMembership information\n----------------------");
    std::printf("%10s %10s %s\n", "Nodeid", "Votes", "Name");
    for (const auto& m : s["members"]) {
        std::string name = m.value("address", std::string("?"));
        if (m.value("local", false)) name += " (local)";
        std::printf("%s %10d %s\n", hexid(m.value("node_id", 0ull)).c_str(), m.value("votes", 1), name.c_str());
    }
    std::puts("\nNode information\n----------------");
    row("Cluster:", s.value("cluster", std::string("?")));
    row("Node:", std::to_string(s.value("node_id", 0u)) + " (" + s.value("node_name", std::string("?")) + ")");
    row("Transport:", s.value("transport", std::string("?")) + ", port " + std::to_string(s.value("port", 0)));
    row("Ring state:", s.value("state", std::string("?")));
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
        rejected += (rejected.empty() ? "" : ", ") + reason + " " + n.dump();
    row("Rejected:", rejected);
    return quorate ? 0 : 2;
}

int cmd_links(const std::vector<std::string_view>& args) {
    bool as_json = !args.empty() && args[0] == "--json";
    if (args.size() > (as_json ? 1u : 0u)) return usage_error("links: unknown argument '" + std::string(args.back()) + "'");
    auto s = fetch_status();
    if (!s) return 1;
    if (as_json) {
        std::printf("%s\n", (*s)["links"].dump(2).c_str());
        return 0;
    }
    // Who this node hears: a peer missing here, or heard long ago, while it is in the
    // ring elsewhere, points at one-way or non-transitive connectivity.
    std::printf("%10s  %-40s %s\n", "Nodeid", "Address", "Last heard");
    std::set<unsigned> in_ring;
    for (const auto& m : (*s)["members"]) in_ring.insert(m.value("node_id", 0u));
    for (const auto& l : (*s)["links"]) {
        unsigned id = l.value("node", 0u);
        double ago = l.value("last_heard_ms_ago", -1.0);
        std::printf("%10u  %-40s %.0f ms ago%s\n", id, l.value("address", std::string("?")).c_str(), ago,
                    in_ring.count(id) ? "" : "  (not in this node's ring)");
    }
    return 0;
}

int cmd_counters(const std::vector<std::string_view>& args) {
    bool as_json = !args.empty() && args[0] == "--json";
    if (args.size() > (as_json ? 1u : 0u)) return usage_error("counters: unknown argument '" + std::string(args.back()) + "'");
    auto s = fetch_status();
    if (!s) return 1;
    nlohmann::json c{{"datagrams", (*s)["datagrams"]},
                     {"rejected", (*s)["rejected"]},
                     {"ring", (*s)["ring_counters"]},
                     {"groups", (*s)["groups"]},
                     {"configuration_changes", (*s)["configuration_changes"]}};
    if (as_json) {
        std::printf("%s\n", c.dump(2).c_str());
        return 0;
    }
    for (const auto& [section, values] : c.items()) {
        if (!values.is_object()) {
            std::printf("%s: %s\n", section.c_str(), values.dump().c_str());
            continue;
        }
        for (const auto& [k, v] : values.items()) std::printf("%s.%s: %s\n", section.c_str(), k.c_str(), v.dump().c_str());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string_view> args(argv + 1, argv + argc);
    // Global options before the command.
    while (!args.empty() && (args.front() == "-s" || args.front() == "--socket" || args.front() == "-c" ||
                             args.front() == "--config")) {
        if (args.size() < 2) return usage_error(std::string(args.front()) + " needs a path");
        (args.front() == "-s" || args.front() == "--socket" ? g_socket : g_config_path) = std::string(args[1]);
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
    return usage_error("unknown command '" + std::string(cmd) + "'");
}
