// The tree's pure rules: which paths are private and the modes it shows (the mount itself
// is tested on real mounts in tests/cluster/test_tree.sh).
#include <doctest/doctest.h>

#include <pthread.h>
#include <sys/stat.h>

#include <mutex>
#include <string>
#include <vector>

#include "fuse/tasks.h"
#include "fuse/tree.h"

using conclave::fuse::is_private_path;
using conclave::fuse::shown_mode;

TEST_CASE("private paths: priv/ and nodes/NAME/priv/, nothing that only looks like them") {
    for (const char* p : {"/priv", "/priv/lock", "/priv/a/b", "/nodes/n1/priv", "/nodes/n1/priv/x"})
        CHECK_MESSAGE(is_private_path(p), p);
    for (const char* p : {"/", "/private", "/privx/a", "/a/priv", "/nodes", "/nodes/priv", "/nodes/n1",
                          "/nodes/n1/private", "/nodes/n1/x/priv", "/nodes//priv"})
        CHECK_MESSAGE(!is_private_path(p), p);
}

TEST_CASE("shown modes: a ceiling per kind, write bits cleared without quorum, the root fixed") {
    // Files at most 0640, directories 0755; private ones 0600 / 0700.
    CHECK(shown_mode(false, 0644, false, true, false) == (S_IFREG | 0640));
    CHECK(shown_mode(false, 0777, false, true, false) == (S_IFREG | 0640));
    CHECK(shown_mode(false, 0600, false, true, false) == (S_IFREG | 0600));  // chmod may lower
    CHECK(shown_mode(false, 0644, true, true, false) == (S_IFREG | 0600));
    CHECK(shown_mode(true, 0755, false, true, false) == (S_IFDIR | 0755));
    CHECK(shown_mode(true, 0755, true, true, false) == (S_IFDIR | 0700));
    CHECK(shown_mode(true, 04777, false, true, false) == (S_IFDIR | 0755));  // never set-id bits
    // Inquorate: read-only.
    CHECK(shown_mode(false, 0644, false, false, false) == (S_IFREG | 0440));
    CHECK(shown_mode(true, 0755, false, false, false) == (S_IFDIR | 0555));
    CHECK(shown_mode(false, 0644, true, false, false) == (S_IFREG | 0400));
    CHECK(shown_mode(true, 0755, true, false, false) == (S_IFDIR | 0500));
    // The root: 0755 always (pmxcfs alike).
    CHECK(shown_mode(true, 0, false, false, true) == (S_IFDIR | 0755));
}

TEST_CASE("the tree's task threads run posted tasks in order, under their own name") {
    conclave::fuse::TaskThread tasks;
    tasks.start("cv-test-tasks");
    std::mutex mu;
    std::vector<int> ran;
    std::string name;
    for (int i = 0; i < 3; ++i)
        tasks.post([&, i] {
            std::lock_guard lock(mu);
            ran.push_back(i);
            char buf[16] = {};
            ::pthread_getname_np(::pthread_self(), buf, sizeof buf);
            name = buf;
        });
    tasks.stop();  // runs what is queued first
    CHECK(ran == std::vector<int>{0, 1, 2});
    CHECK(name == "cv-test-tasks");
    tasks.post([&] { ran.push_back(9); });  // after stop(): dropped
    CHECK(ran.size() == 3);
}
