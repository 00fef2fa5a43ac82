#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "flowd/http/responses.hpp"

namespace flowd {

// What /readyz answers from, gathered by the server at each probe.
struct readiness {
    bool ready = false;     // recovery done, not draining
    bool draining = false;  // shutdown began
    // Cluster mode: why this node stopped applying the stream; empty: it did not.
    std::string halted_because;
    // Cluster mode: the sequence applied so far while still catching up with the stream.
    std::optional<std::uint64_t> catching_up_at;
    bool log_failed = false;  // the write-ahead log cannot be written
};

// GET /healthz: the process answers.
[[nodiscard]] response healthz_answer();

// GET /readyz (SPEC): 200 ready; else 503 naming why: the node halted, is catching up
// with the stream (Retry-After), its log failed, it is shutting down, or starting.
[[nodiscard]] response readyz_answer(readiness const& r, std::string_view request_id);

}  // namespace flowd
