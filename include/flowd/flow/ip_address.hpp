#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "flowd/domain/uint128.hpp"

namespace flowd {

// An IPv4 or IPv6 address as 16 bytes in network order; IPv4 is kept IPv4-mapped
// (::ffff:a.b.c.d), so an exporter that reaches flowd over an IPv6 socket with a mapped
// address is the same exporter as over IPv4. Plain value type.
struct ip_address {
    std::array<std::uint8_t, 16> bytes{};

    [[nodiscard]] static ip_address from_v4(std::uint32_t host_order) noexcept;
    [[nodiscard]] static ip_address from_v6(std::uint8_t const* network_order) noexcept;
    // Dotted quad or RFC 4291 text; nullopt when it is neither.
    [[nodiscard]] static std::optional<ip_address> parse(std::string_view text);

    [[nodiscard]] bool is_v4() const noexcept;
    [[nodiscard]] uint128 value() const noexcept;
    // IPv4 as a dotted quad, IPv6 in RFC 5952 form.
    [[nodiscard]] std::string to_string() const;

    friend auto operator<=>(ip_address const&, ip_address const&) = default;
};

struct ip_address_hash {
    [[nodiscard]] std::size_t operator()(ip_address const& a) const noexcept {
        auto const v = a.value();
        auto const hi = static_cast<std::uint64_t>(v >> 64);
        auto const lo = static_cast<std::uint64_t>(v);
        return static_cast<std::size_t>((hi * 0x9e3779b97f4a7c15ULL) ^ lo ^ (lo >> 29));
    }
};

}  // namespace flowd
