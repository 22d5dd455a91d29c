// conclave-tree-model: a model-based random test of a mounted tree (the FUSE frontend's
// /etc/pve-like mount). Developed against a plain local directory (ext4, tmpfs); the
// cluster tests point it at the real mount.
//
// It runs N random operations on the empty directory DIR through real syscalls and applies
// each to an in-memory model (directories; files with their bytes; mtimes where known).
// Every syscall's result (success or errno, bytes read, sizes and types from stat) is
// checked against the model's prediction; every 500 ops and at the end the whole tree is
// walked (readdir, stat, read every file) and compared with the model. With --compare the
// other directories (other nodes' mounts of the same tree) must converge to the model
// within 10 s. The first difference is reported with the seed and the last ops; the run
// is a pure function of the seed, so --seed S --stop-at K replays any prefix.
//
// The model is POSIX as Linux gives it on ext4/tmpfs, restricted to what a tree that
// submits whole files at close must also give: one process, one fd open at a time, no
// links, xattrs or permission changes. mtimes: utimensat sets one (checked to the second);
// an op that modifies an entry (or a directory's list of children) makes it unknown; an
// unknown mtime is learnt from the next stat or walk, and from then on must not change
// until the next such op.
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "sim/prng.h"

namespace {

constexpr const char* kUsage =
    "usage: conclave-tree-model --dir DIR [--ops N] [--seed S] [--max-size BYTES]\n"
    "                           [--stop-at K] [--verbose] [--compare OTHER_DIR ...]\n"
    "  --dir DIR          an existing, empty directory (the mounted tree or a subdirectory)\n"
    "  --ops N            random operations to run (default 10000)\n"
    "  --seed S           PRNG seed (default: random; printed)\n"
    "  --max-size BYTES   no file grows beyond this (default 65536)\n"
    "  --stop-at K        run only ops 0..K-1, then compare the tree (bisecting a replay)\n"
    "  --verbose          print every op\n"
    "  --compare DIR ...  after the run, each DIR must equal the model (names, types, sizes,\n"
    "                     contents, mtimes to the second) within 10 s\n"
    "exit: 0 ok, 1 mismatch, 2 usage or DIR not an empty directory\n";

constexpr std::uint64_t kWalkEvery = 500;
constexpr std::size_t kHistory = 20;
constexpr std::size_t kMaxDepth = 3;

// The simulator's generator (xoshiro256** seeded by splitmix64): the same stream on every
// platform and library, so a seed replays exactly.
class Rng : public conclave::sim::Prng {
public:
    using Prng::Prng;
    bool chance(unsigned percent) { return below(100) < percent; }
    std::string bytes(std::size_t n) {
        std::string s(n, '\0');
        for (std::size_t i = 0; i < n; i += 8) {
            const std::uint64_t r = next();
            std::memcpy(s.data() + i, &r, std::min<std::size_t>(8, n - i));
        }
        return s;
    }
};

struct Node {
    bool dir = false;
    std::string data;                                   // a file's bytes
    std::map<std::string, std::unique_ptr<Node>> kids;  // a directory's entries
    std::optional<std::int64_t> mtime;                  // seconds; unset: not known
};

using Path = std::vector<std::string>;

std::string show(const Path& p) {
    std::string s;
    for (const auto& c : p) {
        if (!s.empty()) s += '/';
        s += c.size() > 12 ? c.substr(0, 4) + "..(" + std::to_string(c.size()) + ")" : c;
    }
    return s;
}

std::string join(const Path& p) {
    std::string s;
    for (const auto& c : p) {
        if (!s.empty()) s += '/';
        s += c;
    }
    return s;
}

std::string errname(int e) {
    switch (e) {
        case 0: return "success";
        case EPERM: return "EPERM";
        case ENOENT: return "ENOENT";
        case EINTR: return "EINTR";
        case EIO: return "EIO";
        case ENXIO: return "ENXIO";
        case EBADF: return "EBADF";
        case EAGAIN: return "EAGAIN";
        case ENOMEM: return "ENOMEM";
        case EACCES: return "EACCES";
        case EBUSY: return "EBUSY";
        case EEXIST: return "EEXIST";
        case EXDEV: return "EXDEV";
        case ENOTDIR: return "ENOTDIR";
        case EISDIR: return "EISDIR";
        case EINVAL: return "EINVAL";
        case EFBIG: return "EFBIG";
        case ENOSPC: return "ENOSPC";
        case EROFS: return "EROFS";
        case ENAMETOOLONG: return "ENAMETOOLONG";
        case ENOSYS: return "ENOSYS";
        case ENOTEMPTY: return "ENOTEMPTY";
        case EOPNOTSUPP: return "EOPNOTSUPP";
        case ENOTCONN: return "ENOTCONN";
        case ETIMEDOUT: return "ETIMEDOUT";
        case ESTALE: return "ESTALE";
        case EDQUOT: return "EDQUOT";
        default: return "errno " + std::to_string(e);
    }
}

std::string flag_names(int flags) {
    std::string s = (flags & O_ACCMODE) == O_RDONLY ? "O_RDONLY" : (flags & O_ACCMODE) == O_WRONLY ? "O_WRONLY" : "O_RDWR";
    if (flags & O_CREAT) s += "|O_CREAT";
    if (flags & O_EXCL) s += "|O_EXCL";
    if (flags & O_TRUNC) s += "|O_TRUNC";
    if (flags & O_APPEND) s += "|O_APPEND";
    return s;
}

// A syscall's outcome: its return value, or the errno (EINTR retried).
struct Sys {
    long ret = 0;
    int err = 0;
};

template <typename F>
Sys sys(F f) {
    for (;;) {
        const long r = static_cast<long>(f());
        if (r >= 0) return {r, 0};
        if (errno != EINTR) return {r, errno};
    }
}

struct Options {
    std::string dir;
    std::uint64_t ops = 10000;
    std::uint64_t seed = 0;
    std::size_t max_size = 65536;
    std::optional<std::uint64_t> stop_at;
    bool verbose = false;
    std::vector<std::string> compare;
};

enum class Kind { any, file, dir };

class Model {
public:
    Model(const Options& opt, int root_fd) : opt_(opt), rng_(opt.seed), root_fd_(root_fd) { root_.dir = true; }

    int run();

private:
    struct Where {
        int err = 0;             // ENOENT / ENOTDIR from the walk to the parent
        Node* parent = nullptr;
        Node* node = nullptr;    // null: no such entry in the parent
    };

    // ---- the model's view of paths
    Where find(const Path& p) {
        Node* cur = &root_;
        for (std::size_t i = 0; i + 1 < p.size(); ++i) {
            auto it = cur->kids.find(p[i]);
            if (it == cur->kids.end()) return {ENOENT};
            if (!it->second->dir) return {ENOTDIR};
            cur = it->second.get();
        }
        auto it = cur->kids.find(p.back());
        return {0, cur, it == cur->kids.end() ? nullptr : it->second.get()};
    }
    static std::size_t height(const Node& n) {
        std::size_t h = 0;
        for (const auto& [name, k] : n.kids) h = std::max(h, 1 + height(*k));
        return h;
    }
    static bool strictly_below(const Path& inner, const Path& outer) {
        return inner.size() > outer.size() && std::equal(outer.begin(), outer.end(), inner.begin());
    }

    // ---- drawing names, paths and sizes
    std::string name() {
        static const std::string pool[] = {"a", "b", "c", "d0", "d1", "e"};
        static const std::string rare[] = {std::string(200, 'l') + "0", std::string(255, 'm'), "e x", "\xc3\xbc"};
        if (rng_.chance(5)) return rare[rng_.below(std::size(rare))];
        return pool[rng_.below(std::size(pool))];
    }
    Path random_path() {
        const std::uint64_t r = rng_.below(100);
        const std::size_t depth = r < 40 ? 1 : r < 75 ? 2 : 3;
        Path p;
        for (std::size_t i = 0; i < depth; ++i) p.push_back(name());
        return p;
    }
    void collect(Node& n, Path& at, Kind k, std::size_t max_depth, std::vector<Path>& out) {
        for (auto& [nm, kid] : n.kids) {
            at.push_back(nm);
            if (k == Kind::any || (k == Kind::dir) == kid->dir) out.push_back(at);
            if (kid->dir && at.size() < max_depth) collect(*kid, at, k, max_depth, out);
            at.pop_back();
        }
    }
    std::optional<Path> existing(Kind k, std::size_t max_depth = kMaxDepth) {
        std::vector<Path> all;
        Path at;
        collect(root_, at, k, max_depth, all);
        if (all.empty()) return std::nullopt;
        return all[rng_.below(all.size())];
    }
    // Mostly an existing entry of kind k.
    Path pick(Kind k) {
        const std::uint64_t r = rng_.below(100);
        std::optional<Path> p;
        if (r < 75) p = existing(k);
        else if (r < 85) p = existing(Kind::any);
        return p ? *p : random_path();
    }
    // Mostly a pool name in an existing directory (which may or may not exist yet).
    Path pick_new() {
        const std::uint64_t r = rng_.below(100);
        if (r < 55) {
            Path p;
            if (!rng_.chance(25))
                if (auto d = existing(Kind::dir, kMaxDepth - 1)) p = *d;
            p.push_back(name());
            return p;
        }
        if (r < 75)
            if (auto p = existing(Kind::any)) return *p;
        return random_path();
    }
    // Sizes up to `limit`, mostly small.
    std::size_t draw_size(std::size_t limit) {
        const std::uint64_t r = rng_.below(100);
        const std::size_t cap = r < 30 ? 64 : r < 60 ? 1024 : r < 85 ? 8192 : limit;
        return rng_.below(std::min(cap, limit) + 1);
    }

    // ---- reporting
    void note(const std::string& s) {
        cur_ += ' ';
        cur_ += s;
    }
    [[noreturn]] void mismatch(const std::string& what, const std::string& expected, const std::string& actual) {
        std::printf("MISMATCH at op %llu (seed %llu)\n", static_cast<unsigned long long>(op_),
                    static_cast<unsigned long long>(opt_.seed));
        std::printf("  op:       %s\n  step:     %s\n  expected: %s\n  actual:   %s\n", cur_.c_str(), what.c_str(),
                    expected.c_str(), actual.c_str());
        std::printf("  last ops:\n");
        for (const auto& h : history_) std::printf("    %s\n", h.c_str());
        std::printf("  -> %s\n", cur_.c_str());
        std::printf("  replay: conclave-tree-model --dir EMPTY_DIR --seed %llu --max-size %zu --stop-at %llu --verbose\n",
                    static_cast<unsigned long long>(opt_.seed), opt_.max_size,
                    static_cast<unsigned long long>(op_ + 1));
        std::fflush(stdout);
        std::exit(1);
    }
    void expect(int want, const Sys& got, const std::string& what) {
        note(what + "=" + (got.err ? errname(got.err) : "ok"));
        if (want != got.err) mismatch(what, want ? errname(want) : "success", got.err ? errname(got.err) : "success");
    }
    // A known mtime must match; an unknown one is learnt. "" when fine.
    static std::string mtime_diff(Node& n, const struct stat& st, bool learn) {
        if (!n.mtime) {
            if (learn) n.mtime = st.st_mtim.tv_sec;
            return {};
        }
        if (*n.mtime == st.st_mtim.tv_sec) return {};
        return "mtime " + std::to_string(st.st_mtim.tv_sec) + ", expected " + std::to_string(*n.mtime);
    }
    std::string stat_diff(Node& n, const struct stat& st, bool learn) {
        if (n.dir != S_ISDIR(st.st_mode) || (!n.dir && !S_ISREG(st.st_mode)))
            return std::string("type mode 0") + std::to_string(st.st_mode & S_IFMT) + ", expected " + (n.dir ? "dir" : "file");
        if (!n.dir && static_cast<std::size_t>(st.st_size) != n.data.size())
            return "size " + std::to_string(st.st_size) + ", expected " + std::to_string(n.data.size());
        return mtime_diff(n, st, learn);
    }
    static std::string content_diff(const std::string& got, const std::string& want) {
        if (got == want) return {};
        std::size_t i = 0;
        while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
        return "contents differ at byte " + std::to_string(i) + " (got " + std::to_string(got.size()) +
               " bytes, expected " + std::to_string(want.size()) + ")";
    }

    // ---- checked syscalls on open files
    void close_fd(int fd) {
        if (::close(fd) == 0) return;
        const int e = errno;
        note("close=" + errname(e));
        mismatch("close", "0", errname(e) + " (the tree submits the file at close)");
    }
    void write_all(int fd, std::string_view data, const std::string& what) {
        std::size_t done = 0;
        while (done < data.size()) {
            const Sys r = sys([&] { return ::write(fd, data.data() + done, data.size() - done); });
            if (r.err || r.ret == 0)
                mismatch(what, std::to_string(data.size()) + " bytes written",
                         (r.err ? errname(r.err) : std::string("0 returned")) + " after " + std::to_string(done));
            done += static_cast<std::size_t>(r.ret);
        }
        note(what + "=" + std::to_string(data.size()));
    }
    void pwrite_all(int fd, std::string_view data, std::size_t off) {
        std::size_t done = 0;
        while (done < data.size()) {
            const Sys r = sys([&] { return ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(off + done)); });
            if (r.err || r.ret == 0)
                mismatch("pwrite", std::to_string(data.size()) + " bytes written",
                         (r.err ? errname(r.err) : std::string("0 returned")) + " after " + std::to_string(done));
            done += static_cast<std::size_t>(r.ret);
        }
    }
    // Reads [off, off+len) (or to EOF when len is npos) with pread; the first error is returned.
    Sys pread_range(int fd, std::size_t off, std::size_t len, std::string& out) {
        out.clear();
        char buf[65536];
        const std::size_t cap = opt_.max_size + sizeof buf;  // past any size the model allows
        while (out.size() < len && out.size() <= cap) {
            const std::size_t want = std::min(sizeof buf, len - out.size());
            const Sys r = sys([&] { return ::pread(fd, buf, want, static_cast<off_t>(off + out.size())); });
            if (r.err) return r;
            if (r.ret == 0) break;
            out.append(buf, static_cast<std::size_t>(r.ret));
        }
        return {};
    }
    void fstat_check(int fd, Node& n) {
        struct stat st {};
        expect(0, sys([&] { return ::fstat(fd, &st); }), "fstat");
        if (const std::string d = stat_diff(n, st, false); !d.empty()) mismatch("fstat", "see actual", d);
    }

    // Opens p with flags, checks the outcome against the model and applies what the open
    // does (creating, O_TRUNC). -1 when the model predicted the failure.
    int open_file(const Path& p, int flags, Node*& node) {
        const Where w = find(p);
        int want = w.err;
        if (!want) {
            if (!w.node) want = (flags & O_CREAT) ? 0 : ENOENT;
            else if ((flags & O_CREAT) && (flags & O_EXCL)) want = EEXIST;
            else if (w.node->dir && ((flags & O_ACCMODE) != O_RDONLY || (flags & O_CREAT))) want = EISDIR;
        }
        const Sys r = sys([&] { return ::openat(root_fd_, join(p).c_str(), flags | O_CLOEXEC, 0644); });
        expect(want, r, "open");
        if (want) return -1;
        node = w.node;
        if (!node) {
            auto fresh = std::make_unique<Node>();
            node = fresh.get();
            w.parent->kids.emplace(p.back(), std::move(fresh));
            w.parent->mtime.reset();
        }
        if ((flags & O_ACCMODE) != O_RDONLY) {
            if (flags & O_TRUNC) node->data.clear();
            node->mtime.reset();
        }
        return static_cast<int>(r.ret);
    }

    // ---- operations
    void op_create() {
        const Path p = pick_new();
        cur_ += "create " + show(p) + " O_CREAT|O_EXCL:";
        Node* n = nullptr;
        if (const int fd = open_file(p, O_WRONLY | O_CREAT | O_EXCL, n); fd >= 0) close_fd(fd);
    }
    void op_write() {
        const Path p = rng_.chance(50) ? pick(Kind::file) : pick_new();
        const int flags = O_WRONLY | O_TRUNC | (rng_.chance(80) ? O_CREAT : 0);
        const std::string data = rng_.bytes(draw_size(opt_.max_size));
        std::vector<std::size_t> cuts{0, data.size()};
        for (std::uint64_t i = rng_.below(4); i > 0; --i) cuts.push_back(rng_.below(data.size() + 1));
        std::sort(cuts.begin(), cuts.end());
        const bool sync = rng_.chance(10);
        cur_ += "write " + show(p) + " " + flag_names(flags) + " size=" + std::to_string(data.size()) + " in " +
                std::to_string(cuts.size() - 1) + (sync ? " +fsync:" : ":");
        Node* n = nullptr;
        const int fd = open_file(p, flags, n);
        if (fd < 0) return;
        for (std::size_t i = 0; i + 1 < cuts.size(); ++i)
            write_all(fd, std::string_view(data).substr(cuts[i], cuts[i + 1] - cuts[i]), "write");
        n->data = data;
        if (sync) expect(0, sys([&] { return ::fsync(fd); }), "fsync");
        fstat_check(fd, *n);
        close_fd(fd);
    }
    void op_pwrite() {
        const Path p = pick(Kind::file);
        const Where w = find(p);
        const std::size_t size = w.node ? w.node->data.size() : 0;
        const std::size_t len = std::max<std::size_t>(1, draw_size(opt_.max_size));
        const std::size_t room = opt_.max_size - len;
        const std::size_t off = rng_.chance(60) ? rng_.below(std::min(size, room) + 1) : rng_.below(room + 1);
        const std::string data = rng_.bytes(len);
        cur_ += "pwrite " + show(p) + " O_RDWR off=" + std::to_string(off) + " len=" + std::to_string(len) + ":";
        Node* n = nullptr;
        const int fd = open_file(p, O_RDWR, n);
        if (fd < 0) return;
        pwrite_all(fd, data, off);
        if (n->data.size() < off + len) n->data.resize(off + len, '\0');
        n->data.replace(off, len, data);
        std::string back;
        expect(0, pread_range(fd, off, len, back), "pread");
        if (const std::string d = content_diff(back, data); !d.empty()) mismatch("pread after pwrite", "the bytes written", d);
        fstat_check(fd, *n);
        close_fd(fd);
    }
    void op_append() {
        const Path p = rng_.chance(80) ? pick(Kind::file) : pick_new();
        const int flags = O_WRONLY | O_APPEND | (rng_.chance(30) ? O_CREAT : 0);
        const Where w = find(p);
        const std::size_t size = w.node ? w.node->data.size() : 0;
        const std::string data = rng_.bytes(draw_size(opt_.max_size - std::min(size, opt_.max_size)));
        cur_ += "append " + show(p) + " " + flag_names(flags) + " len=" + std::to_string(data.size()) + ":";
        Node* n = nullptr;
        const int fd = open_file(p, flags, n);
        if (fd < 0) return;
        write_all(fd, data, "write");
        n->data += data;
        fstat_check(fd, *n);
        close_fd(fd);
    }
    void op_read(bool whole) {
        const Path p = pick(Kind::file);
        const Where w = find(p);
        const std::size_t size = w.node ? w.node->data.size() : 0;
        const std::size_t off = whole ? 0 : rng_.chance(80) ? rng_.below(size + 1) : rng_.below(size + 100);
        const std::size_t len = whole ? std::string::npos : std::max<std::size_t>(1, draw_size(opt_.max_size));
        cur_ += whole ? "read " + show(p) + ":"
                      : "pread " + show(p) + " off=" + std::to_string(off) + " len=" + std::to_string(len) + ":";
        Node* n = nullptr;
        const int fd = open_file(p, O_RDONLY, n);
        if (fd < 0) return;
        std::string got;
        const Sys r = pread_range(fd, off, len, got);
        expect(n->dir ? EISDIR : 0, r, "read");
        if (!n->dir) {
            const std::string want = off < n->data.size() ? n->data.substr(off, len) : std::string();
            if (const std::string d = content_diff(got, want); !d.empty()) mismatch("read", "the model's bytes", d);
            note("bytes=" + std::to_string(got.size()));
        }
        close_fd(fd);
    }
    void op_truncate(bool on_fd) {
        const Path p = pick(Kind::file);
        const Where w = find(p);
        const std::size_t size = w.node ? w.node->data.size() : 0;
        const std::size_t to = rng_.chance(50) ? rng_.below(size + 1) : draw_size(opt_.max_size);
        Node* n = nullptr;
        if (on_fd) {
            const int flags = rng_.chance(50) ? O_WRONLY : O_RDWR;
            cur_ += "ftruncate " + show(p) + " " + flag_names(flags) + " to=" + std::to_string(to) + ":";
            const int fd = open_file(p, flags, n);
            if (fd < 0) return;
            expect(0, sys([&] { return ::ftruncate(fd, static_cast<off_t>(to)); }), "ftruncate");
            n->data.resize(to, '\0');
            fstat_check(fd, *n);
            close_fd(fd);
            return;
        }
        cur_ += "truncate " + show(p) + " to=" + std::to_string(to) + ":";
        const int want = w.err ? w.err : !w.node ? ENOENT : w.node->dir ? EISDIR : 0;
        const std::string full = opt_.dir + "/" + join(p);
        expect(want, sys([&] { return ::truncate(full.c_str(), static_cast<off_t>(to)); }), "truncate");
        if (want) return;
        w.node->data.resize(to, '\0');
        w.node->mtime.reset();
    }

    // renameat2 as Linux orders its checks: both parents' walks, the source, NOREPLACE /
    // EXCHANGE on the target, the ancestor traps, same entry (a no-op), the types, then
    // ENOTEMPTY from the filesystem.
    int rename_errno(const Path& src, const Path& dst, unsigned flags, const Where& ws, const Where& wd) {
        if (ws.err) return ws.err;
        if (wd.err) return wd.err;
        if (!ws.node) return ENOENT;
        if ((flags & RENAME_NOREPLACE) && wd.node) return EEXIST;
        if ((flags & RENAME_EXCHANGE) && !wd.node) return ENOENT;
        if (strictly_below(dst, src)) return EINVAL;
        if (strictly_below(src, dst)) return (flags & RENAME_EXCHANGE) ? EINVAL : ENOTEMPTY;
        if (src == dst || (flags & RENAME_EXCHANGE) || !wd.node) return 0;
        if (ws.node->dir && !wd.node->dir) return ENOTDIR;
        if (!ws.node->dir && wd.node->dir) return EISDIR;
        if (wd.node->dir && !wd.node->kids.empty()) return ENOTEMPTY;
        return 0;
    }
    void do_rename(const Path& src, const Path& dst, unsigned flags) {
        const Where ws = find(src), wd = find(dst);
        const int want = rename_errno(src, dst, flags, ws, wd);
        const Sys r = sys([&] { return ::renameat2(root_fd_, join(src).c_str(), root_fd_, join(dst).c_str(), flags); });
        expect(want, r, "rename");
        if (want || src == dst) return;
        ws.parent->mtime.reset();
        wd.parent->mtime.reset();
        auto& from = ws.parent->kids[src.back()];
        auto& to = wd.parent->kids[dst.back()];  // may insert an empty slot
        if (flags & RENAME_EXCHANGE) {
            std::swap(from, to);
            return;
        }
        to = std::move(from);
        ws.parent->kids.erase(src.back());
    }
    void op_rename() {
        static const unsigned kFlags[] = {0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE};
        Path src, dst;
        unsigned flags = 0;
        // Redrawn while it would succeed and leave an entry deeper than kMaxDepth.
        for (int attempt = 0;; ++attempt) {
            src = pick(rng_.chance(30) ? Kind::dir : Kind::any);
            const std::uint64_t r = rng_.below(100);
            dst = r < 35 ? pick(Kind::any) : r < 85 ? pick_new() : random_path();
            flags = kFlags[rng_.below(std::size(kFlags))];
            const Where ws = find(src), wd = find(dst);
            if (rename_errno(src, dst, flags, ws, wd) != 0 || src == dst) break;
            bool deep = dst.size() + height(*ws.node) > kMaxDepth;
            if ((flags & RENAME_EXCHANGE) && src.size() + height(*wd.node) > kMaxDepth) deep = true;
            if (!deep) break;
            if (attempt == 16) {
                cur_ += "stat " + show(src) + " (no shallow rename drawn):";
                do_stat(src);
                return;
            }
        }
        cur_ += "rename " + show(src) + " -> " + show(dst) +
                (flags == RENAME_NOREPLACE ? " NOREPLACE:" : flags == RENAME_EXCHANGE ? " EXCHANGE:" : ":");
        do_rename(src, dst, flags);
    }
    void do_unlink(const Path& p) {
        const Where w = find(p);
        const int want = w.err ? w.err : !w.node ? ENOENT : w.node->dir ? EISDIR : 0;
        expect(want, sys([&] { return ::unlinkat(root_fd_, join(p).c_str(), 0); }), "unlink");
        if (want) return;
        w.parent->kids.erase(p.back());
        w.parent->mtime.reset();
    }
    void op_unlink() {
        const Path p = pick(Kind::file);
        cur_ += "unlink " + show(p) + ":";
        do_unlink(p);
    }
    void op_mkdir() {
        const Path p = pick_new();
        cur_ += "mkdir " + show(p) + ":";
        const Where w = find(p);
        const int want = w.err ? w.err : w.node ? EEXIST : 0;
        expect(want, sys([&] { return ::mkdirat(root_fd_, join(p).c_str(), 0755); }), "mkdir");
        if (want) return;
        auto d = std::make_unique<Node>();
        d->dir = true;
        w.parent->kids.emplace(p.back(), std::move(d));
        w.parent->mtime.reset();
    }
    void op_rmdir() {
        const Path p = pick(Kind::dir);
        cur_ += "rmdir " + show(p) + ":";
        const Where w = find(p);
        const int want = w.err                  ? w.err
                         : !w.node              ? ENOENT
                         : !w.node->dir         ? ENOTDIR
                         : !w.node->kids.empty() ? ENOTEMPTY
                                                : 0;
        expect(want, sys([&] { return ::unlinkat(root_fd_, join(p).c_str(), AT_REMOVEDIR); }), "rmdir");
        if (want) return;
        w.parent->kids.erase(p.back());
        w.parent->mtime.reset();
    }
    void do_stat(const Path& p) {
        const Where w = find(p);
        const int want = w.err ? w.err : !w.node ? ENOENT : 0;
        struct stat st {};
        expect(want, sys([&] { return ::fstatat(root_fd_, join(p).c_str(), &st, AT_SYMLINK_NOFOLLOW); }), "stat");
        if (want) return;
        if (const std::string d = stat_diff(*w.node, st, true); !d.empty()) mismatch("stat", "see actual", d);
    }
    void op_stat() {
        const Path p = pick(Kind::any);
        cur_ += "stat " + show(p) + ":";
        do_stat(p);
    }
    void op_readdir() {
        const Path p = rng_.chance(15) ? Path{} : pick(Kind::dir);
        cur_ += "readdir " + (p.empty() ? std::string(".") : show(p)) + ":";
        const Where w = p.empty() ? Where{0, nullptr, &root_} : find(p);
        const int want = w.err ? w.err : !w.node ? ENOENT : !w.node->dir ? ENOTDIR : 0;
        const std::string rel = p.empty() ? "." : join(p);
        const Sys r = sys([&] { return ::openat(root_fd_, rel.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
        expect(want, r, "opendir");
        if (want) return;
        std::vector<std::pair<std::string, unsigned char>> got;
        if (const std::string d = list(static_cast<int>(r.ret), got); !d.empty()) mismatch("readdir", "a listing", d);
        std::string want_names, got_names;
        for (const auto& [nm, k] : w.node->kids) want_names += " " + nm;
        for (const auto& [nm, type] : got) {
            got_names += " " + nm;
            auto it = w.node->kids.find(nm);
            if (it != w.node->kids.end() && type != DT_UNKNOWN && (type == DT_DIR) != it->second->dir)
                mismatch("readdir d_type of " + nm, it->second->dir ? "DT_DIR" : "DT_REG", std::to_string(type));
        }
        if (want_names != got_names) mismatch("readdir", "{" + want_names + " }", "{" + got_names + " }");
        note("entries=" + std::to_string(got.size()));
    }
    void op_utimens() {
        const Path p = pick(Kind::any);
        const std::int64_t sec = 1000000000 + static_cast<std::int64_t>(rng_.below(1000000000));
        cur_ += "utimens " + show(p) + " mtime=" + std::to_string(sec) + ":";
        const Where w = find(p);
        const int want = w.err ? w.err : !w.node ? ENOENT : 0;
        struct timespec ts[2] = {{0, UTIME_OMIT}, {static_cast<time_t>(sec), 0}};
        expect(want, sys([&] { return ::utimensat(root_fd_, join(p).c_str(), ts, AT_SYMLINK_NOFOLLOW); }), "utimensat");
        if (want) return;
        w.node->mtime = sec;
        do_stat(p);
    }
    // Write a temporary file in the target's directory, close it, rename it over the target.
    void op_replace() {
        Path target;
        if (rng_.chance(60)) target = pick(Kind::file);
        else target = pick_new();
        Path tmp = target;
        tmp.back() = ".tmp~model";
        const std::string data = rng_.bytes(draw_size(opt_.max_size));
        cur_ += "replace " + show(target) + " via " + show(tmp) + " size=" + std::to_string(data.size()) + ":";
        Node* n = nullptr;
        const int fd = open_file(tmp, O_WRONLY | O_CREAT | O_EXCL, n);
        if (fd < 0) return;
        write_all(fd, data, "write");
        n->data = data;
        close_fd(fd);
        const Where wt = find(target);
        const bool fails = wt.node && wt.node->dir;
        do_rename(tmp, target, 0);
        if (fails) do_unlink(tmp);
    }

    void step() {
        using Fn = void (Model::*)();
        static const struct {
            unsigned weight;
            Fn fn;
        } table[] = {
            {8, &Model::op_create},
            {12, &Model::op_write},
            {8, &Model::op_pwrite},
            {6, &Model::op_append},
            {7, &Model::op_read_whole},
            {5, &Model::op_read_at},
            {4, &Model::op_truncate_path},
            {4, &Model::op_truncate_fd},
            {11, &Model::op_rename},
            {6, &Model::op_unlink},
            {6, &Model::op_mkdir},
            {5, &Model::op_rmdir},
            {6, &Model::op_stat},
            {4, &Model::op_readdir},
            {4, &Model::op_utimens},
            {5, &Model::op_replace},
        };
        unsigned total = 0;
        for (const auto& t : table) total += t.weight;
        std::uint64_t r = rng_.below(total);
        for (const auto& t : table) {
            if (r < t.weight) {
                (this->*t.fn)();
                return;
            }
            r -= t.weight;
        }
    }
    void op_read_whole() { op_read(true); }
    void op_read_at() { op_read(false); }
    void op_truncate_path() { op_truncate(false); }
    void op_truncate_fd() { op_truncate(true); }

    // ---- walking a tree
    // Lists an open directory fd (taken over) into names sorted bytewise.
    static std::string list(int fd, std::vector<std::pair<std::string, unsigned char>>& out) {
        DIR* d = ::fdopendir(fd);
        if (!d) {
            const int e = errno;
            ::close(fd);
            return "fdopendir: " + errname(e);
        }
        for (;;) {
            errno = 0;
            const dirent* e = ::readdir(d);
            if (!e) break;
            if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) out.emplace_back(e->d_name, e->d_type);
        }
        const int err = errno;
        const int closed = ::closedir(d) == 0 ? 0 : errno;
        if (err) return "readdir: " + errname(err);
        if (closed) return "closedir: " + errname(closed);
        std::sort(out.begin(), out.end());
        return {};
    }
    std::string walk_dir(const std::string& top, const Path& rel, Node& n, bool learn) {
        const std::string at = rel.empty() ? top : top + "/" + join(rel);
        const std::string where = rel.empty() ? "." : show(rel);
        std::vector<std::pair<std::string, unsigned char>> got;
        const Sys r = sys([&] { return ::open(at.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
        if (r.err) return where + ": open: " + errname(r.err);
        if (std::string d = list(static_cast<int>(r.ret), got); !d.empty()) return where + ": " + d;
        auto k = n.kids.begin();
        for (const auto& [nm, type] : got) {
            if (k == n.kids.end() || nm < k->first) return where + ": unexpected entry '" + nm + "'";
            if (k->first < nm) return where + ": missing entry '" + k->first + "'";
            ++k;
        }
        if (k != n.kids.end()) return where + ": missing entry '" + k->first + "'";
        Path sub = rel;
        for (const auto& [nm, type] : got) {
            Node& kid = *n.kids.at(nm);
            sub.push_back(nm);
            const std::string full = top + "/" + join(sub);
            struct stat st {};
            const Sys s = sys([&] { return ::lstat(full.c_str(), &st); });
            if (s.err) return show(sub) + ": stat: " + errname(s.err);
            if (type != DT_UNKNOWN && (type == DT_DIR) != kid.dir) return show(sub) + ": d_type " + std::to_string(type);
            if (std::string d = stat_diff(kid, st, learn); !d.empty()) return show(sub) + ": " + d;
            if (kid.dir) {
                if (std::string d = walk_dir(top, sub, kid, learn); !d.empty()) return d;
            } else {
                const Sys o = sys([&] { return ::open(full.c_str(), O_RDONLY | O_CLOEXEC); });
                if (o.err) return show(sub) + ": open: " + errname(o.err);
                const int fd = static_cast<int>(o.ret);
                std::string bytes;
                const Sys rd = pread_range(fd, 0, std::string::npos, bytes);
                const int closed = ::close(fd) == 0 ? 0 : errno;
                if (rd.err) return show(sub) + ": read: " + errname(rd.err);
                if (closed) return show(sub) + ": close: " + errname(closed);
                if (std::string d = content_diff(bytes, kid.data); !d.empty()) return show(sub) + ": " + d;
            }
            sub.pop_back();
        }
        return {};
    }
    // The first difference between the tree at `top` and the model, "" when none.
    std::string walk(const std::string& top, bool learn) {
        struct stat st {};
        const Sys s = sys([&] { return ::stat(top.c_str(), &st); });
        if (s.err) return top + ": stat: " + errname(s.err);
        if (!S_ISDIR(st.st_mode)) return top + ": not a directory";
        if (std::string d = mtime_diff(root_, st, learn); !d.empty()) return ".: " + d;
        return walk_dir(top, {}, root_, learn);
    }
    void check_tree() {
        if (const std::string d = walk(opt_.dir, true); !d.empty()) {
            cur_ = "tree walk after op " + std::to_string(op_);
            mismatch("walk " + opt_.dir, "the model's tree", d);
        }
    }
    void count(const Node& n, std::uint64_t& files, std::uint64_t& dirs, std::uint64_t& bytes) const {
        for (const auto& [nm, k] : n.kids) {
            if (k->dir) {
                ++dirs;
                count(*k, files, dirs, bytes);
            } else {
                ++files;
                bytes += k->data.size();
            }
        }
    }

    const Options& opt_;
    Rng rng_;
    const int root_fd_;
    Node root_;
    std::uint64_t op_ = 0;
    std::string cur_;
    std::deque<std::string> history_;
};

int Model::run() {
    const std::uint64_t n = opt_.stop_at ? std::min(opt_.ops, *opt_.stop_at) : opt_.ops;
    for (std::uint64_t i = 0; i < n; ++i) {
        op_ = i;
        cur_ = "#" + std::to_string(i) + " ";
        step();
        if (opt_.verbose) std::printf("%s\n", cur_.c_str());
        history_.push_back(std::move(cur_));
        if (history_.size() > kHistory) history_.pop_front();
        if ((i + 1) % kWalkEvery == 0 && i + 1 < n) check_tree();
    }
    op_ = n ? n - 1 : 0;
    check_tree();  // learns every mtime still unknown: the other trees must show the same

    for (const auto& other : opt_.compare) {
        using Clock = std::chrono::steady_clock;
        const auto deadline = Clock::now() + std::chrono::seconds(10);
        for (;;) {
            const std::string d = walk(other, false);
            if (d.empty()) break;
            if (Clock::now() >= deadline) {
                std::printf("MISMATCH comparing %s with the model after 10 s (seed %llu): %s\n", other.c_str(),
                            static_cast<unsigned long long>(opt_.seed), d.c_str());
                return 1;
            }
            const struct timespec pause = {0, 20 * 1000 * 1000};
            ::nanosleep(&pause, nullptr);
        }
        std::printf("compare %s: equal\n", other.c_str());
    }

    std::uint64_t files = 0, dirs = 0, bytes = 0;
    count(root_, files, dirs, bytes);
    std::printf("ok: %llu ops, seed %llu, %llu files, %llu dirs, %llu bytes\n", static_cast<unsigned long long>(n),
                static_cast<unsigned long long>(opt_.seed), static_cast<unsigned long long>(files),
                static_cast<unsigned long long>(dirs), static_cast<unsigned long long>(bytes));
    return 0;
}

[[noreturn]] void usage_error(const std::string& why) {
    std::fprintf(stderr, "conclave-tree-model: %s\n%s", why.c_str(), kUsage);
    std::exit(2);
}

std::uint64_t number(const char* flag, const char* s) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-') usage_error(std::string("bad number for ") + flag + ": " + s);
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    bool seeded = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) usage_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            std::printf("%s", kUsage);
            return 0;
        } else if (a == "--dir") {
            opt.dir = value();
        } else if (a == "--ops") {
            opt.ops = number("--ops", value());
        } else if (a == "--seed") {
            opt.seed = number("--seed", value());
            seeded = true;
        } else if (a == "--max-size") {
            opt.max_size = number("--max-size", value());
        } else if (a == "--stop-at") {
            opt.stop_at = number("--stop-at", value());
        } else if (a == "--verbose") {
            opt.verbose = true;
        } else if (a == "--compare") {
            const int first = i + 1;
            while (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0) opt.compare.emplace_back(argv[++i]);
            if (i + 1 == first) usage_error("--compare needs at least one directory");
        } else {
            usage_error("unknown argument " + a);
        }
    }
    if (opt.dir.empty()) usage_error("--dir is required");
    if (opt.max_size < 1 || opt.max_size > (64u << 20)) usage_error("--max-size must be 1..67108864");
    while (opt.dir.size() > 1 && opt.dir.back() == '/') opt.dir.pop_back();
    if (!seeded) {
        std::random_device rd;
        opt.seed = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    }

    const int root_fd = ::open(opt.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) {
        std::fprintf(stderr, "conclave-tree-model: %s: %s\n", opt.dir.c_str(), std::strerror(errno));
        return 2;
    }
    if (DIR* d = ::opendir(opt.dir.c_str())) {
        bool empty = true;
        while (const dirent* e = ::readdir(d))
            if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) empty = false;
        ::closedir(d);
        if (!empty) {
            std::fprintf(stderr, "conclave-tree-model: %s is not empty\n", opt.dir.c_str());
            return 2;
        }
    } else {
        std::fprintf(stderr, "conclave-tree-model: %s: %s\n", opt.dir.c_str(), std::strerror(errno));
        return 2;
    }
    ::umask(022);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    std::printf("conclave-tree-model: dir %s, %llu ops, seed %llu, max-size %zu\n", opt.dir.c_str(),
                static_cast<unsigned long long>(opt.stop_at ? std::min(opt.ops, *opt.stop_at) : opt.ops),
                static_cast<unsigned long long>(opt.seed), opt.max_size);
    Model m(opt, root_fd);
    return m.run();
}
