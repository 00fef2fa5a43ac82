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
#include "flowd/http/ingest.hpp"
#include "flowd/http/router.hpp"

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

// Receives NetFlow v5/v9 and IPFIX datagrams on one UDP socket, decodes them, maps
// addresses through the apps file, sums the records into micro-batches and submits each
// through the same ingest as POST /flows. The socket and timer run on one strand; the
// decoder, the batcher and the apps table are guarded by mutex_, which /flow-exporters
// and SIGHUP also take. The class is thread-safe. It must outlive the io_context's run.
class flow_collector {
public:
    flow_collector(boost::asio::io_context& ioc, ingest& sink, prometheus::Registry& registry,
                   flow_collector_options options, std::shared_ptr<spdlog::logger> log);
    ~flow_collector();
    flow_collector(flow_collector const&) = delete;
    flow_collector& operator=(flow_collector const&) = delete;

    // Starts receiving and the batch timer.
    void start();
    // Stops receiving and submits what is batched (shutdown).
    void stop();
    // SIGHUP: reads the apps file again; a bad one keeps the mapping in use (logged, counted).
    void reload_apps();

    [[nodiscard]] boost::asio::ip::udp::endpoint local_endpoint() const;
    // GET /flow-exporters: a JSON array, one object per (address, domain).
    [[nodiscard]] std::string exporters_json() const;

private:
    void do_wait();
    void on_readable(boost::system::error_code ec);
    void handle_datagram(ip_address const& from, std::uint8_t const* data, std::size_t size,
                         std::uint64_t now_ms);
    void add_flows(std::vector<decoded_flow> const& flows, std::string const& vpc,
                   std::uint64_t now_ms);
    void schedule_flush();
    void flush();
    void submit(std::shared_ptr<flow_batcher> batch);
    // Per-datagram trouble, said at most once every 10 s with a count of what was not said.
    // Never called with mutex_ held.
    void warn_rate_limited(std::string const& what);

    boost::asio::io_context& ioc_;
    boost::asio::strand<boost::asio::io_context::executor_type> strand_;
    boost::asio::ip::udp::socket socket_;
    boost::asio::steady_timer timer_;
    ingest& sink_;
    flow_metrics metrics_;
    flow_collector_options options_;
    std::shared_ptr<spdlog::logger> log_;
    std::vector<std::uint8_t> buffer_;  // touched only on the strand
    std::uint32_t socket_drops_seen_ = 0;

    mutable std::mutex mutex_;
    packet_decoder decoder_;                  // guarded by mutex_
    std::shared_ptr<apps_table const> apps_;  // guarded by mutex_
    std::shared_ptr<flow_batcher> batch_;     // guarded by mutex_
    std::vector<decoded_flow> flows_;         // guarded by mutex_ (scratch)
    std::mutex warn_mutex_;
    std::chrono::steady_clock::time_point last_warn_{};  // guarded by warn_mutex_
    std::size_t suppressed_warnings_ = 0;                // guarded by warn_mutex_
    std::size_t in_flight_ = 0;                          // guarded by mutex_
    bool stopped_ = false;                               // guarded by mutex_
};

// The collector the config asks for (null when flow_listen is unset), bound to its port.
// Throws config_error for a bad apps file (exit 2), std::runtime_error when it cannot bind.
[[nodiscard]] std::unique_ptr<flow_collector> make_flow_collector(
    config const& cfg, boost::asio::io_context& ioc, ingest& sink, prometheus::Registry& registry,
    std::shared_ptr<spdlog::logger> log);

// GET /flow-exporters: the exporters seen (an empty array when flow_listen is off).
[[nodiscard]] handler_result flow_exporters_answer(flow_collector const* collector);

}  // namespace flowd
