#pragma once

#include <chrono>
#include <cstdint>

namespace flowd {

// Unix time in milliseconds (idempotency windows, retention, sealing, log records).
[[nodiscard]] inline std::uint64_t wall_clock_ms() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

// The hours a batch may carry under retention: [first, last].
struct retention_window {
    std::uint32_t first = 0;
    std::uint32_t last = 0;
};

// SPEC retention: hours are Unix hours and a record must fall in the retention_hours ending
// at the current hour, plus one hour ahead.
[[nodiscard]] retention_window retention_window_at(std::uint64_t unix_ms,
                                                   std::uint32_t retention_hours) noexcept;

// SPEC sealing: Unix hour H is sealed once the clock passes its end plus seal_after, so
// every hour before the one returned is sealed at `unix_ms`; 0 when sealing is off.
[[nodiscard]] std::uint32_t sealed_before(std::uint64_t unix_ms,
                                          std::chrono::milliseconds seal_after) noexcept;

}  // namespace flowd
