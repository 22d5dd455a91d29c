// Fuzz target: the conclave.conf parser. Any input gives a config or an error naming
// file:line:column; a config that parses formats to text that parses to the same thing.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/config.h"

using namespace conclave;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto r = config::parse(text, "fuzz.conf");
    if (!r.ok()) {
        if (r.error().rfind("fuzz.conf:", 0) != 0) std::abort();
        return 0;
    }
    std::string formatted = config::format(r.value());
    auto again = config::parse(formatted, "formatted.conf");
    if (!again.ok() || config::format(again.value()) != formatted) std::abort();
    return 0;
}
