#include "flowd/ingest/memory_ingest.hpp"

namespace flowd {

problem to_problem(store_rejection const& r, std::uint64_t max_keys) {
    if (r.why == store_rejection::reason::store_bytes_full) {
        return problem{problem_type::store_full,
                       "the store is at max_store_bytes (its keys, names and tables) and this "
                       "batch's new keys would take it past that bound",
                       {},
                       {}};
    }
    if (r.why == store_rejection::reason::store_full) {
        return problem{problem_type::store_full,
                       "the store is at max_keys (" + std::to_string(max_keys) +
                           " aggregated keys) and this batch would add keys beyond it",
                       {},
                       {}};
    }
    return problem{problem_type::counter_overflow,
                   "record " + std::to_string(r.record) + ": the stored sum of '" +
                       std::string(r.field) + "' for its key would pass 9223372036854775807",
                   r.record, std::string(r.field)};
}

void count_store_limit(service_metrics& metrics, store_rejection const& r) {
    if (r.why == store_rejection::reason::store_full) {
        metrics.count_limit_rejection("max_keys");
    } else if (r.why == store_rejection::reason::store_bytes_full) {
        metrics.count_limit_rejection("max_store_bytes");
    }
}

void memory_ingest::submit(flow_batch batch, ingest_request info, completion done) {
    auto prepared = store_.prepare(batch);
    if (auto* rejected = std::get_if<store_rejection>(&prepared)) {
        count_store_limit(metrics_, *rejected);
        return done(ingest_outcome::refused(to_problem(*rejected, store_.max_keys())));
    }
    std::size_t const n = batch.record_count();
    store_.commit(std::get<prepared_batch>(std::move(prepared)));
    (info.source == ingest_source::flow ? metrics_.flows_applied_flow : metrics_.flows_applied_post)
        .Increment(static_cast<double>(n));
    done(ingest_outcome::applied(n));
}

}  // namespace flowd
