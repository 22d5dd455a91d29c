#include "sim/network.h"

#include "sim/options.h"

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

LinkFaults link_faults(const SimOptions& o) {
    LinkFaults lf;
    lf.delay_us = o.fault_delay ? 100 : 200;
    lf.jitter_us = o.fault_delay ? 2'000 : 0;
    lf.loss = o.fault_loss ? o.loss : 0;
    lf.dup = o.fault_dup ? o.dup : 0;
    lf.reorder = o.fault_reorder ? o.reorder : 0;
    lf.reorder_extra_us = 5'000;
    return lf;
}

}  // namespace conclave::sim
