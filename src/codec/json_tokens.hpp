#pragma once

// The generic JSON decoder's checks on single tokens (src/codec only). Included by
// flow_json.cpp alone: in its translation unit they compile with its -march (the simdjson
// kernel) and inline where they did.

#include <bit>
#include <cstddef>
#include <optional>
#include <string_view>

#include <simdjson.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace flowd {
namespace {

namespace od = simdjson::ondemand;

// The bytes of a string token up to its closing quote, when it has no escape: then they
// are its value as is (stage 1 already checked the UTF-8 and that no control character is
// unescaped). `raw` points just past the opening quote, inside the padded buffer, and the
// string is closed (stage 1), so the scan stops. Empty optional when there is an escape.
std::optional<std::string_view> unescaped_as_is(char const* raw) noexcept {
#if defined(__SSE2__)
    // Names are ~10 bytes: one 16-byte compare usually finds the closing quote. Reading 16
    // bytes from inside the body stays inside its SIMDJSON_PADDING.
    __m128i const chunk = _mm_loadu_si128(reinterpret_cast<__m128i const*>(raw));
    auto const quotes =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(chunk, _mm_set1_epi8('"'))));
    auto const escapes =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(chunk, _mm_set1_epi8('\\'))));
    if (quotes != 0) {
        auto const n = static_cast<unsigned>(std::countr_zero(quotes));
        if ((escapes & ((1U << n) - 1)) != 0) {
            return std::nullopt;
        }
        return std::string_view(raw, n);
    }
    if (escapes != 0) {
        return std::nullopt;
    }
    std::size_t n = 16;
#else
    std::size_t n = 0;
#endif
    while (raw[n] != '"' && raw[n] != '\\') {
        ++n;
    }
    if (raw[n] == '\\') {
        return std::nullopt;
    }
    return std::string_view(raw, n);
}

std::string_view type_name(od::json_type t) noexcept {
    switch (t) {
        case od::json_type::array:
            return "an array";
        case od::json_type::object:
            return "an object";
        case od::json_type::number:
            return "a number";
        case od::json_type::string:
            return "a string";
        case od::json_type::boolean:
            return "a boolean";
        case od::json_type::null:
            return "null";
    }
    return "a value";
}

std::string_view trim_right(std::string_view s) noexcept;

// RFC 8259 number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?. Checked on the token
// because simdjson's number getters also refuse valid JSON (big integers, exponents past
// double's range) and accept none of the invalid ones we need to tell apart.
bool is_json_number(std::string_view s) noexcept {
    std::size_t i = 0;
    auto digits = [&s, &i] {
        std::size_t const start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            ++i;
        }
        return i - start;
    };
    if (i < s.size() && s[i] == '-') {
        ++i;
    }
    if (i < s.size() && s[i] == '0') {
        ++i;
    } else if (digits() == 0) {
        return false;
    }
    if (i < s.size() && s[i] == '.') {
        ++i;
        if (digits() == 0) {
            return false;
        }
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
            ++i;
        }
        if (digits() == 0) {
            return false;
        }
    }
    return i == s.size();
}

// True when a string token's escapes are all RFC 8259 escapes (\uXXXX with four hex digits).
bool has_valid_escapes(std::string_view token) noexcept {
    for (std::size_t i = 0; i < token.size(); ++i) {
        if (token[i] != '\\') {
            continue;
        }
        if (++i >= token.size()) {
            return false;
        }
        char const c = token[i];
        if (c == 'u') {
            if (i + 4 >= token.size()) {
                return false;
            }
            for (std::size_t k = 1; k <= 4; ++k) {
                if (std::isxdigit(static_cast<unsigned char>(token[i + k])) == 0) {
                    return false;
                }
            }
            i += 4;
        } else if (std::string_view("\"\\/bfnrt").find(c) == std::string_view::npos) {
            return false;
        }
    }
    return true;
}

// Walks a value the record does not use, so that the body is valid JSON as a whole
// (On-Demand would otherwise skip it unchecked). On-Demand enforces no depth limit, so
// `depth_left` (the nesting levels still allowed, this value's included) bounds both
// max_json_depth and this recursion: a body of a million '[' must not exhaust the stack.
simdjson::error_code validate_value(od::value v, std::size_t depth_left) noexcept {
    od::json_type t{};
    if (auto e = v.type().get(t)) {
        return e;
    }
    if ((t == od::json_type::object || t == od::json_type::array) && depth_left == 0) {
        return simdjson::DEPTH_ERROR;
    }
    switch (t) {
        case od::json_type::object: {
            od::object o;
            if (auto e = v.get_object().get(o)) {
                return e;
            }
            for (auto field : o) {
                std::string_view key;
                if (auto e = field.unescaped_key().get(key)) {
                    return e;
                }
                od::value inner;
                if (auto e = field.value().get(inner)) {
                    return e;
                }
                if (auto e = validate_value(inner, depth_left - 1)) {
                    return e;
                }
            }
            return simdjson::SUCCESS;
        }
        case od::json_type::array: {
            od::array a;
            if (auto e = v.get_array().get(a)) {
                return e;
            }
            for (auto element : a) {
                od::value inner;
                if (auto e = element.get(inner)) {
                    return e;
                }
                if (auto e = validate_value(inner, depth_left - 1)) {
                    return e;
                }
            }
            return simdjson::SUCCESS;
        }
        case od::json_type::number:
            return is_json_number(trim_right(v.raw_json_token())) ? simdjson::SUCCESS
                                                                  : simdjson::NUMBER_ERROR;
        case od::json_type::string: {
            // An unpaired surrogate escape is valid JSON grammar; an ignored field may carry one.
            std::string_view const token = trim_right(v.raw_json_token());
            std::string_view s;
            auto const e = v.get_string().get(s);
            return e == simdjson::STRING_ERROR && has_valid_escapes(token) ? simdjson::SUCCESS : e;
        }
        case od::json_type::boolean: {
            bool b = false;
            return v.get_bool().get(b);
        }
        case od::json_type::null: {
            bool is_null = false;
            if (auto e = v.is_null().get(is_null)) {
                return e;
            }
            return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
        }
    }
    return simdjson::INCORRECT_TYPE;
}

std::string_view trim_right(std::string_view s) noexcept {
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

}  // namespace
}  // namespace flowd
