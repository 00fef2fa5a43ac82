#pragma once

#include <cstdint>
#include <limits>

namespace flowd {

// The largest value a byte counter may hold (SPEC: 0 .. 2^63-1).
inline constexpr std::uint64_t max_counter = std::numeric_limits<std::int64_t>::max();

// Pre-aggregated totals for one key. Plain value type.
struct flow_counters {
    std::uint64_t bytes_tx = 0;
    std::uint64_t bytes_rx = 0;

    // True when adding `other` keeps both sums within max_counter.
    [[nodiscard]] bool can_add(flow_counters const& other) const noexcept {
        return other.bytes_tx <= max_counter - bytes_tx && other.bytes_rx <= max_counter - bytes_rx;
    }

    void add(flow_counters const& other) noexcept {
        bytes_tx += other.bytes_tx;
        bytes_rx += other.bytes_rx;
    }

    friend bool operator==(flow_counters const&, flow_counters const&) = default;
};

}  // namespace flowd
