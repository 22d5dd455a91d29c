// libFuzzer target: the decoders of the store's own LMDB records (store/db.h: the state
// record and log values; store/format.h: entry records) on arbitrary bytes, as a damaged
// data.mdb would hand them over. Input: one byte choosing the decoder, then the record.
// Whatever decodes must encode to bytes that decode to the same thing again (and a log
// value, whose format is fixed fields plus the rest, to exactly the input).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "store/db.h"
#include "store/format.h"

using namespace conclave;
using namespace conclave::store;

namespace {

bool same(const db::State& a, const db::State& b) {
    return a.head == b.head && a.meta == b.meta && a.next_ino == b.next_ino && a.total == b.total &&
           a.base_version == b.base_version && a.base_hash == b.base_hash && a.journal_from == b.journal_from;
}

void state(wire::ByteView in) {
    db::State s;
    if (!db::decode_state(in, s)) return;
    wire::Bytes again;
    db::encode_state(s, again);
    db::State back;
    if (!db::decode_state(again, back) || !same(s, back)) std::abort();
}

void log_value(wire::ByteView in) {
    LogRecord rec;
    if (!db::get_log_value(in, 7, rec)) return;
    if (rec.version != 7) std::abort();
    wire::Bytes again;
    wire::Writer w(again);
    db::put_log_value(w, rec);
    if (again.size() != in.size() || (!in.empty() && std::memcmp(again.data(), in.data(), in.size()) != 0))
        std::abort();
}

void entry(wire::ByteView in) {
    wire::Reader r(in);
    format::Node n;
    if (!format::get_entry(r, n) || !r.at_end()) return;
    wire::Bytes again;
    wire::Writer w(again);
    format::put_entry(w, n);
    wire::Reader r2(again);
    format::Node back;
    if (!format::get_entry(r2, back) || !r2.at_end()) std::abort();
    wire::Bytes third;
    wire::Writer w3(third);
    format::put_entry(w3, back);
    if (third != again) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const wire::ByteView in(data + 1, size - 1);
    switch (data[0] % 3) {
        case 0: state(in); break;
        case 1: log_value(in); break;
        default: entry(in); break;
    }
    return 0;
}
