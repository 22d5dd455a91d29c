// libFuzzer target: the state-message decoder (node::decode) on arbitrary bytes.
// A successful decode must re-encode to exactly the input (the format is canonical);
// nothing may crash, leak or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "node/messages.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace conclave;
    const auto m = node::decode(wire::ByteView(data, size));
    if (!m) return 0;
    if (!node::is_state_message(wire::ByteView(data, size))) std::abort();
    wire::Bytes again;
    node::encode(*m, again);
    if (again.size() != size || (size != 0 && std::memcmp(again.data(), data, size) != 0)) std::abort();
    return 0;
}
