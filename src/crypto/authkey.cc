#include "crypto/authkey.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "wire/bytes.h"

namespace conclave::crypto {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::string parent_of(const std::string& path) {
    auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

bool write_all(int fd, const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

// Creates `dir` and whichever of its parents are missing, with mode 0700.
Status make_dirs(const std::string& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) return Ok{};
        return Error{"cannot create the key in " + dir + ": it is not a directory"};
    }
    if (errno != ENOENT) return Error{"cannot use directory " + dir + ": " + errno_text(errno)};
    std::string parent = parent_of(dir);
    if (parent != dir)
        if (auto made = make_dirs(parent); !made) return made;
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return Error{"cannot create directory " + dir + ": " + errno_text(errno)};
    return Ok{};
}

const char* kind_of(mode_t mode) {
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "something other than a regular file";
}

void fsync_dir(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

}  // namespace

void compute_key_id(AuthKey& key) {
    static constexpr std::string_view label = "conclave key id";
    unsigned char input[label.size() + kAuthKeySize];
    std::memcpy(input, label.data(), label.size());
    std::memcpy(input + label.size(), key.bytes.data(), kAuthKeySize);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(input, sizeof input, digest);
    key.id = wire::load_u32(digest);
}

Result<AuthKey> load_auth_key(const std::string& path) {
    // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever; the fstat below
    // refuses it (and anything else that is not a regular file) before any read.
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT)
            return Error{"key file " + path + " does not exist; create it with 'conclavectl keygen -o " + path +
                         "' on one node and copy it to every node"};
        return Error{"cannot open key file " + path + ": " + errno_text(err)};
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        int err = errno;
        ::close(fd);
        return Error{"cannot stat key file " + path + ": " + errno_text(err)};
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return Error{"key file " + path + " is not a regular file"};
    }
    if ((st.st_mode & 077) != 0) {
        ::close(fd);
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return Error{"key file " + path + " has mode " + mode +
                     ": group or others may access it; run 'chmod 0400 " + path + "'"};
    }
    if (st.st_size != static_cast<off_t>(kAuthKeySize)) {
        ::close(fd);
        return Error{"key file " + path + " is " + std::to_string(st.st_size) + " bytes, expected " +
                     std::to_string(kAuthKeySize) + "; make a new key with 'conclavectl keygen --force -o " +
                     path + "' and copy it to every node"};
    }
    AuthKey key;
    std::size_t got = 0;
    while (got < kAuthKeySize) {
        ssize_t n = ::read(fd, key.bytes.data() + got, kAuthKeySize - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int err = n < 0 ? errno : 0;
            ::close(fd);
            return Error{"cannot read key file " + path + ": " + (err ? errno_text(err) : "file shrank while reading")};
        }
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    compute_key_id(key);
    return key;
}

Status write_auth_key(const std::string& path, bool force) {
    std::uint8_t bytes[kAuthKeySize];
    if (RAND_priv_bytes(bytes, sizeof bytes) != 1) return Error{"cannot get random bytes from OpenSSL"};

    std::string dir = parent_of(path);
    if (auto made = make_dirs(dir); !made) return made;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!force)
            return Error{path + " already exists; not overwriting it (use --force to replace the key; every node "
                                "then needs the new key)"};
        // The rename below would put a regular file in the place of a device node, a FIFO or
        // a directory's name, and replace a symbolic link rather than the key it points to.
        if (!S_ISREG(st.st_mode))
            return Error{path + " is " + kind_of(st.st_mode) +
                         ", not a key file; not replacing it, even with --force (name the key file itself)"};
    }

    // Without force, O_EXCL makes "never overwrite" hold even against a racing writer.
    std::string target = force ? path + ".tmp" : path;
    if (force) ::unlink(target.c_str());
    int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
    if (fd < 0) {
        int err = errno;
        if (err == EEXIST)
            return Error{path + " already exists; not overwriting it (use --force to replace the key)"};
        return Error{"cannot create " + target + ": " + errno_text(err)};
    }
    // The umask may have cleared bits but never adds any; set exactly 0400.
    bool ok = ::fchmod(fd, 0400) == 0 && write_all(fd, bytes, sizeof bytes) && ::fsync(fd) == 0;
    int err = errno;
    ::close(fd);
    if (!ok) {
        ::unlink(target.c_str());
        return Error{"cannot write " + target + ": " + errno_text(err)};
    }
    if (force && ::rename(target.c_str(), path.c_str()) != 0) {
        err = errno;
        ::unlink(target.c_str());
        return Error{"cannot replace " + path + ": " + errno_text(err)};
    }
    fsync_dir(dir);
    return Ok{};
}

}  // namespace conclave::crypto
