// Names the calling thread as `top -H`, `ps -L` and /proc/PID/task/*/comm show it (Linux
// keeps 15 bytes; threads the named one starts inherit the name). Best effort.
#pragma once

#include <pthread.h>

namespace conclave {

inline void name_this_thread(const char* name) { (void)::pthread_setname_np(::pthread_self(), name); }

}  // namespace conclave
