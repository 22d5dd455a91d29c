// conclaved(8): the daemon. This version checks a node's configuration (-t); the ring
// runtime is not built yet.
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "crypto/authkey.h"

namespace {

constexpr const char* kUsage =
    "usage: conclaved [-c FILE] [-t] [--print-config]\n"
    "\n"
    "  -c, --config FILE   the node's configuration (default /etc/conclave/conclave.conf)\n"
    "  -t, --test-config   check the configuration and the key files, print the result, exit\n"
    "  --print-config      print the configuration with every default filled in, exit\n"
    "  -h, --help          show this text\n"
    "  --version           show the version\n"
    "\n"
    "Exit status: 0 configuration good, 1 configuration or key error, 2 bad usage.\n"
    "This version does not run the ring yet: use -t or --print-config. See conclaved(8).\n";

int usage_error(const std::string& msg) {
    std::fprintf(stderr, "conclaved: %s\n(see 'conclaved --help')\n", msg.c_str());
    return 2;
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
    if (test) {
        for (const std::string& key_path : {cfg->key_file, cfg->next_key_file}) {
            if (key_path.empty()) continue;
            auto key = conclave::crypto::load_auth_key(key_path);
            if (!key) {
                std::fprintf(stderr, "conclaved: %s\n", key.error().c_str());
                return 1;
            }
        }
        std::printf("%s: configuration OK (cluster %s, node %u %s)\n", path.c_str(), cfg->cluster_name.c_str(),
                    cfg->node_id, cfg->node_name.c_str());
        return 0;
    }
    std::fprintf(stderr, "conclaved: this version cannot run the ring yet; use -t to check %s\n", path.c_str());
    return 1;
}
