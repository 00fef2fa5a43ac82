#pragma once

// Reading NetFlow and IPFIX datagrams: what the v5 and the template decoders share
// (src/flow only).

#include <cstddef>
#include <cstdint>
#include <limits>

namespace flowd::flow_wire {

constexpr std::uint16_t variable_length = 65535;
// RFC 5103: reverse information elements are the forward ones under this enterprise number.
constexpr std::uint32_t reverse_pen = 29305;
// Seconds from the NTP epoch (1900) to the Unix epoch.
constexpr std::uint64_t ntp_unix_offset = 2'208'988'800ULL;

inline std::uint16_t be16(std::uint8_t const* p) noexcept {
    return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
inline std::uint32_t be32(std::uint8_t const* p) noexcept {
    return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
// An unsigned element in reduced-size encoding (RFC 7011 6.2): 1..8 bytes, big-endian.
inline std::uint64_t be_uint(std::uint8_t const* p, std::size_t n) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n && i < 8; ++i) {
        v = v << 8 | p[i];
    }
    return v;
}

inline std::uint64_t saturating_mul(std::uint64_t a, std::uint64_t b) noexcept {
    if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) {
        return std::numeric_limits<std::uint64_t>::max();
    }
    return a * b;
}

// The end of a flow `delta_ms` before the export, uptime arithmetic being modulo 2^32.
inline std::uint64_t before_export(std::uint64_t export_ms, std::uint32_t header_uptime,
                                   std::uint32_t flow_uptime) noexcept {
    std::uint32_t const delta = header_uptime - flow_uptime;
    return delta <= export_ms ? export_ms - delta : export_ms;
}

inline std::uint64_t ntp_to_unix_ms(std::uint64_t ntp) noexcept {
    std::uint64_t const seconds = ntp >> 32;
    std::uint64_t const fraction_ms = ((ntp & 0xffffffffULL) * 1000) >> 32;
    return seconds >= ntp_unix_offset ? (seconds - ntp_unix_offset) * 1000 + fraction_ms : 0;
}

// A gap when `seq` is ahead of what was expected; behind or far ahead is a restart.
inline std::uint64_t gap_of(bool have, std::uint32_t expected, std::uint32_t seq) noexcept {
    std::uint32_t const d = seq - expected;
    return have && d != 0 && d < 0x80000000U ? d : 0;
}

struct record_context {
    unsigned version = 0;
    std::uint64_t export_ms = 0;
    std::uint32_t uptime_ms = 0;  // v9 header sysUptime
};

class malformed {};

}  // namespace flowd::flow_wire
