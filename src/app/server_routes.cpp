#include <random>
#include <string>
#include <vector>

#include <boost/beast/http/verb.hpp>

#include "flowd/app/server.hpp"
#include "flowd/http/console_handler.hpp"
#include "flowd/http/health_handlers.hpp"
#include "flowd/http/stream_handler.hpp"

namespace flowd {

// What server serves: its routes on the main and metrics listeners, and what the /flows
// handlers are given. Wiring only, like server.cpp.

namespace http = boost::beast::http;

flows_options server::flows_options_of() {
    flows_options o{cfg_.max_body_bytes,
                    decode_limits{cfg_.max_records_per_batch, cfg_.max_json_depth},
                    {},
                    cfg_.retention_hours,
                    wall_clock_ms,
                    &serving_};
    if (limiter_.records_enabled()) {
        o.records_client = [](request_context const& ctx) { return access_guard::client_key(ctx); };
    }
    if (cluster_) {
        o.wait_applied = [this](std::uint64_t seq, std::chrono::milliseconds wait,
                                std::function<void(bool)> done) {
            cluster_->wait_applied(seq, wait, std::move(done));
        };
        o.min_seq_wait = cfg_.min_seq_wait;
        o.seal_clock = [this] { return cluster_->applied_stamp_ms(); };
    }
    o.query = query_limits{cfg_.max_query_hours, cfg_.max_query_scan_rows, cfg_.max_query_groups};
    o.query_threads = cfg_.query_threads;
    o.seal_after = cfg_.seal_after;
    o.max_concurrent_queries = cfg_.max_concurrent_queries != 0 ? cfg_.max_concurrent_queries
                                                                : 2 * std::size_t{cfg_.threads};
    // ETags name versions of the data: with a data directory or a cluster stream the same
    // history comes back after a restart (and is the same on every node), so equal data
    // gives equal ETags; in memory only a restart starts a new history, so mix in a start id.
    if (cfg_.data_dir.empty() && cfg_.cluster.empty()) {
        std::random_device rd;
        o.etag_seed = (std::uint64_t{rd()} << 32 | rd()) | 1;
    }
    return o;
}

void server::add_routes() {
    router_.set_guard([this](request_context& ctx, route_access access) {
        return ctx.precheck ? guard_.authenticate(ctx, access) : guard_.check(ctx, access);
    });
    router_.add(
        http::verb::post, "/flows", route_id::flows,
        [this](request_context& ctx) { return flows_.post(ctx); }, route_access::write,
        [this](request_context& ctx) { return flows_.precheck_post(ctx); });
    router_.add(
        http::verb::get, "/flows", route_id::flows,
        [this](request_context& ctx) { return flows_.get(ctx); }, route_access::read);
    router_.add(
        http::verb::get, "/flows/summary", route_id::flows_summary,
        [this](request_context& ctx) { return flows_.summary(ctx); }, route_access::read);
    router_.add(
        http::verb::get, "/hours", route_id::hours,
        [this](request_context& ctx) { return flows_.hours(ctx); }, route_access::read);
    router_.add(
        http::verb::get, "/flow-exporters", route_id::flow_exporters,
        [this](request_context&) { return flow_exporters_answer(flow_.get()); },
        route_access::read);
    add_console_routes();
    add_stream_routes();
    // /healthz, /readyz and /metrics: on the main listener and on the metrics listener
    // (plain HTTP, no client certificate, for probes under mTLS).
    struct probe_route {
        http::verb method;
        std::string path;
        route_id route;
        handler h;
    };
    std::vector<probe_route> probe_routes;
    probe_routes.emplace_back(http::verb::get, "/healthz", route_id::healthz,
                              [](request_context&) -> handler_result { return healthz_answer(); });
    probe_routes.emplace_back(http::verb::get, "/readyz", route_id::readyz,
                              [this](request_context& ctx) -> handler_result {
                                  return readyz_answer(readiness_now(), ctx.request_id);
                              });
    probe_routes.emplace_back(
        http::verb::get, "/metrics", route_id::metrics, [this](request_context&) -> handler_result {
            return response{
                text_response(200, "text/plain; version=0.0.4",
                              serialize_metrics({registry_, process_metrics_, store_metrics_}))};
        });
    for (probe_route const& r : probe_routes) {
        router_.add(r.method, r.path, r.route, r.h);
        metrics_router_.add(r.method, r.path, r.route, r.h);
    }
}

readiness server::readiness_now() const {
    readiness r;
    r.ready = drain_.ready();
    r.draining = drain_.draining();
    if (r.ready && cluster_) {
        r.halted_because = cluster_->halted_because();
        if (!cluster_->caught_up()) {
            r.catching_up_at = cluster_->applied_seq();
        }
    }
    r.log_failed = r.ready && durable_ && !durable_->healthy();
    return r;
}

// The web console: open routes (SPEC: / and /ui/* need no token); key `ui` off leaves
// them unrouted (404).
void server::add_console_routes() {
    if (!cfg_.ui) {
        return;
    }
    router_.add(http::verb::get, "/", route_id::ui, console_redirect);
    router_.add(http::verb::get, "/ui/", route_id::ui, console_file_response);
}

void server::add_stream_routes() {
    stream_metrics_ = std::make_unique<stream_metrics>(*registry_);
    stream_metrics_->streams_max.Set(static_cast<double>(cfg_.max_streams));
    stream_options options;
    options.resume = std::chrono::seconds(cfg_.stream_resume_seconds);
    options.buffer_bytes = cfg_.stream_buffer_bytes;
    options.max_streams = cfg_.max_streams;
    streams_ = std::make_unique<stream_hub>(
        store_, options, *stream_metrics_,
        query_limits{cfg_.max_query_hours, cfg_.max_query_scan_rows, cfg_.max_query_groups});
    router_.add(
        http::verb::get, "/flows/stream", route_id::flows_stream,
        [this](request_context& ctx) { return stream_flows(ctx, *streams_, ioc_.get_executor()); },
        route_access::read);
}

}  // namespace flowd
