// Fuzz target: the control socket's fast request parser against nlohmann::json. Whatever
// it accepts must parse to the same value in full; what it declines goes to the full
// parser, so declining is always safe.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "runtime/control.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    nlohmann::json fast;
    if (!conclave::runtime::parse_flat_object(text, fast)) return 0;
    const nlohmann::json full = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (full.is_discarded() || fast != full || fast.dump() != full.dump()) std::abort();
    return 0;
}
