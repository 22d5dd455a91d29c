// libFuzzer target: the transition decoder (store::decode) on arbitrary bytes.
// A successful decode must re-encode to exactly the input (the format is canonical) and
// satisfy the decoder's promises (valid paths for the op, validate()); a failed one must
// carry a reason; neither may crash, leak or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "store/transition.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace conclave;
    const auto r = store::decode(wire::ByteView(data, size));
    if (!r.ok()) {
        if (r.error().empty()) std::abort();
        return 0;
    }
    const store::Transition& t = r.value();
    if (!t.path.empty() && !store::valid_path(t.path)) std::abort();
    if (!t.path2.empty() && !store::valid_path(t.path2)) std::abort();
    if (store::validate(t) != nullptr) std::abort();  // e.g. the kIfInode/kIfVersion/expect rules
    wire::Bytes again;
    store::encode(t, again);
    if (again.size() != size || (size != 0 && std::memcmp(again.data(), data, size) != 0)) std::abort();
    // Node-list ops are total functions of (meta, transition).
    store::Meta meta;
    store::apply_node_op(meta, t);
    return 0;
}
