#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <prometheus/registry.h>

#include "flowd/app/config.hpp"
#include "flowd/app/flow_collector.hpp"
#include "flowd/app/logging.hpp"
#include "flowd/app/shutdown.hpp"
#include "flowd/app/startup.hpp"
#include "flowd/auth/rate_limiter.hpp"
#include "flowd/auth/tokens.hpp"
#include "flowd/cluster/cluster_ingest.hpp"
#include "flowd/durable/durable_ingest.hpp"
#include "flowd/http/access_guard.hpp"
#include "flowd/http/drain_state.hpp"
#include "flowd/http/event_stream.hpp"
#include "flowd/http/flows_handler.hpp"
#include "flowd/http/health_handlers.hpp"
#include "flowd/http/listener.hpp"
#include "flowd/http/middleware.hpp"
#include "flowd/http/router.hpp"
#include "flowd/ingest/admission.hpp"
#include "flowd/ingest/memory_ingest.hpp"
#include "flowd/metrics/process_collector.hpp"
#include "flowd/metrics/service_metrics.hpp"
#include "flowd/metrics/stream_metrics.hpp"
#include "flowd/store/flow_store.hpp"

namespace flowd {

// Owns everything a running flowd is: the metrics registry (first, so it outlives every
// holder of a metric reference), the store, the ingest, the routes, the io_context and its
// threads and the two listeners (main and metrics). Binds in the constructor (throws on a
// port in use); run() serves until shutdown completes and returns the exit code.
// Members are torn down in reverse order of construction.
class server {
public:
    server(config const& cfg, loggers logs);
    ~server();
    server(server const&) = delete;
    server& operator=(server const&) = delete;

    int run();

private:
    // The main and metrics listeners, bound; throws on a port in use.
    void open_listeners();
    // Start-up's info lines and warnings: the config and store bound; TLS, tokens and rate
    // limits; the metrics listener and the ingest mode.
    void log_start() const;
    void log_access() const;
    void log_mode() const;
    // Shutdown's first step: no new connections, datagrams or streams.
    void stop_accepting();
    void add_routes();
    void add_console_routes();
    void add_stream_routes();
    // SIGHUP: reload the tokens file; a bad file keeps the current tokens.
    void wait_reload();
    void reload_tokens();
    flows_options flows_options_of();
    // Recovers the data directory and opens the log; false when start-up must stop.
    bool recover_data_dir();
    // Cluster mode with a data directory: loads its checkpoint; returns the stream sequence
    // it covers. Throws on a directory of a local log or of another stream.
    std::uint64_t recover_cluster_dir();
    // The ingest of this mode: the cluster stream, the local log, or memory.
    [[nodiscard]] ingest& mode_ingest() noexcept;
    // What /readyz answers from, now.
    [[nodiscard]] readiness readiness_now() const;
    // Drops the hours retention no longer keeps, now and every minute.
    void apply_retention();
    void schedule_retention();

    config cfg_;
    loggers logs_;
    std::shared_ptr<prometheus::Registry> registry_;
    service_metrics metrics_;
    flow_store store_;
    std::shared_ptr<process_collector> process_metrics_;
    std::shared_ptr<callback_gauges> store_metrics_;
    idempotency_table idempotency_;
    memory_ingest memory_ingest_;
    std::unique_ptr<wal::directory_lock> data_dir_lock_;  // before durable_: held while it runs
    std::unique_ptr<durable_ingest> durable_;             // null: memory only
    std::unique_ptr<cluster_metrics> cluster_metrics_;    // null: not in cluster mode
    std::unique_ptr<cluster_ingest> cluster_;             // null: not in cluster mode
    std::atomic<bool> serving_{false};                    // recovery done: /flows served
    drain_state drain_;
    token_store tokens_;
    rate_limiter limiter_;
    access_guard guard_;
    // POST's front (records budget, Idempotency-Key, retention, sealing) over the ingest
    // of this mode; the flow collector checks per record and submits below it.
    admission admission_;
    router router_;
    flows_handler flows_;
    middleware middleware_;
    session_services services_;
    // The metrics listener: its own routes (/metrics, /healthz, /readyz) on the same stack.
    router metrics_router_;
    middleware metrics_middleware_;
    session_services metrics_services_;
    // GET /flows/stream (add_stream_routes); before ioc_, so that every stream's session
    // is gone before the hub.
    std::unique_ptr<stream_metrics> stream_metrics_;
    std::unique_ptr<stream_hub> streams_;
    boost::asio::io_context ioc_;
    std::shared_ptr<listener> listener_;
    std::shared_ptr<listener> metrics_listener_;
    shutdown_coordinator shutdown_;
    boost::asio::signal_set reload_signals_;
    boost::asio::steady_timer retention_timer_;
    std::unique_ptr<flow_collector> flow_;  // null: flow_listen unset
};

}  // namespace flowd
