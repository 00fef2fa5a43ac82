#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace flowd {

// CRC-32C (Castagnoli), the checksum of every log record and snapshot. `crc` is the value
// of the bytes before `data` (0 for none), so crc32c(crc32c(0, a), b) == crc32c(0, a + b).
// Uses the SSE4.2 instruction when the CPU has it, a table otherwise. Thread-safe.
[[nodiscard]] std::uint32_t crc32c(std::uint32_t crc, void const* data, std::size_t size) noexcept;

[[nodiscard]] inline std::uint32_t crc32c(std::uint32_t crc, std::string_view bytes) noexcept {
    return crc32c(crc, bytes.data(), bytes.size());
}

}  // namespace flowd
