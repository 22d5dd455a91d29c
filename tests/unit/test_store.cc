// The LMDB store: every op and its errno, determinism, the hash chain and retained log,
// snapshots, batches, reopening, reads by inode number, conditions, cluster locks.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "store/db.h"
#include "store/journal.h"
#include "store/store.h"
#include "temp_dir.h"
#include "why.h"

using namespace conclave;
using namespace conclave::store;

namespace {

std::uint64_t g_clock = 1000;  // timestamps come from transitions only

Transition op(Op o, std::string path, std::string path2 = "") {
    Transition t;
    t.op = o;
    t.origin = 1;
    t.request = g_clock;
    t.timestamp_us = ++g_clock;
    t.path = std::move(path);
    t.path2 = std::move(path2);
    return t;
}
Transition t_write(std::string path, std::string data) {
    Transition t = op(Op::write, std::move(path));
    t.data.assign(data.begin(), data.end());
    return t;
}
Transition t_mkdir(std::string path, std::uint32_t mode = 0755) {
    Transition t = op(Op::mkdir, std::move(path));
    t.mode = mode;
    return t;
}
Transition t_rename(std::string from, std::string to, std::uint32_t flags = 0) {
    Transition t = op(Op::rename, std::move(from), std::move(to));
    t.flags = flags;
    return t;
}
Transition genesis(Limits limits = {}) {
    Transition t = op(Op::genesis, "");
    t.cluster_id[0] = 0x42;
    t.node_id = 1;
    t.node_name = "n1";
    t.votes = 1;
    t.data = encode_limits(limits);
    return t;
}

// Options for a test store: a 64 MiB map, the given sync and retained log.
Options options(bool sync, std::uint64_t retain) {
    Options o;
    o.sync = sync;
    o.map_size = 64ull << 20;
    o.retain = retain;
    return o;
}

struct Fixture {
    test::TempDir dir;
    std::unique_ptr<Store> store;
    explicit Fixture(Options o = options(false, 10000)) {
        auto s = Store::open(dir.path, o);
        REQUIRE_MESSAGE(s.ok(), test::why(s));
        store = std::move(s.value());
    }
    // Applies one transition in epoch 1; returns its errno.
    int apply(const Transition& t, std::uint64_t epoch = 1) {
        Item item{epoch, t, std::nullopt};
        auto r = store->apply(std::span<const Item>(&item, 1));
        REQUIRE_MESSAGE(r.ok(), test::why(r));
        REQUIRE(r->size() == 1);
        return r.value()[0].err;
    }
    std::string read(const std::string& path) {
        wire::Bytes b;
        REQUIRE(store->read(path, b) == 0);
        return std::string(b.begin(), b.end());
    }
    EntryInfo stat(const std::string& path) {
        EntryInfo e;
        REQUIRE(store->stat(path, e) == 0);
        return e;
    }
    std::vector<std::string> names(const std::string& path) {
        std::vector<EntryInfo> l;
        REQUIRE(store->list(path, l) == 0);
        std::vector<std::string> out;
        for (const auto& e : l) out.push_back(e.name);
        return out;
    }
};

struct Cluster : Fixture {
    explicit Cluster(Limits limits = {}) { REQUIRE(apply(genesis(limits)) == 0); }
    using Fixture::Fixture;
};

// Applies t and checks that it failed with `err` and changed nothing but the head.
void fails_with(Fixture& f, const Transition& t, int err) {
    const Hash before = f.store->content_hash();
    const Store::Usage u = f.store->usage();
    CHECK(f.apply(t) == err);
    CHECK(f.store->content_hash() == before);
    CHECK(f.store->usage().bytes == u.bytes);
    CHECK(f.store->usage().entries == u.entries);
}

}  // namespace

TEST_CASE("a fresh store is empty and refuses tree ops before genesis") {
    Fixture f;
    CHECK(f.store->head() == Head{});
    CHECK(f.store->meta().empty());
    CHECK(f.stat("/").dir);
    CHECK(f.stat("/").ino == 1);
    CHECK(f.names("/").empty());
    Item item{1, t_write("/a", "x"), std::nullopt};
    CHECK_FALSE(f.store->apply(std::span<const Item>(&item, 1)).ok());
    CHECK(f.store->head().version == 0);

    CHECK(f.apply(genesis()) == 0);
    CHECK(f.store->head().version == 1);
    CHECK(f.store->meta().nodes.size() == 1);
    CHECK(f.stat("/").mtime_us == g_clock);
    CHECK(f.apply(genesis()) == EEXIST);
    CHECK(f.store->head().version == 2);
}

TEST_CASE("write, read, stat: whole files with mode, mtime, version, writer") {
    Cluster f;
    Transition w = t_write("/f", "hello");
    w.origin = 7;
    w.flags = kSetMode;
    w.mode = 0100640;
    CHECK(f.apply(w) == 0);
    CHECK(f.read("/f") == "hello");
    EntryInfo e = f.stat("/f");
    CHECK_FALSE(e.dir);
    CHECK(e.size == 5);
    CHECK(e.mode == 0640);
    CHECK(e.mtime_us == w.timestamp_us);
    CHECK(e.version == f.store->head().version);
    CHECK(e.writer == 7);
    CHECK(e.name == "f");
    CHECK(f.stat("/").mtime_us == w.timestamp_us);  // the parent changed
    const std::uint64_t ino = e.ino;

    CHECK(f.apply(t_write("/f", "bye")) == 0);  // replaces, keeps inode and mode
    CHECK(f.read("/f") == "bye");
    CHECK(f.stat("/f").ino == ino);
    CHECK(f.stat("/f").mode == 0640);
    CHECK(f.apply(t_write("/f", "")) == 0);
    CHECK(f.read("/f").empty());
    CHECK(f.stat("/f").size == 0);
    CHECK(f.apply(t_write("/g", "x")) == 0);
    CHECK(f.stat("/g").mode == 0644);  // default

    fails_with(f, t_write("/missing/f", "x"), ENOENT);
    fails_with(f, t_write("/f/x", "x"), ENOTDIR);
    CHECK(f.apply(t_mkdir("/d")) == 0);
    fails_with(f, t_write("/d", "x"), EISDIR);
    fails_with(f, t_write("/", "x"), EISDIR);

    wire::Bytes b;
    CHECK(f.store->read("/d", b) == EISDIR);
    CHECK(f.store->read("/nope", b) == ENOENT);
    CHECK(f.store->read("/f/x", b) == ENOTDIR);
    CHECK(f.store->read("bad", b) == EINVAL);
    EntryInfo info;
    CHECK(f.store->stat("/nope", info) == ENOENT);
    CHECK(f.store->stat("/a/", info) == EINVAL);
    std::vector<EntryInfo> l;
    CHECK(f.store->list("/f", l) == ENOTDIR);
    CHECK(f.store->list("/nope", l) == ENOENT);
}

TEST_CASE("limits: EFBIG, ENOSPC, ENAMETOOLONG") {
    Cluster f(Limits{10, 29, 8});
    fails_with(f, t_write("/a", std::string(11, 'x')), EFBIG);
    CHECK(f.apply(t_write("/a", std::string(10, 'x'))) == 0);  // total 11
    fails_with(f, t_write("/123456789", "x"), ENAMETOOLONG);
    CHECK(f.apply(t_mkdir("/12345678")) == 0);                  // total 19
    fails_with(f, t_mkdir("/123456789"), ENAMETOOLONG);
    // A longer name in the middle of a path is no error of its own (max_name binds new
    // names; an older entry may have a longer one): here it names nothing.
    fails_with(f, t_mkdir("/123456789/x"), ENOENT);
    fails_with(f, t_mkdir("/" + std::string(256, 'n') + "/x"), ENAMETOOLONG);  // beyond any name
    CHECK(f.apply(t_write("/b", "123456789")) == 0);            // total 29
    CHECK(f.store->usage().bytes == 29);
    fails_with(f, t_write("/c", ""), ENOSPC);                   // + 1 name byte
    fails_with(f, t_write("/b", "1234567890"), ENOSPC);
    Transition t = op(Op::truncate, "/b");
    t.size = 10;
    fails_with(f, t, ENOSPC);
    t.size = 11;
    fails_with(f, t, EFBIG);
    fails_with(f, t_rename("/b", "/bb"), ENOSPC);               // a longer name
    CHECK(f.apply(t_rename("/b", "/c")) == 0);
    CHECK(f.apply(t_write("/c", "")) == 0);                     // shrinking is fine
    CHECK(f.store->usage().bytes == 20);
    CHECK(f.apply(op(Op::unlink, "/a")) == 0);
    CHECK(f.apply(op(Op::rmdir, "/12345678")) == 0);
    CHECK(f.store->usage().bytes == 1);
    CHECK(f.store->usage().entries == 2);
}

TEST_CASE("limits_set changes a cluster limit in the meta; a lower one binds new writes only") {
    auto set = [](const char* key, std::uint64_t value) {
        Transition t;
        t.op = Op::limits_set;
        t.node_name = key;
        t.size = value;
        return t;
    };
    Cluster f;
    REQUIRE(f.apply(t_write("/big", std::string(100'000, 'b'))) == 0);
    REQUIRE(f.apply(t_write("/long-name-of-20-byte", "x")) == 0);
    // Out of bounds, unknown keys and data are refused, changing nothing.
    const Meta before = f.store->meta();
    for (const auto& t : {set("max_file_size", 4095), set("max_file_size", (2u << 20) + 1), set("max_total_size", 1000),
                          set("max_total_size", (128u << 20) + 1), set("max_name", 15), set("max_name", 256),
                          set("max_files", 10)})
        fails_with(f, t, EINVAL);
    Transition with_data = set("max_name", 100);
    with_data.data = {1};
    fails_with(f, with_data, EINVAL);
    CHECK(f.store->meta() == before);

    CHECK(f.apply(set("max_file_size", 4096)) == 0);
    CHECK(f.apply(set("max_name", 16)) == 0);
    CHECK(f.apply(set("max_total_size", 1u << 20)) == 0);
    CHECK(f.store->meta().limits == Limits{4096, 1u << 20, 16});
    // What is there stays readable; new writes meet the new limits.
    wire::Bytes b;
    CHECK(f.store->read("/big", b) == 0);
    CHECK(b.size() == 100'000);
    fails_with(f, t_write("/big", std::string(4097, 'c')), EFBIG);
    CHECK(f.apply(t_write("/big", std::string(4096, 'c'))) == 0);
    fails_with(f, t_write("/seventeen-bytes-x", "x"), ENAMETOOLONG);
    CHECK(f.apply(t_write("/long-name-of-20-byte", "y")) == 0);  // its name is there already
    fails_with(f, t_mkdir("/seventeen-bytes-x"), ENAMETOOLONG);
    CHECK(f.apply(t_write("/short", "z")) == 0);
    fails_with(f, t_rename("/short", "/seventeen-bytes-x"), ENAMETOOLONG);  // a new name
    CHECK(f.apply(t_rename("/short", "/long-name-of-20-byte")) == 0);      // onto an existing one
    CHECK(f.read("/long-name-of-20-byte") == "z");
    CHECK(f.apply(t_rename("/long-name-of-20-byte", "/short")) == 0);      // and away again
    for (int i = 0; f.store->usage().bytes + 4096 + 2 <= (1u << 20); ++i)
        REQUIRE(f.apply(t_write("/f" + std::to_string(i), std::string(4096, 'f'))) == 0);
    fails_with(f, t_write("/g", std::string(4096, 'g')), ENOSPC);
    // 0 restores the default; a raised limit takes at once.
    CHECK(f.apply(set("max_file_size", 0)) == 0);
    CHECK(f.apply(set("max_total_size", 0)) == 0);
    CHECK(f.apply(set("max_name", 0)) == 0);
    CHECK(f.store->meta().limits == Limits{});
    CHECK(f.apply(set("max_file_size", 2u << 20)) == 0);
    CHECK(f.apply(t_write("/g", std::string(2u << 20, 'g'))) == 0);
    // The meta survives a reopen (it is in the state record) and travels in snapshots.
    auto snap = f.store->snapshot();
    REQUIRE(snap.ok());
    Fixture g;
    REQUIRE(g.store->install(snap.value()).ok());
    CHECK(g.store->meta().limits.max_file_size == 2u << 20);
}

TEST_CASE("the virtual files' names at the root are reserved: EACCES, nothing made") {
    Cluster f;
    for (const char* p : {"/.members", "/.version", "/.quorum"}) {
        fails_with(f, t_write(p, "shadow"), EACCES);
        fails_with(f, op(Op::create, p), EACCES);
        fails_with(f, t_mkdir(p), EACCES);
        REQUIRE(f.apply(t_write("/x", "1")) == 0);
        fails_with(f, t_rename("/x", p), EACCES);
        fails_with(f, t_rename("/x", p, kExchange), EACCES);
        REQUIRE(f.apply(op(Op::unlink, "/x")) == 0);
    }
    // Only at the root: the same names elsewhere are ordinary.
    CHECK(f.apply(t_mkdir("/d")) == 0);
    CHECK(f.apply(t_write("/d/.members", "x")) == 0);
    CHECK(f.apply(t_mkdir("/.membersx")) == 0);
    CHECK(f.names("/") == std::vector<std::string>{".membersx", "d"});
}

TEST_CASE("create: exclusive, truncating, on directories") {
    Cluster f;
    Transition c = op(Op::create, "/f");
    c.flags = kExclusive | kSetMode;
    c.mode = 0600;
    CHECK(f.apply(c) == 0);
    CHECK(f.stat("/f").mode == 0600);
    CHECK(f.stat("/f").size == 0);
    fails_with(f, c, EEXIST);
    CHECK(f.apply(t_write("/f", "data")) == 0);
    CHECK(f.apply(op(Op::create, "/f")) == 0);  // not exclusive: truncates
    CHECK(f.read("/f").empty());
    CHECK(f.stat("/f").mode == 0600);
    CHECK(f.apply(t_mkdir("/d")) == 0);
    fails_with(f, op(Op::create, "/d"), EISDIR);
    Transition cd = op(Op::create, "/d");
    cd.flags = kExclusive;
    fails_with(f, cd, EEXIST);
    fails_with(f, op(Op::create, "/"), EISDIR);
    fails_with(f, op(Op::create, "/x/y"), ENOENT);
    fails_with(f, op(Op::create, "/f/y"), ENOTDIR);
}

TEST_CASE("truncate grows with zeros and shrinks") {
    Cluster f;
    CHECK(f.apply(t_write("/f", "abcdef")) == 0);
    Transition t = op(Op::truncate, "/f");
    t.size = 3;
    CHECK(f.apply(t) == 0);
    CHECK(f.read("/f") == "abc");
    t = op(Op::truncate, "/f");
    t.size = 5;
    CHECK(f.apply(t) == 0);
    CHECK(f.read("/f") == std::string("abc\0\0", 5));
    CHECK(f.stat("/f").mtime_us == t.timestamp_us);
    t.path = "/missing";
    fails_with(f, t, ENOENT);
    CHECK(f.apply(t_mkdir("/d")) == 0);
    t.path = "/d";
    fails_with(f, t, EISDIR);
    t.path = "/";
    fails_with(f, t, EISDIR);
}

TEST_CASE("mkdir, rmdir, unlink") {
    Cluster f;
    CHECK(f.apply(t_mkdir("/d", 040700)) == 0);
    EntryInfo d = f.stat("/d");
    CHECK(d.dir);
    CHECK(d.mode == 0700);
    fails_with(f, t_mkdir("/d"), EEXIST);
    fails_with(f, t_mkdir("/"), EEXIST);
    fails_with(f, t_mkdir("/x/y"), ENOENT);
    CHECK(f.apply(t_mkdir("/d/e")) == 0);
    CHECK(f.apply(t_write("/d/f", "1")) == 0);
    CHECK(f.names("/d") == std::vector<std::string>{"e", "f"});
    CHECK(f.stat("/d").mtime_us == g_clock);

    fails_with(f, op(Op::rmdir, "/d"), ENOTEMPTY);
    fails_with(f, op(Op::rmdir, "/d/f"), ENOTDIR);
    fails_with(f, op(Op::rmdir, "/d/zz"), ENOENT);
    fails_with(f, op(Op::rmdir, "/"), EBUSY);
    fails_with(f, op(Op::unlink, "/d/e"), EISDIR);
    fails_with(f, op(Op::unlink, "/"), EISDIR);
    fails_with(f, op(Op::unlink, "/d/zz"), ENOENT);
    fails_with(f, op(Op::unlink, "/d/f/g"), ENOTDIR);

    CHECK(f.apply(op(Op::unlink, "/d/f")) == 0);
    CHECK(f.apply(op(Op::rmdir, "/d/e")) == 0);
    CHECK(f.stat("/d").mtime_us == g_clock);
    CHECK(f.names("/d").empty());
    CHECK(f.apply(op(Op::rmdir, "/d")) == 0);
    CHECK(f.names("/").empty());
    CHECK(f.store->usage().entries == 1);
    CHECK(f.store->usage().bytes == 0);
}

TEST_CASE("inode numbers are stable and never reused") {
    Cluster f;
    CHECK(f.apply(t_write("/a", "1")) == 0);
    const std::uint64_t a = f.stat("/a").ino;
    CHECK(a == 2);
    CHECK(f.apply(op(Op::unlink, "/a")) == 0);
    CHECK(f.apply(t_write("/a", "1")) == 0);
    CHECK(f.stat("/a").ino == 3);
    CHECK(f.apply(t_rename("/a", "/b")) == 0);
    CHECK(f.stat("/b").ino == 3);
}

TEST_CASE("rename: moves, replaces, errors") {
    Cluster f;
    CHECK(f.apply(t_mkdir("/d")) == 0);
    CHECK(f.apply(t_mkdir("/e")) == 0);
    CHECK(f.apply(t_write("/d/f", "F")) == 0);
    CHECK(f.apply(t_write("/g", "G")) == 0);
    const EntryInfo before = f.stat("/d/f");

    Transition r = t_rename("/d/f", "/e/h");
    CHECK(f.apply(r) == 0);
    EntryInfo moved = f.stat("/e/h");
    CHECK(moved.ino == before.ino);
    CHECK(moved.mtime_us == before.mtime_us);  // rename keeps the file's mtime
    CHECK(moved.version == f.store->head().version);
    CHECK(f.stat("/d").mtime_us == r.timestamp_us);
    CHECK(f.stat("/e").mtime_us == r.timestamp_us);
    CHECK(f.read("/e/h") == "F");
    CHECK(f.names("/d").empty());

    // Replacing a file (the write-tmp-then-rename pattern).
    CHECK(f.apply(t_rename("/g", "/e/h")) == 0);
    CHECK(f.read("/e/h") == "G");
    CHECK(f.names("/").size() == 2);
    CHECK(f.store->usage().bytes == 1 + 1 + 1 + 1);  // d, e, h + 1 byte

    CHECK(f.apply(t_write("/x", "X")) == 0);
    fails_with(f, t_rename("/x", "/e/h", kNoReplace), EEXIST);
    fails_with(f, t_rename("/x", "/e/h", kNoReplace | kExchange), EINVAL);
    fails_with(f, t_rename("/nope", "/y"), ENOENT);
    fails_with(f, t_rename("/x", "/nope/y"), ENOENT);
    fails_with(f, t_rename("/x", "/x/y"), ENOTDIR);
    fails_with(f, t_rename("/", "/y"), EBUSY);
    fails_with(f, t_rename("/x", "/"), EBUSY);
    fails_with(f, t_rename("/x", "/e"), EISDIR);
    fails_with(f, t_rename("/e", "/x"), ENOTDIR);
    fails_with(f, t_rename("/d", "/d/sub"), EINVAL);   // into its own subtree
    CHECK(f.apply(t_mkdir("/d/sub")) == 0);
    fails_with(f, t_rename("/d", "/d/sub/x"), EINVAL);
    fails_with(f, t_rename("/e", "/d"), ENOTEMPTY);      // over a non-empty directory
    fails_with(f, t_rename("/d/sub", "/d"), ENOTEMPTY);  // over its own parent
    fails_with(f, t_rename("/e/h", "/d"), EISDIR);

    // Same path: a no-op success that still takes a version.
    const Hash h = f.store->content_hash();
    const std::uint64_t v = f.store->head().version;
    CHECK(f.apply(t_rename("/x", "/x")) == 0);
    CHECK(f.store->content_hash() == h);
    CHECK(f.store->head().version == v + 1);
    CHECK(f.apply(t_rename("/x", "/x", kNoReplace)) == EEXIST);

    // A directory over an empty directory, with its subtree.
    CHECK(f.apply(op(Op::rmdir, "/d/sub")) == 0);
    CHECK(f.apply(t_mkdir("/e/k")) == 0);
    CHECK(f.apply(t_write("/e/k/z", "Z")) == 0);
    CHECK(f.apply(t_rename("/e", "/d")) == 0);
    CHECK(f.read("/d/k/z") == "Z");
    CHECK(f.read("/d/h") == "G");
    EntryInfo gone;
    CHECK(f.store->stat("/e", gone) == ENOENT);
    CHECK(f.names("/") == std::vector<std::string>{"d", "x"});
    CHECK(f.store->usage().entries == 6);  // /, d, h, k, z, x
    CHECK(f.store->usage().bytes == 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1);
}

TEST_CASE("rename with kExchange swaps two entries") {
    Cluster f;
    CHECK(f.apply(t_mkdir("/d")) == 0);
    CHECK(f.apply(t_write("/d/a", "A")) == 0);
    CHECK(f.apply(t_write("/b", "B")) == 0);
    const std::uint64_t ia = f.stat("/d/a").ino, ib = f.stat("/b").ino;
    CHECK(f.apply(t_rename("/d/a", "/b", kExchange)) == 0);
    CHECK(f.read("/d/a") == "B");
    CHECK(f.read("/b") == "A");
    CHECK(f.stat("/b").ino == ia);
    CHECK(f.stat("/d/a").ino == ib);
    fails_with(f, t_rename("/b", "/nope", kExchange), ENOENT);
    fails_with(f, t_rename("/d/a", "/d", kExchange), EINVAL);  // d would hold itself
    fails_with(f, t_rename("/d", "/d/a", kExchange), EINVAL);
    CHECK(f.apply(t_rename("/d", "/b", kExchange)) == 0);  // a dir and a file
    CHECK(f.stat("/b").dir);
    CHECK(f.read("/b/a") == "B");
    CHECK(f.read("/d") == "A");
}

TEST_CASE("apply reports the inodes each transition changed (store::Touched)") {
    Cluster f;
    auto touched = [&](const Transition& t) {
        Item item{1, t, std::nullopt};
        auto r = f.store->apply(std::span<const Item>(&item, 1));
        REQUIRE_MESSAGE(r.ok(), test::why(r));
        REQUIRE(r->size() == 1);
        return std::pair{r.value()[0].err, r.value()[0].touched};
    };
    using A = std::array<std::uint64_t, 2>;
    auto [e1, mk] = touched(t_mkdir("/d"));
    const std::uint64_t d = f.stat("/d").ino;
    CHECK(e1 == 0);
    CHECK(mk.entries == A{d, 0});
    CHECK(mk.dirs == A{1, 0});  // the root's children changed
    auto [e2, wr] = touched(t_write("/d/a", "x"));
    const std::uint64_t a = f.stat("/d/a").ino;
    CHECK(e2 == 0);
    CHECK(wr.entries == A{a, 0});
    CHECK(wr.dirs == A{d, 0});  // new: /d's children changed
    auto [e3, ow] = touched(t_write("/d/a", "yy"));
    CHECK(e3 == 0);
    CHECK(ow.entries == A{a, 0});
    CHECK(ow.dirs == A{0, 0});  // rewritten in place: /d unchanged
    CHECK(touched(t_write("/b", "z")).first == 0);
    const std::uint64_t b = f.stat("/b").ino;
    auto [e4, mv] = touched(t_rename("/b", "/d/a"));  // replaces a
    CHECK(e4 == 0);
    CHECK(mv.entries == A{b, a});
    CHECK(mv.dirs == A{1, d});
    CHECK(touched(t_write("/c", "z")).first == 0);
    const std::uint64_t c = f.stat("/c").ino;
    auto [e5, ex] = touched(t_rename("/c", "/d/a", kExchange));
    CHECK(e5 == 0);
    CHECK(ex.entries == A{c, b});
    CHECK(ex.dirs == A{1, d});
    auto [e6, rm] = touched(op(Op::unlink, "/d/a"));  // c now
    CHECK(e6 == 0);
    CHECK(rm.entries == A{c, 0});
    CHECK(rm.dirs == A{d, 0});
    auto [e7, tr] = touched(op(Op::truncate, "/c"));  // b, exchanged to /c
    CHECK(e7 == 0);
    CHECK(tr.entries == A{b, 0});
    CHECK(tr.dirs == A{0, 0});
    // A failed transition changed nothing.
    auto [e8, none] = touched(op(Op::unlink, "/nope"));
    CHECK(e8 == ENOENT);
    CHECK(none.entries == A{0, 0});
    CHECK(none.dirs == A{0, 0});
}

TEST_CASE("set_mtime and set_mode") {
    Cluster f;
    CHECK(f.apply(t_write("/f", "x")) == 0);
    Transition t = op(Op::set_mtime, "/f");
    t.size = 123456;
    CHECK(f.apply(t) == 0);
    CHECK(f.stat("/f").mtime_us == 123456);
    Transition m = op(Op::set_mode, "/f");
    m.mode = 0104751;
    CHECK(f.apply(m) == 0);
    CHECK(f.stat("/f").mode == 04751);
    CHECK(f.stat("/f").mtime_us == 123456);  // chmod keeps the mtime
    m.path = "/";
    CHECK(f.apply(m) == 0);
    CHECK(f.stat("/").mode == 04751);
    t.path = "/nope";
    fails_with(f, t, ENOENT);
    m.path = "/nope/x";
    fails_with(f, m, ENOENT);
}

TEST_CASE("malformed transitions abort the batch; node ops change the meta") {
    Cluster f;
    const Head head = f.store->head();
    for (const Transition& bad : {t_write("relative", "x"), t_rename("/a", "b/"), op(Op::node_add, "/x")}) {
        std::vector<Item> batch{{1, t_write("/ok", "x"), std::nullopt}, {1, bad, std::nullopt}};
        CHECK_FALSE(f.store->apply(batch).ok());
        CHECK(f.store->head() == head);
    }
    CHECK(f.store->usage().entries == 1);
    Transition add = op(Op::node_add, "");
    add.node_id = 2;
    add.node_name = "n2";
    add.votes = 1;
    CHECK(f.apply(add) == 0);
    CHECK(f.store->meta().nodes.size() == 2);
    CHECK(f.apply(add) == EEXIST);
    Transition rm = op(Op::node_remove, "");
    rm.node_id = 1;
    CHECK(f.apply(rm) == 0);
    CHECK(f.store->meta().nodes == std::vector<NodeEntry>{{2, "n2", 1}});
    rm.node_id = 2;
    CHECK(f.apply(rm) == EBUSY);
}

namespace {

// A workload touching every op, some failing.
std::vector<Item> workload() {
    std::vector<Item> items;
    auto add = [&](Transition t, std::uint64_t epoch) { items.push_back(Item{epoch, std::move(t), std::nullopt}); };
    add(genesis(), 4);
    add(t_mkdir("/etc"), 4);
    add(t_write("/etc/a", "alpha"), 4);
    add(t_write("/etc/b", "beta"), 4);
    add(t_rename("/etc/a", "/etc/c"), 8);
    add(op(Op::unlink, "/etc/zz"), 8);  // fails
    Transition t = op(Op::truncate, "/etc/b");
    t.size = 9;
    add(t, 8);
    add(t_mkdir("/etc"), 8);  // fails
    add(op(Op::rmdir, "/etc"), 12);  // fails
    Transition m = op(Op::set_mode, "/etc/c");
    m.mode = 0600;
    add(m, 12);
    return items;
}

}  // namespace

TEST_CASE("determinism: replicas fed the same items agree; batching does not matter") {
    Fixture a, b;
    const std::vector<Item> items = workload();
    auto ra = a.store->apply(items);
    REQUIRE(ra.ok());
    for (const Item& item : items) {
        auto rb = b.store->apply(std::span<const Item>(&item, 1));
        REQUIRE(rb.ok());
    }
    CHECK(a.store->head() == b.store->head());
    CHECK(a.store->content_hash() == b.store->content_hash());
    CHECK(a.store->meta() == b.store->meta());
    CHECK(a.store->head().version == items.size());
    CHECK(a.store->head().epoch == 12);
    REQUIRE(ra->size() == items.size());
    CHECK(ra.value()[5].err == ENOENT);
    CHECK(ra.value()[7].err == EEXIST);
    CHECK(ra.value()[8].err == ENOTEMPTY);

    // The hash chain: each result's hash follows from the previous.
    Hash h{};
    for (std::size_t i = 0; i < items.size(); ++i) {
        h = chain(h, items[i].epoch, i + 1, items[i].t);
        CHECK(ra.value()[i].hash == h);
        CHECK(ra.value()[i].version == i + 1);
        CHECK(ra.value()[i].origin == items[i].t.origin);
        CHECK(ra.value()[i].request == items[i].t.request);
    }
    CHECK(a.store->head().hash == h);

    // A different history gives a different content hash.
    Fixture c;
    std::vector<Item> other = items;
    other[2].t.data.push_back('!');
    REQUIRE(c.store->apply(other).ok());
    CHECK(c.store->content_hash() != a.store->content_hash());
}

TEST_CASE("expect: a hash mismatch aborts the whole batch") {
    Fixture a, b;
    std::vector<Item> items = workload();
    auto ra = a.store->apply(items);
    REQUIRE(ra.ok());
    for (std::size_t i = 0; i < items.size(); ++i) items[i].expect = ra.value()[i].hash;
    std::vector<Item> bad = items;
    bad[6].expect->at(0) ^= 1;
    CHECK_FALSE(b.store->apply(bad).ok());
    CHECK(b.store->head() == Head{});
    CHECK(b.store->meta().empty());
    CHECK(b.store->usage().entries == 1);
    auto rb = b.store->apply(items);
    REQUIRE(rb.ok());
    CHECK(b.store->head() == a.store->head());
}

TEST_CASE("log_after: on-history, off-history, beyond the retained log") {
    Fixture f(options(false, 4));
    const std::vector<Item> items = workload();  // 10 transitions
    auto r = f.store->apply(items);
    REQUIRE(r.ok());
    const Head head = f.store->head();
    CHECK(f.store->usage().log_records == 4);

    auto at_head = f.store->log_after(head.version, head.hash);
    REQUIRE(at_head.has_value());
    CHECK(at_head->empty());

    auto tail = f.store->log_after(8, r.value()[7].hash);
    REQUIRE(tail.has_value());
    REQUIRE(tail->size() == 2);
    CHECK((*tail)[0].version == 9);
    CHECK((*tail)[0].hash == r.value()[8].hash);
    CHECK((*tail)[0].err == ENOTEMPTY);
    CHECK((*tail)[0].epoch == 12);
    CHECK(decode((*tail)[1].transition).value() == items[9].t);

    auto from_base = f.store->log_after(6, r.value()[5].hash);  // the base: record 6 was dropped
    REQUIRE(from_base.has_value());
    CHECK(from_base->size() == 4);

    Hash wrong = r.value()[7].hash;
    wrong[3] ^= 1;
    CHECK_FALSE(f.store->log_after(8, wrong).has_value());                 // off history
    CHECK_FALSE(f.store->log_after(5, r.value()[4].hash).has_value());          // beyond retain
    CHECK_FALSE(f.store->log_after(0, Hash{}).has_value());                // genesis is gone
    CHECK_FALSE(f.store->log_after(head.version + 1, head.hash).has_value());
    Hash wrong_head = head.hash;
    wrong_head[0] ^= 1;
    CHECK_FALSE(f.store->log_after(head.version, wrong_head).has_value());

    // A store that kept everything answers from genesis.
    Fixture all;
    REQUIRE(all.store->apply(items).ok());
    auto everything = all.store->log_after(0, Hash{});
    REQUIRE(everything.has_value());
    CHECK(everything->size() == items.size());

    // Feeding the log to a lagging replica brings it to the same state.
    Fixture lag;
    REQUIRE(lag.store->apply(std::span<const Item>(items.data(), 8)).ok());
    auto missing = f.store->log_after(lag.store->head().version, lag.store->head().hash);
    REQUIRE(missing.has_value());
    std::vector<Item> catch_up;
    for (const LogRecord& rec : *missing) catch_up.push_back(Item{rec.epoch, decode(rec.transition).value(), rec.hash});
    REQUIRE(lag.store->apply(catch_up).ok());
    CHECK(lag.store->head() == f.store->head());
    CHECK(lag.store->content_hash() == f.store->content_hash());
}

TEST_CASE("retained_from lists a node's surviving requests") {
    Cluster f;
    Transition w = t_write("/a", "1");
    w.origin = 3;
    w.request = 99;
    CHECK(f.apply(w) == 0);
    Transition u = op(Op::unlink, "/zz");
    u.origin = 3;
    u.request = 100;
    CHECK(f.apply(u) == ENOENT);
    CHECK(f.apply(t_write("/b", "2")) == 0);
    const auto mine = f.store->retained_from(3);
    REQUIRE(mine.size() == 2);
    CHECK(mine[0].request == 99);
    CHECK(mine[0].err == 0);
    CHECK(mine[1].request == 100);
    CHECK(mine[1].err == ENOENT);
    CHECK(mine[1].version == 3);
    CHECK(mine[1].origin == 3);
    CHECK(f.store->retained_from(4).empty());
}

TEST_CASE("snapshot round-trips into a fresh store") {
    Fixture src(options(false, 3));
    const std::vector<Item> items = workload();
    REQUIRE(src.store->apply(items).ok());
    auto snap = src.store->snapshot();
    REQUIRE(snap.ok());

    auto parsed = parse_snapshot(snap.value());
    REQUIRE_MESSAGE(parsed.ok(), test::why(parsed));
    CHECK(parsed->head == src.store->head());
    CHECK(parsed->content == src.store->content_hash());
    CHECK(parsed->log.size() == 3);
    CHECK(parsed->entries.size() == 4);

    Fixture dst;
    REQUIRE(dst.apply(genesis()) == 0);  // whatever it had is replaced
    REQUIRE(dst.apply(t_write("/old", "x")) == 0);
    auto head = dst.store->install(snap.value());
    REQUIRE_MESSAGE(head.ok(), test::why(head));
    CHECK(head.value() == src.store->head());
    CHECK(dst.store->head() == src.store->head());
    CHECK(dst.store->meta() == src.store->meta());
    CHECK(dst.store->content_hash() == src.store->content_hash());
    CHECK(dst.store->usage().bytes == src.store->usage().bytes);
    CHECK(dst.store->usage().entries == src.store->usage().entries);
    EntryInfo e;
    CHECK(dst.store->stat("/old", e) == ENOENT);
    CHECK(dst.read("/etc/c") == "alpha");

    // The retained log came along: log_after works from the source's retained points.
    auto tail = dst.store->log_after(8, dst.store->log_after(7, parsed->log_base_hash)->at(0).hash);
    REQUIRE(tail.has_value());
    CHECK(tail->size() == 2);
    // And both keep going in step.
    const Item next{13, t_write("/etc/new", "n"), std::nullopt};
    REQUIRE(src.store->apply(std::span<const Item>(&next, 1)).ok());
    REQUIRE(dst.store->apply(std::span<const Item>(&next, 1)).ok());
    CHECK(dst.store->head() == src.store->head());
    CHECK(dst.store->content_hash() == src.store->content_hash());
    CHECK(dst.stat("/etc/new").ino == src.stat("/etc/new").ino);
}

TEST_CASE("a corrupted snapshot is refused and the store is unchanged") {
    Fixture src;
    REQUIRE(src.store->apply(workload()).ok());
    const wire::Bytes snap = src.store->snapshot().value();

    Cluster dst;
    REQUIRE(dst.apply(t_write("/keep", "me")) == 0);
    const Head head = dst.store->head();
    const Hash content = dst.store->content_hash();
    for (std::size_t i = 0; i < snap.size(); i += 7) {
        wire::Bytes bad = snap;
        bad[i] ^= 0x20;
        CHECK_FALSE(dst.store->install(bad).ok());
    }
    for (std::size_t cut : {std::size_t{0}, std::size_t{10}, snap.size() / 2, snap.size() - 1})
        CHECK_FALSE(dst.store->install(wire::ByteView(snap.data(), cut)).ok());
    CHECK(dst.store->head() == head);
    CHECK(dst.store->content_hash() == content);
    CHECK(dst.read("/keep") == "me");
}

TEST_CASE("reopening a store keeps everything") {
    test::TempDir dir;
    const Options o = options(true, 5);
    Head head;
    Hash content;
    Meta meta;
    {
        auto s = Store::open(dir.path, o);
        REQUIRE(s.ok());
        REQUIRE(s.value()->apply(workload()).ok());
        head = s.value()->head();
        content = s.value()->content_hash();
        meta = s.value()->meta();
    }
    auto s = Store::open(dir.path, o);
    REQUIRE(s.ok());
    Store& store = *s.value();
    CHECK(store.head() == head);
    CHECK(store.content_hash() == content);
    CHECK(store.meta() == meta);
    CHECK(store.usage().log_records == 5);
    CHECK(store.log_after(head.version, head.hash).has_value());
    wire::Bytes b;
    CHECK(store.read("/etc/b", b) == 0);
    CHECK(b.size() == 9);
    // Inode numbers continue where they were.
    const Item next{20, t_write("/n", "x"), std::nullopt};
    REQUIRE(store.apply(std::span<const Item>(&next, 1)).ok());
    EntryInfo e;
    REQUIRE(store.stat("/n", e) == 0);
    CHECK(e.ino == 5);
}

namespace {

// A store that outlives "crashes": reopen() drops it as a crash would (no close), with
// the boot it names; power_failure() also loses LMDB's unsynced file.
struct Durability {
    test::TempDir dir;
    Options o = [] {
        Options x = options(true, 10000);
        x.journal_capacity = 16 << 10;
        return x;
    }();
    std::unique_ptr<Store> store;
    explicit Durability(bool background = true) {
        o.background_checkpoint = background;
        reopen("boot-1");
    }
    void reopen(const std::string& boot) {
        store.reset();
        o.boot_id = boot;
        auto s = Store::open(dir.path, o);
        REQUIRE_MESSAGE(s.ok(), test::why(s));
        store = std::move(s.value());
    }
    void power_failure(const std::string& next_boot) {
        store.reset();
        std::filesystem::remove(dir.path + "/data.mdb");
        reopen(next_boot);
    }
    // Writes `n` files of `size` bytes, one batch each, after a genesis if needed.
    void write(int n, std::size_t size, const std::string& prefix) {
        if (store->head().version == 0) {
            const Item g{1, genesis(), std::nullopt};
            REQUIRE(store->apply(std::span<const Item>(&g, 1)).ok());
        }
        for (int i = 0; i < n; ++i) {
            const Item it{2, t_write("/" + prefix + std::to_string(i % 50), std::string(size, char('a' + i % 26))),
                          std::nullopt};
            auto r = store->apply(std::span<const Item>(&it, 1));
            REQUIRE_MESSAGE(r.ok(), test::why(r));
        }
    }
};

// A snapshot of a shorter history (10 writes) for `dst`, which writes 14 of its own
// first: installing it replaces a longer forked history whose records stay in dst's
// journal (sim seed 231121).
wire::Bytes shorter_forked_snapshot(Durability& dst) {
    Durability src(false);
    src.write(10, 100, "s");
    auto snap = src.store->snapshot();
    REQUIRE(snap.ok());
    dst.write(14, 100, "d");
    REQUIRE(dst.store->head().version > src.store->head().version);
    return std::move(snap.value());
}

}  // namespace

TEST_CASE("a power failure loses nothing committed: LMDB is rebuilt from the checkpoint and the journal") {
    for (bool background : {true, false}) {
        CAPTURE(background);
        Durability d(background);
        d.write(300, 700, "f");  // ~210 KB through 16 KiB journal files: many rotations
        const Head head = d.store->head();
        const Hash content = d.store->content_hash();
        d.power_failure("boot-2");
        CHECK(d.store->head() == head);
        CHECK(d.store->content_hash() == content);
        CHECK(d.store->log_after(head.version - 5, d.store->retained_log()[head.version - 6].hash).has_value());
        // It goes on from there, and survives another one.
        d.write(40, 700, "g");
        const Head later = d.store->head();
        const Hash later_content = d.store->content_hash();
        d.power_failure("boot-3");
        CHECK(d.store->head() == later);
        CHECK(d.store->content_hash() == later_content);
    }
}

TEST_CASE("a crash on the same boot keeps LMDB's file as it is; a clean close is trusted on any boot") {
    Durability d;
    d.write(60, 500, "f");
    const Head head = d.store->head();
    const Hash content = d.store->content_hash();
    d.reopen("boot-1");  // kill -9: the page cache still holds LMDB's commits
    CHECK(d.store->head() == head);
    CHECK(d.store->content_hash() == content);
    REQUIRE(d.store->close().ok());
    d.store.reset();
    // Clean: neither the checkpoint nor the journal is needed, even after a reboot.
    for (const char* f : {"base.mdb", "journal.0", "journal.1"}) std::filesystem::remove(d.dir.path + "/" + f);
    d.reopen("boot-2");
    CHECK(d.store->head() == head);
    CHECK(d.store->content_hash() == content);
}

TEST_CASE("a journal record that begins before the state's head (a failed merged batch, retried) is replayed past it") {
    // The apply worker journals a merged batch before LMDB commits it; if the commit
    // fails, it applies the batch again in smaller ones, and a crash can leave LMDB
    // inside the first record. Here: A applied 1, 2, 3 one at a time; B's journal holds
    // them with 4 in one record, which A's directory gets.
    const std::vector<Item> items = {{1, genesis(), std::nullopt},
                                     {2, t_write("/a", "1"), std::nullopt},
                                     {2, t_write("/b", "2"), std::nullopt},
                                     {2, t_write("/c", "3"), std::nullopt}};
    Durability a(false), b(false);
    for (std::size_t i = 0; i < 3; ++i) REQUIRE(a.store->apply(std::span<const Item>(&items[i], 1)).ok());
    REQUIRE(b.store->apply(std::span<const Item>(items)).ok());
    const Head head = b.store->head();
    const Hash content = b.store->content_hash();
    a.store.reset();
    b.store.reset();
    const auto copy_journal = [](const std::string& from, const std::string& to) {
        for (const char* f : {"journal.0", "journal.1"})
            std::filesystem::copy_file(from + "/" + f, to + "/" + f, std::filesystem::copy_options::overwrite_existing);
    };
    copy_journal(b.dir.path, a.dir.path);
    a.reopen("boot-1");  // the same boot: LMDB's file is at version 3
    CHECK(a.store->head() == head);
    CHECK(a.store->content_hash() == content);

    // A record that does not continue this history is still refused.
    Durability c(false), d(false);
    const Item other{2, t_write("/a", "other"), std::nullopt};
    REQUIRE(c.store->apply(std::span<const Item>(&items[0], 1)).ok());
    REQUIRE(c.store->apply(std::span<const Item>(&other, 1)).ok());
    REQUIRE(d.store->apply(std::span<const Item>(items)).ok());
    c.store.reset();
    d.store.reset();
    copy_journal(d.dir.path, c.dir.path);
    auto s = Store::open(c.dir.path, c.o);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().find("another history") != std::string::npos);
}

TEST_CASE("a refused batch (malformed, hash mismatch, before genesis) leaves no journal record behind") {
    // A batch's journal record is written only once nothing can refuse the batch any
    // more: a record of a refused batch would be replayed at a power failure, at versions
    // that later batches took.
    Durability d(false);
    {
        // Before genesis: refused as it is applied, with nothing journaled either.
        const Item early{1, t_write("/early", "x"), std::nullopt};
        CHECK_FALSE(d.store->apply(std::span<const Item>(&early, 1)).ok());
    }
    d.write(5, 100, "f");
    const std::vector<Item> malformed{{2, t_write("/ok", "x"), std::nullopt}, {2, t_write("relative", "x"), std::nullopt}};
    CHECK_FALSE(d.store->apply(malformed).ok());
    Item mismatch{2, t_write("/m", "x"), std::nullopt};
    mismatch.expect = Hash{};
    mismatch.expect->at(0) = 1;
    const std::vector<Item> wrong{{2, t_write("/ok2", "x"), std::nullopt}, mismatch};
    CHECK_FALSE(d.store->apply(wrong).ok());
    d.write(3, 100, "g");
    const Head head = d.store->head();
    const Hash content = d.store->content_hash();
    d.power_failure("boot-2");
    CHECK(d.store->head() == head);
    CHECK(d.store->content_hash() == content);
    EntryInfo e;
    CHECK(d.store->stat("/ok", e) == ENOENT);
    CHECK(d.store->stat("/ok2", e) == ENOENT);
    CHECK(d.store->stat("/early", e) == ENOENT);
}

TEST_CASE("a torn journal tail loses only the commit that was being written") {
    Durability d(false);
    d.write(10, 300, "f");
    const Head before = d.store->head();
    const Hash content = d.store->content_hash();
    const Item last{2, t_write("/last", std::string(300, 'Z')), std::nullopt};
    REQUIRE(d.store->apply(std::span<const Item>(&last, 1)).ok());
    d.store.reset();
    // Its record is the only one carrying 300 'Z's: damage one of them (a torn write).
    bool torn = false;
    for (const char* f : {"journal.0", "journal.1"}) {
        const std::string path = d.dir.path + "/" + f;
        std::string bytes;
        {
            std::ifstream in(path, std::ios::binary);
            bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        }
        const auto at = bytes.find(std::string(300, 'Z'));
        if (at == std::string::npos) continue;
        const int fd = ::open(path.c_str(), O_WRONLY);
        REQUIRE(fd >= 0);
        const char junk = 'Y';
        REQUIRE(::pwrite(fd, &junk, 1, static_cast<off_t>(at + 150)) == 1);
        ::close(fd);
        torn = true;
    }
    REQUIRE(torn);
    std::filesystem::remove(d.dir.path + "/data.mdb");
    d.reopen("boot-2");
    CHECK(d.store->head() == before);
    CHECK(d.store->content_hash() == content);
}

TEST_CASE("after a power failure, a store without its checkpoint is refused with what to do") {
    Durability d;
    d.write(5, 100, "f");
    d.store.reset();
    std::filesystem::remove(d.dir.path + "/base.mdb");
    std::filesystem::remove(d.dir.path + "/data.mdb");
    d.o.boot_id = "boot-2";
    auto s = Store::open(d.dir.path, d.o);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().find("remove the directory") != std::string::npos);
}

TEST_CASE("an installed snapshot is durable: a power failure right after it keeps it") {
    Durability src, dst;
    src.write(30, 200, "s");
    auto snap = src.store->snapshot();
    REQUIRE(snap.ok());
    dst.write(5, 200, "d");
    REQUIRE(dst.store->install(snap.value()).ok());
    dst.write(3, 200, "after");
    const Head head = dst.store->head();
    const Hash content = dst.store->content_hash();
    dst.power_failure("boot-2");
    CHECK(dst.store->head() == head);
    CHECK(dst.store->content_hash() == content);
}

TEST_CASE("a snapshot installed over a longer forked history: a crash or a power failure after it keeps it") {
    // The journal's older file still holds the replaced history's records past the
    // snapshot's head (sim seed 231121: a node of a forked branch at version 26 installed
    // the cluster's state at 25, crashed, and could not start: "another history").
    for (bool power : {false, true}) {
        CAPTURE(power);
        Durability dst(false);
        REQUIRE(dst.store->install(shorter_forked_snapshot(dst)).ok());
        for (int after : {0, 2}) {
            CAPTURE(after);
            if (after) dst.write(after, 100, "after");
            const Head head = dst.store->head();
            const Hash content = dst.store->content_hash();
            if (power)
                dst.power_failure(after ? "boot-3" : "boot-2");
            else
                dst.reopen("boot-1");  // kill -9 on the same boot
            CHECK(dst.store->head() == head);
            CHECK(dst.store->content_hash() == content);
        }
    }
}

TEST_CASE("a power failure between an install's checkpoint and its journal reset keeps the snapshot") {
    // The checkpoint of the installed state is durable, the journal is still the replaced
    // history's (records past the snapshot's head among them): the restart must not
    // replay them on the snapshot ("another history") but start from the snapshot.
    for (bool power : {false, true}) {
        CAPTURE(power);
        Durability dst(false);
        const wire::Bytes snap = shorter_forked_snapshot(dst);
        // The journal files as they are before the install ...
        namespace fs = std::filesystem;
        for (const char* f : {"/journal.0", "/journal.1"})
            fs::copy_file(dst.dir.path + f, dst.dir.path + f + ".saved");
        REQUIRE(dst.store->install(snap).ok());
        const Head head = dst.store->head();
        const Hash content = dst.store->content_hash();
        dst.store.reset();
        // ... and after a crash in which the reset did not reach the disk.
        for (const char* f : {"/journal.0", "/journal.1"})
            fs::copy_file(dst.dir.path + f + ".saved", dst.dir.path + f, fs::copy_options::overwrite_existing);
        if (power)
            dst.power_failure("boot-2");
        else
            dst.reopen("boot-1");
        CHECK(dst.store->head() == head);
        CHECK(dst.store->content_hash() == content);
        // It goes on, and what it writes survives the next power failure.
        dst.write(3, 100, "after");
        const Head later = dst.store->head();
        const Hash later_content = dst.store->content_hash();
        dst.power_failure("boot-3");
        CHECK(dst.store->head() == later);
        CHECK(dst.store->content_hash() == later_content);
    }
}

TEST_CASE("journal files made anew under a state that an install marked: their records are replayed") {
    // journal_from numbers segments; fresh journal files (lost, or removed by hand) must
    // not start below it, or a power failure would skip what they hold.
    Durability dst(false);
    REQUIRE(dst.store->install(shorter_forked_snapshot(dst)).ok());
    dst.write(2, 100, "a");
    dst.store.reset();  // a crash
    for (const char* f : {"/journal.0", "/journal.1"}) std::filesystem::remove(dst.dir.path + f);
    dst.reopen("boot-1");
    dst.write(3, 100, "b");
    const Head head = dst.store->head();
    const Hash content = dst.store->content_hash();
    dst.power_failure("boot-2");
    CHECK(dst.store->head() == head);
    CHECK(dst.store->content_hash() == content);
}

TEST_CASE("a state record of format 1 (before journal_from) still reads") {
    db::State st;
    st.head.version = 7;
    st.next_ino = 9;
    st.journal_from = 5;
    wire::Bytes v2;
    db::encode_state(st, v2);
    // Format 1: the same without the last u64, and 1 in the first u32.
    wire::Bytes v1(v2.begin(), v2.end() - 8);
    v1[0] = 1;
    db::State back;
    REQUIRE(db::decode_state(v1, back));
    CHECK(back.head.version == 7);
    CHECK(back.next_ino == 9);
    CHECK(back.journal_from == 0);
    REQUIRE(db::decode_state(v2, back));
    CHECK(back.journal_from == 5);
    // Anything else is refused: format 2 without the field, format 1 with it, format 3.
    CHECK_FALSE(db::decode_state(wire::ByteView(v2.data(), v2.size() - 8), back));
    wire::Bytes bad = v2;
    bad[0] = 1;
    CHECK_FALSE(db::decode_state(bad, back));
    bad[0] = 3;
    CHECK_FALSE(db::decode_state(bad, back));
}

TEST_CASE("opening a missing directory is an error") {
    CHECK_FALSE(Store::open("/nonexistent/conclave/store").ok());
}

namespace {

Transition t_if(Transition t, std::uint32_t flag, std::uint64_t expect) {
    t.flags |= flag;
    t.expect = expect;
    return t;
}
Transition t_mtime(std::string path, std::uint64_t mtime, std::uint32_t origin) {
    Transition t = op(Op::set_mtime, std::move(path));
    t.size = mtime;
    t.origin = origin;
    return t;
}

// Rewrites an entry's parent pointer behind the store's back (the store must be closed:
// LMDB allows one environment handle per file and process).
void set_parent(const std::string& dir, std::uint64_t ino, std::uint64_t parent) {
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 8);
    REQUIRE(mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0600) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    db::Dbs dbs;
    REQUIRE(mdb_dbi_open(txn, "entries", 0, &dbs.entries) == 0);
    db::Txn t(txn, dbs);
    auto e = t.entry(ino);
    REQUIRE(e);
    e->parent = parent;
    t.put_entry(*e);
    REQUIRE(t.ok());
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
}

// Overwrites the first u32 (the format) of the state record, as a newer version would
// have written it (the store must be closed).
void set_state_format(const std::string& dir, std::uint32_t format) {
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 8);
    REQUIRE(mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0600) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    MDB_dbi state = 0;
    REQUIRE(mdb_dbi_open(txn, "state", 0, &state) == 0);
    MDB_val k{5, const_cast<char*>("state")}, v{};
    REQUIRE(mdb_get(txn, state, &k, &v) == 0);
    std::string bytes(static_cast<const char*>(v.mv_data), v.mv_size);
    std::memcpy(bytes.data(), &format, 4);  // little-endian, as this machine
    MDB_val nv{bytes.size(), bytes.data()};
    REQUIRE(mdb_put(txn, state, &k, &nv, 0) == 0);
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
}

}  // namespace

TEST_CASE("a store written by a newer version (a state format this one does not know) is refused by name") {
    test::TempDir dir;
    {
        auto s = Store::open(dir.path, options(false, 100));
        REQUIRE(s.ok());
        Item g{1, genesis(), std::nullopt};
        REQUIRE(s.value()->apply(std::span<const Item>(&g, 1)).ok());
        REQUIRE(s.value()->close().ok());
    }
    set_state_format(dir.path, db::kStateFormat + 1);
    auto s = Store::open(dir.path, options(false, 100));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().find("written by a newer conclaved (state format " + std::to_string(db::kStateFormat + 1)) !=
          std::string::npos);
    // A damaged record (format 0) is still reported as unreadable.
    set_state_format(dir.path, 0);
    auto d = Store::open(dir.path, options(false, 100));
    REQUIRE_FALSE(d.ok());
    CHECK(d.error().find("state record unreadable") != std::string::npos);
}

TEST_CASE("reads by inode number: stat_ino, lookup, list_ino, read_ino, path_of") {
    Cluster f;
    CHECK(f.apply(t_mkdir("/d")) == 0);
    CHECK(f.apply(t_mkdir("/d/e")) == 0);
    CHECK(f.apply(t_write("/d/f", "hello")) == 0);
    const EntryInfo d = f.stat("/d"), e = f.stat("/d/e"), file = f.stat("/d/f");

    EntryInfo info;
    REQUIRE(f.store->stat_ino(1, info) == 0);
    CHECK(info.dir);
    CHECK(info.name.empty());
    REQUIRE(f.store->stat_ino(file.ino, info) == 0);
    CHECK(info.name == "f");
    CHECK(info.size == 5);
    CHECK(info.version == file.version);
    CHECK(f.store->stat_ino(0, info) == ENOENT);
    CHECK(f.store->stat_ino(999, info) == ENOENT);

    REQUIRE(f.store->lookup(1, "d", info) == 0);
    CHECK(info.ino == d.ino);
    REQUIRE(f.store->lookup(d.ino, "f", info) == 0);
    CHECK(info.ino == file.ino);
    CHECK(f.store->lookup(d.ino, "nope", info) == ENOENT);
    CHECK(f.store->lookup(1, "d/e", info) == ENOENT);
    CHECK(f.store->lookup(1, "", info) == ENOENT);
    CHECK(f.store->lookup(1, std::string(600, 'x'), info) == ENOENT);
    CHECK(f.store->lookup(999, "d", info) == ENOENT);
    CHECK(f.store->lookup(file.ino, "x", info) == ENOTDIR);

    std::vector<EntryInfo> l;
    REQUIRE(f.store->list_ino(d.ino, l) == 0);
    REQUIRE(l.size() == 2);
    CHECK(l[0].name == "e");
    CHECK(l[1].ino == file.ino);
    REQUIRE(f.store->list_ino(e.ino, l) == 0);
    CHECK(l.empty());
    CHECK(f.store->list_ino(file.ino, l) == ENOTDIR);
    CHECK(f.store->list_ino(999, l) == ENOENT);

    wire::Bytes b;
    EntryInfo read_info;
    REQUIRE(f.store->read_ino(file.ino, b, &read_info) == 0);
    CHECK(std::string(b.begin(), b.end()) == "hello");
    CHECK(read_info.ino == file.ino);
    CHECK(f.store->read_ino(d.ino, b) == EISDIR);
    CHECK(f.store->read_ino(999, b) == ENOENT);

    std::string p;
    REQUIRE(f.store->path_of(1, p) == 0);
    CHECK(p == "/");
    REQUIRE(f.store->path_of(file.ino, p) == 0);
    CHECK(p == "/d/f");
    CHECK(f.store->path_of(999, p) == ENOENT);
    // An inode number follows its entry through renames and dies with it.
    CHECK(f.apply(t_rename("/d", "/moved")) == 0);
    REQUIRE(f.store->path_of(file.ino, p) == 0);
    CHECK(p == "/moved/f");
    REQUIRE(f.store->path_of(e.ino, p) == 0);
    CHECK(p == "/moved/e");
    CHECK(f.apply(op(Op::unlink, "/moved/f")) == 0);
    CHECK(f.store->path_of(file.ino, p) == ENOENT);
    CHECK(f.store->read_ino(file.ino, b) == ENOENT);
}

TEST_CASE("path_of: deeper than kMaxPath, broken chains and cycles") {
    Cluster f;
    // A rename can move a subtree below kMaxPath's reach.
    std::string deep;
    for (int i = 0; i < 16; ++i) {
        deep += "/" + std::string(250, static_cast<char>('a' + i));
        REQUIRE(f.apply(t_mkdir(deep)) == 0);
    }
    REQUIRE(f.apply(t_mkdir("/q")) == 0);
    REQUIRE(f.apply(t_mkdir("/q/" + std::string(250, 'z'))) == 0);
    const std::uint64_t z = f.stat("/q/" + std::string(250, 'z')).ino;
    REQUIRE(f.apply(t_rename("/q", deep + "/q")) == 0);
    std::string p;
    REQUIRE(f.store->path_of(f.stat(deep + "/q").ino, p) == 0);
    CHECK(p == deep + "/q");
    CHECK(f.store->path_of(z, p) == ENAMETOOLONG);
    EntryInfo info;
    CHECK(f.store->stat_ino(z, info) == 0);

    REQUIRE(f.apply(t_mkdir("/x")) == 0);
    REQUIRE(f.apply(t_mkdir("/x/y")) == 0);
    REQUIRE(f.apply(t_write("/x/y/file", "1")) == 0);
    const std::uint64_t x = f.stat("/x").ino, y = f.stat("/x/y").ino, file = f.stat("/x/y/file").ino;
    const std::string dir = f.dir.path;
    auto reopen = [&] {
        auto s = Store::open(dir, options(false, 10000));
        REQUIRE(s.ok());
        f.store = std::move(s.value());
    };
    f.store.reset();
    set_parent(dir, x, y);  // x <-> y
    reopen();
    CHECK(f.store->path_of(file, p) == EIO);
    f.store.reset();
    set_parent(dir, x, 999);  // a parent that does not exist
    reopen();
    CHECK(f.store->path_of(file, p) == EIO);
    f.store.reset();
    set_parent(dir, x, file);  // a file as a parent
    reopen();
    CHECK(f.store->path_of(y, p) == EIO);
    f.store.reset();
    set_parent(dir, x, 0);  // a second root
    reopen();
    CHECK(f.store->path_of(y, p) == EIO);
    f.store.reset();
    set_parent(dir, x, 1);
    reopen();
    REQUIRE(f.store->path_of(file, p) == 0);
    CHECK(p == "/x/y/file");
}

TEST_CASE("reads by inode number from several threads while the store changes") {
    Cluster f;
    REQUIRE(f.apply(t_mkdir("/d")) == 0);
    REQUIRE(f.apply(t_write("/d/f", "0")) == 0);
    const std::uint64_t d = f.stat("/d").ino, file = f.stat("/d/f").ino;
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::vector<std::thread> readers;
    for (int i = 0; i < 3; ++i)
        readers.emplace_back([&] {
            while (!stop) {
                std::string p;
                EntryInfo info;
                wire::Bytes b;
                std::vector<EntryInfo> l;
                if (f.store->path_of(file, p) != 0 || p != "/d/f") ++bad;
                if (f.store->lookup(d, "f", info) != 0 || info.ino != file) ++bad;
                if (f.store->read_ino(file, b, &info) != 0 || b.size() != info.size) ++bad;
                if (f.store->list_ino(d, l) != 0 || l.empty()) ++bad;
            }
        });
    for (int i = 0; i < 200; ++i) {
        REQUIRE(f.apply(t_write("/d/f", std::string(static_cast<std::size_t>(i % 50), 'x'))) == 0);
        REQUIRE(f.apply(t_write("/d/g" + std::to_string(i % 7), "y")) == 0);
    }
    stop = true;
    for (auto& t : readers) t.join();
    CHECK(bad == 0);
}

TEST_CASE("kIfInode: the path must still name the entry the client saw") {
    Cluster f;
    REQUIRE(f.apply(t_write("/f", "one")) == 0);
    const std::uint64_t ino = f.stat("/f").ino;
    CHECK(f.apply(t_if(t_write("/f", "two"), kIfInode, ino)) == 0);
    CHECK(f.read("/f") == "two");
    fails_with(f, t_if(t_write("/f", "three"), kIfInode, ino + 100), ESTALE);

    // Replaced behind the client's back (write-tmp-then-rename): the old inode is stale.
    REQUIRE(f.apply(t_write("/tmp", "new")) == 0);
    REQUIRE(f.apply(t_rename("/tmp", "/f")) == 0);
    fails_with(f, t_if(t_write("/f", "stale"), kIfInode, ino), ESTALE);
    Transition tr = op(Op::truncate, "/f");
    tr.size = 1;
    fails_with(f, t_if(tr, kIfInode, ino), ESTALE);
    Transition mt = op(Op::set_mtime, "/f");
    mt.size = 5;
    fails_with(f, t_if(mt, kIfInode, ino), ESTALE);
    Transition md = op(Op::set_mode, "/f");
    md.mode = 0600;
    fails_with(f, t_if(md, kIfInode, ino), ESTALE);
    fails_with(f, t_if(op(Op::unlink, "/f"), kIfInode, ino), ESTALE);
    fails_with(f, t_if(op(Op::create, "/f"), kIfInode, ino), ESTALE);

    const std::uint64_t now = f.stat("/f").ino;
    CHECK(f.apply(t_if(tr, kIfInode, now)) == 0);
    CHECK(f.read("/f") == "n");
    CHECK(f.apply(t_if(mt, kIfInode, now)) == 0);
    CHECK(f.stat("/f").mtime_us == 5);
    CHECK(f.apply(t_if(md, kIfInode, now)) == 0);
    CHECK(f.stat("/f").mode == 0600);
    CHECK(f.apply(t_if(op(Op::create, "/f"), kIfInode, now)) == 0);
    CHECK(f.stat("/f").size == 0);
    CHECK(f.apply(t_if(op(Op::unlink, "/f"), kIfInode, now)) == 0);

    // A missing path: ENOENT, and write / create do not create it.
    fails_with(f, t_if(t_write("/f", "x"), kIfInode, now), ENOENT);
    fails_with(f, t_if(op(Op::create, "/f"), kIfInode, now), ENOENT);
    fails_with(f, t_if(op(Op::unlink, "/f"), kIfInode, now), ENOENT);
    fails_with(f, t_if(t_write("/nope/f", "x"), kIfInode, now), ENOENT);
    REQUIRE(f.apply(t_write("/g", "x")) == 0);
    fails_with(f, t_if(t_write("/g/f", "x"), kIfInode, now), ENOTDIR);

    // After the lookups, before the op's own rules.
    REQUIRE(f.apply(t_mkdir("/d")) == 0);
    const std::uint64_t d = f.stat("/d").ino;
    fails_with(f, t_if(t_write("/d", "x"), kIfInode, d), EISDIR);
    fails_with(f, t_if(t_write("/d", "x"), kIfInode, d + 1), ESTALE);
    fails_with(f, t_if(op(Op::unlink, "/d"), kIfInode, d), EISDIR);
    fails_with(f, t_if(t_write("/", "x"), kIfInode, 1), EISDIR);
    fails_with(f, t_if(t_write("/", "x"), kIfInode, d), ESTALE);
    Transition big = t_write("/g", std::string(2u << 20, 'x'));
    fails_with(f, t_if(big, kIfInode, f.stat("/g").ino), EFBIG);
    fails_with(f, t_if(t_write("/" + std::string(300, 'n'), "x"), kIfInode, 5), ENAMETOOLONG);
}

TEST_CASE("kIfVersion: remove only an entry nobody changed since") {
    Cluster f;
    REQUIRE(f.apply(t_mkdir("/d")) == 0);
    REQUIRE(f.apply(t_write("/f", "x")) == 0);
    const std::uint64_t dv = f.stat("/d").version, fv = f.stat("/f").version;
    CHECK(dv != fv);
    fails_with(f, t_if(op(Op::rmdir, "/d"), kIfVersion, fv), ESTALE);
    fails_with(f, t_if(op(Op::unlink, "/f"), kIfVersion, dv), ESTALE);
    // A change bumps the version: a removal decided before it is stale.
    REQUIRE(f.apply(t_write("/f", "y")) == 0);
    fails_with(f, t_if(op(Op::unlink, "/f"), kIfVersion, fv), ESTALE);
    CHECK(f.apply(t_if(op(Op::unlink, "/f"), kIfVersion, f.stat("/f").version)) == 0);
    CHECK(f.apply(t_if(op(Op::rmdir, "/d"), kIfVersion, dv)) == 0);
    fails_with(f, t_if(op(Op::rmdir, "/d"), kIfVersion, dv), ENOENT);
    fails_with(f, t_if(op(Op::unlink, "/f"), kIfVersion, fv), ENOENT);

    REQUIRE(f.apply(t_mkdir("/e")) == 0);
    REQUIRE(f.apply(t_write("/e/x", "1")) == 0);
    const std::uint64_t ev = f.stat("/e").version;
    fails_with(f, t_if(op(Op::rmdir, "/e"), kIfVersion, ev), ENOTEMPTY);
    fails_with(f, t_if(op(Op::rmdir, "/e/x"), kIfVersion, f.stat("/e/x").version), ENOTDIR);
    fails_with(f, t_if(op(Op::rmdir, "/"), kIfVersion, f.stat("/").version), EBUSY);
    fails_with(f, t_if(op(Op::rmdir, "/"), kIfVersion, 12345), ESTALE);

    // Malformed combinations never reach the history.
    const Head head = f.store->head();
    for (const Transition& bad : {t_if(t_if(op(Op::unlink, "/e/x"), kIfInode, 1), kIfVersion, 1),
                                  t_if(op(Op::unlink, "/e/x"), 0, 3), t_if(t_mkdir("/m"), kIfVersion, 1),
                                  t_if(t_rename("/e", "/m"), kIfInode, 1)}) {
        Item item{1, bad, std::nullopt};
        CHECK_FALSE(f.store->apply(std::span<const Item>(&item, 1)).ok());
    }
    CHECK(f.store->head() == head);
}

TEST_CASE("cluster locks: /priv/lock/NAME is taken by mkdir, renewed by its holder, never moved") {
    Cluster f;
    REQUIRE(f.apply(t_mkdir("/priv")) == 0);
    REQUIRE(f.apply(t_mkdir("/priv/lock")) == 0);
    Transition take = t_mkdir("/priv/lock/vm-100");
    take.origin = 2;
    REQUIRE(f.apply(take) == 0);
    Transition other = t_mkdir("/priv/lock/vm-100");
    other.origin = 3;
    fails_with(f, other, EEXIST);  // the loser of two mkdirs
    const EntryInfo lock = f.stat("/priv/lock/vm-100");
    CHECK(lock.writer == 2);

    // Renewal: only the holder, only forwards, never to 0.
    fails_with(f, t_mtime("/priv/lock/vm-100", lock.mtime_us + 10, 3), EACCES);
    fails_with(f, t_mtime("/priv/lock/vm-100", lock.mtime_us - 1, 2), EACCES);
    fails_with(f, t_mtime("/priv/lock/vm-100", 0, 2), EACCES);
    CHECK(f.apply(t_mtime("/priv/lock/vm-100", lock.mtime_us, 2)) == 0);
    CHECK(f.apply(t_mtime("/priv/lock/vm-100", lock.mtime_us + 10, 2)) == 0);
    const EntryInfo renewed = f.stat("/priv/lock/vm-100");
    CHECK(renewed.mtime_us == lock.mtime_us + 10);
    CHECK(renewed.writer == 2);
    CHECK(renewed.version == f.store->head().version);
    CHECK(renewed.ino == lock.ino);
    fails_with(f, t_if(t_mtime("/priv/lock/vm-100", lock.mtime_us + 20, 2), kIfInode, lock.ino + 1), ESTALE);
    fails_with(f, t_mtime("/priv/lock/nope", lock.mtime_us + 20, 2), ENOENT);

    // Only directories at /priv/lock/NAME are locks.
    CHECK(f.apply(t_mtime("/priv/lock", 1, 3)) == 0);
    CHECK(f.apply(t_mtime("/priv", 1, 3)) == 0);
    // A lock holds nothing: an entry in it would re-stamp it (writer, version) for anyone.
    fails_with(f, t_mkdir("/priv/lock/vm-100/sub"), EACCES);
    fails_with(f, t_write("/priv/lock/vm-100/f", "x"), EACCES);
    Transition inside = t_write("/priv/lock/vm-100/f", "");
    inside.op = Op::create;
    fails_with(f, inside, EACCES);
    CHECK(f.stat("/priv/lock/vm-100").writer == 2);
    REQUIRE(f.apply(t_write("/priv/lock/file", "x")) == 0);
    CHECK(f.apply(t_mtime("/priv/lock/file", 1, 3)) == 0);
    REQUIRE(f.apply(t_mkdir("/lock")) == 0);
    CHECK(f.apply(t_mtime("/lock", 1, 3)) == 0);

    // Nothing under /priv/lock, nor what holds it, is renamed (also with kExchange).
    REQUIRE(f.apply(t_mkdir("/x")) == 0);
    REQUIRE(f.apply(t_write("/y", "y")) == 0);
    fails_with(f, t_rename("/priv/lock/vm-100", "/x"), EACCES);
    fails_with(f, t_rename("/priv/lock/vm-100", "/priv/lock/vm-101"), EACCES);
    fails_with(f, t_rename("/x", "/priv/lock/vm-100"), EACCES);
    fails_with(f, t_rename("/x", "/priv/lock/vm-102"), EACCES);
    fails_with(f, t_rename("/x", "/priv/lock/vm-100", kExchange), EACCES);
    fails_with(f, t_rename("/priv/lock/vm-100/sub", "/x/sub"), EACCES);
    fails_with(f, t_rename("/y", "/priv/lock/vm-100/y"), EACCES);
    fails_with(f, t_rename("/priv/lock/file", "/z"), EACCES);
    fails_with(f, t_rename("/priv/lock", "/z"), EACCES);
    fails_with(f, t_rename("/priv", "/z"), EACCES);
    fails_with(f, t_rename("/x", "/priv", kExchange), EACCES);
    fails_with(f, t_rename("/priv/lock/gone", "/z"), EACCES);
    // Their neighbours are ordinary.
    REQUIRE(f.apply(t_mkdir("/priv/locks")) == 0);
    CHECK(f.apply(t_rename("/priv/locks", "/priv/other")) == 0);
    CHECK(f.apply(t_rename("/y", "/priv/y")) == 0);
    CHECK(f.apply(t_rename("/lock", "/lock2")) == 0);

    // Breaking a lock only if nobody renewed it since it was judged expired.
    const EntryInfo seen = f.stat("/priv/lock/vm-100");
    REQUIRE(f.apply(t_mtime("/priv/lock/vm-100", seen.mtime_us + 30, seen.writer)) == 0);
    fails_with(f, t_if(op(Op::rmdir, "/priv/lock/vm-100"), kIfVersion, seen.version), ESTALE);
    CHECK(f.apply(t_if(op(Op::rmdir, "/priv/lock/vm-100"), kIfVersion, f.stat("/priv/lock/vm-100").version)) == 0);
    other = t_mkdir("/priv/lock/vm-100");
    other.origin = 3;
    CHECK(f.apply(other) == 0);
    CHECK(f.stat("/priv/lock/vm-100").writer == 3);
}

// fsync failing after LMDB committed the batch: the batch may not be on the disk, so the
// store refuses everything after it. Were it to go on, a caller that retries the batch
// (the apply worker runs a failed batch again one job at a time) would apply the same
// transitions twice, on top of themselves: a history no other replica has.
TEST_CASE("a failed journal sync stops the store: nothing is applied after it, nor twice") {
    test::TempDir dir;
    Options o = options(true, 10000);
    int fail = 0;
    o.sync_fault = [&fail] { return fail; };
    auto s = Store::open(dir.path, o);
    REQUIRE_MESSAGE(s.ok(), test::why(s));
    std::unique_ptr<Store> store = std::move(s.value());
    std::vector<Item> first{Item{1, genesis(), std::nullopt}, Item{1, t_write("/a", "one"), std::nullopt}};
    REQUIRE(store->apply(first).ok());
    const Head before = store->head();

    fail = EIO;
    std::vector<Item> batch{Item{1, t_write("/b", "two"), std::nullopt}, Item{1, t_mkdir("/d"), std::nullopt}};
    auto r = store->apply(batch);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find(std::strerror(EIO)) != std::string::npos);
    CHECK(r.error().find("restart the node") != std::string::npos);
    const Head after = store->head();
    CHECK(after.version == before.version + 2);  // committed, just not known to be durable

    // The disk works again; the store still refuses: the retry of the batch, a later one
    // and a snapshot alike, and its state stays as it was.
    fail = 0;
    for (const auto& items : {batch, std::vector<Item>{Item{1, t_write("/c", "three"), std::nullopt}}}) {
        auto again = store->apply(items);
        REQUIRE_FALSE(again.ok());
        CHECK(again.error().find("refusing to apply") != std::string::npos);
    }
    auto snap = store->snapshot();
    REQUIRE(snap.ok());
    CHECK_FALSE(store->install(snap.value()).ok());
    CHECK(store->head() == after);
    EntryInfo info;
    CHECK(store->stat("/c", info) == ENOENT);
}

// The writable map needs disk blocks before a transaction touches a new page (else a
// full file system is a SIGBUS): every transaction, small or large, batched or not, and
// the install of a snapshot stays within the pages reserved for it.
TEST_CASE("every write transaction stays within the disk blocks reserved for it") {
    Limits limits;
    limits.max_file_size = 1u << 20;
    Options o = options(false, 200);
    o.map_size = 256ull << 20;
    Fixture src(o);
    REQUIRE(src.apply(genesis(limits)) == 0);
    REQUIRE(src.apply(t_mkdir("/d")) == 0);
    // Batches of small files, one batch of 64 (a full apply worker merge).
    for (int b = 0; b < 20; ++b) {
        std::vector<Item> items;
        for (int i = 0; i < 64; ++i)
            items.push_back(Item{1, t_write("/d/f" + std::to_string(b * 64 + i), std::string(100 + i * 16, 'a')),
                                 std::nullopt});
        REQUIRE(src.store->apply(items).ok());
    }
    // Large files, grown by truncate, rewritten, renamed, removed; the log trims them.
    for (int i = 0; i < 12; ++i) {
        REQUIRE(src.apply(t_write("/big" + std::to_string(i), std::string(900u << 10, char('k' + i)))) == 0);
        Transition grow = op(Op::truncate, "/big" + std::to_string(i));
        grow.size = 1u << 20;
        REQUIRE(src.apply(grow) == 0);
        if (i % 3 == 0) REQUIRE(src.apply(t_rename("/big" + std::to_string(i), "/d/moved" + std::to_string(i))) == 0);
        if (i % 3 == 1) REQUIRE(src.apply(op(Op::unlink, "/big" + std::to_string(i))) == 0);
    }
    CHECK(src.store->reserve_overruns() == 0);

    // The whole state installed into a fresh store.
    auto snap = src.store->snapshot();
    REQUIRE_MESSAGE(snap.ok(), test::why(snap));
    Fixture dst(o);
    REQUIRE(dst.apply(genesis(limits)) == 0);
    REQUIRE(dst.store->install(snap.value()).ok());
    CHECK(dst.store->content_hash() == src.store->content_hash());
    CHECK(dst.store->reserve_overruns() == 0);
}

// A full file system: the commit that does not fit fails with an error the node stops
// on (no SIGBUS from a writable map over a sparse file), and once there is room again
// the store reopens holding every commit that reported success. Needs root (a tmpfs of
// a few MiB); the filling runs in a child process, so that a crash is a failure here.
TEST_CASE("a full disk fails the commit cleanly and loses no committed transition") {
    if (::geteuid() != 0) {
        MESSAGE("skipped: needs root to mount a small tmpfs");
        return;
    }
    test::TempDir dir;
    if (::mount("tmpfs", dir.path.c_str(), "tmpfs", 0, "size=6m,mode=0700") != 0) {
        MESSAGE("skipped: cannot mount a tmpfs here: " << std::strerror(errno));
        return;
    }
    struct Unmount {
        std::string path;
        ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
    } unmount{dir.path};
    const std::string store_dir = dir.path + "/store";
    REQUIRE(::mkdir(store_dir.c_str(), 0700) == 0);
    Options o = options(true, 10000);
    o.journal_capacity = 1u << 20;
    o.background_checkpoint = false;

    // The child writes 256 KiB files until a commit fails; it reports through a pipe how
    // many commits succeeded, then exits 0 if the failure was a clean "no space" error.
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(fds[0]);
        int code = 3;
        std::uint32_t written = 0;
        auto s = Store::open(store_dir, o);
        if (s) {
            std::unique_ptr<Store> store = std::move(s.value());
            Item g{1, genesis(), std::nullopt};
            if (store->apply(std::span<const Item>(&g, 1))) {
                code = 4;  // never ran out of space
                for (std::uint32_t i = 0; i < 200; ++i) {
                    Item item{1, t_write("/f" + std::to_string(i), std::string(256u << 10, char('a' + i % 26))),
                              std::nullopt};
                    auto r = store->apply(std::span<const Item>(&item, 1));
                    if (!r) {
                        const bool nospace = r.error().find(std::strerror(ENOSPC)) != std::string::npos ||
                                             r.error().find("MDB_MAP_FULL") != std::string::npos;
                        code = nospace ? 0 : 5;
                        if (!nospace) std::fprintf(stderr, "unexpected error: %s\n", r.error().c_str());
                        break;
                    }
                    ++written;
                }
            }
        }
        (void)!::write(fds[1], &written, sizeof written);
        ::_exit(code);  // no close(): a node stops on a store failure the same way
    }
    ::close(fds[1]);
    std::uint32_t written = 0;
    const bool got = ::read(fds[0], &written, sizeof written) == static_cast<ssize_t>(sizeof written);
    ::close(fds[0]);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE_MESSAGE(!WIFSIGNALED(status), "the store crashed on a full disk with signal " << WTERMSIG(status));
    REQUIRE(WIFEXITED(status));
    REQUIRE_MESSAGE(WEXITSTATUS(status) == 0, "exit " << WEXITSTATUS(status)
                                                      << " (3: open failed, 4: never full, 5: unexpected error)");
    REQUIRE(got);
    CHECK(written > 0);

    // Room again: every write that reported success is there.
    REQUIRE(::mount("tmpfs", dir.path.c_str(), "tmpfs", MS_REMOUNT, "size=128m,mode=0700") == 0);
    auto s = Store::open(store_dir, o);
    REQUIRE_MESSAGE(s.ok(), test::why(s));
    std::unique_ptr<Store> store = std::move(s.value());
    CHECK(store->head().version >= written + 1);
    for (std::uint32_t i = 0; i < written; ++i) {
        wire::Bytes b;
        REQUIRE(store->read("/f" + std::to_string(i), b) == 0);
        CHECK(b.size() == (256u << 10));
        CHECK(b[0] == static_cast<std::uint8_t>('a' + i % 26));
    }
    CHECK(store->close().ok());
}

// The retained log is bounded in bytes as well as in records: large writes, many more
// than fit the map twice over, never fill it; the log keeps the newest of them and a
// version it dropped is no longer offered for sync by log.
TEST_CASE("the retained log is bounded in bytes: large writes never fill the map") {
    Options o = options(false, 10000);  // a 64 MiB map: the log may hold 16 MiB
    Fixture f(o);
    REQUIRE(f.apply(genesis()) == 0);
    const std::string big(900u << 10, 'x');
    std::uint64_t first = 0;
    for (int i = 0; i < 200; ++i) {  // 180 MiB in all
        REQUIRE(f.apply(t_write("/f" + std::to_string(i % 4), big + std::to_string(i))) == 0);
        if (i == 0) first = f.store->head().version;
    }
    const auto log = f.store->retained_log();
    REQUIRE_FALSE(log.empty());
    CHECK(log.size() < 40);
    CHECK(log.back().version == f.store->head().version);
    CHECK_FALSE(f.store->log_after(first, f.store->retained_log().front().hash).has_value());
    CHECK(f.read("/f3").size() == big.size() + 3);
}
