#include "flowd/http/stream_handler.hpp"

#include <charconv>

#include <boost/beast/http/field.hpp>

#include "flowd/domain/text.hpp"

namespace flowd {

namespace http = boost::beast::http;

std::optional<std::chrono::milliseconds> parse_stream_interval(std::string_view value) {
    std::optional<std::uint64_t> const ms = parse_duration_ms(value);
    if (!ms || *ms < 100 || *ms > 60'000) {
        return std::nullopt;
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(*ms));
}

namespace {

response invalid(request_context const& ctx, std::string detail) {
    return response{problem_response(
        problem{problem_type::invalid_query, std::move(detail), {}, {}}, ctx.request_id)};
}

}  // namespace

handler_result stream_flows(request_context& ctx, stream_hub& hub,
                            boost::asio::any_io_executor const& executor) {
    // `interval` is the stream's own; the rest is /flows' range and filters.
    std::string rest;
    std::optional<std::chrono::milliseconds> interval;
    std::string_view q = ctx.query;
    while (!q.empty()) {
        std::size_t const amp = q.find('&');
        std::string_view const item = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
        if (item.starts_with("interval=")) {
            if (interval) {
                return invalid(ctx, "interval is given twice");
            }
            interval = parse_stream_interval(item.substr(9));
            if (!interval) {
                return invalid(ctx, "interval must be a duration from 100ms to 60s, like 1s");
            }
            continue;
        }
        if (!rest.empty()) {
            rest.push_back('&');
        }
        rest.append(item);
    }
    auto plan = parse_query_plan(query_route::flows, rest, hub.limits());
    if (!plan.has_value()) {
        return response{problem_response(plan.error(), ctx.request_id)};
    }
    if (plan->group_by_given || plan->order != order_key::none || plan->limit || plan->format ||
        plan->min_seq) {
        return invalid(ctx,
                       "/flows/stream takes the range and filters of /flows and interval only "
                       "(no group_by, order_by, limit or format)");
    }
    event_stream_response r{http::status::ok, 11};
    r.set(http::field::content_type, "text/event-stream");
    r.set(http::field::cache_control, "no-cache");
    // nginx and kin would otherwise buffer the events.
    r.set("X-Accel-Buffering", "no");
    if (ctx.req.method() == http::verb::head) {
        return response{std::move(r)};
    }
    std::string_view last_id;
    if (auto const it = ctx.req.find("Last-Event-ID"); it != ctx.req.end()) {
        last_id = it->value();
    }
    bool too_many_rows = false;
    std::shared_ptr<event_source> source = hub.open(
        *plan, interval.value_or(std::chrono::seconds(1)), last_id, executor, too_many_rows);
    if (too_many_rows) {
        return response{problem_response(
            problem{problem_type::query_too_large,
                    "the range holds more than max_query_scan_rows (" +
                        std::to_string(hub.limits().max_query_scan_rows) + ") stored rows",
                    {},
                    "max_query_scan_rows"},
            ctx.request_id)};
    }
    if (!source) {
        string_response refused =
            problem_response(problem{problem_type::overloaded,
                                     "max_streams (" + std::to_string(hub.options().max_streams) +
                                         ") streams are open; retry later",
                                     {},
                                     {}},
                             ctx.request_id);
        refused.set(http::field::retry_after, "1");
        return response{std::move(refused)};
    }
    r.body() = std::move(source);
    return response{std::move(r)};
}

}  // namespace flowd
