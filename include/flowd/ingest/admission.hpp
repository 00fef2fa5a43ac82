#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>

#include "flowd/auth/rate_limiter.hpp"
#include "flowd/ingest/ingest.hpp"
#include "flowd/metrics/service_metrics.hpp"
#include "flowd/store/idempotency_table.hpp"

namespace flowd {

struct admission_options {
    // The local modes' Idempotency-Key memory. Null in cluster mode, where the ingest below
    // hands the key to the stream, which deduplicates across every node.
    idempotency_table* idempotency = nullptr;
    // Charges each batch's records to its client (rate_limit_records_per_second); null: off.
    rate_limiter* limiter = nullptr;
    // SPEC retention (0: off) and sealing (0: off), by `clock` (Unix ms; tests pass their own).
    std::uint32_t retention_hours = 0;
    std::chrono::milliseconds seal_after{0};
    std::function<std::uint64_t()> clock = wall_clock_ms;
};

// The front of the write path for POST /flows, in every mode: the client's records budget
// (429), the Idempotency-Key (a retry answers the first answer; 409 in flight, 422 reused),
// retention and sealing (422, naming the first record at fault), then the ingest below
// (memory, the local log, the cluster stream) for a batch with records. Nothing is applied
// when it refuses. Thread-safe.
class admission : public ingest {
public:
    admission(ingest& below, service_metrics& metrics, admission_options options)
        : below_(below), metrics_(metrics), options_(std::move(options)) {}

    void submit(flow_batch batch, ingest_request info, completion done) override;

    // The first record of `batch` that retention or sealing refuses at `now_ms`, as its
    // problem (SPEC: per record in order, hour-out-of-retention before hour-sealed).
    [[nodiscard]] std::optional<problem> check_hours(flow_batch const& batch,
                                                     std::uint64_t now_ms) const;

private:
    ingest& below_;
    service_metrics& metrics_;
    admission_options options_;
};

// The Idempotency-Key problems, the same words in every mode.
[[nodiscard]] problem key_in_flight_problem();
[[nodiscard]] problem key_reused_problem();

}  // namespace flowd
