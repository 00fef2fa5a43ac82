#pragma once

#include "flowd/ingest/ingest.hpp"
#include "flowd/metrics/service_metrics.hpp"
#include "flowd/store/flow_store.hpp"

namespace flowd {

// The ingest of a flowd without a data directory: checks the batch against the store and
// applies it at once, on the calling thread (store locks only; no I/O). Thread-safe.
class memory_ingest : public ingest {
public:
    memory_ingest(flow_store& store, service_metrics& metrics) : store_(store), metrics_(metrics) {}

    void submit(flow_batch batch, ingest_request info, completion done) override;

private:
    flow_store& store_;
    service_metrics& metrics_;
};

// The problem a store rejection answers with (422 counter-overflow, 507 store-full).
[[nodiscard]] problem to_problem(store_rejection const& r, std::uint64_t max_keys);
// Counts a 507 in flowd_limit_rejections_total under the limit that caused it.
void count_store_limit(service_metrics& metrics, store_rejection const& r);

}  // namespace flowd
