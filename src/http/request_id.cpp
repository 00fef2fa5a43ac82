#include "flowd/http/request_id.hpp"

#include <atomic>
#include <cstdint>
#include <random>

namespace flowd {

bool acceptable_request_id(std::string_view id) noexcept {
    if (id.empty() || id.size() > 128) {
        return false;
    }
    for (char c : id) {
        if (c < 0x21 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

std::string new_request_id() {
    static std::uint64_t const prefix = [] {
        std::random_device rd;
        return (std::uint64_t{rd()} << 32 | rd()) & 0xffffffffffULL;
    }();
    static std::atomic<std::uint64_t> counter{0};
    std::uint64_t const n = counter.fetch_add(1, std::memory_order_relaxed);
    static constexpr char hex[] = "0123456789abcdef";
    std::string id(20, '0');
    for (int i = 0; i < 10; ++i) {
        id[static_cast<std::size_t>(9 - i)] = hex[(prefix >> (4 * i)) & 0xf];
        id[static_cast<std::size_t>(19 - i)] = hex[(n >> (4 * i)) & 0xf];
    }
    return id;
}

}  // namespace flowd
