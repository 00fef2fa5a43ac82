#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace flowd {

// A per-process random seed: clients choose the names, so tables indexed by this hash must
// not be something a crafted batch can flood with collisions.
extern std::uint64_t const string_hash_seed;

namespace detail {
// g++ and clang's 128-bit integer; __extension__ keeps -Wpedantic quiet about it.
__extension__ using uint128 = unsigned __int128;
}  // namespace detail

// 64x64 -> 128 multiply folded (wyhash's mum).
[[nodiscard]] inline std::uint64_t hash_mix(std::uint64_t a, std::uint64_t b) noexcept {
    detail::uint128 const r = static_cast<detail::uint128>(a) * b;
    return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

// Folds `s` into `h`: 8 bytes a multiply. Fixed-size loads only: a memcpy of a variable
// length into a stack word and its reload stalled on store forwarding (~40% of
// flow_batch::add under perf).
[[nodiscard]] inline std::uint64_t hash_bytes(std::uint64_t h, std::string_view s) noexcept {
    constexpr std::uint64_t k0 = 0xa0761d6478bd642fULL;
    constexpr std::uint64_t k1 = 0xe7037ed1a0b428dbULL;
    std::size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        std::uint64_t w = 0;
        std::memcpy(&w, s.data() + i, 8);
        h = hash_mix(h ^ w ^ k0, k1);
    }
    // The last 1..7 bytes in at most two loads (wyhash's way); overlapping loads are fine
    // because the length goes in too, so "ab"+"c" and "a"+"bc" differ.
    std::uint64_t tail = 0;
    if (std::size_t const k = s.size() - i; k >= 4) {
        std::uint32_t lo = 0;
        std::uint32_t hi = 0;
        std::memcpy(&lo, s.data() + i, 4);
        std::memcpy(&hi, s.data() + i + k - 4, 4);
        tail = (std::uint64_t{hi} << 32) | lo;
    } else if (k > 0) {
        auto const byte = [&s, i](std::size_t at) {
            return std::uint64_t{static_cast<unsigned char>(s[i + at])};
        };
        tail = (byte(0) << 16) | (byte(k / 2) << 8) | byte(k - 1);
    }
    return hash_mix(h ^ tail ^ k1, k0 ^ s.size());
}

}  // namespace flowd
