#pragma once

#include <cstdint>
#include <string>

namespace flowd {

// Sums over many hours: 744 hours of 2^63-1 per key, summed over millions of keys, pass
// 2^64 but stay far below 2^128, so 128-bit accumulation never wraps for any range flowd
// accepts. __extension__ keeps -Wpedantic quiet about the GCC/Clang builtin type.
__extension__ using uint128 = unsigned __int128;

// Appends `v` in base 10, exactly (no std::to_chars overload takes 128 bits).
inline void append_decimal(std::string& out, uint128 v) {
    char buf[40];
    char* p = buf + sizeof(buf);
    do {
        *--p = static_cast<char>('0' + static_cast<unsigned>(v % 10));
        v /= 10;
    } while (v != 0);
    out.append(p, static_cast<std::size_t>(buf + sizeof(buf) - p));
}

[[nodiscard]] inline std::string to_decimal(uint128 v) {
    std::string s;
    append_decimal(s, v);
    return s;
}

}  // namespace flowd
