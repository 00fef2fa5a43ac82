#pragma once

#include <string>
#include <string_view>

namespace flowd {

// True for a client X-Request-Id flowd keeps: 1..128 visible ASCII characters.
[[nodiscard]] bool acceptable_request_id(std::string_view id) noexcept;

// A new id: a random per-process prefix and a counter, 20 hex digits. Thread-safe.
[[nodiscard]] std::string new_request_id();

}  // namespace flowd
