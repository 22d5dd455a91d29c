// The simulated network: per directed link, loss, duplication, reordering and
// delay/jitter, all drawn from the run's seeded PRNG. The packets it carries are the
// encoded bytes of wire/totem (the simulator skips encryption, never encoding).
//
// Extending it (next issue: partitions, asymmetric links, pause): a fault is a rule
// deciding per packet and link; LinkFaults is per directed link and `up` already lets a
// partition cut a link in one direction.
#pragma once

#include <cstdint>
#include <vector>

#include "sim/prng.h"

namespace conclave::sim {

struct LinkFaults {
    bool up = true;                      // false: every packet on this link is lost
    double loss = 0;                     // probability a packet is dropped
    double dup = 0;                      // probability a packet arrives twice
    double reorder = 0;                  // probability a packet is held back
    std::uint64_t delay_us = 200;        // base one-way delay
    std::uint64_t jitter_us = 0;         // + uniform [0, jitter]
    std::uint64_t reorder_extra_us = 0;  // a held-back packet waits + uniform [0, this]
};

struct SimOptions;
// The packet faults --faults asks for, on every link.
LinkFaults link_faults(const SimOptions& o);

enum class LinkFate : std::uint8_t { delivered, lost, duplicated };

class Network {
public:
    explicit Network(std::uint32_t nodes)
        : nodes_(nodes), links_(std::size_t{nodes} * nodes), cut_(std::size_t{nodes} * nodes, false) {}

    LinkFaults& link(std::uint32_t from, std::uint32_t to) { return links_[index(from, to)]; }
    // Partitions and one-way links: a cut link loses everything (0-based indexes).
    void set_cut(std::uint32_t from, std::uint32_t to, bool cut) { cut_[index(from, to)] = cut; }
    bool cut(std::uint32_t from, std::uint32_t to) const { return cut_[index(from, to)]; }
    void set_all(const LinkFaults& f) {
        for (auto& l : links_) l = f;
    }
    // Faults stop (the network heals): what is left is plain delay.
    void heal() {
        for (auto& l : links_) {
            l.up = true;
            l.loss = l.dup = l.reorder = 0;
        }
        cut_.assign(cut_.size(), false);
    }

    // Arrival times (0, 1 or 2 of them) of a packet sent now on from -> to.
    // Node indexes are 0-based.
    std::vector<std::uint64_t> route(std::uint32_t from, std::uint32_t to, std::uint64_t now, Prng& rng);

private:
    std::size_t index(std::uint32_t from, std::uint32_t to) const { return std::size_t{from} * nodes_ + to; }
    std::uint32_t nodes_;
    std::vector<LinkFaults> links_;
    std::vector<bool> cut_;
};

}  // namespace conclave::sim
