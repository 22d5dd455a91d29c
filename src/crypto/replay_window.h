// Sliding anti-replay window over 64-bit packet counters (RFC 6479 style, as IPsec and
// WireGuard do), 2048 counters wide (DESIGN.md §4).
//
// check() is done before the (costly) tag verification and changes nothing; accept()
// only after the tag verified, so forged packets can never move the window.
#pragma once

#include <array>
#include <cstdint>

namespace conclave::crypto {

class ReplayWindow {
public:
    static constexpr std::uint64_t kSize = 2048;

    enum class Verdict { fresh, replay, too_old };

    Verdict check(std::uint64_t counter) const {
        if (counter > top_) return Verdict::fresh;
        if (top_ - counter >= kSize) return Verdict::too_old;
        return test(counter) ? Verdict::replay : Verdict::fresh;
    }

    // REQUIRES: check(counter) == fresh.
    void accept(std::uint64_t counter) {
        if (counter > top_) {
            std::uint64_t first_new_word = (top_ / 64) + 1;
            std::uint64_t last_word = counter / 64;
            // Clear the words the window slides over (at most all of them).
            std::uint64_t clear = last_word - (first_new_word - 1);
            if (clear > kWords) clear = kWords;
            for (std::uint64_t i = 0; i < clear; ++i) bits_[(first_new_word + i) % kWords] = 0;
            top_ = counter;
        }
        bits_[(counter / 64) % kWords] |= std::uint64_t{1} << (counter % 64);
    }

    std::uint64_t top() const { return top_; }

private:
    // One extra word so the word holding top never shares a slot with the oldest one.
    static constexpr std::uint64_t kWords = kSize / 64 + 1;

    bool test(std::uint64_t counter) const {
        return (bits_[(counter / 64) % kWords] >> (counter % 64)) & 1;
    }

    std::array<std::uint64_t, kWords> bits_{};
    std::uint64_t top_ = 0;  // highest counter accepted; counter 0 is never sent
};

}  // namespace conclave::crypto
