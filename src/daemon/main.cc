// conclaved(8): the daemon.
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "config/config.h"
#include "crypto/authkey.h"
#include "daemon/daemon.h"

namespace {

constexpr const char* kUsage =
    "usage: conclaved [-c FILE] [-f] [-t] [--print-config]\n"
    "\n"
    "  -c, --config FILE   the node's configuration (default /etc/conclave/conclave.conf)\n"
    "  -f, --foreground    accepted for Corosync compatibility; conclaved never forks\n"
    "  -t, --test-config   check the configuration and the key files, print the result, exit\n"
    "  --print-config      print the configuration with every default filled in, exit\n"
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

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string_view> args(argv + 1, argv + argc);
    std::string path = conclave::config::kDefaultConfigPath;
    bool test = false;
    bool print = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view a = args[i];
        if (a == "-c" || a == "--config") {
            if (i + 1 >= args.size()) return usage_error(std::string(a) + " needs a file");
            path = std::string(args[++i]);
        } else if (a == "-f" || a == "--foreground") {
            // conclaved never daemonizes; systemd supervises it.
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
    if (print) {
        std::fputs(conclave::config::format(cfg.value()).c_str(), stdout);
        return 0;
    }
    conclave::crypto::AuthKey key;
    std::optional<conclave::crypto::AuthKey> next_key;
    for (const std::string& key_path : {cfg->key_file, cfg->next_key_file}) {
        if (key_path.empty()) continue;
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
        std::printf("%s: configuration OK (cluster %s, node %u %s)\n", path.c_str(), cfg->cluster_name.c_str(),
                    cfg->node_id, cfg->node_name.c_str());
        return 0;
    }

    conclave::log::set_level(to_log_level(cfg->log_level));
    conclave::log::set_node(cfg->node_id);
    conclave::daemon::Daemon daemon(cfg.value(), key, next_key);
    if (auto st = daemon.start(); !st) {
        conclave::log::error("cannot start: " + st.error());
        return 1;
    }
    return daemon.run();
}
