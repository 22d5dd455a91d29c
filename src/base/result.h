// Errors as values at every boundary (STYLE.md habit 3): a Result holds either a value
// or a human-readable error that says what happened and what to do.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace conclave {

struct Error {
    std::string message;
};

template <typename T>
class Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error error) : v_(std::move(error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const std::string& error() const { return std::get<1>(v_).message; }

private:
    std::variant<T, Error> v_;
};

// For operations that produce no value.
struct Ok {};
using Status = Result<Ok>;

}  // namespace conclave
