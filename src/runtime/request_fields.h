// Typed access to the fields of a control request (runtime/control.h). Every handler reads
// its fields through these, so that every request is refused alike: a field that is present
// with the wrong type or out of range is an error that names it and says what it must be
// ("votes must be an integer 1..255, not -3"); it is never coerced, truncated or replaced by
// a default, which would carry out something the client did not ask for. A field that is
// absent, or null, is absent: an optional one keeps its default, a required one is an error.
//
// The errors are texts for an EINVAL reply. Strings are views into the request, which must
// outlive them (a put's data is megabytes: not copied).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace conclave::runtime {

// An integer min..max. `note`, if given, follows the range in the error: "mode must be an
// integer 0..4095 (07777, the permission bits), not 4294968740".
Result<std::optional<std::uint64_t>> optional_uint(const nlohmann::json& request, std::string_view key,
                                                   std::uint64_t min, std::uint64_t max, std::string_view note = {});
Result<std::uint64_t> required_uint(const nlohmann::json& request, std::string_view key, std::uint64_t min,
                                    std::uint64_t max, std::string_view note = {});
// true or false (not 0/1, not "yes").
Result<bool> optional_bool(const nlohmann::json& request, std::string_view key, bool absent);
Result<std::optional<std::string_view>> optional_string(const nlohmann::json& request, std::string_view key);
Result<std::string_view> required_string(const nlohmann::json& request, std::string_view key);
// A list of integers min..max (maybe empty).
Result<std::optional<std::vector<std::uint64_t>>> optional_uint_list(const nlohmann::json& request,
                                                                     std::string_view key, std::uint64_t min,
                                                                     std::uint64_t max, std::string_view note = {});

}  // namespace conclave::runtime
