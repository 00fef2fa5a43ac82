#pragma once

// What the executor and the answer writers share (src/query only).

#include "flowd/query/plan.hpp"

namespace flowd::detail {

// Bit f set when group_field f is grouped.
[[nodiscard]] inline unsigned grouped_mask(query_plan const& plan) noexcept {
    unsigned m = 0;
    for (group_field const f : plan.group_by) {
        m |= 1U << static_cast<unsigned>(f);
    }
    return m;
}

}  // namespace flowd::detail
