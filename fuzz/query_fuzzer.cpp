// libFuzzer harness: the GET /flows query string (the part after '?') and percent-decoding,
// compared with a reference written from SPEC (fuzz/checks.hpp).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "checks.hpp"
#include "harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    std::string_view const input(reinterpret_cast<char const*>(data), size);
    flowd::fuzz::require(flowd::fuzz::check_query(input));
    return 0;
}
