#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/logger.h>

#include "flowd/http/drain_state.hpp"

namespace flowd {

// Turns SIGINT/SIGTERM into an orderly stop, on the io_context (never inside a raw signal
// handler): stop accepting, /readyz 503, drain in-flight requests for at most the grace
// period, then `stop`. A second signal exits at once with code 1. Lives as long as the
// server; its handlers run on the io_context.
class shutdown_coordinator {
public:
    shutdown_coordinator(boost::asio::io_context& ioc, drain_state& drain,
                         std::chrono::milliseconds grace, std::function<void()> stop_accepting,
                         std::function<void()> stop, std::shared_ptr<spdlog::logger> log);

    void arm();

private:
    void on_signal(boost::system::error_code ec, int signo);
    // Stops the server once nothing is in flight, or at once when `forced`.
    void finish(bool forced);

    boost::asio::io_context& ioc_;
    boost::asio::signal_set signals_;
    boost::asio::steady_timer grace_timer_;
    drain_state& drain_;
    std::chrono::milliseconds grace_;
    std::function<void()> stop_accepting_;
    std::function<void()> stop_;
    std::shared_ptr<spdlog::logger> log_;
    bool requested_ = false;  // touched only by handlers of signals_, which never run concurrently
    std::atomic<bool> finished_{false};
};

}  // namespace flowd
