#include <string>

#include "flowd/app/config.hpp"

// What flowd prints about its configuration: --help, and the effective settings logged at
// start. Parsing is config.cpp.
namespace flowd {

std::string usage() {
    return "usage: flowd [--config FILE] [--listen HOST:PORT] [--metrics-listen HOST:PORT]\n"
           "             [--data-dir DIR] [--threads N] [--log-level trace|debug|info|warn|error]\n"
           "             [--tokens-file FILE] [--cluster NATS_URLS] [--flow-listen HOST:PORT]\n"
           "             [--help] [--version]\n"
           "       flowd token create --name NAME --scopes read,write\n"
           "\n"
           "Ingests network flow records over HTTP (POST /flows) and serves per-hour totals\n"
           "(GET /flows?hour=N). Settings: built-in defaults < config file (--config, see\n"
           "config/flowd.yaml) < FLOWD_* environment (FLOWD_LISTEN, FLOWD_MAX_BODY_BYTES, ...) < "
           "flags.\n"
           "\n"
           "  --config FILE             flat YAML file of settings (FLOWD_CONFIG)\n"
           "  --listen HOST:PORT        API listener (default 127.0.0.1:8080; port 0 picks one)\n"
           "  --metrics-listen HOST:PORT /metrics, /healthz, /readyz (default 127.0.0.1:9464)\n"
           "  --threads N               I/O threads (default: CPUs in the affinity mask)\n"
           "  --log-level LEVEL         trace|debug|info|warn|error (default info)\n"
           "  --data-dir DIR            write-ahead log and checkpoints (default: memory only)\n"
           "  --truncate-corrupt-log    start even if the log is corrupt before its last synced\n"
           "                            record, keeping what precedes the corruption\n"
           "  --tokens-file FILE        bearer tokens: lines '<name> <scopes> sha256:<hex>';\n"
           "                            SIGHUP reloads it (default: no authentication)\n"
           "  --cluster NATS_URLS       cluster mode: nats://HOST:PORT[,...] of a NATS JetStream\n"
           "                            cluster every node publishes to and applies from\n"
           "  --flow-listen HOST:PORT   receive NetFlow v5/v9 and IPFIX over UDP (default off)\n";
}

std::string describe(config const& c) {
    return "listen=" + c.listen + " metrics_listen=" + c.metrics_listen +
           " threads=" + std::to_string(c.threads) + " log_level=" + c.log_level +
           " log_format=" + c.log_format + " max_body_bytes=" + std::to_string(c.max_body_bytes) +
           " max_records_per_batch=" + std::to_string(c.max_records_per_batch) +
           " max_json_depth=" + std::to_string(c.max_json_depth) +
           " max_header_bytes=" + std::to_string(c.max_header_bytes) +
           " max_keys=" + std::to_string(c.max_keys) +
           " max_query_hours=" + std::to_string(c.max_query_hours) +
           " max_query_scan_rows=" + std::to_string(c.max_query_scan_rows) +
           " max_query_groups=" + std::to_string(c.max_query_groups) +
           " max_concurrent_queries=" + std::to_string(c.max_concurrent_queries) +
           " query_threads=" + std::to_string(c.query_threads) +
           " store_shards=" + std::to_string(c.store_shards) +
           " grace_period=" + std::to_string(c.grace_period.count()) + "ms" +
           " header_timeout=" + std::to_string(c.header_timeout.count()) + "ms" +
           " body_timeout=" + std::to_string(c.body_timeout.count()) + "ms" +
           " idle_timeout=" + std::to_string(c.idle_timeout.count()) + "ms" +
           " data_dir=" + (c.data_dir.empty() ? "(memory only)" : c.data_dir) +
           " fsync=" + c.fsync + " fsync_interval=" + std::to_string(c.fsync_interval.count()) +
           "ms checkpoint_interval=" + std::to_string(c.checkpoint_interval.count()) +
           "ms checkpoint_log_bytes=" + std::to_string(c.checkpoint_log_bytes) +
           " wal_segment_bytes=" + std::to_string(c.wal_segment_bytes) +
           " retention_hours=" + std::to_string(c.retention_hours) +
           " idempotency_window=" + std::to_string(c.idempotency_window.count()) + "ms" +
           " max_connections=" + std::to_string(c.max_connections) +
           (c.ui ? " ui=true" : " ui=false") +
           " stream_resume_seconds=" + std::to_string(c.stream_resume_seconds) +
           " stream_buffer_bytes=" + std::to_string(c.stream_buffer_bytes) +
           " max_streams=" + std::to_string(c.max_streams) +
           (c.tls_cert_file.empty() ? "" : " tls_cert_file=" + c.tls_cert_file) +
           (c.tls_key_file.empty() ? "" : " tls_key_file=" + c.tls_key_file) +
           (c.tls_client_ca_file.empty() ? "" : " tls_client_ca_file=" + c.tls_client_ca_file) +
           (c.tokens_file.empty() ? " auth=off" : " tokens_file=" + c.tokens_file) +
           " rate_limit_requests_per_second=" + std::to_string(c.rate_limit_requests_per_second) +
           " rate_limit_requests_burst=" + std::to_string(c.rate_limit_requests_burst) +
           " rate_limit_records_per_second=" + std::to_string(c.rate_limit_records_per_second) +
           " rate_limit_records_burst=" + std::to_string(c.rate_limit_records_burst) +
           " rate_limit_max_clients=" + std::to_string(c.rate_limit_max_clients) +
           (c.cluster.empty()
                ? ""
                : " cluster=" + c.cluster + " node_name=" + c.node_name + " cluster_stream=" +
                      c.cluster_stream + " cluster_replicas=" + std::to_string(c.cluster_replicas) +
                      " cluster_max_bytes=" + std::to_string(c.cluster_max_bytes) +
                      " cluster_max_age_hours=" + std::to_string(c.cluster_max_age_hours) +
                      " cluster_publish_timeout=" +
                      std::to_string(c.cluster_publish_timeout.count()) + "ms" +
                      " cluster_max_pending=" + std::to_string(c.cluster_max_pending) +
                      " min_seq_wait=" + std::to_string(c.min_seq_wait.count()) + "ms") +
           (c.flow_listen.empty()
                ? ""
                : " flow_listen=" + c.flow_listen +
                      " apps_file=" + (c.apps_file.empty() ? "(none)" : c.apps_file) +
                      " flow_rcvbuf_bytes=" + std::to_string(c.flow_rcvbuf_bytes) +
                      " flow_allowed_exporters=" +
                      (c.flow_allowed_exporters.empty() ? "(any)" : c.flow_allowed_exporters) +
                      " flow_max_exporters=" + std::to_string(c.flow_max_exporters) +
                      " flow_max_templates=" + std::to_string(c.flow_max_templates) +
                      " flow_batch_interval=" + std::to_string(c.flow_batch_interval.count()) +
                      "ms flow_batch_records=" + std::to_string(c.flow_batch_records)) +
           (c.config_file.empty() ? "" : " config=" + c.config_file);
}

}  // namespace flowd
