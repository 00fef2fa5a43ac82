#pragma once

#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace flowd {

// The standard process_* metrics (CPU seconds, RSS, open and max fds, start time), read
// from /proc/self on each scrape; prometheus-cpp has none built in. Stateless and
// thread-safe.
class process_collector : public prometheus::Collectable {
public:
    [[nodiscard]] std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace flowd
