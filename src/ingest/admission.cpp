#include "flowd/ingest/admission.hpp"

#include <string>
#include <utility>

namespace flowd {

problem key_in_flight_problem() {
    return problem{problem_type::idempotency_key_in_flight,
                   "a request with this Idempotency-Key is still being processed on this node; "
                   "retry once it has been answered",
                   {},
                   {}};
}

problem key_reused_problem() {
    return problem{problem_type::idempotency_key_reused,
                   "this Idempotency-Key was used for a different body within the idempotency "
                   "window; use a new key for a new batch",
                   {},
                   {}};
}

std::optional<problem> admission::check_hours(flow_batch const& batch, std::uint64_t now_ms) const {
    if (options_.retention_hours == 0 && options_.seal_after.count() == 0) {
        return std::nullopt;
    }
    retention_window const w = options_.retention_hours == 0
                                   ? retention_window{0, max_hour}
                                   : retention_window_at(now_ms, options_.retention_hours);
    std::uint32_t const sealed = sealed_before(now_ms, options_.seal_after);
    batch_entry const* worst = nullptr;
    for (batch_entry const& e : batch.entries()) {
        bool const at_fault =
            e.record.hour < w.first || e.record.hour > w.last || e.record.hour < sealed;
        if (at_fault && (worst == nullptr || e.first_record < worst->first_record)) {
            worst = &e;
        }
    }
    if (worst == nullptr) {
        return std::nullopt;
    }
    if (worst->record.hour >= w.first && worst->record.hour <= w.last) {
        return problem{problem_type::hour_sealed,
                       "record " + std::to_string(worst->first_record) + ": hour " +
                           std::to_string(worst->record.hour) +
                           " is sealed (Unix hours; seal_after " +
                           std::to_string(options_.seal_after.count()) + " ms; hours before " +
                           std::to_string(sealed) + " are sealed); nothing was applied",
                       worst->first_record, "hour"};
    }
    return problem{problem_type::hour_out_of_retention,
                   "record " + std::to_string(worst->first_record) + ": hour " +
                       std::to_string(worst->record.hour) + " is outside the retention window " +
                       std::to_string(w.first) + ".." + std::to_string(w.last) +
                       " (Unix hours; retention_hours " + std::to_string(options_.retention_hours) +
                       ", current hour " + std::to_string(now_ms / 3'600'000) + ")",
                   worst->first_record, "hour"};
}

void admission::submit(flow_batch batch, ingest_request info, completion done) {
    if (options_.limiter != nullptr && options_.limiter->records_enabled() && !batch.empty() &&
        !info.client.empty()) {
        std::size_t const records = batch.record_count();
        rate_limiter::decision const d = options_.limiter->admit_records(info.client, records);
        if (!d.allowed) {
            metrics_.throttled_records.Increment();
            ingest_outcome o = ingest_outcome::refused(
                problem{problem_type::rate_limited,
                        "this batch of " + std::to_string(records) +
                            " records is over the client's record rate "
                            "(rate_limit_records_per_second); nothing was applied; retry after " +
                            std::to_string(d.retry_after.count()) + " s",
                        {},
                        {}});
            o.retry_after = d.retry_after;
            return done(std::move(o));
        }
    }
    idempotency_table* const keys = info.idempotency ? options_.idempotency : nullptr;
    if (keys != nullptr) {
        auto const begun = keys->begin(*info.idempotency, options_.clock());
        using kind = idempotency_table::begin_result::kind;
        switch (begun.what) {
            case kind::duplicate: {
                ingest_outcome o;
                o.accepted = begun.accepted;
                o.duplicate = true;
                return done(std::move(o));
            }
            case kind::in_flight:
                return done(ingest_outcome::refused(key_in_flight_problem()));
            case kind::reused:
                return done(ingest_outcome::refused(key_reused_problem()));
            case kind::fresh:
                break;
        }
    }
    if (auto late = check_hours(batch, options_.clock())) {
        if (keys != nullptr) {
            keys->abort(*info.idempotency);
        }
        return done(ingest_outcome::refused(std::move(*late)));
    }
    if (batch.empty()) {
        if (keys != nullptr) {
            keys->complete(*info.idempotency, 0, options_.clock());
        }
        return done(ingest_outcome{});
    }
    if (keys == nullptr) {
        return below_.submit(std::move(batch), std::move(info), std::move(done));
    }
    idempotency_claim claim = *info.idempotency;
    std::uint64_t const accepted_ms = info.accepted_unix_ms;
    below_.submit(
        std::move(batch), std::move(info),
        [keys, claim = std::move(claim), accepted_ms, done = std::move(done)](ingest_outcome o) {
            // On the applying thread, before any later checkpoint (ingest_request).
            if (o.error) {
                keys->abort(claim);
            } else {
                keys->complete(claim, o.accepted, accepted_ms);
            }
            done(std::move(o));
        });
}

}  // namespace flowd
