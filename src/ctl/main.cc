// conclavectl(8): the admin tool.
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/authkey.h"

namespace {

constexpr const char* kUsage =
    "usage: conclavectl COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  keygen [-o PATH] [--force]   write a new 256-byte cluster authkey (mode 0400)\n"
    "                               to PATH (default /etc/conclave/authkey); refuses to\n"
    "                               overwrite an existing file unless --force is given\n"
    "  help                         show this text\n"
    "\n"
    "Options:\n"
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

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string_view> args(argv + 1, argv + argc);
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
    return usage_error("unknown command '" + std::string(cmd) + "'");
}
