#pragma once

// What every harness does with a check's verdict: nothing when it is empty, else print it
// and abort, which libFuzzer reports as a crash and keeps the input as an artifact.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "flowd/codec/flow_json.hpp"

namespace flowd::fuzz {

inline void require(std::string const& violation) {
    if (!violation.empty()) {
        std::fprintf(stderr, "invariant violated: %s\n", violation.c_str());
        std::abort();
    }
}

// The decoder is built for one simdjson kernel (FLOWD_SIMD_ARCH); flowd refuses to start
// on a CPU without it, and so does a harness, rather than die of SIGILL.
inline void require_cpu() {
    if (!cpu_runs_json_implementation()) {
        std::fprintf(stderr,
                     "this CPU cannot run the %s JSON kernel; configure fuzz/ with "
                     "-DFLOWD_SIMD_ARCH= for a portable build\n",
                     std::string(json_implementation()).c_str());
        std::exit(2);
    }
}

}  // namespace flowd::fuzz
