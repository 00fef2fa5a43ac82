#pragma once

#include <cstdint>
#include <string>

#include "flowd/domain/flow_counters.hpp"

namespace flowd {

// The largest hour a record may carry (SPEC: 0 .. 2^31-1).
inline constexpr std::uint32_t max_hour = 0x7fffffffU;

// One aggregated record as clients see it: the key strings, the hour and the sums.
struct flow_record {
    std::string src_app;
    std::string dest_app;
    std::string vpc_id;
    std::uint32_t hour = 0;
    flow_counters counters;

    friend bool operator==(flow_record const&, flow_record const&) = default;
};

}  // namespace flowd
