#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/error.hpp>

#include "flowd/http/http_session.hpp"

namespace flowd {

// Accepts connections on one endpoint; each accepted socket gets its own strand (unless
// one thread runs the io_context) and session, plain HTTP or, given a TLS context, HTTPS. Binds in
// the constructor (throws boost::system::system_error, e.g. port in use). run() and stop() may be
// called from any thread. At most max_connections sessions are open at once: a connection past the
// cap is still accepted, answered 503 `overloaded` with Connection: close, and closed.
class listener : public std::enable_shared_from_this<listener> {
public:
    listener(boost::asio::io_context& ioc, boost::asio::ip::tcp::endpoint endpoint,
             session_services const& services,
             std::shared_ptr<boost::asio::ssl::context> tls = nullptr);

    [[nodiscard]] boost::asio::ip::tcp::endpoint local_endpoint() const { return endpoint_; }
    [[nodiscard]] bool tls() const noexcept { return tls_ != nullptr; }
    // Before run(): the connection cap (default 10000).
    void set_max_connections(std::size_t n) noexcept { max_connections_ = n; }
    // Before run(): how many threads run the io_context (default several). With one, a
    // session needs no strand: that thread runs all its handlers one at a time already.
    void set_io_threads(unsigned n) noexcept { io_threads_ = n; }
    void run();
    void stop();

private:
    void do_accept();
    void on_accept(boost::beast::error_code ec, boost::asio::ip::tcp::socket socket);

    boost::asio::io_context& ioc_;
    boost::asio::strand<boost::asio::io_context::executor_type> strand_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer backoff_;  // pause after a failed accept
    boost::asio::ip::tcp::endpoint endpoint_;
    session_services const& services_;
    std::shared_ptr<boost::asio::ssl::context> tls_;  // null: plain HTTP
    std::size_t max_connections_ = 10'000;
    unsigned io_threads_ = 0;  // 0: unknown, so strands
    // Sessions open now (refusals excluded); shared with their slots, which may outlive us.
    std::shared_ptr<std::atomic<std::size_t>> open_ = std::make_shared<std::atomic<std::size_t>>(0);
    std::uint64_t next_id_ = 1;  // touched only on strand_
};

}  // namespace flowd
