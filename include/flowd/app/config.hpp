#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace flowd {

// Every setting flowd has, with its default, built once at startup and passed by const&.
// Plain data.
struct config {
    std::string listen = "127.0.0.1:8080";
    std::string metrics_listen = "127.0.0.1:9464";
    unsigned threads = 0;  // 0: the CPUs in the process's affinity mask
    std::string log_level = "info";
    std::string log_format = "text";  // text | json
    std::size_t max_body_bytes = 16'777'216;
    std::size_t max_records_per_batch = 1'000'000;
    std::size_t max_json_depth = 64;
    std::uint32_t max_header_bytes = 16'384;
    std::uint64_t max_keys = 50'000'000;
    // The store's own bytes; 0: half of the memory limit (cgroup memory.max, else MemTotal).
    std::uint64_t max_store_bytes = 0;
    // The query routes' cost bounds (SPEC: 422 query-too-large; 503 over the concurrency).
    std::uint32_t max_query_hours = 744;
    std::uint64_t max_query_scan_rows = 50'000'000;
    std::uint64_t max_query_groups = 5'000'000;
    std::size_t max_concurrent_queries = 0;  // 0: 2 x threads
    std::size_t query_threads = 2;  // computing range/group/summary answers; 0: I/O threads
    std::size_t store_shards = 64;
    std::chrono::milliseconds grace_period{10'000};
    std::chrono::milliseconds header_timeout{10'000};
    std::chrono::milliseconds body_timeout{30'000};
    std::chrono::milliseconds idle_timeout{60'000};
    // Durability: the write-ahead log, checkpoints, recovery (empty data_dir: memory only).
    std::string data_dir;
    std::string fsync = "interval";  // always | interval
    std::chrono::milliseconds fsync_interval{1'000};
    std::chrono::milliseconds checkpoint_interval{300'000};
    std::uint64_t checkpoint_log_bytes = 268'435'456;  // log written since the last checkpoint
    std::uint64_t wal_segment_bytes = 67'108'864;
    bool truncate_corrupt_log = false;  // recover what precedes a corrupt log record
    // Retention (0: off) and idempotent retries.
    std::uint32_t retention_hours = 0;
    // Sealing: Unix hour H is sealed once the clock passes its end plus this; 0: off.
    std::chrono::milliseconds seal_after{0};
    std::chrono::milliseconds idempotency_window{600'000};
    std::size_t idempotency_max_keys = 1'000'000;
    // Connections and TLS on the main listener (all three files empty: plain HTTP).
    std::size_t max_connections = 10'000;
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string tls_client_ca_file;  // set: mutual TLS, a client certificate is required
    // Bearer tokens (empty: no authentication) and per-client rate limits (0 per second: off).
    std::string tokens_file;
    std::uint64_t rate_limit_requests_per_second = 0;
    std::uint64_t rate_limit_requests_burst = 0;  // 0: one second's worth
    std::uint64_t rate_limit_records_per_second = 0;
    std::uint64_t rate_limit_records_burst = 0;  // 0: one second's worth
    std::size_t rate_limit_max_clients = 100'000;
    // Cluster mode (empty cluster: off): NATS URLs, comma-separated; the stream every node
    // publishes to and applies from.
    std::string cluster;
    std::string node_name;  // empty: the host name
    std::string cluster_stream = "FLOWD";
    std::uint32_t cluster_replicas = 3;
    std::chrono::milliseconds min_seq_wait{2'000};
    std::chrono::milliseconds cluster_publish_timeout{5'000};
    // POSTs that may wait for the stream to come back (a leader election, a reconnect);
    // a failing POST past them is answered 503 cluster-unavailable at once.
    std::size_t cluster_max_pending = 4'096;
    // Limits of a stream flowd creates (0: none). A limit means a node started later, or one
    // whose checkpoint is older than what the stream still holds, cannot rebuild from the
    // stream: it halts and is never ready.
    std::uint64_t cluster_max_bytes = 0;
    std::uint32_t cluster_max_age_hours = 0;
    // Flow exporters (NetFlow v5/v9, IPFIX over UDP; empty flow_listen: off).
    std::string flow_listen;
    std::string apps_file;                  // empty: every address is unmatched
    std::uint64_t flow_rcvbuf_bytes = 0;    // 0: the kernel's default
    std::string flow_allowed_exporters;     // comma-separated prefixes; empty: any
    std::size_t flow_max_exporters = 1024;  // (address, observation domain) pairs
    std::size_t flow_max_templates = 256;   // per (address, observation domain)
    std::chrono::milliseconds flow_batch_interval{200};
    std::size_t flow_batch_records = 10'000;
    bool ui = true;  // the web console at / and /ui/
    // GET /flows/stream: how long a Last-Event-ID stays resumable, how far behind a client
    // may fall before a reset, how many streams may be open.
    std::uint32_t stream_resume_seconds = 60;
    std::size_t stream_buffer_bytes = 1'048'576;
    std::size_t max_streams = 1000;
    std::string config_file;  // empty: none given
};

// A bad flag, environment variable, config file or value. what() is the one line main
// prints, naming the setting and why it is wrong; exit code 2.
class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// What the command line asks for.
struct command {
    enum class action { run, help, version };
    action what = action::run;
    config cfg;
    // Not errors, said once the loggers exist (an unknown FLOWD_* variable).
    std::vector<std::string> warnings;
};

// Builds the config: defaults < config file (--config or FLOWD_CONFIG) < FLOWD_* environment
// < flags, then validates it. `env` maps variable names to values (the process environment
// in main, anything in tests). Throws config_error.
[[nodiscard]] command parse_command_line(std::vector<std::string> const& args,
                                         std::map<std::string, std::string> const& env);

[[nodiscard]] std::string usage();

// Every config file key, and whether it is also a command-line flag (--key with '_'
// written '-').
struct config_key {
    std::string name;
    bool is_flag = false;
};
[[nodiscard]] std::vector<config_key> config_keys();

// HOST:PORT or [IPv6]:PORT split into host and port; throws config_error naming `key`.
struct host_port {
    std::string host;
    std::uint16_t port = 0;
};
[[nodiscard]] host_port parse_host_port(std::string const& key, std::string const& value);

// A comma-separated list (flow_allowed_exporters), items trimmed, empty items left out.
[[nodiscard]] std::vector<std::string> split_list(std::string const& value);

// The settings as `key=value` pairs, for the startup log line.
[[nodiscard]] std::string describe(config const& c);

}  // namespace flowd
