#include <algorithm>
#include <string>

#include <boost/asio/post.hpp>
#include <boost/beast/core/string.hpp>

#include "flowd/codec/gzip.hpp"
#include "flowd/domain/text.hpp"
#include "flowd/http/flows_handler.hpp"

namespace flowd {

// GET /flows, /flows/summary and /hours: the plan, the cost bounds and the query slots, the
// min_seq wait, then the answer (whole or streamed) with its ETag and caching headers.
// POST is flows_handler.cpp.

namespace http = boost::beast::http;

bool accepts_gzip(std::string_view accept_encoding) noexcept {
    bool accepted = false;
    any_list_element(accept_encoding, [&accepted](std::string_view element) {
        std::size_t const semi = element.find(';');
        if (!boost::beast::iequals(trim_ows(element.substr(0, semi)), "gzip")) {
            return false;
        }
        std::string_view const param = semi == std::string_view::npos
                                           ? std::string_view{}
                                           : trim_ows(element.substr(semi + 1));
        // q=0, q=0.0, q=0.000 refuse; any other weight accepts.
        bool const weighted =
            param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=';
        accepted = !weighted || param.substr(2).find_first_not_of("0.") != std::string_view::npos;
        return true;
    });
    return accepted;
}

namespace {

route_id route_of(query_route r) noexcept {
    switch (r) {
        case query_route::flows:
            return route_id::flows;
        case query_route::summary:
            return route_id::flows_summary;
        case query_route::hours:
            return route_id::hours;
    }
    return route_id::flows;
}

// The config key of the limit a query-too-large names, for flowd_limit_rejections_total.
std::string_view limit_of(problem const& p) noexcept {
    for (std::string_view const key :
         {"max_query_hours", "max_query_scan_rows", "max_query_groups"}) {
        if (p.detail.find(key) != std::string::npos) {
            return key;
        }
    }
    return "max_query_hours";
}

}  // namespace

// A heavy query's slot under max_concurrent_queries; released when dropped.
class flows_handler::query_slot {
public:
    explicit query_slot(std::atomic<std::size_t>* running) noexcept : running_(running) {}
    query_slot(query_slot const&) = delete;
    query_slot& operator=(query_slot const&) = delete;
    ~query_slot() {
        if (running_ != nullptr) {
            running_->fetch_sub(1, std::memory_order_acq_rel);
        }
    }

private:
    std::atomic<std::size_t>* running_;
};

std::uint32_t flows_handler::sealed_for_caching() const {
    if (options_.seal_after.count() == 0) {
        return 0;
    }
    return sealed_before(options_.seal_clock ? options_.seal_clock() : options_.clock(),
                         options_.seal_after);
}

void flows_handler::set_cache_headers(http::response_header<>& h, std::string const& etag,
                                      query_plan const& plan, std::uint32_t sealed) const {
    h.set(http::field::etag, etag);
    h.set(http::field::vary, "Accept, Accept-Encoding");
    if (plan.to > sealed) {
        h.set(http::field::cache_control, "no-cache");
        return;
    }
    constexpr std::int64_t year = 31'536'000;
    std::int64_t max_age = year;
    if (options_.retention_hours != 0) {
        // Hour `from` leaves the window once the current hour reaches from + retention_hours.
        auto const now_s = static_cast<std::int64_t>(options_.clock() / 1000);
        std::int64_t const leaves =
            (static_cast<std::int64_t>(plan.from) + options_.retention_hours) * 3600;
        max_age = std::clamp<std::int64_t>(leaves - now_s, 0, year);
    }
    h.set(http::field::cache_control, "public, max-age=" + std::to_string(max_age) + ", immutable");
}

response flows_handler::not_modified(std::string const& etag, query_plan const& plan,
                                     std::uint32_t sealed) const {
    string_response r{http::status::not_modified, 11};
    set_cache_headers(r.base(), etag, plan, sealed);
    return response{std::move(r)};
}

handler_result flows_handler::query(request_context& ctx, query_route route) {
    if (!serving()) {
        return response{recovering_response(ctx.request_id)};
    }
    auto plan = parse_query_plan(route, ctx.query, options_.query, cluster());
    if (!plan) {
        if (plan.error().type == problem_type::query_too_large) {
            metrics_.count_limit_rejection(limit_of(plan.error()));
        }
        return response{problem_response(plan.error(), ctx.request_id)};
    }
    query_request q = query_request_of(ctx, std::move(*plan));
    // SPEC's order for a GET: 400, 422, 503 overloaded, then 304. The scan bound is known
    // from the hours' totals, without reading a row.
    if (auto refused = refuse_scan(q)) {
        return std::move(*refused);
    }
    // A heavy query holds a slot under max_concurrent_queries until it has answered.
    std::shared_ptr<query_slot> slot;
    if (q.plan.heavy() && options_.max_concurrent_queries != 0) {
        std::size_t const running = queries_running_.fetch_add(1, std::memory_order_acq_rel);
        slot = std::make_shared<query_slot>(&queries_running_);
        if (running >= options_.max_concurrent_queries) {
            string_response r =
                problem_response(problem{problem_type::overloaded,
                                         "more than max_concurrent_queries (" +
                                             std::to_string(options_.max_concurrent_queries) +
                                             ") range, grouping or summary queries at once; retry",
                                         {},
                                         {}},
                                 q.request_id);
            r.set(http::field::retry_after, "1");
            return response{std::move(r)};
        }
    }
    if (q.plan.min_seq && cluster()) {
        return answer_when_applied(std::move(q), std::move(slot));
    }
    if (!pool_ || !q.plan.heavy()) {
        return answer_query(q);
    }
    // Off the I/O thread: a long range must not stall the other connections it serves.
    return deferred{[this, q = std::move(q), slot](respond_fn respond) mutable {
        boost::asio::post(*pool_, [this, q = std::move(q), slot, respond = std::move(respond)] {
            respond(answer_query(q));
        });
    }};
}

flows_handler::query_request flows_handler::query_request_of(request_context const& ctx,
                                                             query_plan plan) {
    query_request q;
    if (plan.route == query_route::hours) {
        q.format = answer_format::json;
    } else if (plan.format) {
        q.format = *plan.format;
    } else {
        auto const accept = ctx.req.find(http::field::accept);
        q.format = accept == ctx.req.end()
                       ? answer_format::json
                       : negotiate_format(accept->value(), plan.route == query_route::flows);
    }
    auto const ae = ctx.req.find(http::field::accept_encoding);
    q.gzip = ae != ctx.req.end() && accepts_gzip(ae->value());
    if (auto const inm = ctx.req.find(http::field::if_none_match); inm != ctx.req.end()) {
        q.if_none_match = std::string(inm->value());
    }
    q.request_id = std::string(ctx.request_id);
    q.plan = std::move(plan);
    return q;
}

std::uint64_t flows_handler::stored_rows(query_plan const& plan) const {
    std::uint64_t rows = 0;
    for (hour_stat const& h : store_.hour_stats(plan.from, plan.to)) {
        rows += h.keys;
    }
    return rows;
}

std::optional<response> flows_handler::refuse_scan(query_request const& q) const {
    if (q.plan.route == query_route::hours) {
        return std::nullopt;
    }
    std::uint64_t const rows = stored_rows(q.plan);
    if (rows <= options_.query.max_query_scan_rows) {
        return std::nullopt;
    }
    metrics_.count_limit_rejection("max_query_scan_rows");
    return response{problem_response(
        problem{problem_type::query_too_large,
                "the range " + std::to_string(q.plan.from) + " <= hour < " +
                    std::to_string(q.plan.to) + " holds " + std::to_string(rows) +
                    " stored rows, more than max_query_scan_rows (" +
                    std::to_string(options_.query.max_query_scan_rows) + "); narrow the range",
                {},
                {}},
        q.request_id)};
}

handler_result flows_handler::answer_when_applied(query_request q,
                                                  std::shared_ptr<query_slot> slot) {
    // Waits without an I/O thread: the apply thread answers once it reaches min_seq.
    return deferred{[this, q = std::move(q), slot = std::move(slot)](respond_fn respond) mutable {
        std::uint64_t const seq = *q.plan.min_seq;
        options_.wait_applied(
            seq, options_.min_seq_wait,
            [this, seq, q = std::move(q), slot, respond = std::move(respond)](bool applied) {
                if (applied) {
                    return respond(answer_query(q));
                }
                string_response r =
                    problem_response(problem{problem_type::cluster_unavailable,
                                             "this node has not applied stream sequence " +
                                                 std::to_string(seq) + " within min_seq_wait (" +
                                                 std::to_string(options_.min_seq_wait.count()) +
                                                 " ms); retry, or ask another node",
                                             {},
                                             {}},
                                     q.request_id);
                r.set(http::field::retry_after, "1");
                respond(std::move(r));
            });
    }};
}

response flows_handler::answer_query(query_request const& q) {
    query_plan const& plan = q.plan;
    route_id const route = route_of(plan.route);
    auto const started = std::chrono::steady_clock::now();
    std::uint32_t const sealed = sealed_for_caching();
    // SPEC's GET order puts 422 before 304: a query that may have more groups than
    // max_query_groups (only when its range holds more rows than that) is computed first.
    bool const counts_groups =
        plan.route == query_route::summary || plan.group_by_given || plan.order != order_key::none;
    bool early_304 = !q.if_none_match.empty();
    if (early_304 && counts_groups) {
        early_304 = stored_rows(plan) <= options_.query.max_query_groups;
    }
    if (early_304) {
        // A 304 costs the totals of the hours in range, never a row.
        std::vector<hour_stat> const stats = store_.hour_stats(plan.from, plan.to);
        std::string const etag =
            answer_etag(plan, q.format, q.gzip, stats, sealed, options_.etag_seed);
        if (etag_matches(q.if_none_match, etag)) {
            return not_modified(etag, plan, sealed);
        }
    }
    if (plan.plain_hour() && q.format == answer_format::json) {
        response r = answer_plain_hour(q, sealed);
        metrics_.observe_query(
            route, 0,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        return r;
    }
    auto answer = execute_query(store_, plan, q.format, options_.query);
    if (!answer) {
        if (answer.error().type == problem_type::query_too_large) {
            metrics_.count_limit_rejection(limit_of(answer.error()));
        }
        return response{problem_response(answer.error(), q.request_id)};
    }
    answer->sealed_before = sealed;
    std::string const etag =
        answer_etag(plan, q.format, q.gzip, answer->stats, sealed, options_.etag_seed);
    if (!q.if_none_match.empty() && etag_matches(q.if_none_match, etag)) {
        return not_modified(etag, plan, sealed);
    }
    std::uint64_t const scanned = answer->rows_scanned;
    auto writer = std::make_shared<answer_writer>(std::move(*answer));
    metrics_.observe_query(
        route, scanned,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    // Write up to the threshold: an answer that ends there goes whole with a Content-Length;
    // a longer one is streamed, starting with what was written here. The store's gate is
    // long released: the rows were copied out.
    std::string body;
    bool const done = writer->write(body, stream_threshold);
    if (done && body.size() < stream_threshold) {
        string_response r =
            text_response(200, content_type_of(q.format), q.gzip ? gzip(body) : std::move(body));
        if (q.gzip) {
            r.set(http::field::content_encoding, "gzip");
        }
        set_cache_headers(r.base(), etag, plan, sealed);
        return response{std::move(r)};
    }
    stream_response r{http::status::ok, 11};
    r.set(http::field::content_type, content_type_of(q.format));
    set_cache_headers(r.base(), etag, plan, sealed);
    if (q.gzip) {
        r.set(http::field::content_encoding, "gzip");
    }
    r.body().prefix = std::move(body);
    r.body().gzip = q.gzip;
    r.body().answer = std::move(writer);
    return response{std::move(r)};
}

response flows_handler::answer_plain_hour(query_request const& q, std::uint32_t sealed) const {
    hour_stat stats;
    hour_snapshot snap = store_.snapshot(q.plan.from, {}, &stats);
    std::string const etag =
        answer_etag(q.plan, q.format, q.gzip,
                    stats.keys == 0 ? std::vector<hour_stat>{} : std::vector<hour_stat>{stats},
                    sealed, options_.etag_seed);
    metrics_.count_rows_scanned(route_id::flows, snap.size());

    // Serialise up to the threshold: an answer that ends there goes whole with a
    // Content-Length; a longer one is streamed, starting with what was written here.
    std::string body;
    body.reserve(std::min(stream_threshold, 2 + (snap.size() * 128)) + 1024);
    body.push_back('[');
    std::size_t const next = append_snapshot_json_upto(body, snap, 0, stream_threshold, true);
    if (next == snap.size() && body.size() < stream_threshold) {
        body.push_back(']');
        string_response r = json_response(200, q.gzip ? gzip(body) : std::move(body));
        if (q.gzip) {
            r.set(http::field::content_encoding, "gzip");
        }
        set_cache_headers(r.base(), etag, q.plan, sealed);
        return response{std::move(r)};
    }
    stream_response r{http::status::ok, 11};
    r.set(http::field::content_type, "application/json");
    set_cache_headers(r.base(), etag, q.plan, sealed);
    if (q.gzip) {
        r.set(http::field::content_encoding, "gzip");
    }
    r.body().prefix = std::move(body);
    r.body().next = next;
    r.body().snapshot = std::move(snap);
    r.body().gzip = q.gzip;
    return response{std::move(r)};
}

}  // namespace flowd
