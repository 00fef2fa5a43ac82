#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <spdlog/logger.h>

#include "flowd/http/drain_state.hpp"
#include "flowd/http/middleware.hpp"
#include "flowd/metrics/service_metrics.hpp"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace flowd {

struct session_limits {
    std::size_t max_body_bytes = 16 * 1024 * 1024;
    std::uint32_t max_header_bytes = 16 * 1024;
    std::chrono::milliseconds header_timeout{
        10'000};                                     // first byte to end of headers; TLS handshake
    std::chrono::milliseconds body_timeout{30'000};  // without progress
    std::chrono::milliseconds idle_timeout{60'000};  // keep-alive, and each write
};

// The long-lived services every session uses; they outlive all sessions.
struct session_services {
    middleware const& mw;
    drain_state& drain;
    service_metrics& metrics;
    session_limits limits;
    std::shared_ptr<spdlog::logger> log;
    // flowd_http_connections_open counts the main listener's connections (those
    // max_connections caps), not the metrics listener's scrapes and probes.
    bool count_connections = true;
};

// The open connections the listener counts against max_connections: a session holds one
// slot for its whole life and gives it back when it is destroyed.
class connection_slot {
public:
    connection_slot() = default;
    explicit connection_slot(std::shared_ptr<std::atomic<std::size_t>> count)
        : count_(std::move(count)) {}
    connection_slot(connection_slot&&) noexcept = default;
    connection_slot& operator=(connection_slot&&) noexcept = default;
    connection_slot(connection_slot const&) = delete;
    connection_slot& operator=(connection_slot const&) = delete;
    ~connection_slot() {
        if (count_) {
            count_->fetch_sub(1, std::memory_order_acq_rel);
        }
    }

private:
    std::shared_ptr<std::atomic<std::size_t>> count_;
};

// What drain_state sees of a session, whatever its transport.
class http_session {
public:
    http_session() = default;
    virtual ~http_session() = default;
    http_session(http_session const&) = delete;
    http_session& operator=(http_session const&) = delete;

    // From any thread: closes the connection if it is waiting for a new request.
    virtual void close_if_idle() = 0;
};

// How a new connection is started. `refuse`: the listener is over max_connections, so the
// session answers 503 `overloaded` with Connection: close at once (no request is read),
// then closes after a short linger.
struct session_start {
    std::uint64_t id = 0;
    connection_slot slot;
    bool refuse = false;
    std::size_t max_connections = 0;  // for the 503's detail
};

// One HTTP/1.1 connection, plain or TLS (the session is a template on its stream, so the
// plain path has no TLS layer in it): (TLS: handshake within header_timeout,) wait for a
// request's first byte (idle timeout), read its headers (header deadline) and body
// (progress timeout), hand it to the middleware, write the answer, repeat; pipelined
// requests are answered in order. Each limit that closes or refuses a connection is
// counted in flowd_limit_rejections_total{limit}.
void start_plain_session(boost::asio::ip::tcp::socket&& socket, session_services const& services,
                         session_start start);
// `tls` must outlive every session; with a client CA set, the handshake requires and verifies
// a client certificate, whose subject CN reaches handlers as request_context::tls_client_cn.
void start_tls_session(boost::asio::ip::tcp::socket&& socket, session_services const& services,
                       boost::asio::ssl::context& tls, session_start start);

}  // namespace flowd
