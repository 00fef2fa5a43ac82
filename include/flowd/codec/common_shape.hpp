#pragma once

#include <string>

#include "flowd/codec/flow_json.hpp"

namespace flowd {

// The fast half of decode_flows() (codec/flow_json.hpp), apart for the tests and the fuzzer.
//
// decode_common_shape(): the fast path. True, with `batch` set, when the body is a JSON
// array of records of the shape exporters send (objects of exactly the six known keys in
// any order, names of printable ASCII without escapes, integers of digits) that are all
// valid; false, `batch` untouched, for anything else, including every error: it answers no
// problem. What it accepts, decode_flows_generic() accepts with the same batch.
[[nodiscard]] bool decode_common_shape(std::string& body, body_format format,
                                       decode_limits const& limits, flow_batch& batch);
}  // namespace flowd
