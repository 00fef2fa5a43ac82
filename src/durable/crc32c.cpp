#include "flowd/durable/crc32c.hpp"

#include <array>
#include <cstring>

namespace flowd {
namespace {

constexpr std::uint32_t castagnoli = 0x82f63b78U;  // reflected polynomial

constexpr std::array<std::uint32_t, 256> make_table() {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) {
            c = (c & 1U) != 0 ? (c >> 1) ^ castagnoli : c >> 1;
        }
        t[i] = c;
    }
    return t;
}

constexpr std::array<std::uint32_t, 256> table = make_table();

std::uint32_t crc_table(std::uint32_t c, unsigned char const* p, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        c = table[(c ^ p[i]) & 0xffU] ^ (c >> 8);
    }
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc_hw(std::uint32_t c, unsigned char const* p,
                                                       std::size_t n) noexcept {
    std::uint64_t c64 = c;
    while (n >= 8) {
        std::uint64_t v = 0;
        std::memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
        p += 8;
        n -= 8;
    }
    auto c32 = static_cast<std::uint32_t>(c64);
    while (n > 0) {
        c32 = __builtin_ia32_crc32qi(c32, *p);
        ++p;
        --n;
    }
    return c32;
}

bool const has_sse42 = __builtin_cpu_supports("sse4.2") != 0;
#endif

}  // namespace

std::uint32_t crc32c(std::uint32_t crc, void const* data, std::size_t size) noexcept {
    auto const* p = static_cast<unsigned char const*>(data);
    std::uint32_t c = ~crc;
#if defined(__x86_64__)
    c = has_sse42 ? crc_hw(c, p, size) : crc_table(c, p, size);
#else
    c = crc_table(c, p, size);
#endif
    return ~c;
}

}  // namespace flowd
