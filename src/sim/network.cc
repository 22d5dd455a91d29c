#include "sim/network.h"

namespace conclave::sim {

std::vector<std::uint64_t> Network::route(std::uint32_t from, std::uint32_t to, std::uint64_t now,
                                          Prng& rng) {
    const LinkFaults& l = links_[index(from, to)];
    std::vector<std::uint64_t> arrivals;
    if (!l.up || cut_[index(from, to)] || rng.chance(l.loss)) return arrivals;
    const int copies = rng.chance(l.dup) ? 2 : 1;
    for (int i = 0; i < copies; ++i) {
        std::uint64_t t = now + l.delay_us + (l.jitter_us ? rng.below(l.jitter_us + 1) : 0);
        if (rng.chance(l.reorder)) t += l.reorder_extra_us ? rng.below(l.reorder_extra_us + 1) : 0;
        arrivals.push_back(t);
    }
    return arrivals;
}

}  // namespace conclave::sim
