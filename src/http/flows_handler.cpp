#include "flowd/http/flows_handler.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

#include <boost/beast/core/string.hpp>

#include "flowd/codec/gzip.hpp"
#include "flowd/domain/text.hpp"

namespace flowd {

namespace http = boost::beast::http;

namespace {

// The media type of a Content-Type value, without parameters (compare it case-blind: no
// lower-cased copy, which for "application/json" was a heap allocation per POST).
std::string_view media_type(std::string_view content_type) noexcept {
    return trim_ows(content_type.substr(0, content_type.find(';')));
}

// Idempotency-Key: 1..128 characters 0x21-0x7E (SPEC).
bool valid_idempotency_key(std::string_view k) noexcept {
    return !k.empty() && k.size() <= 128 &&
           std::all_of(k.begin(), k.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

}  // namespace

string_response flows_handler::recovering_response(std::string_view request_id) {
    string_response r = problem_response(
        problem{problem_type::starting,
                "flowd is recovering its data directory; /readyz turns 200 when it is done",
                {},
                {}},
        request_id);
    r.set(http::field::retry_after, "1");
    return r;
}

std::uint64_t body_fingerprint(std::string_view body) noexcept {
    // Two independent 64-bit hashes folded: a reuse with another body collides with odds
    // of about 2^-64.
    std::uint64_t const a = std::hash<std::string_view>{}(body);
    std::uint64_t h = 0xcbf29ce484222325ULL ^ body.size();
    for (std::size_t i = 0; i + 8 <= body.size(); i += 8) {
        std::uint64_t v = 0;
        std::memcpy(&v, body.data() + i, 8);
        h = (h ^ v) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    for (std::size_t i = body.size() & ~std::size_t{7}; i < body.size(); ++i) {
        h = (h ^ static_cast<unsigned char>(body[i])) * 0x100000001b3ULL;
    }
    return a ^ (h * 0x9e3779b97f4a7c15ULL);
}

handler_result flows_handler::reject(problem const& p, request_context const& ctx) {
    metrics_.batches_rejected.Increment();
    return response{problem_response(p, ctx.request_id)};
}

std::optional<problem> flows_handler::check_post_headers(request const& req, body_format& format,
                                                         std::string& encoding) {
    auto const ct = req.find(http::field::content_type);
    std::string_view const type = ct == req.end() ? std::string_view() : media_type(ct->value());
    format = body_format::json_array;
    if (boost::beast::iequals(type, "application/x-ndjson") ||
        boost::beast::iequals(type, "application/ndjson")) {
        format = body_format::ndjson;
    } else if (!boost::beast::iequals(type, "application/json")) {
        std::string detail = ct == req.end()
                                 ? "the request has no Content-Type"
                                 : "Content-Type " + quote_value(ct->value()) + " is not accepted";
        detail +=
            "; send 'Content-Type: application/json' (a JSON array of records) or "
            "'application/x-ndjson' (one record per line). curl sends form encoding unless given "
            "-H 'Content-Type: application/json'";
        return problem{problem_type::unsupported_media_type, std::move(detail), {}, {}};
    }
    auto const ce = req.find(http::field::content_encoding);
    encoding = ce == req.end() ? std::string("identity") : ascii_lower(trim_ows(ce->value()));
    // RFC 9110 section 8.4.1.3: a recipient should treat x-gzip as gzip.
    if (encoding == "x-gzip") {
        encoding = "gzip";
    }
    if (encoding != "identity" && encoding != "gzip") {
        return problem{problem_type::unsupported_media_type,
                       "Content-Encoding " + quote_value(ce->value()) +
                           " is not accepted; use gzip or identity",
                       {},
                       {}};
    }
    return std::nullopt;
}

std::optional<response> flows_handler::precheck_post(request_context& ctx) {
    if (!serving()) {
        return response{recovering_response(ctx.request_id)};
    }
    body_format format = body_format::json_array;
    std::string encoding;
    if (auto p = check_post_headers(ctx.req, format, encoding)) {
        metrics_.batches_rejected.Increment();
        return response{problem_response(*p, ctx.request_id)};
    }
    return std::nullopt;
}

handler_result flows_handler::post(request_context& ctx) {
    if (!serving()) {
        return response{recovering_response(ctx.request_id)};
    }
    request& req = ctx.req;
    body_format format = body_format::json_array;
    std::string encoding;
    if (auto p = check_post_headers(req, format, encoding)) {
        return reject(*p, ctx);
    }
    if (ctx.body_too_large) {
        metrics_.count_limit_rejection("max_body_bytes");
        return reject(
            problem{problem_type::payload_too_large,
                    "the body is longer than max_body_bytes (" +
                        std::to_string(options_.max_body_bytes) + " bytes); split the batch",
                    {},
                    {}},
            ctx);
    }
    std::string body = std::move(req.body());
    if (encoding == "gzip") {
        auto inflated = gunzip(body, options_.max_body_bytes);
        if (!inflated) {
            if (inflated.error().type == problem_type::payload_too_large) {
                metrics_.count_limit_rejection("max_body_bytes");
            }
            return reject(inflated.error(), ctx);
        }
        body = std::move(*inflated);
    }
    auto decoded = decode_flows(body, format, options_.limits);
    if (!decoded) {
        if (decoded.error().type == problem_type::too_many_records) {
            metrics_.count_limit_rejection("max_records_per_batch");
        } else if (decoded.error().type == problem_type::invalid_json &&
                   decoded.error().detail.find("max_json_depth") != std::string::npos) {
            metrics_.count_limit_rejection("max_json_depth");
        }
        return reject(decoded.error(), ctx);
    }
    std::optional<idempotency_claim> claim;
    if (auto const ik = req.find("Idempotency-Key"); ik != req.end()) {
        if (!valid_idempotency_key(ik->value())) {
            return reject(
                problem{problem_type::bad_request,
                        "Idempotency-Key must be 1 to 128 visible ASCII characters (0x21-0x7E)",
                        {},
                        {}},
                ctx);
        }
        claim = idempotency_claim{std::string(ctx.token_name), std::string(ik->value()),
                                  body_fingerprint(body)};
    }
    ingest_request info{std::string(ctx.request_id), std::move(claim), options_.clock(),
                        ingest_source::post,
                        options_.records_client ? options_.records_client(ctx) : std::string{}};
    // Capture by value: the context dies when this function returns.
    return deferred{
        [this, batch = std::move(*decoded), info = std::move(info)](respond_fn respond) mutable {
            // One copy of the request id, made straight into the completion (each copy of an id
            // is a heap allocation).
            std::string request_id = info.request_id;
            sink_.submit(std::move(batch), std::move(info),
                         [this, request_id = std::move(request_id), respond = std::move(respond)](
                             ingest_outcome o) { respond(answer_post(o, request_id)); });
        }};
}

string_response flows_handler::answer_post(ingest_outcome const& o, std::string_view request_id) {
    if (o.error) {
        metrics_.batches_rejected.Increment();
        string_response r = problem_response(*o.error, request_id);
        if (o.retry_after) {
            r.set(http::field::retry_after, std::to_string(o.retry_after->count()));
        } else if (o.error->type == problem_type::cluster_unavailable ||
                   o.error->type == problem_type::overloaded) {
            r.set(http::field::retry_after, "1");
        }
        return r;
    }
    std::string body = "{\"accepted\":" + std::to_string(o.accepted);
    if (o.duplicate) {
        metrics_.batches_duplicate.Increment();
    } else {
        metrics_.batches_accepted.Increment();
        metrics_.flows_ingested.Increment(static_cast<double>(o.accepted));
    }
    if (!o.seq) {
        return json_response(200, body + "}");
    }
    string_response r = json_response(200, body + ",\"seq\":" + std::to_string(*o.seq) + "}");
    r.set("Flowd-Seq", std::to_string(*o.seq));
    return r;
}

}  // namespace flowd
