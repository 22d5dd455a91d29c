// The one piece of state the ring protocol keeps across restarts: the highest ring seq
// it ever used (Totem §4.4 ring ids; reference/corosync.md §1.5). An interface in the
// LevelDB Env style (STYLE.md): the daemon implements it with an fsync'd file, the
// simulator with a per-node blob that survives a simulated crash, tests with memory.
//
// Why it matters: a ring id {rep, seq} names one configuration. If a restarted node
// reused a seq it had used before, two different configurations could carry the same
// id and the EVS rules (which compare ring ids) would mix them up. So the core loads the
// value at construction, bumps it, and stores every new ring seq before using it.
#pragma once

#include <cstdint>

namespace conclave::totem {

class Durable {
public:
    virtual ~Durable() = default;
    // The stored value, 0 if nothing was ever stored.
    virtual std::uint64_t load_ring_seq() = 0;
    // REQUIRES: durable when it returns (the core uses the seq right after).
    virtual void store_ring_seq(std::uint64_t seq) = 0;
};

// In memory: for unit tests and the simulator (which keeps one per node across crashes).
class MemoryDurable final : public Durable {
public:
    std::uint64_t load_ring_seq() override { return seq_; }
    void store_ring_seq(std::uint64_t seq) override {
        seq_ = seq;
        ++stores_;
    }
    std::uint64_t stores() const { return stores_; }

private:
    std::uint64_t seq_ = 0;
    std::uint64_t stores_ = 0;
};

}  // namespace conclave::totem
