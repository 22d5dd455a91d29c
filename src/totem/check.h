// Invariant checks of the pure core. They stay on in every build (b_ndebug=false is not
// relied upon): a broken invariant in the simulator is a seed to replay (STYLE.md,
// TigerBeetle habit), and in a daemon an abort beats silently diverging replicas.
#pragma once

#include <cstdio>
#include <cstdlib>

#define CONCLAVE_CHECK(cond)                                                           \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
                         #cond);                                                       \
            std::abort();                                                              \
        }                                                                              \
    } while (0)
