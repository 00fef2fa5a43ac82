#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <spdlog/logger.h>

#include "flowd/http/router.hpp"
#include "flowd/metrics/service_metrics.hpp"

namespace flowd {

// Transport facts about one request, from the session.
struct request_meta {
    std::uint64_t connection_id = 0;
    bool body_too_large = false;
    bool draining = false;  // arrived after shutdown began: answer 503 without routing
    std::chrono::steady_clock::time_point arrived{};
    std::string_view tls_client_cn{};  // mTLS client certificate subject CN, else empty
    std::string_view remote_ip{};      // the peer's address (peer_address)
};

// The text of a socket's peer address; an IPv4-mapped IPv6 address as plain IPv4, so one
// client has one identity on a dual-stack listener. Empty when the peer is gone.
[[nodiscard]] std::string peer_address(boost::asio::ip::tcp::socket const& socket);

// Wraps the router in what every request gets, in one place: the request id (client's or
// new) echoed in X-Request-Id, version and keep-alive, Content-Length or chunking, the
// request metrics and the debug access log line. Immutable after setup; thread-safe.
class middleware {
public:
    middleware(router const& routes, service_metrics& metrics, std::shared_ptr<spdlog::logger> log)
        : routes_(routes), metrics_(metrics), log_(std::move(log)) {}

    // Returns the answer now, or nullopt when a handler deferred it: `later` is then
    // called exactly once, from any thread, with the finished answer.
    std::optional<response> handle(request& req, request_meta const& meta, respond_fn later) const;

    // A request whose head asks `Expect: 100-continue`: the finished answer that refuses it
    // before its body is read (404/405, 401/403, 415, 503 while starting), closing the
    // connection since the body will not be read; nullopt: send 100 and read the body.
    std::optional<response> precheck(request& req, request_meta const& meta) const;

private:
    // What finish() needs of a request; outlives the request itself for deferred answers.
    struct answered_request {
        std::string method;
        std::string target;
        unsigned version = 11;
        bool keep_alive = true;
        static answered_request of(request const& req);
    };

    response finish(response r, answered_request const& req, std::string const& request_id,
                    request_meta const& meta, route_id route) const;

    router const& routes_;
    service_metrics& metrics_;
    std::shared_ptr<spdlog::logger> log_;
};

}  // namespace flowd
