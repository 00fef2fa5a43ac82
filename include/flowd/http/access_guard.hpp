#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include <spdlog/logger.h>

#include "flowd/auth/rate_limiter.hpp"
#include "flowd/auth/tokens.hpp"
#include "flowd/http/router.hpp"
#include "flowd/metrics/service_metrics.hpp"

namespace flowd {

// The router's guard for /flows: bearer-token authentication (when a tokens file is
// configured), then the client's requests budget (a POST's records budget is charged by
// the ingest's admission, once the body is decoded). Answers 401/403/429 as problem+json. Holds
// references to long-lived services only. The class is thread-safe. No concurrent call to any API
// of this type causes a data race.
class access_guard {
public:
    access_guard(token_store const& tokens, rate_limiter& limiter, service_metrics& metrics,
                 std::shared_ptr<spdlog::logger> log)
        : tokens_(tokens), limiter_(limiter), metrics_(metrics), log_(std::move(log)) {}

    // Authenticates (filling ctx.token_name and ctx.auth_hold) and charges one request.
    [[nodiscard]] std::optional<response> check(request_context& ctx, route_access access) const;

    // The rate-limit identity: the mTLS client CN, else the token name, else the remote
    // address (an IPv6 address by its /64, which one host typically holds whole).
    [[nodiscard]] static std::string client_key(request_context const& ctx);

    // Authenticates only (401/403), charging nothing: for a head whose body is not read yet.
    [[nodiscard]] std::optional<response> authenticate(request_context& ctx,
                                                       route_access access) const;

private:
    token_store const& tokens_;
    rate_limiter& limiter_;
    service_metrics& metrics_;
    std::shared_ptr<spdlog::logger> log_;
};

}  // namespace flowd
