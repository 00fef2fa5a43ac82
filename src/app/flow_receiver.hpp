#pragma once

// flow_collector's receivers (src/app only): one per socket.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/logger.h>

#include "flowd/app/flow_collector.hpp"
#include "flowd/flow/apps_table.hpp"
#include "flowd/flow/flow_batcher.hpp"
#include "flowd/flow/packet_decoder.hpp"
#include "flowd/ingest/ingest.hpp"

namespace flowd {

// One UDP socket of the flow listener and what decodes its datagrams: with SO_REUSEPORT
// the kernel keeps each exporter (its address and port) on one socket, so each socket has
// its own templates and micro-batches. The socket and timer run on one strand; the
// decoder, the batcher and the apps table are guarded by mutex_, which /flow-exporters
// and SIGHUP also take. The class is thread-safe. It must outlive the io_context's run.
class flow_receiver {
public:
    flow_receiver(boost::asio::io_context& ioc, ingest& sink, prometheus::Registry& registry,
                  flow_collector_options const& options, boost::asio::ip::udp::endpoint listen,
                  bool reuse_port, std::shared_ptr<apps_table const> apps,
                  std::shared_ptr<spdlog::logger> log);
    ~flow_receiver() = default;
    flow_receiver(flow_receiver const&) = delete;
    flow_receiver& operator=(flow_receiver const&) = delete;

    // Starts receiving and the batch timer.
    void start();
    // Stops receiving and submits what is batched (shutdown).
    void stop();
    void set_apps(std::shared_ptr<apps_table const> apps);

    [[nodiscard]] boost::asio::ip::udp::endpoint local_endpoint() const;
    [[nodiscard]] int receive_buffer_bytes() const;
    [[nodiscard]] std::vector<exporter_info> exporters() const;

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

    boost::asio::strand<boost::asio::io_context::executor_type> strand_;
    boost::asio::ip::udp::socket socket_;
    boost::asio::steady_timer timer_;
    ingest& sink_;
    flow_metrics metrics_;
    flow_collector_options options_;
    boost::asio::ip::udp::endpoint listen_;
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
    // What this socket's decoder last added to the shared gauges.
    std::size_t exporters_counted_ = 0;  // guarded by mutex_
    std::size_t templates_counted_ = 0;  // guarded by mutex_
};

}  // namespace flowd
