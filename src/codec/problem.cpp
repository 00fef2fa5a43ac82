#include "flowd/codec/problem.hpp"

#include <nlohmann/json.hpp>

namespace flowd {
namespace {

struct problem_info {
    unsigned status;
    std::string_view slug;
    std::string_view title;
};

problem_info info(problem_type t) noexcept {
    switch (t) {
        case problem_type::invalid_json:
            return {400, "invalid-json", "Request body is not valid JSON"};
        case problem_type::invalid_record:
            return {400, "invalid-record", "Invalid flow record"};
        case problem_type::invalid_query:
            return {400, "invalid-query", "Invalid query string"};
        case problem_type::unsupported_media_type:
            return {415, "unsupported-media-type", "Unsupported media type"};
        case problem_type::payload_too_large:
            return {413, "payload-too-large", "Payload too large"};
        case problem_type::too_many_records:
            return {413, "too-many-records", "Too many records in one batch"};
        case problem_type::header_too_large:
            return {431, "header-too-large", "Request header fields too large"};
        case problem_type::counter_overflow:
            return {422, "counter-overflow", "Counter would overflow"};
        case problem_type::hour_out_of_retention:
            return {422, "hour-out-of-retention", "Hour outside the retention window"};
        case problem_type::idempotency_key_reused:
            return {422, "idempotency-key-reused", "Idempotency key reused with another body"};
        case problem_type::idempotency_key_in_flight:
            return {409, "idempotency-key-in-flight", "Idempotency key already in flight"};
        case problem_type::unauthorized:
            return {401, "unauthorized", "Unauthorized"};
        case problem_type::forbidden:
            return {403, "forbidden", "Forbidden"};
        case problem_type::rate_limited:
            return {429, "rate-limited", "Rate limited"};
        case problem_type::store_full:
            return {507, "store-full", "Store full"};
        case problem_type::not_found:
            return {404, "not-found", "Not found"};
        case problem_type::method_not_allowed:
            return {405, "method-not-allowed", "Method not allowed"};
        case problem_type::shutting_down:
            return {503, "shutting-down", "Shutting down"};
        case problem_type::overloaded:
            return {503, "overloaded", "Overloaded"};
        case problem_type::log_unavailable:
            return {503, "log-unavailable", "Write-ahead log unavailable"};
        case problem_type::cluster_unavailable:
            return {503, "cluster-unavailable", "Cluster unavailable"};
        case problem_type::internal_error:
            return {500, "internal-error", "Internal server error"};
        case problem_type::request_timeout:
            return {408, "request-timeout", "Request timeout"};
        case problem_type::not_implemented:
            return {501, "not-implemented", "Not implemented"};
        case problem_type::tls_required:
            return {400, "tls-required", "TLS required"};
        case problem_type::starting:
            return {503, "starting", "Starting"};
        case problem_type::query_too_large:
            return {422, "query-too-large", "Query too large"};
        case problem_type::hour_sealed:
            return {422, "hour-sealed", "Hour sealed"};
        case problem_type::bad_request:
            return {400, "", "Bad Request"};
    }
    return {500, "internal-error", "Internal server error"};
}

}  // namespace

unsigned status_of(problem_type t) noexcept {
    return info(t).status;
}
std::string_view slug_of(problem_type t) noexcept {
    return info(t).slug;
}
std::string_view title_of(problem_type t) noexcept {
    return info(t).title;
}

std::string to_json(problem const& p, std::string_view instance) {
    problem_info const i = info(p.type);
    nlohmann::ordered_json j;
    j["type"] = i.slug.empty() ? std::string("about:blank")
                               : std::string(problem_type_base) + std::string(i.slug);
    j["title"] = i.title;
    j["status"] = i.status;
    j["detail"] = p.detail;
    j["instance"] = instance;
    if (p.record) {
        j["record"] = *p.record;
    }
    if (p.record || !p.field.empty()) {
        j["field"] = p.field;
    }
    // Client bytes quoted in `detail` may be cut mid-character: replace, never throw.
    return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string quote_value(std::string_view v) {
    constexpr std::size_t limit = 64;
    std::string out = "'";
    out.append(v.substr(0, limit));
    out += v.size() > limit ? "...'" : "'";
    return out;
}

}  // namespace flowd
