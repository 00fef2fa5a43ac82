#include "flowd/app/server.hpp"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <boost/asio/ip/tcp.hpp>
#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include "flowd/app/startup.hpp"
#include "flowd/auth/tokens.hpp"
#include "flowd/codec/flow_json.hpp"
#include "flowd/durable/recovery.hpp"
#include "flowd/http/tls.hpp"

namespace flowd {

namespace net = boost::asio;

namespace {

constexpr char const* version_string = FLOWD_VERSION;
constexpr char const* commit_string = FLOWD_COMMIT;

// The store's size and limits, read when /metrics is scraped.
std::shared_ptr<callback_gauges> store_gauges(flow_store const& store) {
    return std::make_shared<callback_gauges>(std::vector<callback_gauges::gauge>{
        {"flowd_store_keys", "Aggregated keys in the store",
         [&store] { return static_cast<double>(store.key_count()); }},
        {"flowd_store_hour_buckets", "Distinct hours in the store",
         [&store] { return static_cast<double>(store.hour_count()); }},
        {"flowd_store_memory_bytes",
         "Estimated heap bytes held by the store (tables and interned names)",
         [&store] { return static_cast<double>(store.memory_bytes()); }},
        {"flowd_store_max_keys",
         "The max_keys limit: a batch that would take flowd_store_keys past it is 507",
         [&store] { return static_cast<double>(store.max_keys()); }},
        {"flowd_store_max_bytes",
         "The effective max_store_bytes: a batch that would take flowd_store_memory_bytes "
         "past it is 507",
         [&store] { return static_cast<double>(store.max_store_bytes()); }},
    });
}

durable_options durable_options_of(config const& cfg) {
    return durable_options{cfg.data_dir,
                           cfg.fsync == "always",
                           cfg.fsync_interval,
                           cfg.checkpoint_interval,
                           cfg.checkpoint_log_bytes,
                           cfg.wal_segment_bytes};
}

cluster_options cluster_options_of(config const& cfg, idempotency_table* idempotency) {
    return cluster_options{split_urls(cfg.cluster),
                           cfg.node_name,
                           cfg.cluster_stream,
                           cfg.cluster_replicas,
                           cfg.idempotency_window,
                           cfg.cluster_publish_timeout,
                           cfg.data_dir,
                           cfg.checkpoint_interval,
                           cfg.retention_hours,
                           idempotency,
                           16'384,
                           cfg.cluster_max_bytes,
                           std::chrono::hours(cfg.cluster_max_age_hours),
                           cfg.cluster_max_pending};
}

session_limits session_limits_of(config const& cfg, std::size_t max_body_bytes) {
    return session_limits{max_body_bytes, cfg.max_header_bytes, cfg.header_timeout,
                          cfg.body_timeout, cfg.idle_timeout};
}

}  // namespace

server::server(config const& cfg, loggers logs)
    : cfg_(cfg),
      logs_(std::move(logs)),
      registry_(std::make_shared<prometheus::Registry>()),
      metrics_(*registry_, version_string, commit_string),
      store_(store_options{cfg.store_shards, cfg.max_keys, effective_max_store_bytes(cfg)}),
      process_metrics_(std::make_shared<process_collector>()),
      store_metrics_(store_gauges(store_)),
      idempotency_(cfg.idempotency_window, cfg.idempotency_max_keys),
      memory_ingest_(store_, metrics_),
      data_dir_lock_(cfg.data_dir.empty() ? nullptr
                                          : std::make_unique<wal::directory_lock>(cfg.data_dir)),
      durable_(cfg.data_dir.empty() || !cfg.cluster.empty()
                   ? nullptr
                   : std::make_unique<durable_ingest>(store_, idempotency_, metrics_,
                                                      durable_options_of(cfg), logs_.app)),
      cluster_metrics_(cfg.cluster.empty() ? nullptr
                                           : std::make_unique<cluster_metrics>(*registry_)),
      cluster_(cfg.cluster.empty() ? nullptr
                                   : std::make_unique<cluster_ingest>(
                                         store_, *cluster_metrics_,
                                         cluster_options_of(cfg, &idempotency_), logs_.app)),
      tokens_(initial_tokens(cfg)),
      limiter_(rate_limits_of(cfg)),
      guard_(tokens_, limiter_, metrics_, logs_.http),
      admission_(
          mode_ingest(), metrics_,
          admission_options{// In cluster mode the stream's duplicate window remembers the keys.
                            cfg.cluster.empty() ? &idempotency_ : nullptr, &limiter_,
                            cfg.retention_hours, cfg.seal_after, wall_clock_ms}),
      router_(logs_.http),
      flows_(store_, admission_, metrics_, flows_options_of()),
      middleware_(router_, metrics_, logs_.http),
      services_{middleware_, drain_, metrics_, session_limits_of(cfg, cfg.max_body_bytes),
                logs_.http},
      metrics_router_(logs_.http),
      metrics_middleware_(metrics_router_, metrics_, logs_.http),
      // Scrapes and probes carry no body: a small body limit.
      metrics_services_{metrics_middleware_,
                        drain_,
                        metrics_,
                        session_limits_of(cfg, 64 * 1024),
                        logs_.http,
                        /*count_connections=*/false},
      ioc_(static_cast<int>(cfg.threads)),
      shutdown_(
          ioc_, drain_, cfg.grace_period, [this] { stop_accepting(); }, [this] { ioc_.stop(); },
          logs_.app),
      reload_signals_(ioc_, SIGHUP),
      retention_timer_(ioc_) {
    if (!cpu_runs_json_implementation()) {
        throw std::runtime_error(
            "this flowd was built for CPUs with AVX2, BMI2 and PCLMUL (FLOWD_SIMD_ARCH=haswell); "
            "rebuild with -DFLOWD_SIMD_ARCH= for a portable binary");
    }
    add_routes();
    for (auto const& [route, method] : router_.allowed()) {
        metrics_.declare_route(route, method);
    }

    open_listeners();
    flow_ = make_flow_collector(cfg_, ioc_, mode_ingest(), *registry_, logs_.app);
    // Logged only once both listeners are bound, so a start that fails (a port in use)
    // leaves exactly one line on stderr: the error main() prints.
    log_start();
    listener_->set_max_connections(effective_max_connections(
        cfg_.max_connections, raise_open_files_limit(*logs_.app), *logs_.app));
    listener_->set_io_threads(cfg_.threads);
    metrics_listener_->set_io_threads(cfg_.threads);
    log_access();
    wait_reload();
    log_mode();
}

void server::open_listeners() {
    auto const endpoint = resolve_listen("listen", cfg_.listen);
    try {
        listener_ = std::make_shared<listener>(ioc_, endpoint, services_, tls_context_of(cfg_));
    } catch (boost::system::system_error const& e) {
        throw std::runtime_error("cannot listen on " + cfg_.listen + ": " + e.code().message());
    }
    // flowd's own HTTP stack, plain HTTP, serving the same registry: IPv4 or IPv6 (Debian's
    // civetweb, under prometheus-cpp's Exposer, has no IPv6), the same bind errors as the
    // main listener, and nothing to wait for at exit.
    auto const metrics_endpoint = resolve_listen("metrics_listen", cfg_.metrics_listen);
    try {
        metrics_listener_ = std::make_shared<listener>(ioc_, metrics_endpoint, metrics_services_);
    } catch (boost::system::system_error const& e) {
        throw std::runtime_error("cannot listen on " + cfg_.metrics_listen +
                                 " (metrics): " + e.code().message());
    }
}

void server::log_start() const {
    logs_.app->info("flowd {} ({}) starting: {} json_kernel={}", version_string, commit_string,
                    describe(cfg_), json_implementation());
    if (cfg_.max_store_bytes != 0) {
        logs_.app->info("store bounded at max_store_bytes={} (set)", store_.max_store_bytes());
    } else {
        memory_limit const limit = memory_limit_of_host();
        logs_.app->info("store bounded at max_store_bytes={} (half of {} {})",
                        store_.max_store_bytes(), limit.source, limit.bytes);
    }
}

void server::log_access() const {
    if (listener_->tls()) {
        logs_.app->info("TLS on the http listener (certificate {}){}", cfg_.tls_cert_file,
                        cfg_.tls_client_ca_file.empty() ? std::string()
                                                        : ", client certificates required (CA " +
                                                              cfg_.tls_client_ca_file + ")");
    }
    if (auto const tokens = tokens_.snapshot()) {
        logs_.app->info("authentication on: {} tokens from {} (SIGHUP reloads it)", tokens->size(),
                        cfg_.tokens_file);
        for (std::string const& w : token_file_warnings(cfg_.tokens_file, *tokens)) {
            logs_.app->warn("{}", w);
        }
    } else if (!listener_->local_endpoint().address().is_loopback()) {
        logs_.app->warn(
            "no tokens_file, yet the http listener {} is not on loopback: anyone who can reach "
            "it can post and read flows; set tokens_file (see SECURITY.md)",
            endpoint_text(listener_->local_endpoint()));
    }
    if (limiter_.enabled()) {
        logs_.app->info(
            "rate limits per client: {} requests/s (burst {}), {} records/s (burst {}); 0 is off",
            cfg_.rate_limit_requests_per_second, rate_limits_of(cfg_).requests.burst,
            cfg_.rate_limit_records_per_second, rate_limits_of(cfg_).records.burst);
    }
}

void server::log_mode() const {
    logs_.app->info("metrics listening on {}", endpoint_text(metrics_listener_->local_endpoint()));
    if (cluster_) {
        logs_.app->info("cluster mode: node {} on {}, stream {} ({} replicas)", cfg_.node_name,
                        cfg_.cluster, cfg_.cluster_stream, cfg_.cluster_replicas);
    } else if (!durable_) {
        logs_.app->warn(
            "no data directory: data lives in memory only and is lost when flowd stops "
            "(set --data-dir to keep it)");
    }
}

void server::stop_accepting() {
    listener_->stop();
    metrics_listener_->stop();
    if (flow_) {
        flow_->stop();
    }
    if (streams_) {
        streams_->shutdown();  // streams end; they never hold the drain
    }
}

ingest& server::mode_ingest() noexcept {
    if (cluster_) {
        return *cluster_;
    }
    if (durable_) {
        return *durable_;
    }
    return memory_ingest_;
}

std::uint64_t server::recover_cluster_dir() {
    // A directory holds one history: a local log's sequences and a stream's are not
    // interchangeable, so the directory names the stream its snapshots count.
    std::filesystem::path const dir = cfg_.data_dir;
    std::filesystem::path const owner = dir / "cluster-stream";
    bool has_files = false;
    for (auto const& e : std::filesystem::directory_iterator(dir)) {
        std::string const name = e.path().filename().string();
        if (wal::parse_segment_name(name)) {
            throw std::runtime_error("it holds a local write-ahead log (" + name +
                                     "); cluster mode needs a data directory of its own");
        }
        has_files = has_files || wal::parse_snapshot_name(name).has_value();
    }
    std::string stream;
    if (std::ifstream in{owner}; in) {
        std::getline(in, stream);
    }
    if (stream.empty() && has_files) {
        throw std::runtime_error(
            "it holds snapshots of a local write-ahead log; cluster mode needs a data directory "
            "of its own");
    }
    if (!stream.empty() && stream != cfg_.cluster_stream) {
        throw std::runtime_error("its checkpoints are of stream " + stream + ", not " +
                                 cfg_.cluster_stream);
    }
    if (stream.empty()) {
        std::ofstream out{owner};
        out << cfg_.cluster_stream << "\n";
        if (!out.flush()) {
            throw std::runtime_error("cannot write " + owner.string());
        }
    }
    wal::recovery_result const r = wal::recover(wal::recovery_options{dir, false, wall_clock_ms()},
                                                store_, idempotency_, *logs_.app);
    logs_.app->info(
        "cluster: data directory {}: checkpoint {} covers stream sequence {} ({} keys); "
        "applying the stream from {}",
        dir.string(), r.snapshot.empty() ? "none" : r.snapshot, r.snapshot_seq, store_.key_count(),
        r.snapshot_seq + 1);
    return r.snapshot_seq;
}

bool server::recover_data_dir() {
    if (cluster_) {
        try {
            if (!cfg_.data_dir.empty()) {
                cluster_->resume_from(recover_cluster_dir());
            }
            apply_retention();
            cluster_->start();
        } catch (std::exception const& e) {
            logs_.app->error("cannot start cluster mode: {}", e.what());
            return false;
        }
        return true;
    }
    try {
        if (durable_) {
            (void)durable_->recover(cfg_.truncate_corrupt_log);
        }
        apply_retention();
        if (durable_) {
            durable_->start();
        }
    } catch (std::exception const& e) {
        logs_.app->error("cannot start on data directory {}: {}", cfg_.data_dir, e.what());
        return false;
    }
    return true;
}

void server::apply_retention() {
    if (cfg_.retention_hours == 0) {
        return;
    }
    retention_window const w = retention_window_at(wall_clock_ms(), cfg_.retention_hours);
    std::size_t const dropped = store_.drop_hours_before(w.first);
    if (dropped != 0) {
        metrics_.retention_dropped_hours.Increment(static_cast<double>(dropped));
        logs_.store->info("retention: dropped {} hours before Unix hour {} ({} keys left)", dropped,
                          w.first, store_.key_count());
    }
}

void server::schedule_retention() {
    if (cfg_.retention_hours == 0) {
        return;
    }
    retention_timer_.expires_after(std::chrono::minutes(1));
    retention_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec) {
            return;
        }
        apply_retention();
        schedule_retention();
    });
}

server::~server() = default;

void server::wait_reload() {
    reload_signals_.async_wait([this](boost::system::error_code ec, int) {
        if (ec) {
            return;  // operation_aborted: the server is stopping
        }
        reload_tokens();
        if (flow_) {
            flow_->reload_apps();
        }
        wait_reload();
    });
}

void server::reload_tokens() {
    if (cfg_.tokens_file.empty()) {
        logs_.app->info("SIGHUP: no tokens_file configured, nothing to reload");
        return;
    }
    // Runs on an I/O thread: a tokens file is small, and reloads are rare.
    try {
        token_set next = token_set::load(cfg_.tokens_file);
        std::size_t const n = next.size();
        std::vector<std::string> const warnings = token_file_warnings(cfg_.tokens_file, next);
        tokens_.replace(std::move(next));
        logs_.app->info("SIGHUP: reloaded {} tokens from {}", n, cfg_.tokens_file);
        for (std::string const& w : warnings) {
            logs_.app->warn("SIGHUP: {}", w);
        }
    } catch (std::exception const& e) {
        metrics_.tokens_reload_failures.Increment();
        logs_.app->error("SIGHUP: tokens not reloaded, the previous tokens stay in use: {}",
                         e.what());
    }
}

int server::run() {
    shutdown_.arm();
    // main() held the stop signals during start-up; the signal_set owns them from here.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
    listener_->run();
    metrics_listener_->run();
    // The I/O threads serve while this thread recovers: /healthz answers, /readyz and
    // /flows say 503 until the data directory is loaded.
    std::vector<std::thread> threads;
    threads.reserve(cfg_.threads);
    for (unsigned i = 0; i < cfg_.threads; ++i) {
        threads.emplace_back([this] { ioc_.run(); });
    }
    int code = 0;
    bool const recovered = recover_data_dir();
    // Said only after recovery, so a start that fails never claimed to be listening.
    if (recovered) {
        logs_.app->info("http listening on {}", endpoint_text(listener_->local_endpoint()));
    }
    if (!recovered) {
        code = 1;
        ioc_.stop();
    } else if (!drain_.draining()) {
        serving_.store(true, std::memory_order_release);
        drain_.set_ready(true);
        net::post(ioc_, [this] { schedule_retention(); });
        // Flow records go through the ingest only once it has recovered; meanwhile the
        // bound socket's buffer holds what arrives.
        if (flow_) {
            flow_->start();
        }
        logs_.app->info("ready: {} I/O threads", cfg_.threads);
    }
    for (auto& t : threads) {
        t.join();
    }
    if (durable_) {
        durable_->stop();  // completes what is queued, fsyncs, writes the last checkpoint
    }
    if (cluster_) {
        // Answers what waits for an ack, writes the last checkpoint, closes the connection.
        cluster_->stop();
    }
    logs_.app->info("flowd stopped");
    return code;
}

}  // namespace flowd
