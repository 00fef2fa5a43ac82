#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "flowd/domain/flow_counters.hpp"

namespace flowd {

// Appends `s` as a JSON string: raw UTF-8, only '"', '\\' and control characters escaped.
void append_json_string(std::string& out, std::string_view s);

// Appends one aggregated record as compact JSON, fields in SPEC order.
void append_flow_json(std::string& out, std::string_view src_app, std::string_view dest_app,
                      std::string_view vpc_id, flow_counters const& counters, std::uint32_t hour);

}  // namespace flowd
