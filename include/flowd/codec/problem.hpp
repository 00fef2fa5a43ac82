#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace flowd {

// Every problem type of the SPEC's catalogue (Wire details), plus bad_request for a
// request Beast could not parse at all (type about:blank: the status says it all).
enum class problem_type {
    invalid_json,
    invalid_record,
    invalid_query,
    unsupported_media_type,
    payload_too_large,
    too_many_records,
    header_too_large,
    counter_overflow,
    hour_out_of_retention,
    idempotency_key_reused,
    idempotency_key_in_flight,
    unauthorized,
    forbidden,
    rate_limited,
    store_full,
    not_found,
    method_not_allowed,
    shutting_down,
    overloaded,
    log_unavailable,
    cluster_unavailable,
    internal_error,
    request_timeout,  // 408: a head or body that timed out before any answer was sent
    not_implemented,  // 501: a Transfer-Encoding flowd does not know
    tls_required,     // 400: plain HTTP sent to a TLS listener
    starting,         // 503: recovering the data directory or still starting
    query_too_large,
    hour_sealed,  // 422: a record's hour is sealed (seal_after)
    bad_request,
};

// An RFC 9457 problem, written for the person at the terminal. `record` and `field` name
// the record at fault (0-based index) when there is one. Plain value type.
struct problem {
    problem_type type = problem_type::internal_error;
    std::string detail;
    std::optional<std::size_t> record;
    std::string field;
};

inline constexpr std::string_view problem_type_base = "https://flowd.invalid/problems/";

[[nodiscard]] unsigned status_of(problem_type t) noexcept;
[[nodiscard]] std::string_view slug_of(problem_type t) noexcept;
[[nodiscard]] std::string_view title_of(problem_type t) noexcept;

// The application/problem+json body; `instance` is the request id.
[[nodiscard]] std::string to_json(problem const& p, std::string_view instance);

// Quotes a client-supplied value for a detail message: at most 64 bytes, then "...".
[[nodiscard]] std::string quote_value(std::string_view v);

}  // namespace flowd
