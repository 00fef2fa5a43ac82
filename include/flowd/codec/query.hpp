#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace flowd {

// Percent-decodes one query component as browsers and URL libraries write it
// (application/x-www-form-urlencoded: URLSearchParams, Go's net/url, Python's urlencode):
// '+' is a space, "%2B" a literal plus. nullopt when a '%' is not followed by two hex
// digits. The parameter grammar of the query routes is in flowd/query/plan.hpp.
[[nodiscard]] std::optional<std::string> percent_decode(std::string_view s);

}  // namespace flowd
