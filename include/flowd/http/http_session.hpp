#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <spdlog/logger.h>

#include "flowd/http/drain_state.hpp"
#include "flowd/http/middleware.hpp"
#include "flowd/metrics/service_metrics.hpp"

namespace flowd {

struct session_limits {
    std::size_t max_body_bytes = 16 * 1024 * 1024;
    std::uint32_t max_header_bytes = 16 * 1024;
    std::chrono::milliseconds header_timeout{10'000};  // first byte to end of headers
    std::chrono::milliseconds body_timeout{30'000};    // without progress
    std::chrono::milliseconds idle_timeout{60'000};    // keep-alive, and each write
};

// The long-lived services every session uses; they outlive all sessions.
struct session_services {
    middleware const& mw;
    drain_state& drain;
    service_metrics& metrics;
    session_limits limits;
    std::shared_ptr<spdlog::logger> log;
};

// One HTTP/1.1 connection: wait for a request's first byte (idle timeout), read its
// headers (header deadline) and body (progress timeout), hand it to the middleware, write
// the answer, repeat; pipelined requests are answered in order. Lives as long as an
// operation is pending (shared_from_this); its members are touched only on its strand.
class http_session : public std::enable_shared_from_this<http_session> {
public:
    http_session(boost::asio::ip::tcp::socket&& socket, session_services const& services,
                 std::uint64_t id);
    ~http_session();
    http_session(http_session const&) = delete;
    http_session& operator=(http_session const&) = delete;

    void run();

    // From any thread: closes the connection if it is waiting for a new request.
    void close_if_idle();

private:
    void do_wait();
    void on_first_bytes(boost::beast::error_code ec, std::size_t n);
    void start_request();
    void on_header(boost::beast::error_code ec, std::size_t n);
    void on_continue(boost::beast::error_code ec, std::size_t n);
    void do_read_body();
    void on_body(boost::beast::error_code ec, std::size_t n);
    void dispatch_request();
    void send_early(problem_type type, std::string detail);
    void send(response r);
    void on_write(bool keep_alive, boost::beast::error_code ec, std::size_t n);
    void do_close();
    void do_linger();
    void finish_request();

    boost::beast::tcp_stream stream_;
    boost::beast::flat_buffer buffer_;
    session_services const& services_;
    std::uint64_t id_;
    std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
    std::optional<response> pending_;  // the answer being written
    std::chrono::steady_clock::time_point arrived_{};
    bool waiting_idle_ = false;
    bool in_flight_ = false;
    bool draining_at_arrival_ = false;
    bool body_too_large_ = false;
    bool closed_ = false;
    bool unread_input_ = false;  // the peer may still be sending bytes we will not read
    std::array<char, 4096> linger_buffer_{};
};

}  // namespace flowd
