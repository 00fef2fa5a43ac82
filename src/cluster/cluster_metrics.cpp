#include "flowd/cluster/cluster_ingest.hpp"

namespace flowd {

std::string cluster_subject(std::string const& stream) {
    return "flowd." + stream + ".batches";
}

cluster_metrics::cluster_metrics(prometheus::Registry& registry)
    : flows_applied_stream(prometheus::BuildCounter()
                               .Name("flowd_flows_applied_total")
                               .Help("Records applied to the store, by source")
                               .Register(registry)
                               .Add({{"source", "stream"}})),
      records_applied(prometheus::BuildCounter()
                          .Name("flowd_cluster_stream_records_applied_total")
                          .Help("Stream messages (batches) this node applied to its store")
                          .Register(registry)
                          .Add({})),
      publish_failures(prometheus::BuildCounter()
                           .Name("flowd_cluster_publish_failures_total")
                           .Help("POSTed batches answered 503 cluster-unavailable")
                           .Register(registry)
                           .Add({})),
      apply_lag_records(prometheus::BuildGauge()
                            .Name("flowd_cluster_apply_lag_records")
                            .Help("Stream messages not yet applied by this node")
                            .Register(registry)
                            .Add({})),
      apply_lag_seconds(prometheus::BuildGauge()
                            .Name("flowd_cluster_apply_lag_seconds")
                            .Help("Age of the last applied message while messages are pending; 0 "
                                  "when caught up")
                            .Register(registry)
                            .Add({})),
      applied_seq(prometheus::BuildGauge()
                      .Name("flowd_cluster_applied_seq")
                      .Help("The last stream sequence this node applied")
                      .Register(registry)
                      .Add({})),
      connected(prometheus::BuildGauge()
                    .Name("flowd_cluster_connected")
                    .Help("1 while the NATS connection is up, else 0")
                    .Register(registry)
                    .Add({})),
      skipped_outside_retention(
          prometheus::BuildCounter()
              .Name("flowd_cluster_apply_skipped_keys_total")
              .Help("Keys of stream records not applied because their hour is outside the "
                    "retention window")
              .Register(registry)
              .Add({})),
      saturated_at_apply(prometheus::BuildCounter()
                             .Name("flowd_cluster_apply_saturated_total")
                             .Help("Sums that reached 2^63-1 when a stream record was applied "
                                   "and were held there")
                             .Register(registry)
                             .Add({})),
      halted(prometheus::BuildGauge()
                 .Name("flowd_cluster_apply_halted")
                 .Help("1 when this node stopped applying because the stream no longer matches "
                       "what it applied (see its log), else 0")
                 .Register(registry)
                 .Add({})),
      publish_retries(prometheus::BuildCounter()
                          .Name("flowd_cluster_publish_retries_total")
                          .Help("Publishes of a POSTed batch tried again (same message id) after "
                                "the stream could not take it: no leader, no connection, no ack")
                          .Register(registry)
                          .Add({})),
      consumer_restarts(prometheus::BuildCounter()
                            .Name("flowd_cluster_consumer_restarts_total")
                            .Help("Times this node recreated its stream consumer after an error "
                                  "or a stall")
                            .Register(registry)
                            .Add({})),
      failover(prometheus::BuildHistogram()
                   .Name("flowd_cluster_failover_seconds")
                   .Help("Outages of the stream as this node saw them, by path: from the first "
                         "failed publish to the first acknowledged one (publish), or from a "
                         "consumer error or stall to the first message applied after it "
                         "(consume)")
                   .Register(registry)),
      failover_publish(failover.Add(
          {{"path", "publish"}},
          prometheus::Histogram::BucketBoundaries{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300})),
      failover_consume(failover.Add(
          {{"path", "consume"}}, prometheus::Histogram::BucketBoundaries{0.05, 0.1, 0.25, 0.5, 1, 2,
                                                                         5, 10, 30, 60, 300})) {}

}  // namespace flowd
