#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace flowd {

// The value of one hexadecimal digit (either case), or -1.
[[nodiscard]] constexpr int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// `s` without leading and trailing spaces and tabs (HTTP's optional whitespace).
[[nodiscard]] constexpr std::string_view trim_ows(std::string_view s) noexcept {
    std::size_t const b = s.find_first_not_of(" \t");
    if (b == std::string_view::npos) {
        return {};
    }
    return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// `s` with ASCII A-Z lowered (header values compare case-insensitively).
[[nodiscard]] inline std::string ascii_lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

// Calls `visit` with each element of a comma-separated header list (RFC 9110 §5.6.1),
// trimmed, empty elements skipped, until it returns true; true when one did.
template <class Visit>
bool any_list_element(std::string_view list, Visit&& visit) {
    std::size_t pos = 0;
    while (pos < list.size()) {
        std::size_t comma = list.find(',', pos);
        if (comma == std::string_view::npos) {
            comma = list.size();
        }
        std::string_view const element = trim_ows(list.substr(pos, comma - pos));
        pos = comma + 1;
        if (!element.empty() && visit(element)) {
            return true;
        }
    }
    return false;
}

// A duration written as digits and a unit (ms, s, m or h), like 500ms or 10s, in
// milliseconds; nullopt for anything else or more than 10^9 units. The config file and
// the stream's `interval` parameter read durations with it, each with its own range.
[[nodiscard]] inline std::optional<std::uint64_t> parse_duration_ms(
    std::string_view text) noexcept {
    std::size_t const digits = text.find_first_not_of("0123456789");
    if (digits == 0 || digits == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view const unit = text.substr(digits);
    std::uint64_t scale = 0;
    if (unit == "ms") {
        scale = 1;
    } else if (unit == "s") {
        scale = 1000;
    } else if (unit == "m") {
        scale = 60'000;
    } else if (unit == "h") {
        scale = 3'600'000;
    } else {
        return std::nullopt;
    }
    std::uint64_t n = 0;
    auto const r = std::from_chars(text.data(), text.data() + digits, n);
    if (r.ec != std::errc{} || n > 1'000'000'000) {
        return std::nullopt;
    }
    return n * scale;
}

}  // namespace flowd
