#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "temp_dir.h"
#include "crypto/authkey.h"
#include "why.h"

using namespace conclave::crypto;

namespace {

using conclave::test::TempDir;

std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("keygen writes 256 random bytes with mode 0400 and never overwrites without force") {
    TempDir d;
    std::string p = d.path + "/sub/authkey";  // the parent is created
    REQUIRE(write_auth_key(p, false).ok());
    struct stat st {};
    REQUIRE(stat(p.c_str(), &st) == 0);
    CHECK(st.st_size == 256);
    CHECK((st.st_mode & 07777) == 0400);
    std::string first = slurp(p);

    auto again = write_auth_key(p, false);
    CHECK_FALSE(again.ok());
    CHECK(again.error().find("already exists") != std::string::npos);
    CHECK(slurp(p) == first);

    REQUIRE(write_auth_key(p, true).ok());
    CHECK(slurp(p) != first);
    REQUIRE(stat(p.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0400);

    auto key = load_auth_key(p);
    REQUIRE(key.ok());
    CHECK(std::string(key->bytes.begin(), key->bytes.end()) == slurp(p));
}

TEST_CASE("loading refuses a missing key, a wrong size and loose permissions") {
    TempDir d;
    SUBCASE("missing") {
        auto k = load_auth_key(d.path + "/nope");
        REQUIRE_FALSE(k.ok());
        CHECK(k.error().find("conclavectl keygen") != std::string::npos);
    }
    SUBCASE("wrong size") {
        std::string p = d.path + "/short";
        std::ofstream(p) << "too short";
        chmod(p.c_str(), 0400);
        auto k = load_auth_key(p);
        REQUIRE_FALSE(k.ok());
        CHECK(k.error().find("9 bytes, expected 256") != std::string::npos);
    }
    SUBCASE("readable by group") {
        std::string p = d.path + "/loose";
        REQUIRE(write_auth_key(p, false).ok());
        chmod(p.c_str(), 0440);
        auto k = load_auth_key(p);
        REQUIRE_FALSE(k.ok());
        CHECK(k.error().find("mode 0440") != std::string::npos);
        CHECK(k.error().find("chmod 0400") != std::string::npos);
    }
    SUBCASE("readable by others") {
        std::string p = d.path + "/loose";
        REQUIRE(write_auth_key(p, false).ok());
        chmod(p.c_str(), 0604);
        auto k = load_auth_key(p);
        REQUIRE_FALSE(k.ok());
        CHECK(k.error().find("group or others") != std::string::npos);
    }
    SUBCASE("not a regular file") {
        auto k = load_auth_key(d.path);
        REQUIRE_FALSE(k.ok());
        CHECK(k.error().find("is not a regular file") != std::string::npos);
    }
}

TEST_CASE("keygen creates every missing parent directory with mode 0700") {
    TempDir d;
    std::string p = d.path + "/new/deep/b.key";
    auto st = write_auth_key(p, false);
    REQUIRE_MESSAGE(st.ok(), conclave::test::why(st));
    struct stat s {};
    REQUIRE(stat((d.path + "/new").c_str(), &s) == 0);
    CHECK((s.st_mode & 0777) == 0700);
    REQUIRE(stat((d.path + "/new/deep").c_str(), &s) == 0);
    CHECK((s.st_mode & 0777) == 0700);
    CHECK(load_auth_key(p).ok());
    std::ofstream(d.path + "/file") << "x";
    auto bad = write_auth_key(d.path + "/file/b.key", false);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().find("not a directory") != std::string::npos);
}

TEST_CASE("keygen --force replaces only a regular file, never a FIFO, directory or symbolic link") {
    TempDir d;
    std::string fifo = d.path + "/fifo";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    auto st = write_auth_key(fifo, true);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().find(fifo + " is a FIFO, not a key file; not replacing it, even with --force") !=
          std::string::npos);
    struct stat s {};
    REQUIRE(lstat(fifo.c_str(), &s) == 0);
    CHECK(S_ISFIFO(s.st_mode));
    CHECK_FALSE(write_auth_key(fifo, false).ok());

    REQUIRE(mkdir((d.path + "/dir").c_str(), 0700) == 0);
    st = write_auth_key(d.path + "/dir", true);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().find("is a directory") != std::string::npos);

    REQUIRE(write_auth_key(d.path + "/real", false).ok());
    std::string before = slurp(d.path + "/real");
    REQUIRE(symlink("real", (d.path + "/link").c_str()) == 0);
    st = write_auth_key(d.path + "/link", true);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().find("is a symbolic link") != std::string::npos);
    REQUIRE(lstat((d.path + "/link").c_str(), &s) == 0);
    CHECK(S_ISLNK(s.st_mode));
    CHECK(slurp(d.path + "/real") == before);
}

TEST_CASE("loading a FIFO as the key is refused at once, not waited on") {
    TempDir d;
    std::string fifo = d.path + "/keyfifo";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    auto k = load_auth_key(fifo);
    REQUIRE_FALSE(k.ok());
    CHECK(k.error() == "key file " + fifo + " is not a regular file");
}

TEST_CASE("two keys get different ids") {
    TempDir d;
    REQUIRE(write_auth_key(d.path + "/a", false).ok());
    REQUIRE(write_auth_key(d.path + "/b", false).ok());
    CHECK(load_auth_key(d.path + "/a")->id != load_auth_key(d.path + "/b")->id);
}
