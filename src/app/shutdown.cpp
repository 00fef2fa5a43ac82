#include "flowd/app/shutdown.hpp"

#include <csignal>
#include <cstdlib>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

namespace flowd {

namespace net = boost::asio;

shutdown_coordinator::shutdown_coordinator(net::io_context& ioc, drain_state& drain,
                                           std::chrono::milliseconds grace,
                                           std::function<void()> stop_accepting,
                                           std::function<void()> stop,
                                           std::shared_ptr<spdlog::logger> log)
    : ioc_(ioc),
      signals_(ioc, SIGINT, SIGTERM),
      grace_timer_(ioc),
      drain_(drain),
      grace_(grace),
      stop_accepting_(std::move(stop_accepting)),
      stop_(std::move(stop)),
      log_(std::move(log)) {}

void shutdown_coordinator::arm() {
    signals_.async_wait([this](boost::system::error_code ec, int signo) { on_signal(ec, signo); });
}

void shutdown_coordinator::on_signal(boost::system::error_code ec, int signo) {
    if (ec) {
        return;
    }
    char const* const name = signo == SIGINT ? "SIGINT" : "SIGTERM";
    if (requested_) {
        log_->warn("second signal ({}): exiting now with {} requests in flight", name,
                   drain_.in_flight());
        spdlog::shutdown();
        std::_Exit(1);
    }
    requested_ = true;
    log_->info("shutdown requested ({}): draining {} in-flight requests, grace period {}ms", name,
               drain_.in_flight(), grace_.count());
    arm();
    stop_accepting_();
    grace_timer_.expires_after(grace_);
    grace_timer_.async_wait([this](boost::system::error_code timer_ec) {
        if (timer_ec) {
            return;
        }
        log_->warn("grace period over with {} requests still in flight; stopping",
                   drain_.in_flight());
        finish(true);
    });
    drain_.on_idle([this] { net::post(ioc_, [this] { finish(false); }); });
    drain_.begin_drain();
}

void shutdown_coordinator::finish(bool forced) {
    if (!forced && drain_.in_flight() != 0) {
        // A request started after the drain looked idle (a pipelined one): wait for it too.
        drain_.on_idle([this] { net::post(ioc_, [this] { finish(false); }); });
        return;
    }
    if (finished_.exchange(true)) {
        return;
    }
    grace_timer_.cancel();
    log_->info("drained; stopping");
    stop_();
}

}  // namespace flowd
