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

// a == b for names, inline: the same fixed-size overlapping loads as hash_bytes instead of
// a call to memcmp, which showed at ~4% of a POST under perf (names are ~10 bytes and
// nearly always equal once their 64-bit hashes are).
[[nodiscard]] inline bool same_bytes(std::string_view a, std::string_view b) noexcept {
    std::size_t const n = a.size();
    if (n != b.size()) {
        return false;
    }
    auto const load8 = [](char const* p) {
        std::uint64_t w = 0;
        std::memcpy(&w, p, 8);
        return w;
    };
    auto const load4 = [](char const* p) {
        std::uint32_t w = 0;
        std::memcpy(&w, p, 4);
        return w;
    };
    if (n >= 8) {
        std::uint64_t diff = 0;
        for (std::size_t i = 0; i + 8 <= n; i += 8) {
            diff |= load8(a.data() + i) ^ load8(b.data() + i);
        }
        return (diff | (load8(a.data() + n - 8) ^ load8(b.data() + n - 8))) == 0;
    }
    if (n >= 4) {
        return ((load4(a.data()) ^ load4(b.data())) |
                (load4(a.data() + n - 4) ^ load4(b.data() + n - 4))) == 0;
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (a[i] != b[i]) {
            return false;
        }
    }
    return true;
}

}  // namespace flowd
