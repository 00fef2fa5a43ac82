#include "flowd/http/router.hpp"

#include <algorithm>
#include <exception>

#include <spdlog/spdlog.h>

namespace flowd {

namespace http = boost::beast::http;

namespace {

// A route path ending in '/' (other than "/" itself) serves everything under it.
bool matches(std::string_view route_path, std::string_view path) noexcept {
    if (route_path.size() > 1 && route_path.back() == '/') {
        return path.starts_with(route_path);
    }
    return route_path == path;
}

}  // namespace

void router::add(http::verb method, std::string path, route_id route, handler h,
                 route_access access, head_check check) {
    entries_.push_back({method, std::move(path), route, std::move(h), access, std::move(check)});
}

std::optional<response> router::precheck(request_context& ctx) const {
    http::verb const method = ctx.req.method();
    for (entry const& e : entries_) {
        if (!matches(e.path, ctx.path) || e.method != method) {
            continue;
        }
        if (e.access != route_access::open && guard_) {
            ctx.precheck = true;
            std::optional<response> refused = guard_(ctx, e.access);
            ctx.precheck = false;
            if (refused) {
                return refused;
            }
        }
        return e.check ? e.check(ctx) : std::nullopt;
    }
    // No route takes it: 404 or 405, answered without a handler.
    return std::get<response>(dispatch(ctx));
}

route_id router::route_of(std::string_view path) const noexcept {
    for (entry const& e : entries_) {
        if (matches(e.path, path)) {
            return e.route;
        }
    }
    return route_id::other;
}

std::string router::allow_of(std::string_view path) const {
    std::string allow;
    auto add = [&allow](std::string_view m) {
        if (allow.find(m) != std::string::npos) {
            return;
        }
        if (!allow.empty()) {
            allow += ", ";
        }
        allow += m;
    };
    for (entry const& e : entries_) {
        if (!matches(e.path, path)) {
            continue;
        }
        add(http::to_string(e.method));
        if (e.method == http::verb::get) {
            add("HEAD");  // every GET route answers HEAD (SPEC Others)
        }
    }
    if (!allow.empty()) {
        add("OPTIONS");
    }
    return allow;
}

std::vector<std::pair<route_id, std::string>> router::allowed() const {
    std::vector<std::pair<route_id, std::string>> out;
    for (entry const& e : entries_) {
        std::string const allow = allow_of(e.path);
        std::size_t pos = 0;
        while (pos < allow.size()) {
            std::size_t const comma = allow.find(", ", pos);
            std::string method =
                allow.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
            std::pair<route_id, std::string> pair{e.route, std::move(method)};
            if (std::find(out.begin(), out.end(), pair) == out.end()) {
                out.push_back(std::move(pair));
            }
            pos = comma == std::string::npos ? allow.size() : comma + 2;
        }
    }
    return out;
}

handler_result router::dispatch(request_context& ctx) const {
    http::verb const method = ctx.req.method();
    for (entry const& e : entries_) {
        if (!matches(e.path, ctx.path)) {
            continue;
        }
        // HEAD runs the GET handler: same status and headers; the session sends no body.
        if (e.method == method || (method == http::verb::head && e.method == http::verb::get)) {
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
                return response{internal_error_response(ctx.request_id)};
            } catch (...) {
                // Not every library throws std::exception; the client still gets its 500.
                log_->error("request {} {} {} failed: unknown exception", ctx.request_id,
                            ctx.req.method_string(), ctx.path);
                return response{internal_error_response(ctx.request_id)};
            }
        }
    }
    std::string const allow = allow_of(ctx.path);
    if (allow.empty()) {
        return response{
            problem_response(problem{problem_type::not_found,
                                     "no resource at " + quote_value(ctx.path) +
                                         "; flowd serves /flows, /healthz, /readyz and /metrics",
                                     {},
                                     {}},
                             ctx.request_id)};
    }
    if (method == http::verb::options) {
        // Needs no token (SPEC Security): it reveals only what this page documents.
        string_response r{http::status::no_content, 11};
        r.set(http::field::allow, allow);
        return response{std::move(r)};
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
