#include "flowd/codec/flow_json.hpp"

#include <cstddef>
#include <new>
#include <optional>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "flowd/codec/common_shape.hpp"
#include "json_record.hpp"

namespace flowd {

static_assert(body_padding == simdjson::SIMDJSON_PADDING);

namespace {

problem too_many(std::size_t max) {
    return problem{problem_type::too_many_records,
                   "a batch may hold at most " + std::to_string(max) +
                       " records (max_records_per_batch); split it",
                   {},
                   {}};
}

// After the top-level value was consumed: anything left but whitespace?
bool has_trailing_content(od::document& doc) noexcept {
    const char* location = nullptr;
    return doc.current_location().get(location) == simdjson::SUCCESS;
}

od::parser& thread_parser(std::size_t max_depth) {
    thread_local od::parser parser;
    thread_local std::size_t depth = 0;
    if (depth != max_depth) {
        // One structural level for the batch array itself.
        if (parser.allocate(simdjson::SIMDJSON_PADDING, max_depth + 1) != simdjson::SUCCESS) {
            throw std::bad_alloc();
        }
        depth = max_depth;
    }
    return parser;
}

// A 400 decided already (a 422 may still give way to a 400 found later).
bool is_bad_request(std::optional<problem> const& p) noexcept {
    return p && p->type != problem_type::counter_overflow;
}

// The nesting levels left to each record of a JSON array body: the array takes one.
std::size_t record_depth(decode_limits const& limits) noexcept {
    return limits.max_depth == 0 ? 0 : limits.max_depth - 1;
}

boost::system::result<flow_batch, problem> decode_array(od::parser& parser, std::string& body,
                                                        decode_limits const& limits) {
    od::document doc;
    if (auto e = parser.iterate(body.data(), body.size(), body.capacity()).get(doc)) {
        if (e == simdjson::EMPTY) {
            return invalid_json("the body is empty; send a JSON array of flow records");
        }
        return syntax_error(e, std::nullopt);
    }
    od::json_type t{};
    if (auto e = doc.type().get(t)) {
        return syntax_error(e, std::nullopt);
    }
    if (t != od::json_type::array) {
        return invalid_json("the body must be a JSON array of flow records, got " +
                            std::string(type_name(t)));
    }
    od::array array;
    if (auto e = doc.get_array().get(array)) {
        return syntax_error(e, std::nullopt);
    }
    flow_batch batch;
    batch.reserve(expected_records(body.size(), limits));
    std::size_t index = 0;
    // SPEC precedence is 413 too-many-records, then 400, then 422: keep the first bad record
    // while the rest is still counted, and a 422 while the rest is still checked for a 400.
    std::optional<problem> found;
    for (auto element : array) {
        od::value v;
        if (auto e = element.get(v)) {
            return is_bad_request(found) ? *found : syntax_error(e, index);
        }
        if (index == limits.max_records) {
            return too_many(limits.max_records);
        }
        if (is_bad_request(found)) {
            if (validate_value(v, record_depth(limits))) {
                return *found;
            }
        } else if (auto p = decode_record(v, index, batch, record_depth(limits))) {
            if (p->type == problem_type::invalid_json) {
                return *p;  // past a syntax error the structure cannot be walked
            }
            if (!found || p->type != problem_type::counter_overflow) {
                found = std::move(p);
            }
        }
        ++index;
    }
    if (has_trailing_content(doc)) {
        return is_bad_request(found) ? *found
                                     : invalid_json("the body has content after the JSON array");
    }
    if (found) {
        return *found;
    }
    return batch;
}

std::optional<problem> decode_line(od::parser& parser, std::string& body, std::string_view line,
                                   std::size_t line_start, std::size_t index, flow_batch& batch,
                                   bool count_only, std::size_t max_depth) {
    if (count_only) {
        return std::nullopt;
    }
    // The line is followed by the rest of the body and its padding: readable bytes.
    od::document doc;
    if (auto e = parser.iterate(line.data(), line.size(), body.capacity() - line_start).get(doc)) {
        return syntax_error(e, index);
    }
    od::json_type t{};
    if (auto e = doc.type().get(t)) {
        return syntax_error(e, index);
    }
    if (t != od::json_type::object && t != od::json_type::array) {
        // get_value() refuses a scalar document; a valid one is a record of the wrong type.
        std::string_view s;
        simdjson::error_code e = simdjson::SUCCESS;
        switch (t) {
            case od::json_type::number:
                e = is_json_number(trim_right(doc.raw_json_token())) ? simdjson::SUCCESS
                                                                     : simdjson::NUMBER_ERROR;
                break;
            case od::json_type::string:
                e = doc.get_string().get(s);
                break;
            case od::json_type::boolean: {
                // Checked on the token, as numbers are: simdjson 3.0's root get_bool() refuses
                // "false" followed by 2+ whitespace bytes and its root is_null() "null" followed
                // by any (found by fuzz/): a valid line answered invalid-json.
                std::string_view const token = trim_right(doc.raw_json_token());
                e = token == "true" || token == "false"
                        ? simdjson::SUCCESS
                        : (token.starts_with('t') ? simdjson::T_ATOM_ERROR
                                                  : simdjson::F_ATOM_ERROR);
                break;
            }
            default:
                e = trim_right(doc.raw_json_token()) == "null" ? simdjson::SUCCESS
                                                               : simdjson::N_ATOM_ERROR;
        }
        if (e) {
            return syntax_error(e, index);
        }
        return problem{problem_type::invalid_record,
                       "record " + std::to_string(index) + " must be a JSON object, got " +
                           std::string(type_name(t)),
                       index, ""};
    }
    od::value v;
    if (auto e = doc.get_value().get(v)) {
        return syntax_error(e, index);
    }
    if (auto p = decode_record(v, index, batch, max_depth)) {
        return p;
    }
    if (has_trailing_content(doc)) {
        return invalid_json("line of record " + std::to_string(index) +
                            " has content after the JSON object");
    }
    return std::nullopt;
}

bool blank(std::string_view line) noexcept {
    return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

boost::system::result<flow_batch, problem> decode_ndjson(od::parser& parser, std::string& body,
                                                         decode_limits const& limits) {
    flow_batch batch;
    batch.reserve(expected_records(body.size(), limits));
    std::size_t index = 0;
    std::size_t pos = 0;
    std::optional<problem> found;
    while (pos < body.size()) {
        std::size_t end = body.find('\n', pos);
        if (end == std::string::npos) {
            end = body.size();
        }
        std::string_view const line(body.data() + pos, end - pos);
        std::size_t const line_start = pos;
        pos = end + 1;
        if (blank(line)) {
            continue;
        }
        if (index == limits.max_records) {
            return too_many(limits.max_records);
        }
        // SPEC precedence (413, 400, 422): past a bad line only count; past a 422 keep checking.
        if (auto p = decode_line(parser, body, line, line_start, index, batch,
                                 is_bad_request(found), limits.max_depth)) {
            if (!found || p->type != problem_type::counter_overflow) {
                found = std::move(p);
            }
        }
        ++index;
    }
    if (found) {
        return *found;
    }
    return batch;
}

}  // namespace

boost::system::result<flow_batch, problem> decode_flows(std::string& body, body_format format,
                                                        decode_limits const& limits) {
    if (flow_batch batch; decode_common_shape(body, format, limits, batch)) {
        return batch;
    }
    return decode_flows_generic(body, format, limits);
}

boost::system::result<flow_batch, problem> decode_flows_generic(std::string& body,
                                                                body_format format,
                                                                decode_limits const& limits) {
    ensure_padding(body);
    od::parser& parser = thread_parser(limits.max_depth);
    auto result = format == body_format::json_array ? decode_array(parser, body, limits)
                                                    : decode_ndjson(parser, body, limits);
    // Do not keep the index of a huge body alive in every thread.
    constexpr std::size_t keep_capacity = 4U << 20;
    if (parser.capacity() > keep_capacity) {
        if (parser.allocate(keep_capacity, limits.max_depth + 1) != simdjson::SUCCESS) {
            throw std::bad_alloc();
        }
    }
    return result;
}

std::string_view json_implementation() noexcept {
    // The kernel this file was compiled against; simdjson::builtin_implementation() would
    // name the shared library's, which Debian builds portable.
    return SIMDJSON_STRINGIFY(SIMDJSON_BUILTIN_IMPLEMENTATION);
}

bool cpu_runs_json_implementation() noexcept {
#if defined(__x86_64__) && defined(__AVX2__)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") &&
           __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("pclmul");
#else
    return true;
#endif
}

}  // namespace flowd
