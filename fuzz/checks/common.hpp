#pragma once

// What every check of fuzz/checks/ shares: the limits bodies are decoded with, and the
// check that a problem is well formed. Each check returns an empty string when the codec
// answered as SPEC says, else a description of the violation; a harness aborts on it,
// the unit test fails with it.
//
// Where it can, a check compares flowd's answer with a reference built on nlohmann::json
// (a second, independent JSON parser): a body nlohmann accepts and whose records are all
// valid by SPEC must be accepted with the same sums; one it rejects must be rejected.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowd/codec/common_shape.hpp"
#include "flowd/codec/flow_json.hpp"
#include "flowd/codec/gzip.hpp"
#include "flowd/codec/problem.hpp"
#include "flowd/codec/query.hpp"
#include "flowd/domain/flow_record.hpp"
#include "flowd/query/plan.hpp"

namespace flowd::fuzz {

// The limits each body is decoded with: the shipped defaults, and small ones so that the
// record cap and the depth cap are reached by short inputs.
inline constexpr decode_limits default_limits{};
inline constexpr decode_limits small_limits{3, 3};

// The largest gzip output the harnesses allow (flowd's default is 16 MiB; a smaller cap
// keeps a fuzzed gzip bomb cheap while still exercising the limit).
inline constexpr std::size_t gzip_limit = std::size_t{1} << 20;

namespace detail {

inline constexpr std::string_view known_fields[] = {"src_app",  "dest_app", "vpc_id",
                                                    "bytes_tx", "bytes_rx", "hour"};

inline bool is_known_field(std::string_view f) {
    for (std::string_view k : known_fields) {
        if (k == f) {
            return true;
        }
    }
    return false;
}

inline std::string escaped(std::string_view s) {
    // For messages only: JSON-ish escaping, invalid UTF-8 replaced.
    return nlohmann::json(std::string(s))
        .dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

// SPEC (Wire details) slug and status of each problem a codec may answer.
inline std::string check_problem(problem const& p, std::string_view context) {
    struct expected {
        problem_type type;
        std::string_view slug;
        unsigned status;
    };
    static constexpr expected table[] = {
        {problem_type::invalid_json, "invalid-json", 400},
        {problem_type::invalid_record, "invalid-record", 400},
        {problem_type::invalid_query, "invalid-query", 400},
        {problem_type::payload_too_large, "payload-too-large", 413},
        {problem_type::too_many_records, "too-many-records", 413},
        {problem_type::counter_overflow, "counter-overflow", 422},
        {problem_type::query_too_large, "query-too-large", 422},
    };
    std::string const where = std::string(context) + ": ";
    expected const* e = nullptr;
    for (auto const& row : table) {
        if (row.type == p.type) {
            e = &row;
        }
    }
    if (e == nullptr) {
        return where + "a codec answered a problem type it never should (" +
               std::string(slug_of(p.type)) + ")";
    }
    if (slug_of(p.type) != e->slug || status_of(p.type) != e->status) {
        return where + "slug/status " + std::string(slug_of(p.type)) + "/" +
               std::to_string(status_of(p.type)) + " differ from SPEC's " + std::string(e->slug) +
               "/" + std::to_string(e->status);
    }
    if (p.detail.empty()) {
        return where + "problem without a detail";
    }
    if (!p.field.empty() && !is_known_field(p.field)) {
        return where + "problem names an unknown field " + escaped(p.field);
    }
    bool const record_at_fault =
        p.type == problem_type::invalid_record || p.type == problem_type::counter_overflow;
    if (record_at_fault != p.record.has_value()) {
        return where + "problem " + std::string(e->slug) + (record_at_fault ? " lacks" : " has") +
               " a record index";
    }
    if (!record_at_fault && !p.field.empty()) {
        return where + "problem " + std::string(e->slug) + " names a field";
    }
    if (p.type == problem_type::counter_overflow && p.field != "bytes_tx" &&
        p.field != "bytes_rx") {
        return where + "counter-overflow names field " + escaped(p.field);
    }
    // The body a client receives must be JSON whatever bytes the detail quotes.
    std::string const body = to_json(p, "fuzz-request");
    auto const j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        return where + "problem body is not a JSON object: " + body;
    }
    if (j.value("type", std::string()) != std::string(problem_type_base) + std::string(e->slug) ||
        j.value("status", 0U) != e->status ||
        j.value("instance", std::string()) != "fuzz-request") {
        return where + "problem body disagrees with the problem: " + body;
    }
    if (p.record && j.value("record", std::size_t{0}) != *p.record) {
        return where + "problem body has the wrong record: " + body;
    }
    return {};
}

}  // namespace detail

}  // namespace flowd::fuzz
