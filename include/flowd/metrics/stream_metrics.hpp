#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace flowd {

// The live stream's metrics (SPEC: flowd_streams_open, flowd_stream_resets_total{reason}),
// every series exported from the start. Thread-safe; must not outlive the registry.
struct stream_metrics {
    explicit stream_metrics(prometheus::Registry& registry);

    prometheus::Gauge& streams_open;
    // The max_streams limit, for the alert that fires near it.
    prometheus::Gauge& streams_max;
    // A client fell stream_buffer_bytes behind (or past what the change journal holds).
    prometheus::Counter& resets_slow;
    // A Last-Event-ID that could not be resumed (another process, too old).
    prometheus::Counter& resets_resume;
};

}  // namespace flowd
