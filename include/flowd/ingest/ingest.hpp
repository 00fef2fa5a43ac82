#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "flowd/codec/problem.hpp"
#include "flowd/domain/flow_batch.hpp"
#include "flowd/domain/retention.hpp"
#include "flowd/store/idempotency_table.hpp"

namespace flowd {

// How an ingest ended: applied (and durable where the implementation promises it), or a
// problem (422 counter-overflow, 507 store-full, 503 log-unavailable, ...).
struct ingest_outcome {
    std::optional<problem> error;
    std::size_t accepted = 0;
    // Cluster mode: the stream sequence the batch was stored at (SPEC: `seq`, Flowd-Seq).
    std::optional<std::uint64_t> seq;
    // An Idempotency-Key retry of a batch already applied: `accepted` is the first answer's.
    bool duplicate = false;
    // With an error the client may retry after this long (429, 503): Retry-After.
    std::optional<std::chrono::seconds> retry_after;

    [[nodiscard]] static ingest_outcome refused(problem p) {
        ingest_outcome o;
        o.error = std::move(p);
        return o;
    }
    [[nodiscard]] static ingest_outcome applied(std::size_t records,
                                                std::optional<std::uint64_t> seq = {}) {
        ingest_outcome o;
        o.accepted = records;
        o.seq = seq;
        return o;
    }
};

// Where a batch came from, for flowd_flows_applied_total{source}.
enum class ingest_source { post, flow };

// What a request adds to its batch beyond the records.
struct ingest_request {
    std::string request_id;
    // The Idempotency-Key the batch claims (SPEC), kept in its log record so the key
    // survives a restart. The ingest owns it: `admission` begins, completes or aborts it in
    // the local modes (on the thread that applied the batch, before any later checkpoint);
    // cluster mode hands it to the stream as the message id.
    std::optional<idempotency_claim> idempotency;
    std::uint64_t accepted_unix_ms = 0;
    ingest_source source = ingest_source::post;
    // The client's rate-limit identity (access_guard::client_key), charged the batch's
    // records by `admission`; empty: not charged.
    std::string client;
};

// Where a decoded batch goes, from every source (POST /flows, the flow collector): the
// memory store, the write-ahead log or the cluster stream, behind `admission` for POST. submit()
// must not block the calling I/O thread on a write, an fsync or a network ack; `done` is called
// exactly once, from any thread. Implementations are thread-safe.
class ingest {
public:
    using completion = std::function<void(ingest_outcome)>;

    virtual ~ingest() = default;
    virtual void submit(flow_batch batch, ingest_request info, completion done) = 0;
};

}  // namespace flowd
