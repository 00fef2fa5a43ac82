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

// Bytes a body needs readable past its end for the decoders (simdjson::SIMDJSON_PADDING):
// the HTTP session reserves them as it reads, and decode_flows() when they are missing.
inline constexpr std::size_t body_padding = 64;

// Makes `body` readable body_padding bytes past its end (its capacity; contents unchanged).
inline void ensure_padding(std::string& body) {
    if (body.capacity() < body.size() + body_padding) {
        body.reserve(body.size() + body_padding);
    }
}

// Decodes and validates a POST body (SPEC "The record") into a pre-aggregated batch with
// simdjson On-Demand. Every record is checked before the batch is returned; the first bad
// one yields a problem naming its index and field. `body` may gain capacity (simdjson
// reads a little past the end) but its contents are unchanged.
// Thread-safe: each thread uses its own parser.
[[nodiscard]] boost::system::result<flow_batch, problem> decode_flows(std::string& body,
                                                                      body_format format,
                                                                      decode_limits const& limits);

// decode_flows_generic(): the general half of decode_flows(), apart for the tests and
// the fuzzer (codec/common_shape.hpp has the fast half).
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

}  // namespace flowd
