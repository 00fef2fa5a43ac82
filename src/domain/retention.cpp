#include "flowd/domain/retention.hpp"

#include <algorithm>

#include "flowd/domain/flow_record.hpp"

namespace flowd {

retention_window retention_window_at(std::uint64_t unix_ms,
                                     std::uint32_t retention_hours) noexcept {
    std::uint64_t const now = unix_ms / 3'600'000;
    std::uint64_t const first = now + 1 >= retention_hours ? now + 1 - retention_hours : 0;
    std::uint64_t const last = now + 1;
    return retention_window{static_cast<std::uint32_t>(std::min<std::uint64_t>(first, max_hour)),
                            static_cast<std::uint32_t>(std::min<std::uint64_t>(last, max_hour))};
}

std::uint32_t sealed_before(std::uint64_t unix_ms, std::chrono::milliseconds seal_after) noexcept {
    auto const after = static_cast<std::uint64_t>(seal_after.count());
    if (after == 0) {
        return 0;
    }
    // Hour H is sealed once now >= (H + 1) h + seal_after: every H < (now - seal_after) / 1 h.
    std::uint64_t const before = unix_ms > after ? (unix_ms - after) / 3'600'000 : 0;
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(before, max_hour + std::uint64_t{1}));
}

}  // namespace flowd
