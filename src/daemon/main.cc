// conclaved(8): the daemon.
#include <grp.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/rand.h>

#include "base/log.h"
#include "config/config.h"
#include "crypto/authkey.h"
#include "daemon/daemon.h"
#include "fuse/tree.h"

namespace {

constexpr const char* kUsage =
    "usage: conclaved [-c FILE] [-f] [-l] [-p] [-t] [--print-config]\n"
    "\n"
    "  -c, --config FILE   the node's configuration (default /etc/conclave/conclave.conf)\n"
    "  -f, --foreground    accepted for Corosync compatibility; conclaved never forks\n"
    "  -l, --local         local mode (pmxcfs -l): this node alone, no network, always\n"
    "                      quorate; the tree is writable. A node with no state gets a\n"
    "                      one-node cluster. For repairs of a node cut off from its cluster\n"
    "  -p, --no-realtime   do not run the protocol thread with SCHED_RR (Corosync's -p);\n"
    "                      the same as 'system { sched_rr: no }'\n"
    "  -t, --test-config   check the configuration, the key files and tree.group, print\n"
    "                      the result, exit\n"
    "  --print-config      print the configuration with every default filled in, exit;\n"
    "                      with -t, print it and then check it (the result on stderr)\n"
    "  -h, --help          show this text\n"
    "  --version           show the version\n"
    "\n"
    "Runs in the foreground, logging to stderr (journald under systemd; Type=notify).\n"
    "SIGTERM or SIGINT stops it cleanly.\n"
    "Exit status: 0 clean stop or good configuration, 1 configuration, key or start-up\n"
    "error, 2 bad usage. See conclaved(8).\n";

int usage_error(const std::string& msg) {
    std::fprintf(stderr, "conclaved: %s\n(see 'conclaved --help')\n", msg.c_str());
    return 2;
}

conclave::log::Level to_log_level(conclave::config::LogLevel l) {
    using L = conclave::config::LogLevel;
    switch (l) {
        case L::error: return conclave::log::Level::error;
        case L::warning: return conclave::log::Level::warning;
        case L::notice: return conclave::log::Level::notice;
        case L::info: return conclave::log::Level::info;
        case L::debug: return conclave::log::Level::debug;
    }
    return conclave::log::Level::info;
}

// The group the tree's entries get: tree.group, or when it is empty the daemon's default
// (www-data if it exists, else root), by name. Empty if the group has no name.
std::string effective_group(const conclave::config::Config& c) {
    if (!c.group.empty()) return c.group;
    auto gid = conclave::fuse::resolve_group("");
    if (!gid) return {};
    std::vector<char> buf(16384);
    struct group g {};
    struct group* found = nullptr;
    if (getgrgid_r(gid.value(), &g, buf.data(), buf.size(), &found) != 0 || !found) return {};
    return found->gr_name;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string_view> args(argv + 1, argv + argc);
    std::string path = conclave::config::kDefaultConfigPath;
    bool test = false;
    bool print = false;
    bool local = false;
    bool no_realtime = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view a = args[i];
        if (a == "-c" || a == "--config") {
            if (i + 1 >= args.size()) return usage_error(std::string(a) + " needs a file");
            path = std::string(args[++i]);
        } else if (a == "-f" || a == "--foreground") {
            // conclaved never daemonizes; systemd supervises it.
        } else if (a == "-l" || a == "--local") {
            local = true;
        } else if (a == "-p" || a == "--no-realtime") {
            no_realtime = true;
        } else if (a == "-t" || a == "--test-config") {
            test = true;
        } else if (a == "--print-config") {
            print = true;
        } else if (a == "-h" || a == "--help") {
            std::fputs(kUsage, stdout);
            return 0;
        } else if (a == "--version") {
            std::printf("conclaved %s\n", CONCLAVE_VERSION);
            return 0;
        } else {
            return usage_error("unknown argument '" + std::string(a) + "'");
        }
    }
    auto cfg = conclave::config::load(path);
    if (!cfg) {
        std::fprintf(stderr, "conclaved: %s\n", cfg.error().c_str());
        return 1;
    }
    if (no_realtime) cfg->sched_rr = false;
    if (print) {
        conclave::config::Config shown = cfg.value();
        shown.group = effective_group(shown);
        std::fputs(conclave::config::format(shown).c_str(), stdout);
        // With -t as well, the check follows; its verdict goes to stderr so that stdout
        // stays a config file.
        if (!test) return 0;
        std::fflush(stdout);
    }
    conclave::crypto::AuthKey key;
    std::optional<conclave::crypto::AuthKey> next_key;
    if (local) {
        // Nothing leaves this host: the ring runs on loopback with a port of the kernel's
        // choosing and no peers, and its key is made up for this run.
        cfg->transport = conclave::config::Transport::unicast;
        cfg->bind_address = "127.0.0.1";
        cfg->interface.clear();
        cfg->port = 0;
        cfg->peers.clear();
        if (RAND_bytes(key.bytes.data(), static_cast<int>(key.bytes.size())) != 1) {
            std::fprintf(stderr, "conclaved: cannot get random bytes for the local mode's key\n");
            return 1;
        }
        conclave::crypto::compute_key_id(key);
    }
    for (const std::string& key_path : {cfg->key_file, cfg->next_key_file}) {
        if (key_path.empty() || local) continue;
        auto k = conclave::crypto::load_auth_key(key_path);
        if (!k) {
            std::fprintf(stderr, "conclaved: %s\n", k.error().c_str());
            return 1;
        }
        if (key_path == cfg->key_file)
            key = k.value();
        else
            next_key = k.value();
    }
    if (test) {
        // The daemon resolves the group only when it mounts the tree; so does the check.
        if (cfg->mount) {
            if (auto gid = conclave::fuse::resolve_group(cfg->group); !gid) {
                std::fprintf(stderr, "conclaved: %s\n", gid.error().c_str());
                return 1;
            }
        }
        std::fprintf(print ? stderr : stdout, "%s: configuration OK (cluster %s, node %u %s)\n",
                     conclave::config::escape(path).c_str(), cfg->cluster_name.c_str(), cfg->node_id,
                     cfg->node_name.c_str());
        return 0;
    }

    conclave::log::set_level(to_log_level(cfg->log_level));
    conclave::log::set_node(cfg->node_id);
    conclave::daemon::Daemon daemon(cfg.value(), key, next_key, local);
    if (auto st = daemon.start(); !st) {
        conclave::log::error("cannot start: " + st.error());
        return 1;
    }
    return daemon.run();
}
