#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/logger.h>

#include "flowd/app/config.hpp"
#include "flowd/flow/apps_table.hpp"
#include "flowd/flow/flow_batcher.hpp"
#include "flowd/flow/packet_decoder.hpp"
#include "flowd/http/router.hpp"
#include "flowd/ingest/ingest.hpp"

namespace flowd {

struct flow_collector_options {
    boost::asio::ip::udp::endpoint listen;
    std::size_t rcvbuf_bytes = 0;                  // 0: the kernel's default
    std::vector<address_range> allowed_exporters;  // empty: any
    decoder_limits limits;
    std::chrono::milliseconds batch_interval{200};
    std::size_t batch_records = 10'000;
    std::uint32_t retention_hours = 0;
    std::chrono::milliseconds seal_after{0};
    std::string apps_file;  // empty: every address is unmatched
};

// The flow exporters' metrics (SPEC Metrics), every label value at 0 from the start.
// Thread-safe (prometheus-cpp's counters are).
struct flow_metrics {
    explicit flow_metrics(prometheus::Registry& registry);

    // version index: 0 "5", 1 "9", 2 "10", 3 "other"; result as datagram_result.
    [[nodiscard]] prometheus::Counter& packets(unsigned version, datagram_result r);
    [[nodiscard]] prometheus::Counter& records(unsigned version);
    [[nodiscard]] prometheus::Counter& gaps(unsigned version);
    [[nodiscard]] prometheus::Counter& dropped(drop_reason r);

    std::array<prometheus::Counter*, 4 * 5> packets_{};
    std::array<prometheus::Counter*, 3> records_{};
    std::array<prometheus::Counter*, 3> gaps_{};
    std::array<prometheus::Counter*, drop_reason_count + 1> dropped_{};  // + unavailable
    prometheus::Counter& dropped_unavailable;
    prometheus::Counter& socket_drops;
    prometheus::Counter& templates_refused;
    prometheus::Counter& apps_reload_failures;
    prometheus::Gauge& exporters;
    prometheus::Gauge& templates;
};

class flow_receiver;

// Receives NetFlow v5/v9 and IPFIX datagrams on UDP (one socket per I/O thread, with
// SO_REUSEPORT, when there are several), decodes them, maps addresses through the apps
// file, sums the records into micro-batches and submits each through the same ingest as
// POST /flows. The class is thread-safe. It must outlive the io_context's run.
class flow_collector {
public:
    // `sockets`: how many sockets share the port (1: no SO_REUSEPORT). Throws
    // apps_file_error for a bad apps file, boost::system::system_error when it cannot bind.
    flow_collector(boost::asio::io_context& ioc, ingest& sink, prometheus::Registry& registry,
                   flow_collector_options options, std::shared_ptr<spdlog::logger> log,
                   std::size_t sockets = 1);
    ~flow_collector();
    flow_collector(flow_collector const&) = delete;
    flow_collector& operator=(flow_collector const&) = delete;

    // Starts receiving and the batch timers.
    void start();
    // Stops receiving and submits what is batched (shutdown).
    void stop();
    // SIGHUP: reads the apps file again; a bad one keeps the mapping in use (logged, counted).
    void reload_apps();

    [[nodiscard]] boost::asio::ip::udp::endpoint local_endpoint() const;
    // GET /flow-exporters: a JSON array, one object per (address, domain).
    [[nodiscard]] std::string exporters_json() const;

private:
    flow_collector_options options_;
    std::shared_ptr<spdlog::logger> log_;
    flow_metrics metrics_;
    std::mutex apps_mutex_;                   // SIGHUP and start() may meet
    std::shared_ptr<apps_table const> apps_;  // guarded by apps_mutex_: what receivers have
    std::vector<std::unique_ptr<flow_receiver>> receivers_;
};

// The collector the config asks for (null when flow_listen is unset), bound to its port.
// Throws config_error for a bad apps file (exit 2), std::runtime_error when it cannot bind.
[[nodiscard]] std::unique_ptr<flow_collector> make_flow_collector(
    config const& cfg, boost::asio::io_context& ioc, ingest& sink, prometheus::Registry& registry,
    std::shared_ptr<spdlog::logger> log);

// GET /flow-exporters: the exporters seen (an empty array when flow_listen is off).
[[nodiscard]] handler_result flow_exporters_answer(flow_collector const* collector);

}  // namespace flowd
