#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

#include "flowd/codec/problem.hpp"
#include "flowd/domain/flow_batch.hpp"

namespace flowd {

enum class body_format { json_array, ndjson };

// Bounds on the work one request body may cause.
struct decode_limits {
    std::size_t max_records = 1'000'000;
    std::size_t max_depth = 64;
};

// Decodes and validates a POST body (SPEC "The record") into a pre-aggregated batch with
// simdjson On-Demand. Every record is checked before the batch is returned; the first bad
// one yields a problem naming its index and field. `body` may gain capacity (simdjson
// reads a little past the end) but its contents are unchanged.
// Thread-safe: each thread uses its own parser.
[[nodiscard]] boost::system::result<flow_batch, problem> decode_flows(std::string& body,
                                                                      body_format format,
                                                                      decode_limits const& limits);

// The two halves of decode_flows(), apart for the tests and the fuzzer.
//
// decode_common_shape(): the fast path. True, with `batch` set, when the body is a JSON
// array of records of the shape exporters send (objects of exactly the six known keys in
// any order, names of printable ASCII without escapes, integers of digits) that are all
// valid; false, `batch` untouched, for anything else, including every error: it answers no
// problem. What it accepts, decode_flows_generic() accepts with the same batch.
[[nodiscard]] bool decode_common_shape(std::string& body, body_format format,
                                       decode_limits const& limits, flow_batch& batch);
// decode_flows_generic(): every body, with simdjson On-Demand; words every error.
[[nodiscard]] boost::system::result<flow_batch, problem> decode_flows_generic(
    std::string& body, body_format format, decode_limits const& limits);

// How many keys a decoder reserves room for before decoding a body of `body_bytes`. A
// record takes at least ~80 bytes of JSON and ~115 with exporters' ~10-byte names and
// 6-digit counters: at 1 per 128 bytes a batch of 1,000 outgrew its reservation, and
// growing rehashed and copied every key once.
[[nodiscard]] inline std::size_t expected_records(std::size_t body_bytes,
                                                  decode_limits const& limits) noexcept {
    return std::min(body_bytes / 96, limits.max_records);
}

// The simdjson kernel decode_flows() was compiled for (haswell, westmere, fallback, ...):
// On-Demand picks it at compile time, not at run time.
[[nodiscard]] std::string_view json_implementation() noexcept;

// False when this CPU lacks the instructions that kernel needs; flowd then refuses to start.
[[nodiscard]] bool cpu_runs_json_implementation() noexcept;

// Appends `s` as a JSON string: raw UTF-8, only '"', '\\' and control characters escaped.
void append_json_string(std::string& out, std::string_view s);

// Appends one aggregated record as compact JSON, fields in SPEC order.
void append_flow_json(std::string& out, std::string_view src_app, std::string_view dest_app,
                      std::string_view vpc_id, flow_counters const& counters, std::uint32_t hour);

}  // namespace flowd
