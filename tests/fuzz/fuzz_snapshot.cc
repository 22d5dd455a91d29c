// libFuzzer target: the snapshot parser (store::parse_snapshot, no LMDB) on arbitrary
// bytes. A fuzzer cannot forge SHA-256, so the structure is fuzzed with the hash checks
// off (parse_snapshot_structure): whatever it accepts must rebuild to the same bytes
// (but the two hashes) and satisfy the tree invariants it promises. The full parser runs
// too, on the input with its trailer recomputed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "store/format.h"

using namespace conclave;
using namespace conclave::store;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const wire::ByteView input(data, size);
    if (size >= 32) {
        wire::Bytes fixed(data, data + size);
        const Hash trailer = sha256(wire::ByteView(fixed.data(), size - 32));
        std::memcpy(fixed.data() + size - 32, trailer.data(), 32);
        const auto full = parse_snapshot(fixed);
        if (!full.ok() && full.error().empty()) std::abort();
    }
    const auto r = format::parse_snapshot_structure(input);
    if (!r.ok()) {
        if (r.error().empty()) std::abort();
        return 0;
    }
    const SnapshotContents& s = r.value();
    if (s.entries.empty() || s.entries[0].info.ino != format::kRootIno) std::abort();
    format::SnapshotBuilder b(s.head, s.meta, s.next_ino, s.log_base_version, s.log_base_hash,
                              static_cast<std::uint32_t>(s.entries.size()));
    for (const SnapshotEntry& e : s.entries) {
        if (!e.info.dir && e.data.size() != e.info.size) std::abort();
        b.entry(e.info.ino, format::Node{e.parent, e.info}, e.data);
    }
    b.log_count(static_cast<std::uint32_t>(s.log.size()));
    for (const LogRecord& rec : s.log) b.log_record(rec);
    const wire::Bytes again = b.finish();
    if (again.size() != size || std::memcmp(again.data(), data, size - 64) != 0) std::abort();
    return 0;
}
