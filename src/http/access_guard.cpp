#include "flowd/http/access_guard.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/beast/http/field.hpp>

namespace flowd {

namespace http = boost::beast::http;

namespace {

constexpr std::string_view realm = "Bearer realm=\"flowd\"";

response unauthorized(request_context const& ctx, std::string detail, bool invalid_token) {
    string_response r = problem_response(
        problem{problem_type::unauthorized, std::move(detail), {}, {}}, ctx.request_id);
    // RFC 6750 section 3: no error code when the request carried no credentials.
    r.set(http::field::www_authenticate,
          invalid_token ? std::string(realm) + ", error=\"invalid_token\"" : std::string(realm));
    return response{std::move(r)};
}

response too_many(request_context const& ctx, std::string detail, std::chrono::seconds wait) {
    string_response r = problem_response(
        problem{problem_type::rate_limited, std::move(detail), {}, {}}, ctx.request_id);
    r.set(http::field::retry_after, std::to_string(wait.count()));
    return response{std::move(r)};
}

}  // namespace

std::string access_guard::client_key(request_context const& ctx) {
    // Prefixes keep the kinds apart: a token named like an address is another client.
    if (!ctx.tls_client_cn.empty()) {
        return "cn:" + std::string(ctx.tls_client_cn);
    }
    if (!ctx.token_name.empty()) {
        return "token:" + std::string(ctx.token_name);
    }
    if (ctx.remote_ip.find(':') != std::string_view::npos) {
        boost::system::error_code ec;
        auto v6 = boost::asio::ip::make_address_v6(ctx.remote_ip, ec);
        if (!ec) {
            auto bytes = v6.to_bytes();
            std::fill(bytes.begin() + 8, bytes.end(), static_cast<unsigned char>(0));
            return "ip:" + boost::asio::ip::address_v6(bytes).to_string() + "/64";
        }
    }
    return "ip:" + std::string(ctx.remote_ip);
}

std::optional<response> access_guard::authenticate(request_context& ctx,
                                                   route_access access) const {
    std::shared_ptr<token_set const> set = tokens_.snapshot();
    if (!set) {
        return std::nullopt;
    }
    auto const fields = ctx.req.equal_range(http::field::authorization);
    if (fields.first == fields.second) {
        return unauthorized(ctx,
                            "this endpoint needs a bearer token: send 'Authorization: Bearer "
                            "<token>' (flowd token create makes one)",
                            false);
    }
    if (std::next(fields.first) != fields.second) {
        return unauthorized(ctx, "the request has more than one Authorization header", true);
    }
    bearer_credentials const cred = parse_bearer(fields.first->value());
    if (cred.what != bearer_credentials::kind::token) {
        return unauthorized(ctx, "the Authorization header is not 'Bearer <token>'", true);
    }
    token_entry const* entry = set->find(cred.token);
    if (entry == nullptr) {
        log_->debug("request {} from {}: unknown bearer token", ctx.request_id, ctx.remote_ip);
        return unauthorized(ctx, "the bearer token is not known to this flowd", true);
    }
    token_scope const needed =
        access == route_access::write ? token_scope::write : token_scope::read;
    if (!entry->allows(needed)) {
        std::string const scope = needed == token_scope::write ? "write" : "read";
        string_response r =
            problem_response(problem{problem_type::forbidden,
                                     "the token '" + entry->name + "' lacks the " + scope +
                                         " scope (it has " + scopes_text(entry->scopes) + ")",
                                     {},
                                     {}},
                             ctx.request_id);
        r.set(http::field::www_authenticate,
              std::string(realm) + ", error=\"insufficient_scope\", scope=\"" + scope + "\"");
        return response{std::move(r)};
    }
    ctx.token_name = entry->name;
    ctx.auth_hold = std::move(set);
    return std::nullopt;
}

std::optional<response> access_guard::check(request_context& ctx, route_access access) const {
    if (auto refused = authenticate(ctx, access)) {
        return refused;
    }
    if (!limiter_.requests_enabled()) {
        return std::nullopt;
    }
    rate_limiter::decision const d = limiter_.admit_request(client_key(ctx));
    if (d.allowed) {
        return std::nullopt;
    }
    metrics_.throttled_requests.Increment();
    return too_many(ctx,
                    "this client is over its request rate (rate_limit_requests_per_second); "
                    "retry after " +
                        std::to_string(d.retry_after.count()) + " s",
                    d.retry_after);
}

}  // namespace flowd
