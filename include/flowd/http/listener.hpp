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

// Accepts connections on one endpoint; each accepted socket gets its own strand and
// session. Binds in the constructor (throws boost::system::system_error, e.g. port in use).
// run() and stop() may be called from any thread.
class listener : public std::enable_shared_from_this<listener> {
public:
    listener(boost::asio::io_context& ioc, boost::asio::ip::tcp::endpoint endpoint,
             session_services const& services);

    [[nodiscard]] boost::asio::ip::tcp::endpoint local_endpoint() const { return endpoint_; }
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
    std::uint64_t next_id_ = 1;  // touched only on strand_
};

}  // namespace flowd
