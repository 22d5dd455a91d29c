// libFuzzer target: the journal's record and header decoders (store/journal.h) on
// arbitrary bytes. A fuzzer cannot forge the CRC32C, so the input's CRC fields are
// recomputed first (the structure behind them is what is fuzzed). Input: u64 segment
// seq, then a framed record. Whatever decodes must encode back to the bytes it took.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "store/journal.h"

using namespace conclave;
using namespace conclave::store;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 8) return 0;
    const std::uint64_t seq = wire::load_u64(data);
    wire::Bytes rec(data + 8, data + size);
    if (rec.size() >= 8) {
        const std::size_t body = std::min<std::size_t>(wire::load_u32(rec.data()), rec.size() - 8);
        wire::store_u32(rec.data() + 4, crc32c(0, rec.data() + 8, body));
    }
    JournalRecord out;
    const std::size_t used = decode_journal_record(rec, seq, out);
    if (used > rec.size()) std::abort();
    if (used > 0) {
        if (out.entries.empty() || out.first_version == 0) std::abort();
        wire::Bytes again;
        encode_journal_record(seq, out, again);
        if (again.size() != used || std::memcmp(again.data(), rec.data(), used) != 0) std::abort();
    }
    // The same bytes as a segment header, with its CRC recomputed.
    wire::Bytes head(data, data + size);
    constexpr std::size_t kUsed = 8 + 4 + 8 + 8 + 32;
    if (head.size() >= kUsed + 4) wire::store_u32(head.data() + kUsed, crc32c(0, head.data(), kUsed));
    JournalHeader h;
    if (decode_journal_header(head, h)) {
        if (h.seq == 0) std::abort();
        wire::Bytes again;
        encode_journal_header(h, again);
        if (std::memcmp(again.data(), head.data(), kUsed + 4) != 0) std::abort();
    }
    return 0;
}
