#pragma once

// The invariants the fuzz harnesses (fuzz/*_fuzzer.cpp) check, one header per harness in
// fuzz/checks/, shared with tests/unit/codec/fuzz_regressions_test.cpp so that a kept
// crashing input is replayed against exactly the same checks.

#include "checks/common.hpp"
#include "checks/flow_json.hpp"
#include "checks/gzip.hpp"
#include "checks/query.hpp"
