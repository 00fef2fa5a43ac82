#include "flowd/http/middleware.hpp"

#include <atomic>
#include <memory>

#include <spdlog/spdlog.h>

#include "flowd/http/request_id.hpp"

namespace flowd {

namespace http = boost::beast::http;

std::string peer_address(boost::asio::ip::tcp::socket const& socket) {
    boost::system::error_code ec;
    auto const ep = socket.remote_endpoint(ec);
    if (ec) {
        return {};
    }
    auto const address = ep.address();
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6())
            .to_string();
    }
    return address.to_string();
}

namespace {

// The client's X-Request-Id when acceptable (SPEC), else a new one.
std::string request_id_of(request const& req) {
    if (auto it = req.find("X-Request-Id"); it != req.end() && acceptable_request_id(it->value())) {
        return std::string(it->value());
    }
    return new_request_id();
}

// The handler's view of a request: its target split into path and query, and the
// session's transport facts.
request_context context_of(request& req, std::string_view request_id, request_meta const& meta) {
    std::string_view const target = req.target();
    std::size_t const q = target.find('?');
    request_context ctx{req, request_id, target.substr(0, q),
                        q == std::string_view::npos ? std::string_view{} : target.substr(q + 1),
                        meta.body_too_large};
    ctx.tls_client_cn = meta.tls_client_cn;
    ctx.remote_ip = meta.remote_ip;
    return ctx;
}

}  // namespace

std::optional<response> middleware::handle(request& req, request_meta const& meta,
                                           respond_fn later) const {
    std::string const request_id = request_id_of(req);
    request_context ctx = context_of(req, request_id, meta);
    route_id const route = routes_.route_of(ctx.path);

    if (meta.draining) {
        response r = problem_response(
            problem{problem_type::shutting_down,
                    "flowd is shutting down; retry on another node or after restart",
                    {},
                    {}},
            request_id);
        return finish(std::move(r), answered_request::of(req), request_id, meta, route);
    }

    handler_result result = routes_.dispatch(ctx);
    if (auto* now = std::get_if<response>(&result)) {
        return finish(std::move(*now), answered_request::of(req), request_id, meta, route);
    }
    // The request dies with the session's next read: keep only what finish() needs, in one
    // allocation that the completion shares (a completion of one pointer is stored inside
    // the std::function, not on the heap). The router's catch ended when dispatch()
    // returned; a throw from start() is caught here, so it never reaches io_context::run,
    // and answered 500 unless start() had answered already.
    struct pending {
        pending(middleware const& m, answered_request h, std::string id, request_meta const& rm,
                route_id r, respond_fn l)
            : mw(m),
              head(std::move(h)),
              request_id(std::move(id)),
              meta(rm),
              route(r),
              later(std::move(l)) {}
        middleware const& mw;
        answered_request head;
        std::string request_id;
        request_meta meta;
        route_id route;
        respond_fn later;
        std::atomic<bool> answered{false};
    };
    auto const state = std::make_shared<pending>(*this, answered_request::of(req), request_id, meta,
                                                 route, std::move(later));
    auto complete = [state](response r) {
        if (!state->answered.exchange(true, std::memory_order_acq_rel)) {
            state->later(state->mw.finish(std::move(r), state->head, state->request_id, state->meta,
                                          state->route));
        }
    };
    try {
        std::get<deferred>(result).start(complete);
    } catch (std::exception const& ex) {
        log_->error("request {} {} {} failed after it was deferred: {}", request_id,
                    req.method_string(), ctx.path, ex.what());
        complete(internal_error_response(request_id));
    } catch (...) {
        log_->error("request {} {} {} failed after it was deferred: unknown exception", request_id,
                    req.method_string(), ctx.path);
        complete(internal_error_response(request_id));
    }
    return std::nullopt;
}

std::optional<response> middleware::precheck(request& req, request_meta const& meta) const {
    std::string const request_id = request_id_of(req);
    request_context ctx = context_of(req, request_id, meta);
    std::optional<response> refused = routes_.precheck(ctx);
    if (!refused) {
        return std::nullopt;
    }
    answered_request head = answered_request::of(req);
    head.keep_alive = false;  // the body stays unread
    return finish(std::move(*refused), head, request_id, meta, routes_.route_of(ctx.path));
}

middleware::answered_request middleware::answered_request::of(request const& req) {
    return {std::string(req.method_string()), std::string(req.target()), req.version(),
            req.keep_alive()};
}

response middleware::finish(response r, answered_request const& req, std::string const& request_id,
                            request_meta const& meta, route_id route) const {
    http::response_header<>& h = header_of(r);
    h.version(req.version);
    h.set("X-Request-Id", request_id);
    std::visit(
        [&](auto& m) {
            m.keep_alive(req.keep_alive && !meta.draining && !meta.body_too_large);
            if constexpr (!std::is_same_v<std::decay_t<decltype(m)>, string_response>) {
                m.chunked(true);
            } else {
                m.prepare_payload();
            }
        },
        r);
    unsigned const status = h.result_int();
    double const seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - meta.arrived).count();
    metrics_.observe_request(route, req.method, status, seconds);
    if (log_->should_log(spdlog::level::debug)) {
        log_->debug("[C{}] {} {} {} {:.3f}ms id={}", meta.connection_id, req.method, req.target,
                    status, seconds * 1e3, request_id);
    }
    return r;
}

}  // namespace flowd
