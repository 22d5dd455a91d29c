#include "runtime/request_fields.h"

#include <string>

namespace conclave::runtime {

using nlohmann::json;

namespace {

// The field, or nullptr when it is absent or null.
const json* field(const json& request, std::string_view key) {
    auto it = request.find(std::string(key));
    if (it == request.end() || it->is_null()) return nullptr;
    return &*it;
}

// What a wrong value was, for "..., not X": numbers as they are, anything else by its
// kind (a string may be megabytes long, or not printable).
std::string shown(const json& v) {
    switch (v.type()) {
        case json::value_t::number_integer:
        case json::value_t::number_unsigned:
        case json::value_t::number_float:
            return v.dump();
        case json::value_t::boolean:
            return v.get<bool>() ? "true" : "false";
        case json::value_t::string:
            return "a string";
        case json::value_t::array:
            return "a list";
        case json::value_t::object:
            return "an object";
        default:
            return "null";
    }
}

std::string integers(std::uint64_t min, std::uint64_t max, std::string_view note) {
    std::string s = std::to_string(min) + ".." + std::to_string(max);
    if (!note.empty()) s += " (" + std::string(note) + ")";
    return s;
}

Error wrong(std::string_view key, const std::string& want, const json& got) {
    return Error{std::string(key) + " must be " + want + ", not " + shown(got)};
}

Error missing(std::string_view key, const std::string& want) {
    return Error{"the request needs \"" + std::string(key) + "\", " + want};
}

// An integer (JSON has no other kind of whole number; 2.0 is not one) within min..max.
std::optional<std::uint64_t> integer_in(const json& v, std::uint64_t min, std::uint64_t max) {
    std::uint64_t n = 0;
    if (v.is_number_unsigned()) {
        n = v.get<std::uint64_t>();
    } else if (v.is_number_integer()) {
        const auto s = v.get<std::int64_t>();
        if (s < 0) return std::nullopt;
        n = static_cast<std::uint64_t>(s);
    } else {
        return std::nullopt;
    }
    if (n < min || n > max) return std::nullopt;
    return n;
}

}  // namespace

Result<std::optional<std::uint64_t>> optional_uint(const json& request, std::string_view key, std::uint64_t min,
                                                   std::uint64_t max, std::string_view note) {
    const json* v = field(request, key);
    if (!v) return std::optional<std::uint64_t>();
    auto n = integer_in(*v, min, max);
    if (!n) return wrong(key, "an integer " + integers(min, max, note), *v);
    return n;
}

Result<std::uint64_t> required_uint(const json& request, std::string_view key, std::uint64_t min, std::uint64_t max,
                                    std::string_view note) {
    auto n = optional_uint(request, key, min, max, note);
    if (!n) return Error{n.error()};
    if (!n.value()) return missing(key, "an integer " + integers(min, max, note));
    return *n.value();
}

Result<bool> optional_bool(const json& request, std::string_view key, bool absent) {
    const json* v = field(request, key);
    if (!v) return absent;
    if (!v->is_boolean()) return wrong(key, "true or false", *v);
    return v->get<bool>();
}

Result<std::optional<std::string_view>> optional_string(const json& request, std::string_view key) {
    const json* v = field(request, key);
    if (!v) return std::optional<std::string_view>();
    if (!v->is_string()) return wrong(key, "a string", *v);
    return std::optional<std::string_view>(v->get_ref<const std::string&>());
}

Result<std::string_view> required_string(const json& request, std::string_view key) {
    auto s = optional_string(request, key);
    if (!s) return Error{s.error()};
    if (!s.value()) return missing(key, "a string");
    return *s.value();
}

Result<std::optional<std::vector<std::uint64_t>>> optional_uint_list(const json& request, std::string_view key,
                                                                     std::uint64_t min, std::uint64_t max,
                                                                     std::string_view note) {
    const json* v = field(request, key);
    if (!v) return std::optional<std::vector<std::uint64_t>>();
    const std::string want = "a list of integers " + integers(min, max, note);
    if (!v->is_array()) return wrong(key, want, *v);
    std::vector<std::uint64_t> out;
    out.reserve(v->size());
    for (const auto& e : *v) {
        auto n = integer_in(e, min, max);
        if (!n) return Error{std::string(key) + " must be " + want + ", not one that holds " + shown(e)};
        out.push_back(*n);
    }
    return std::optional<std::vector<std::uint64_t>>(std::move(out));
}

}  // namespace conclave::runtime
