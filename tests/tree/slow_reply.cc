// A test shim, loaded into conclaved with LD_PRELOAD by tests/cluster/test_tree.sh: while
// the file named by $CONCLAVE_SLOW_REPLY_WHEN exists, every fuse_reply_entry (a lookup's
// or mkdir's answer) waits $CONCLAVE_SLOW_REPLY_MS (default 30) before it goes to the
// kernel. That widens the window between reading an entry from the store and the kernel
// taking it, so a change applied meanwhile (whose invalidation finds nothing to drop yet)
// shows whether the tree still keeps the kernel from caching the old attributes.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <dlfcn.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

extern "C" int fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param* e) {
    using real_fn = int (*)(fuse_req_t, const struct fuse_entry_param*);
    static real_fn real = reinterpret_cast<real_fn>(dlsym(RTLD_NEXT, "fuse_reply_entry"));
    if (real == nullptr) return -ENOSYS;
    const char* when = std::getenv("CONCLAVE_SLOW_REPLY_WHEN");
    if (when != nullptr && access(when, F_OK) == 0) {
        const char* ms = std::getenv("CONCLAVE_SLOW_REPLY_MS");
        long n = ms != nullptr ? std::strtol(ms, nullptr, 10) : 30;
        struct timespec ts{n / 1000, (n % 1000) * 1000000};
        nanosleep(&ts, nullptr);
    }
    return real(req, e);
}
