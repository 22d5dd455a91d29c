// The simulator's only source of randomness: xoshiro256** seeded by splitmix64.
//
// Why our own: std distributions differ between standard libraries, and a seed must give
// a byte-identical trace whichever compiler built the tool. Every draw goes through the
// integer operations below (no floating point in any decision but chance(), which
// compares against a 53-bit integer threshold computed the same way everywhere).
#pragma once

#include <cstdint>

namespace conclave::sim {

inline std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

class Prng {
public:
    explicit Prng(std::uint64_t seed) {
        for (auto& w : s_) w = splitmix64(seed);
    }
    std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    // Uniform in [0, n); n > 0 (multiply-shift; the tiny bias is irrelevant here).
    std::uint64_t below(std::uint64_t n) {
        return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
    }
    // Uniform in [lo, hi].
    std::uint64_t range(std::uint64_t lo, std::uint64_t hi) { return lo + below(hi - lo + 1); }
    // True with probability p (p outside [0,1] saturates).
    bool chance(double p) {
        if (p <= 0) return false;
        if (p >= 1) return true;
        const auto threshold = static_cast<std::uint64_t>(p * 9007199254740992.0);  // p * 2^53
        return (next() >> 11) < threshold;
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t s_[4];
};

}  // namespace conclave::sim
