// The node's state directory: one daemon per directory, and the small durable facts the
// ring needs across restarts (DESIGN.md §5 and §6.7):
//   boot   the boot epoch: grows at every start, so peers can tell a restarted node's
//          new boot from its old one (crypto/channel.h) and a new boot id never repeats
//   ring   the highest ring id seq this node has used or seen: a restarted node never
//          reuses a ring id (ring id seq = highest known + 4, persisted before use)
// Each fact is a text file written atomically (temp file, fsync, rename, fsync dir).
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"

namespace conclave::runtime {

class StateDir {
public:
    // Creates the directory (mode 0700) if missing and takes an exclusive lock on
    // DIR/lock, holding it until destruction. A second daemon on the same directory gets
    // an error naming the holder's pid.
    static Result<StateDir> open(const std::string& path);

    StateDir(StateDir&& o) noexcept;
    StateDir& operator=(StateDir&&) = delete;
    StateDir(const StateDir&) = delete;
    ~StateDir();

    const std::string& path() const { return path_; }

    // Reads, bumps and durably stores the boot epoch: max(previous + 1, now_us), so it
    // grows across restarts even if the directory was lost (the clock then carries it).
    Result<std::uint64_t> next_boot_epoch(std::uint64_t now_us);

    // A durable u64 fact by name (0 when never written). Names: [a-z_]+.
    Result<std::uint64_t> load(const std::string& name) const;
    Status store(const std::string& name, std::uint64_t value);

private:
    StateDir(std::string path, int lock_fd) : path_(std::move(path)), lock_fd_(lock_fd) {}
    std::string path_;
    int lock_fd_ = -1;
};

}  // namespace conclave::runtime
