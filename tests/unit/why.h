// why(r): a Result's error for a doctest message, empty when it is ok. doctest formats
// the messages of passing checks too when run with -s (--success), and error() of an ok
// Result aborts.
#pragma once

#include <string>

namespace conclave::test {

template <typename R>
std::string why(const R& r) {
    return r.ok() ? std::string() : std::string(r.error());
}

}  // namespace conclave::test
