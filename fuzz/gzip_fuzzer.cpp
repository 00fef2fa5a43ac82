// libFuzzer harness: a Content-Encoding: gzip POST body, inflated by gunzip() under a limit
// and then decoded (fuzz/checks.hpp). Random bytes are almost never gzip (CRC, lengths),
// so the custom mutator mostly inflates the input, mutates the JSON inside and deflates
// it again as one or two members; now and then it mutates the compressed bytes instead.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>

#include "checks.hpp"
#include "harness.hpp"

extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    flowd::fuzz::require_cpu();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    std::string_view const input(reinterpret_cast<char const*>(data), size);
    flowd::fuzz::require(flowd::fuzz::check_gunzip(input));
    return 0;
}

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size,
                                               std::size_t max_size, unsigned int seed) {
    std::minstd_rand rng(seed);
    if (rng() % 8 == 0) {
        return LLVMFuzzerMutate(data, size, max_size);
    }
    std::string_view const input(reinterpret_cast<char const*>(data), size);
    auto inflated = flowd::gunzip(input, max_size * 4);
    std::string plain = inflated ? std::move(*inflated) : std::string(input);
    std::size_t const used = std::max<std::size_t>(plain.size(), 1);  // '\0' for an empty one
    std::size_t const room = std::max<std::size_t>(used * 2, 64);
    plain.resize(room);
    plain.resize(LLVMFuzzerMutate(reinterpret_cast<std::uint8_t*>(plain.data()), used, room));
    std::string out;
    if (plain.size() > 1 && rng() % 4 == 0) {
        std::size_t const cut = rng() % plain.size();
        out = flowd::gzip(std::string_view(plain).substr(0, cut)) +
              flowd::gzip(std::string_view(plain).substr(cut));
    } else {
        out = flowd::gzip(plain);
    }
    if (out.size() > max_size) {
        return LLVMFuzzerMutate(data, size, max_size);
    }
    std::memcpy(data, out.data(), out.size());
    return out.size();
}
