#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <spdlog/logger.h>

#include "flowd/http/request_body.hpp"
#include "flowd/http/responses.hpp"
#include "flowd/metrics/service_metrics.hpp"

namespace flowd {

using request = boost::beast::http::request<request_body>;

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
    std::string_view remote_ip{};  // the peer's address, as text
    // Set while router::precheck() runs the guard on a head whose body is not read yet:
    // authenticate only (the request is charged to rate limits when it is dispatched).
    bool precheck = false;
    // The bearer token's name once the route's guard authenticated it; empty when auth is
    // off or the route is open. Valid for the handler call only: copy it to keep it.
    std::string_view token_name{};
    std::shared_ptr<void const> auth_hold{};  // keeps what token_name points to alive
};

// What a route asks of its caller; the router's guard enforces it.
enum class route_access { open, read, write };

// Completes a deferred answer; may be called from any thread, exactly once.
using respond_fn = std::function<void(response)>;

// A handler answers now, or starts work that will answer later (POST waiting for the log
// or the stream) without blocking the I/O thread.
struct deferred {
    std::function<void(respond_fn)> start;
};
using handler_result = std::variant<response, deferred>;
using handler = std::function<handler_result(request_context&)>;
// A route's answer from the head alone (before its body is read), or nullopt.
using head_check = std::function<std::optional<response>(request_context&)>;

// Runs once routing matched, before the handler (authentication, rate limits): an answer
// refuses the request, nullopt lets the handler run. Routes with route_access::open skip it.
using guard = std::function<std::optional<response>(request_context&, route_access)>;

// Maps (method, path) to handlers: plain functions of a request, testable without sockets.
// A path ending in '/' (other than "/") also takes every path under it (/ui/ serves /ui/app.js).
// Unknown path: 404; known path, other method: 405 with Allow; HEAD runs a GET route,
// OPTIONS answers 204 with Allow. The single catch per
// request lives here: an exception becomes a generic 500 and is logged.
// Immutable after setup; thread-safe to dispatch from many threads.
class router {
public:
    explicit router(std::shared_ptr<spdlog::logger> log) : log_(std::move(log)) {}

    void add(boost::beast::http::verb method, std::string path, route_id route, handler h,
             route_access access = route_access::open, head_check check = {});
    // Set before the first dispatch.
    void set_guard(guard g) { guard_ = std::move(g); }

    [[nodiscard]] route_id route_of(std::string_view path) const noexcept;
    [[nodiscard]] handler_result dispatch(request_context& ctx) const;
    // For `Expect: 100-continue`: what would refuse this request before its body is read
    // (404/405, 401/403, then the route's head_check), or nullopt: send 100 and read.
    [[nodiscard]] std::optional<response> precheck(request_context& ctx) const;
    // The Allow value of a path: its methods, HEAD beside GET, then OPTIONS; empty when
    // no route has this path.
    [[nodiscard]] std::string allow_of(std::string_view path) const;
    // Every (route, method) some path allows, HEAD and OPTIONS included (for the metrics
    // series exported at 0 from the start).
    [[nodiscard]] std::vector<std::pair<route_id, std::string>> allowed() const;

private:
    struct entry {
        boost::beast::http::verb method;
        std::string path;
        route_id route;
        handler h;
        route_access access = route_access::open;
        head_check check;
    };
    std::vector<entry> entries_;
    guard guard_;
    std::shared_ptr<spdlog::logger> log_;
};

}  // namespace flowd
