#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "flowd/codec/problem.hpp"
#include "flowd/domain/flow_batch.hpp"
#include "flowd/store/idempotency_table.hpp"

namespace flowd {

// Unix time in milliseconds (idempotency windows, retention, log records).
[[nodiscard]] inline std::uint64_t wall_clock_ms() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

// How an ingest ended: applied (and durable where the implementation promises it), or a
// problem (422 counter-overflow, 507 store-full, 503 log-unavailable, ...).
struct ingest_outcome {
    std::optional<problem> error;
    std::size_t accepted = 0;
    // Cluster mode: the stream sequence the batch was stored at (SPEC: `seq`, Flowd-Seq).
    std::optional<std::uint64_t> seq;
};

// Where a batch came from, for flowd_flows_applied_total{source}.
enum class ingest_source { post, flow };

// What a request adds to its batch beyond the records.
struct ingest_request {
    std::string request_id;
    // The Idempotency-Key the batch claims, kept in its log record so the key survives a
    // restart; the caller began it and completes or aborts it in `done`, which implementations
    // call on the thread that applied the batch, before any later checkpoint.
    std::optional<idempotency_claim> idempotency;
    std::uint64_t accepted_unix_ms = 0;
    ingest_source source = ingest_source::post;
};

// Where POST /flows hands a validated batch: the memory store today; the write-ahead log
// and the cluster stream implement it too. submit() must not block the calling I/O thread
// on a write, an fsync or a network ack; `done` is called exactly once, from any thread.
// Implementations are thread-safe.
class ingest {
public:
    using completion = std::function<void(ingest_outcome)>;

    virtual ~ingest() = default;
    virtual void submit(flow_batch batch, ingest_request info, completion done) = 0;
};

}  // namespace flowd
