#include "flowd/http/flows_handler.hpp"

#include <algorithm>
#include <cctype>

#include "flowd/codec/gzip.hpp"
#include "flowd/codec/query.hpp"

namespace flowd {

namespace http = boost::beast::http;

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    return out;
}

std::string_view trim(std::string_view s) noexcept {
    std::size_t const b = s.find_first_not_of(" \t");
    if (b == std::string_view::npos) {
        return {};
    }
    return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// The media type of a Content-Type value, without parameters, lower-cased.
std::string media_type(std::string_view content_type) {
    return lower(trim(content_type.substr(0, content_type.find(';'))));
}

}  // namespace

bool accepts_gzip(std::string_view accept_encoding) noexcept {
    std::size_t pos = 0;
    while (pos <= accept_encoding.size()) {
        std::size_t comma = accept_encoding.find(',', pos);
        if (comma == std::string_view::npos) {
            comma = accept_encoding.size();
        }
        std::string_view item = accept_encoding.substr(pos, comma - pos);
        pos = comma + 1;
        std::size_t const semi = item.find(';');
        std::string_view const coding = trim(item.substr(0, semi));
        if (coding.size() != 4 || lower(coding) != "gzip") {
            continue;
        }
        if (semi == std::string_view::npos) {
            return true;
        }
        std::string_view const param = trim(item.substr(semi + 1));
        // q=0, q=0.0, q=0.000 refuse; any other weight accepts.
        if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
            std::string_view const w = param.substr(2);
            return w.find_first_not_of("0.") != std::string_view::npos;
        }
        return true;
    }
    return false;
}

handler_result flows_handler::reject(problem const& p, request_context const& ctx) {
    metrics_.batches_rejected.Increment();
    return response{problem_response(p, ctx.request_id)};
}

handler_result flows_handler::post(request_context& ctx) {
    request& req = ctx.req;
    auto const ct = req.find(http::field::content_type);
    std::string const type = ct == req.end() ? std::string() : media_type(ct->value());
    body_format format = body_format::json_array;
    if (type == "application/x-ndjson") {
        format = body_format::ndjson;
    } else if (type != "application/json") {
        std::string detail = ct == req.end()
                                 ? "the request has no Content-Type"
                                 : "Content-Type " + quote_value(ct->value()) + " is not accepted";
        detail +=
            "; send 'Content-Type: application/json' (a JSON array of records) or "
            "'application/x-ndjson' (one record per line). curl sends form encoding unless given "
            "-H 'Content-Type: application/json'";
        return reject(problem{problem_type::unsupported_media_type, std::move(detail), {}, {}},
                      ctx);
    }
    auto const ce = req.find(http::field::content_encoding);
    std::string const encoding =
        ce == req.end() ? std::string("identity") : lower(trim(ce->value()));
    if (encoding != "identity" && encoding != "gzip") {
        return reject(problem{problem_type::unsupported_media_type,
                              "Content-Encoding " + quote_value(ce->value()) +
                                  " is not accepted; use gzip or identity",
                              {},
                              {}},
                      ctx);
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
    flow_batch batch = std::move(*decoded);
    if (options_.admit_records && !batch.empty()) {
        if (std::optional<response> refused = options_.admit_records(ctx, batch.record_count())) {
            metrics_.batches_rejected.Increment();
            return std::move(*refused);
        }
    }
    if (batch.empty()) {
        metrics_.batches_accepted.Increment();
        return response{json_response(200, "{\"accepted\":0}")};
    }
    ingest_request info{std::string(ctx.request_id)};
    // Capture by value: the context dies when this function returns.
    return deferred{[this, batch = std::move(batch),
                     info = std::move(info)](respond_fn respond) mutable {
        std::string const request_id = info.request_id;
        sink_.submit(
            std::move(batch), std::move(info),
            [this, request_id, respond = std::move(respond)](ingest_outcome o) {
                if (o.error) {
                    metrics_.batches_rejected.Increment();
                    respond(problem_response(*o.error, request_id));
                    return;
                }
                metrics_.batches_accepted.Increment();
                metrics_.flows_ingested.Increment(static_cast<double>(o.accepted));
                respond(json_response(200, "{\"accepted\":" + std::to_string(o.accepted) + "}"));
            });
    }};
}

handler_result flows_handler::get(request_context& ctx) {
    auto q = parse_flows_query(ctx.query);
    if (!q) {
        return response{problem_response(q.error(), ctx.request_id)};
    }
    flow_filter filter;
    if (q->src_app) {
        filter.src_app = *q->src_app;
    }
    if (q->dest_app) {
        filter.dest_app = *q->dest_app;
    }
    if (q->vpc_id) {
        filter.vpc_id = *q->vpc_id;
    }
    hour_snapshot snap = store_.snapshot(q->hour, filter);
    auto const ae = ctx.req.find(http::field::accept_encoding);
    bool const gzip_ok = ae != ctx.req.end() && accepts_gzip(ae->value());

    // Small answers go whole with a Content-Length; count bytes only up to the threshold.
    std::size_t size = 2;
    for (std::size_t i = 0; i < snap.size() && size <= stream_threshold; ++i) {
        hour_snapshot::entry const& e = snap[i];
        size += 1 + flow_json_size(snap.name(e.key.src), snap.name(e.key.dest),
                                   snap.name(e.key.vpc), e.counters, snap.hour());
    }
    if (size <= stream_threshold) {
        std::string body;
        body.reserve(size);
        body.push_back('[');
        append_snapshot_json(body, snap, 0, snap.size(), true);
        body.push_back(']');
        string_response r = json_response(200, gzip_ok ? gzip(body) : std::move(body));
        if (gzip_ok) {
            r.set(http::field::content_encoding, "gzip");
        }
        r.set(http::field::vary, "Accept-Encoding");
        return response{std::move(r)};
    }
    stream_response r{http::status::ok, 11};
    r.set(http::field::content_type, "application/json");
    r.set(http::field::vary, "Accept-Encoding");
    if (gzip_ok) {
        r.set(http::field::content_encoding, "gzip");
    }
    r.body().snapshot = std::move(snap);
    r.body().gzip = gzip_ok;
    return response{std::move(r)};
}

}  // namespace flowd
