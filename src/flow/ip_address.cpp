#include "flowd/flow/ip_address.hpp"

#include <bit>
#include <cstring>

#include <arpa/inet.h>

namespace flowd {

ip_address ip_address::from_v4(std::uint32_t host_order) noexcept {
    ip_address a;
    a.bytes[10] = 0xff;
    a.bytes[11] = 0xff;
    a.bytes[12] = static_cast<std::uint8_t>(host_order >> 24);
    a.bytes[13] = static_cast<std::uint8_t>(host_order >> 16);
    a.bytes[14] = static_cast<std::uint8_t>(host_order >> 8);
    a.bytes[15] = static_cast<std::uint8_t>(host_order);
    return a;
}

ip_address ip_address::from_v6(std::uint8_t const* network_order) noexcept {
    ip_address a;
    std::memcpy(a.bytes.data(), network_order, 16);
    return a;
}

std::optional<ip_address> ip_address::parse(std::string_view text) {
    if (text.empty() || text.size() > 64) {
        return std::nullopt;
    }
    std::string const s(text);
    in_addr v4{};
    if (::inet_pton(AF_INET, s.c_str(), &v4) == 1) {
        return from_v4(ntohl(v4.s_addr));
    }
    in6_addr v6{};
    if (::inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
        return from_v6(v6.s6_addr);
    }
    return std::nullopt;
}

bool ip_address::is_v4() const noexcept {
    for (std::size_t i = 0; i < 10; ++i) {
        if (bytes[i] != 0) {
            return false;
        }
    }
    return bytes[10] == 0xff && bytes[11] == 0xff;
}

uint128 ip_address::value() const noexcept {
    // Two big-endian words: every prefix lookup starts here, twice per flow.
    std::uint64_t hi = 0;
    std::uint64_t lo = 0;
    std::memcpy(&hi, bytes.data(), 8);
    std::memcpy(&lo, bytes.data() + 8, 8);
    if constexpr (std::endian::native == std::endian::little) {
        hi = __builtin_bswap64(hi);
        lo = __builtin_bswap64(lo);
    }
    return uint128{hi} << 64 | lo;
}

std::string ip_address::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (is_v4()) {
        ::inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof buf);
    } else {
        ::inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
    }
    return buf;
}

}  // namespace flowd
