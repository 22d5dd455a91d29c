// Bounds-checked little-endian reader and writer for every conclave wire format.
//
// Why: DESIGN.md §4 — every length and count is checked against what remains before it
// is used, and a decoder reports "malformed" as a value, never throws and never reads
// past the end. All multi-byte fields are fixed-width little-endian, independent of the
// host byte order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace conclave::wire {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

// Reader: consumes a byte view front to back. Once any read fails the reader is
// "bad" for good and every later read fails too, so a decoder may do a run of reads
// and check ok() once at the end (no partially checked state leaks out).
class Reader {
public:
    explicit Reader(ByteView data) : data_(data) {}

    bool ok() const { return ok_; }
    std::size_t remaining() const { return ok_ ? data_.size() - pos_ : 0; }
    std::size_t position() const { return pos_; }
    bool at_end() const { return ok_ && pos_ == data_.size(); }
    // Marks the reader bad (a decoder found a semantically invalid value).
    void fail() { ok_ = false; }

    bool u8(std::uint8_t& v) { return fixed(v); }
    bool u16(std::uint16_t& v) { return fixed(v); }
    bool u32(std::uint32_t& v) { return fixed(v); }
    bool u64(std::uint64_t& v) { return fixed(v); }

    // Copies exactly out.size() bytes.
    bool bytes(std::span<std::uint8_t> out) {
        if (!need(out.size())) return false;
        if (!out.empty()) std::memcpy(out.data(), data_.data() + pos_, out.size());
        pos_ += out.size();
        return true;
    }
    // A view of the next n bytes (valid as long as the underlying buffer is).
    bool view(std::size_t n, ByteView& out) {
        if (!need(n)) return false;
        out = data_.subspan(pos_, n);
        pos_ += n;
        return true;
    }
    bool skip(std::size_t n) {
        if (!need(n)) return false;
        pos_ += n;
        return true;
    }
    // Everything not yet consumed.
    ByteView rest() {
        if (!ok_) return {};
        ByteView r = data_.subspan(pos_);
        pos_ = data_.size();
        return r;
    }
    // A u32 element count followed by that many elements of at least min_elem_size
    // bytes each: refuses counts the remaining bytes cannot possibly hold, so a
    // hostile count never drives an allocation.
    bool count(std::uint32_t& n, std::size_t min_elem_size, std::uint32_t max_count) {
        if (!u32(n)) return false;
        if (n > max_count || (min_elem_size != 0 && n > remaining() / min_elem_size)) {
            ok_ = false;
            return false;
        }
        return true;
    }

private:
    bool need(std::size_t n) {
        if (!ok_ || n > data_.size() - pos_) {
            ok_ = false;
            return false;
        }
        return true;
    }
    template <typename T>
    bool fixed(T& v) {
        if (!need(sizeof(T))) return false;
        T r = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i)
            r = static_cast<T>(r | (static_cast<T>(data_[pos_ + i]) << (8 * i)));
        v = r;
        pos_ += sizeof(T);
        return true;
    }

    ByteView data_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

// Writer: appends to a caller-owned vector (reused across packets to avoid allocation).
class Writer {
public:
    explicit Writer(Bytes& out) : out_(out) {}

    void u8(std::uint8_t v) { out_.push_back(v); }
    void u16(std::uint16_t v) { fixed(v); }
    void u32(std::uint32_t v) { fixed(v); }
    void u64(std::uint64_t v) { fixed(v); }
    void bytes(ByteView b) { out_.insert(out_.end(), b.begin(), b.end()); }
    void bytes(std::string_view s) { out_.insert(out_.end(), s.begin(), s.end()); }
    std::size_t size() const { return out_.size(); }
    // Overwrites a u32 written earlier at offset `at` (for length prefixes).
    void patch_u32(std::size_t at, std::uint32_t v) {
        for (std::size_t i = 0; i < 4; ++i) out_[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
    }

private:
    template <typename T>
    void fixed(T v) {
        for (std::size_t i = 0; i < sizeof(T); ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
    Bytes& out_;
};

// Fixed-position helpers for headers encoded in place.
inline void store_u32(std::uint8_t* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline void store_u64(std::uint8_t* p, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline std::uint32_t load_u32(const std::uint8_t* p) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(p[i]) << (8 * i);
    return v;
}
inline std::uint64_t load_u64(const std::uint8_t* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    return v;
}

}  // namespace conclave::wire
