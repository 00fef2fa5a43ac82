#include "flowd/metrics/stream_metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

namespace flowd {

stream_metrics::stream_metrics(prometheus::Registry& registry)
    : streams_open(prometheus::BuildGauge()
                       .Name("flowd_streams_open")
                       .Help("Open GET /flows/stream connections")
                       .Register(registry)
                       .Add({})),
      streams_max(prometheus::BuildGauge()
                      .Name("flowd_streams_max")
                      .Help("The max_streams limit: beyond it a new stream is 503 overloaded")
                      .Register(registry)
                      .Add({})),
      resets_slow(prometheus::BuildCounter()
                      .Name("flowd_stream_resets_total")
                      .Help("Streams sent a reset and a full send, by why")
                      .Register(registry)
                      .Add({{"reason", "slow"}})),
      resets_resume(prometheus::BuildCounter()
                        .Name("flowd_stream_resets_total")
                        .Register(registry)
                        .Add({{"reason", "resume"}})) {}

}  // namespace flowd
