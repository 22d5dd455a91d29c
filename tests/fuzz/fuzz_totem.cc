// libFuzzer target: the ring's packet decoder (wire/totem) on arbitrary bytes.
// A successful decode must re-encode to exactly the input (the format is canonical), and
// a failed one must carry a reason; neither may crash, leak or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "wire/totem.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace conclave::wire;
    const totem::DecodeResult r = totem::decode(ByteView(data, size));
    if (!r.ok()) {
        if (r.error[0] == '\0') std::abort();
        return 0;
    }
    Bytes again;
    totem::encode(r.packet, again);
    if (again.size() != size || (size != 0 && std::memcmp(again.data(), data, size) != 0)) std::abort();
    return 0;
}
