#include "flowd/http/router.hpp"

#include <exception>

#include <spdlog/spdlog.h>

namespace flowd {

namespace http = boost::beast::http;

void router::add(http::verb method, std::string path, route_id route, handler h,
                 route_access access) {
    entries_.push_back({method, std::move(path), route, std::move(h), access});
}

route_id router::route_of(std::string_view path) const noexcept {
    for (entry const& e : entries_) {
        if (e.path == path) {
            return e.route;
        }
    }
    return route_id::other;
}

handler_result router::dispatch(request_context& ctx) const {
    std::string allow;
    for (entry const& e : entries_) {
        if (e.path != ctx.path) {
            continue;
        }
        if (e.method == ctx.req.method()) {
            try {
                // SPEC order: 404/405 below, then 401/403 and 429 here, then the handler's.
                if (e.access != route_access::open && guard_) {
                    if (std::optional<response> refused = guard_(ctx, e.access)) {
                        return std::move(*refused);
                    }
                }
                return e.h(ctx);
            } catch (std::exception const& ex) {
                log_->error("request {} {} {} failed: {}", ctx.request_id, ctx.req.method_string(),
                            ctx.path, ex.what());
                return response{
                    problem_response(problem{problem_type::internal_error,
                                             "an unexpected error occurred; see the server log",
                                             {},
                                             {}},
                                     ctx.request_id)};
            } catch (...) {
                // Not every library throws std::exception; the client still gets its 500.
                log_->error("request {} {} {} failed: unknown exception", ctx.request_id,
                            ctx.req.method_string(), ctx.path);
                return response{
                    problem_response(problem{problem_type::internal_error,
                                             "an unexpected error occurred; see the server log",
                                             {},
                                             {}},
                                     ctx.request_id)};
            }
        }
        if (!allow.empty()) {
            allow += ", ";
        }
        allow += std::string(http::to_string(e.method));
    }
    if (allow.empty()) {
        return response{
            problem_response(problem{problem_type::not_found,
                                     "no resource at " + quote_value(ctx.path) +
                                         "; flowd serves /flows, /healthz, /readyz and /metrics",
                                     {},
                                     {}},
                             ctx.request_id)};
    }
    string_response r = problem_response(
        problem{problem_type::method_not_allowed,
                std::string(ctx.req.method_string().substr(0, 32)) + " is not allowed on " +
                    std::string(ctx.path) + "; allowed: " + allow,
                {},
                {}},
        ctx.request_id);
    r.set(http::field::allow, allow);
    return response{std::move(r)};
}

}  // namespace flowd
