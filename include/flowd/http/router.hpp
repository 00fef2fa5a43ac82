#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <spdlog/logger.h>

#include "flowd/http/responses.hpp"
#include "flowd/metrics/service_metrics.hpp"

namespace flowd {

using request = boost::beast::http::request<boost::beast::http::string_body>;

// What a handler sees of one request. Handlers may move the body out.
struct request_context {
    request& req;
    std::string_view request_id;
    std::string_view path;
    std::string_view query;       // after '?', without it; empty when absent
    bool body_too_large = false;  // the body passed max_body_bytes and was not read
    // With mutual TLS: the client certificate's subject CN (the client identity for rate
    // limits); empty over plain HTTP or without a CN. Valid for the handler call only.
    std::string_view tls_client_cn{};
};

// Completes a deferred answer; may be called from any thread, exactly once.
using respond_fn = std::function<void(response)>;

// A handler answers now, or starts work that will answer later (POST waiting for the log
// or the stream) without blocking the I/O thread.
struct deferred {
    std::function<void(respond_fn)> start;
};
using handler_result = std::variant<response, deferred>;
using handler = std::function<handler_result(request_context&)>;

// Maps (method, path) to handlers: plain functions of a request, testable without sockets.
// Unknown path: 404; known path, other method: 405 with Allow. The single catch per
// request lives here: an exception becomes a generic 500 and is logged.
// Immutable after setup; thread-safe to dispatch from many threads.
class router {
public:
    explicit router(std::shared_ptr<spdlog::logger> log) : log_(std::move(log)) {}

    void add(boost::beast::http::verb method, std::string path, route_id route, handler h);

    [[nodiscard]] route_id route_of(std::string_view path) const noexcept;
    [[nodiscard]] handler_result dispatch(request_context& ctx) const;

private:
    struct entry {
        boost::beast::http::verb method;
        std::string path;
        route_id route;
        handler h;
    };
    std::vector<entry> entries_;
    std::shared_ptr<spdlog::logger> log_;
};

}  // namespace flowd
