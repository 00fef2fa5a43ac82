// libFuzzer harness: a POST /flows body, decoded as a JSON array and as NDJSON, each with
// the default limits and with small ones (fuzz/checks.hpp says what is checked).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "checks.hpp"
#include "harness.hpp"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    flowd::fuzz::require_cpu();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    std::string_view const input(reinterpret_cast<char const*>(data), size);
    flowd::fuzz::require(flowd::fuzz::check_decode_all(input));
    return 0;
}
