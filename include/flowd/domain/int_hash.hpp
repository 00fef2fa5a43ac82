#pragma once

#include <cstdint>

namespace flowd {

// murmur3's fmix64 finaliser: spreads every input bit over the whole word. For hashes of
// integers (interned ids, totals) whose low bits pick a slot.
[[nodiscard]] constexpr std::uint64_t fmix64(std::uint64_t h) noexcept {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

}  // namespace flowd
