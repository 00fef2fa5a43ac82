#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace flowd {

// The fixed set of `route` label values (SPEC: never the raw path).
enum class route_id : unsigned {
    flows,
    healthz,
    readyz,
    metrics,
    other,
    flows_summary,
    hours,
    flow_exporters,
    ui,
    flows_stream
};
inline constexpr std::size_t route_count = 10;
[[nodiscard]] std::string_view route_label(route_id r) noexcept;

// The `method` label: the common methods by name, anything else as "other".
inline constexpr std::array<std::string_view, 8> method_labels{
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"};
[[nodiscard]] std::size_t method_index(std::string_view method) noexcept;

// flowd's own metrics, registered once at startup in the given registry; the hot path
// only increments or observes references resolved here. Metric names and labels are the
// SPEC's. The class is thread-safe. No concurrent call to any API of this type causes a
// data race. It must not outlive the registry.
class service_metrics {
public:
    service_metrics(prometheus::Registry& registry, std::string_view version,
                    std::string_view commit);

    // Before the first request, once per (route, method) a route allows (its Allow header:
    // HEAD and OPTIONS included): exports flowd_http_requests_total{code="200"} and the
    // duration histogram at 0, so dashboards never see a missing series.
    void declare_route(route_id route, std::string_view method);

    // The HTTP middleware's single call per answered request. /flows/stream is counted but
    // not timed (SPEC: a stream lasts as long as its client). A method the route does not
    // allow (a 405) is counted under route "other": no series exists for a route x method
    // pair the route does not allow.
    void observe_request(route_id route, std::string_view method, unsigned status, double seconds);

    // A request refused by one of the limits (label `limit`, e.g. max_body_bytes).
    void count_limit_rejection(std::string_view limit);

    // A query route's answer computed (flowd_query_duration_seconds) after reading
    // `rows_scanned` stored rows (flowd_query_rows_scanned_total). `route` is one of the
    // query routes (/flows, /flows/summary, /hours).
    void observe_query(route_id route, std::uint64_t rows_scanned, double seconds);
    void count_rows_scanned(route_id route, std::uint64_t rows);

    prometheus::Gauge& connections_open;
    prometheus::Counter& flows_ingested;
    prometheus::Counter& flows_applied_post;
    // Records of flow exporters (NetFlow/IPFIX over UDP) applied by this node's ingest.
    prometheus::Counter& flows_applied_flow;
    prometheus::Counter& batches_accepted;
    prometheus::Counter& batches_rejected;
    prometheus::Counter& batches_duplicate;
    // Durability (write-ahead log, checkpoints, recovery, retention).
    prometheus::Counter& flows_applied_replay;
    prometheus::Counter& wal_bytes;
    prometheus::Histogram& wal_fsync_duration;
    prometheus::Histogram& checkpoint_duration;
    prometheus::Gauge& checkpoint_last_success;
    prometheus::Gauge& recovery_duration;
    prometheus::Counter& retention_dropped_hours;
    // Rate limiting: requests refused because the client's records or requests budget ran out.
    prometheus::Counter& throttled_records;
    prometheus::Counter& throttled_requests;
    // Authentication: SIGHUP reloads of the tokens file that failed (the old set stayed).
    prometheus::Counter& tokens_reload_failures;

private:
    static constexpr std::size_t status_slots = 600;
    prometheus::Family<prometheus::Counter>& requests_;
    prometheus::Family<prometheus::Histogram>& durations_family_;
    prometheus::Family<prometheus::Counter>& limit_rejections_;
    // (route, method) -> histogram: declared pairs resolved at startup, route "other"'s on
    // first use. declared_ is written only before the first request.
    std::array<std::atomic<prometheus::Histogram*>, route_count * method_labels.size()>
        durations_{};
    std::array<bool, route_count * method_labels.size()> declared_{};
    // Per route (only the query routes are set), resolved at startup so they export 0.
    std::array<prometheus::Counter*, route_count> rows_scanned_{};
    std::array<prometheus::Histogram*, route_count> query_durations_{};
    // (route, method, status) -> counter, resolved on first use: a series exists only once
    // it has been answered. Family::Add is idempotent and thread-safe.
    std::unique_ptr<std::atomic<prometheus::Counter*>[]> request_counters_;
};

// Gauges computed when scraped (store size, memory): each a name, a help text and a
// callback. Thread-safe once constructed; callbacks run on the scraping thread.
class callback_gauges : public prometheus::Collectable {
public:
    struct gauge {
        std::string name;
        std::string help;
        std::function<double()> value;
    };

    explicit callback_gauges(std::vector<gauge> gauges) : gauges_(std::move(gauges)) {}
    [[nodiscard]] std::vector<prometheus::MetricFamily> Collect() const override;

private:
    std::vector<gauge> gauges_;
};

// Serialises every collectable in the Prometheus text format 0.0.4, for /metrics on the
// main listener.
[[nodiscard]] std::string serialize_metrics(
    std::vector<std::shared_ptr<prometheus::Collectable>> const& sources);

}  // namespace flowd
