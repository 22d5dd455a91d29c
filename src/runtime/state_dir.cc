#include "runtime/state_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

namespace conclave::runtime {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

bool valid_name(const std::string& name) {
    if (name.empty() || name.size() > 64) return false;
    for (char ch : name)
        if (!((ch >= 'a' && ch <= 'z') || ch == '_')) return false;
    return true;
}

Status mkdirs(const std::string& path) {
    std::string partial;
    std::size_t i = 0;
    while (i <= path.size()) {
        std::size_t slash = path.find('/', i);
        if (slash == std::string::npos) slash = path.size();
        partial = path.substr(0, slash);
        i = slash + 1;
        if (partial.empty()) continue;
        if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
            return Error{"cannot create state directory " + partial + ": " + errno_text(errno)};
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return Error{"state directory " + path + " is not a directory"};
    return Ok{};
}

}  // namespace

Result<StateDir> StateDir::open(const std::string& path) {
    if (auto st = mkdirs(path); !st) return Error{st.error()};
    std::string lock_path = path + "/lock";
    int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return Error{"cannot open " + lock_path + ": " + errno_text(errno)};
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char buf[32] = {};
        ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
        ::close(fd);
        if (err == EWOULDBLOCK) {
            std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "unknown";
            while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
            return Error{"another conclaved (pid " + holder + ") is using " + path +
                         "; stop it first, or give this one another state_dir"};
        }
        return Error{"cannot lock " + lock_path + ": " + errno_text(err)};
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
        int err = errno;
        ::close(fd);
        return Error{"cannot write " + lock_path + ": " + errno_text(err)};
    }
    return StateDir(path, fd);
}

StateDir::StateDir(StateDir&& o) noexcept : path_(std::move(o.path_)), lock_fd_(std::exchange(o.lock_fd_, -1)) {}

StateDir::~StateDir() {
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

Result<std::uint64_t> StateDir::load(const std::string& name) const {
    if (!valid_name(name)) return Error{"bad state file name '" + name + "'"};
    std::string p = path_ + "/" + name;
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return std::uint64_t{0};
        return Error{"cannot read " + p + ": " + errno_text(errno)};
    }
    char buf[32];
    ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    if (n < 0) return Error{"cannot read " + p + ": " + errno_text(errno)};
    std::size_t len = static_cast<std::size_t>(n);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ')) --len;
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(buf, buf + len, v);
    if (len == 0 || ec != std::errc() || end != buf + len)
        return Error{p + " is damaged (expected one number); if the node's state is otherwise intact, write the "
                         "number back, else remove the file"};
    return v;
}

Status StateDir::store(const std::string& name, std::uint64_t value) {
    if (!valid_name(name)) return Error{"bad state file name '" + name + "'"};
    std::string p = path_ + "/" + name;
    std::string tmp = p + ".tmp";
    std::string text = std::to_string(value) + "\n";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return Error{"cannot write " + tmp + ": " + errno_text(errno)};
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), p.c_str()) != 0) {
        if (ok) err = errno;
        ::unlink(tmp.c_str());
        return Error{"cannot write " + p + ": " + errno_text(err)};
    }
    int dfd = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    return Ok{};
}

Result<std::uint64_t> StateDir::next_boot_epoch(std::uint64_t now_us) {
    auto prev = load("boot");
    if (!prev) return prev;
    std::uint64_t next = prev.value() + 1;
    if (now_us > next) next = now_us;
    if (auto st = store("boot", next); !st) return Error{st.error()};
    return next;
}

}  // namespace conclave::runtime
