#pragma once

// gunzip within its limit, then the decode checks on what it gave (see fuzz/checks/common.hpp for
// what a check returns).

#include <cstddef>
#include <string>
#include <string_view>

#include "common.hpp"
#include "flow_json.hpp"
#include "flowd/codec/gzip.hpp"

namespace flowd::fuzz {

// gunzip under `limit`, then, when it inflates, the decode checks on what it gave.
inline std::string check_gunzip(std::string_view input, std::size_t limit = gzip_limit) {
    auto const out = gunzip(input, limit);
    if (!out) {
        if (std::string e = detail::check_problem(out.error(), "gunzip"); !e.empty()) {
            return e;
        }
        if (out.error().type != problem_type::invalid_json &&
            out.error().type != problem_type::payload_too_large) {
            return "gunzip: answered " + std::string(slug_of(out.error().type));
        }
        return {};
    }
    std::size_t const n = out->size();
    if (n > limit) {
        return "gunzip: inflated " + std::to_string(n) + " bytes past the limit " +
               std::to_string(limit);
    }
    // Exactly the limit is accepted, one byte less is payload-too-large (SPEC).
    auto const exact = gunzip(input, n);
    if (!exact || *exact != *out) {
        return "gunzip: " + std::to_string(n) + " bytes under limit " + std::to_string(limit) +
               " but not under limit " + std::to_string(n);
    }
    if (n > 0) {
        auto const less = gunzip(input, n - 1);
        if (less || less.error().type != problem_type::payload_too_large) {
            return "gunzip: " + std::to_string(n) + " bytes accepted under limit " +
                   std::to_string(n - 1);
        }
    }
    return check_decode_all(*out);
}

}  // namespace flowd::fuzz
