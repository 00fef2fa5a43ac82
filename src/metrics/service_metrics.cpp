#include "flowd/metrics/service_metrics.hpp"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

namespace flowd {
namespace {

// SPEC: buckets 0.0001 ... 10 seconds.
prometheus::Histogram::BucketBoundaries const duration_buckets{
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

// fsync: from a page-cache-only flush to a struggling disk.
prometheus::Histogram::BucketBoundaries const fsync_buckets{
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

prometheus::Histogram::BucketBoundaries const checkpoint_buckets{0.01, 0.05, 0.1, 0.25, 0.5, 1,
                                                                 2.5,  5,    10,  30,   60,  120};

// The `limit` label values: the config keys of the limits flowd counts refusals of
// (write_timeout: a write that outlived idle_timeout).
constexpr std::array<std::string_view, 15> limit_names{
    "max_body_bytes",        "max_records_per_batch",
    "max_json_depth",        "max_header_bytes",
    "header_timeout",        "body_timeout",
    "idle_timeout",          "write_timeout",
    "max_connections",       "max_keys",
    "max_store_bytes",       "max_query_hours",
    "max_query_scan_rows",   "max_query_groups",
    "max_concurrent_queries"};

}  // namespace

std::string_view route_label(route_id r) noexcept {
    switch (r) {
        case route_id::flows:
            return "/flows";
        case route_id::healthz:
            return "/healthz";
        case route_id::readyz:
            return "/readyz";
        case route_id::metrics:
            return "/metrics";
        case route_id::other:
            return "other";
        case route_id::flows_summary:
            return "/flows/summary";
        case route_id::hours:
            return "/hours";
        case route_id::flow_exporters:
            return "/flow-exporters";
        case route_id::ui:
            return "/ui";
        case route_id::flows_stream:
            return "/flows/stream";
    }
    return "other";
}

std::size_t method_index(std::string_view method) noexcept {
    for (std::size_t i = 0; i + 1 < method_labels.size(); ++i) {
        if (method == method_labels[i]) {
            return i;
        }
    }
    return method_labels.size() - 1;
}

service_metrics::service_metrics(prometheus::Registry& registry, std::string_view version,
                                 std::string_view commit)
    : connections_open(prometheus::BuildGauge()
                           .Name("flowd_http_connections_open")
                           .Help("Open HTTP connections on the main listener")
                           .Register(registry)
                           .Add({})),
      flows_ingested(prometheus::BuildCounter()
                         .Name("flowd_flows_ingested_total")
                         .Help("Records accepted by this node's POSTs (retries not counted)")
                         .Register(registry)
                         .Add({})),
      flows_applied_post(prometheus::BuildCounter()
                             .Name("flowd_flows_applied_total")
                             .Help("Records applied to the store, by source")
                             .Register(registry)
                             .Add({{"source", "post"}})),
      flows_applied_flow(prometheus::BuildCounter()
                             .Name("flowd_flows_applied_total")
                             .Register(registry)
                             .Add({{"source", "flow"}})),
      batches_accepted(prometheus::BuildCounter()
                           .Name("flowd_batches_total")
                           .Help("POSTed batches by result")
                           .Register(registry)
                           .Add({{"result", "accepted"}})),
      batches_rejected(prometheus::BuildCounter()
                           .Name("flowd_batches_total")
                           .Register(registry)
                           .Add({{"result", "rejected"}})),
      batches_duplicate(prometheus::BuildCounter()
                            .Name("flowd_batches_total")
                            .Register(registry)
                            .Add({{"result", "duplicate"}})),
      flows_applied_replay(prometheus::BuildCounter()
                               .Name("flowd_flows_applied_total")
                               .Register(registry)
                               .Add({{"source", "replay"}})),
      wal_bytes(prometheus::BuildCounter()
                    .Name("flowd_wal_bytes_total")
                    .Help("Bytes appended to the write-ahead log")
                    .Register(registry)
                    .Add({})),
      wal_fsync_duration(prometheus::BuildHistogram()
                             .Name("flowd_wal_fsync_duration_seconds")
                             .Help("Time one fsync of the write-ahead log took")
                             .Register(registry)
                             .Add({}, fsync_buckets)),
      checkpoint_duration(prometheus::BuildHistogram()
                              .Name("flowd_checkpoint_duration_seconds")
                              .Help("Time one checkpoint (store snapshot to disk) took")
                              .Register(registry)
                              .Add({}, checkpoint_buckets)),
      checkpoint_last_success(
          prometheus::BuildGauge()
              .Name("flowd_checkpoint_last_success_timestamp_seconds")
              .Help("Unix time of the last checkpoint that succeeded; 0: none yet")
              .Register(registry)
              .Add({})),
      recovery_duration(prometheus::BuildGauge()
                            .Name("flowd_recovery_duration_seconds")
                            .Help("Time the start-up recovery of the data directory took")
                            .Register(registry)
                            .Add({})),
      retention_dropped_hours(prometheus::BuildCounter()
                                  .Name("flowd_retention_dropped_hour_buckets_total")
                                  .Help("Hours dropped from the store by retention")
                                  .Register(registry)
                                  .Add({})),
      throttled_records(
          prometheus::BuildCounter()
              .Name("flowd_ratelimit_throttled_total")
              .Help("Requests refused by the rate limiter, by the budget that ran out")
              .Register(registry)
              .Add({{"reason", "records"}})),
      throttled_requests(prometheus::BuildCounter()
                             .Name("flowd_ratelimit_throttled_total")
                             .Register(registry)
                             .Add({{"reason", "requests"}})),
      tokens_reload_failures(
          prometheus::BuildCounter()
              .Name("flowd_tokens_reload_failures_total")
              .Help("Reloads of the tokens file (SIGHUP) that failed; the previous tokens stay")
              .Register(registry)
              .Add({})),
      requests_(prometheus::BuildCounter()
                    .Name("flowd_http_requests_total")
                    .Help("HTTP requests answered, by route, method and status code")
                    .Register(registry)),
      durations_family_(
          prometheus::BuildHistogram()
              .Name("flowd_http_request_duration_seconds")
              .Help("Time from a request's arrival to its answer being ready, by route and method")
              .Register(registry)),
      limit_rejections_(prometheus::BuildCounter()
                            .Name("flowd_limit_rejections_total")
                            .Help("Requests refused by a configured limit, by limit")
                            .Register(registry)),
      request_counters_(std::make_unique<std::atomic<prometheus::Counter*>[]>(
          route_count * method_labels.size() * status_slots)) {
    // SPEC Metrics: every value of `limit` and of `source` exported at 0 from the start
    // (cluster mode's apply loop counts `stream`). Family::Add
    // of the same labels returns the same counter, so their owners share these.
    for (std::string_view const limit : limit_names) {
        limit_rejections_.Add({{"limit", std::string(limit)}});
    }
    auto& applied = prometheus::BuildCounter()
                        .Name("flowd_flows_applied_total")
                        .Help("Records applied to the store, by source")
                        .Register(registry);
    applied.Add({{"source", "stream"}});
    auto& scanned = prometheus::BuildCounter()
                        .Name("flowd_query_rows_scanned_total")
                        .Help("Stored rows read by GET queries, by route")
                        .Register(registry);
    auto& query_seconds =
        prometheus::BuildHistogram()
            .Name("flowd_query_duration_seconds")
            .Help("Time to compute a query's answer (before writing it), by route")
            .Register(registry);
    for (route_id const r : {route_id::flows, route_id::flows_summary, route_id::hours}) {
        auto const i = static_cast<std::size_t>(r);
        rows_scanned_.at(i) = &scanned.Add({{"route", std::string(route_label(r))}});
        query_durations_.at(i) =
            &query_seconds.Add({{"route", std::string(route_label(r))}}, duration_buckets);
    }
    prometheus::BuildGauge()
        .Name("flowd_build_info")
        .Help("Always 1; labels carry the version and commit of this flowd")
        .Register(registry)
        .Add({{"version", std::string(version)}, {"commit", std::string(commit)}})
        .Set(1);
}

void service_metrics::declare_route(route_id route, std::string_view method) {
    std::size_t const m = method_index(method);
    std::size_t const rm = static_cast<std::size_t>(route) * method_labels.size() + m;
    declared_[rm] = true;
    if (route == route_id::flows_stream) {
        request_counters_[rm * status_slots + 200].store(
            &requests_.Add({{"route", std::string(route_label(route))},
                            {"method", std::string(method_labels[m])},
                            {"code", "200"}}),
            std::memory_order_release);
        return;
    }
    durations_[rm].store(&durations_family_.Add({{"route", std::string(route_label(route))},
                                                 {"method", std::string(method_labels[m])}},
                                                duration_buckets),
                         std::memory_order_release);
    request_counters_[rm * status_slots + 200].store(
        &requests_.Add({{"route", std::string(route_label(route))},
                        {"method", std::string(method_labels[m])},
                        {"code", "200"}}),
        std::memory_order_release);
}

void service_metrics::observe_request(route_id route, std::string_view method, unsigned status,
                                      double seconds) {
    std::size_t const m = method_index(method);
    std::size_t rm = static_cast<std::size_t>(route) * method_labels.size() + m;
    if (!declared_[rm]) {
        route = route_id::other;
        rm = static_cast<std::size_t>(route) * method_labels.size() + m;
    }
    // A stream lasts as long as its client: counted, not timed.
    if (route != route_id::flows_stream) {
        prometheus::Histogram* h = durations_[rm].load(std::memory_order_acquire);
        if (h == nullptr) {
            // Family::Add is idempotent and thread-safe: racing first uses get the same one.
            h = &durations_family_.Add({{"route", std::string(route_label(route))},
                                        {"method", std::string(method_labels[m])}},
                                       duration_buckets);
            durations_[rm].store(h, std::memory_order_release);
        }
        h->Observe(seconds);
    }
    std::size_t const s = status < status_slots ? status : 0;
    std::atomic<prometheus::Counter*>& slot = request_counters_[rm * status_slots + s];
    prometheus::Counter* c = slot.load(std::memory_order_acquire);
    if (c == nullptr) {
        c = &requests_.Add({{"route", std::string(route_label(route))},
                            {"method", std::string(method_labels[m])},
                            {"code", std::to_string(status)}});
        slot.store(c, std::memory_order_release);
    }
    c->Increment();
}

void service_metrics::observe_query(route_id route, std::uint64_t rows_scanned, double seconds) {
    auto const i = static_cast<std::size_t>(route);
    if (query_durations_.at(i) != nullptr) {
        query_durations_.at(i)->Observe(seconds);
    }
    count_rows_scanned(route, rows_scanned);
}

void service_metrics::count_rows_scanned(route_id route, std::uint64_t rows) {
    auto const i = static_cast<std::size_t>(route);
    if (rows_scanned_.at(i) != nullptr && rows != 0) {
        rows_scanned_.at(i)->Increment(static_cast<double>(rows));
    }
}

void service_metrics::count_limit_rejection(std::string_view limit) {
    limit_rejections_.Add({{"limit", std::string(limit)}}).Increment();
}

std::vector<prometheus::MetricFamily> callback_gauges::Collect() const {
    std::vector<prometheus::MetricFamily> out;
    out.reserve(gauges_.size());
    for (gauge const& g : gauges_) {
        prometheus::MetricFamily family;
        family.name = g.name;
        family.help = g.help;
        family.type = prometheus::MetricType::Gauge;
        prometheus::ClientMetric metric;
        metric.gauge.value = g.value();
        family.metric.push_back(std::move(metric));
        out.push_back(std::move(family));
    }
    return out;
}

std::string serialize_metrics(
    std::vector<std::shared_ptr<prometheus::Collectable>> const& sources) {
    std::vector<prometheus::MetricFamily> families;
    for (auto const& source : sources) {
        auto collected = source->Collect();
        families.insert(families.end(), std::make_move_iterator(collected.begin()),
                        std::make_move_iterator(collected.end()));
    }
    return prometheus::TextSerializer{}.Serialize(families);
}

}  // namespace flowd
