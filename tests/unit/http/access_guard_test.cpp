#include "flowd/http/access_guard.hpp"

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <prometheus/registry.h>
#include <spdlog/sinks/null_sink.h>

namespace flowd {
namespace {

namespace http = boost::beast::http;
using namespace std::chrono_literals;

std::string line(std::string const& name, std::string const& scopes, std::string const& token) {
    return name + " " + scopes + " sha256:" + to_hex(sha256(token));
}

// A router with the guard on /flows, as server::add_routes sets it up; handlers echo the
// token name they saw.
class AccessGuardTest : public ::testing::Test {
protected:
    explicit AccessGuardTest(rate_limit_options limits = {})
        : limiter_(limits, [this] { return now_; }) {
        routes_.set_guard(
            [this](request_context& ctx, route_access a) { return guard_.check(ctx, a); });
        auto echo = [](request_context& ctx) -> handler_result {
            return response{json_response(200, std::string(ctx.token_name))};
        };
        routes_.add(http::verb::post, "/flows", route_id::flows, echo, route_access::write);
        routes_.add(http::verb::get, "/flows", route_id::flows, echo, route_access::read);
        routes_.add(http::verb::get, "/healthz", route_id::healthz, echo);
    }

    void use_tokens() {
        tokens_.replace(token_set::parse(line("writer", "write", "w-token") + "\n" +
                                             line("reader", "read", "r-token") + "\n" +
                                             line("both", "read,write", "b-token"),
                                         "tokens"));
    }

    string_response call(http::verb method, std::string const& path,
                         std::string const& authorization = "",
                         std::string const& ip = "10.0.0.1") {
        request req{method, path, 11};
        if (!authorization.empty()) {
            req.set(http::field::authorization, authorization);
        }
        request_context ctx{req, "req-1", path, "", false};
        ctx.remote_ip = ip;
        handler_result result = routes_.dispatch(ctx);
        response r = std::get<response>(std::move(result));
        return std::get<string_response>(std::move(r));
    }

    std::string problem_type_of(string_response const& r) {
        return nlohmann::json::parse(r.body()).at("type").get<std::string>();
    }

    rate_limiter::clock::time_point now_{std::chrono::hours(1)};
    prometheus::Registry registry_;
    service_metrics metrics_{registry_, "test", "test"};
    token_store tokens_;
    rate_limiter limiter_;
    std::shared_ptr<spdlog::logger> log_ = std::make_shared<spdlog::logger>(
        "guard-test", std::make_shared<spdlog::sinks::null_sink_mt>());
    access_guard guard_{tokens_, limiter_, metrics_, log_};
    router routes_{log_};
};

TEST_F(AccessGuardTest, WithoutTokensEverythingPassesAnonymously) {
    string_response const r = call(http::verb::post, "/flows");

    EXPECT_EQ(r.result_int(), 200U);
    EXPECT_EQ(r.body(), "");
}

TEST_F(AccessGuardTest, MissingTokenIs401WithBearerChallenge) {
    use_tokens();

    string_response const r = call(http::verb::get, "/flows");

    EXPECT_EQ(r.result_int(), 401U);
    EXPECT_EQ(r[http::field::www_authenticate], "Bearer realm=\"flowd\"");
    EXPECT_EQ(problem_type_of(r), "https://flowd.invalid/problems/unauthorized");
}

TEST_F(AccessGuardTest, UnknownOrMalformedTokenIs401InvalidToken) {
    use_tokens();
    for (std::string const auth : {"Bearer nope", "Basic dXNlcjpwYXNz", "Bearer", "w-token"}) {
        SCOPED_TRACE(auth);

        string_response const r = call(http::verb::post, "/flows", auth);

        EXPECT_EQ(r.result_int(), 401U);
        EXPECT_EQ(r[http::field::www_authenticate],
                  "Bearer realm=\"flowd\", error=\"invalid_token\"");
    }
}

TEST_F(AccessGuardTest, WrongScopeIs403) {
    use_tokens();

    string_response const post = call(http::verb::post, "/flows", "Bearer r-token");
    string_response const get = call(http::verb::get, "/flows", "Bearer w-token");

    EXPECT_EQ(post.result_int(), 403U);
    EXPECT_EQ(problem_type_of(post), "https://flowd.invalid/problems/forbidden");
    EXPECT_NE(std::string(post[http::field::www_authenticate]).find("insufficient_scope"),
              std::string::npos);
    EXPECT_EQ(get.result_int(), 403U);
}

TEST_F(AccessGuardTest, RightScopeReachesTheHandlerWithTheTokenName) {
    use_tokens();

    EXPECT_EQ(call(http::verb::post, "/flows", "Bearer w-token").body(), "writer");
    EXPECT_EQ(call(http::verb::get, "/flows", "bearer r-token").body(), "reader");
    EXPECT_EQ(call(http::verb::post, "/flows", "BEARER b-token").body(), "both");
    EXPECT_EQ(call(http::verb::get, "/flows", "Bearer b-token").body(), "both");
}

TEST_F(AccessGuardTest, OpenRoutesNeedNoToken) {
    use_tokens();

    EXPECT_EQ(call(http::verb::get, "/healthz").result_int(), 200U);
}

TEST_F(AccessGuardTest, NotFoundAndMethodNotAllowedComeBeforeAuth) {
    use_tokens();

    EXPECT_EQ(call(http::verb::get, "/nope").result_int(), 404U);
    EXPECT_EQ(call(http::verb::delete_, "/flows").result_int(), 405U);
}

TEST(AccessGuardKeyTest, ClientKeyPrefersCnThenTokenThenAddress) {
    request req{http::verb::get, "/flows", 11};
    request_context ctx{req, "id", "/flows", "", false};
    ctx.remote_ip = "192.0.2.7";
    EXPECT_EQ(access_guard::client_key(ctx), "ip:192.0.2.7");
    ctx.token_name = "exporter";
    EXPECT_EQ(access_guard::client_key(ctx), "token:exporter");
    ctx.tls_client_cn = "host-1";
    EXPECT_EQ(access_guard::client_key(ctx), "cn:host-1");
}

TEST(AccessGuardKeyTest, Ipv6ClientsAreKeyedByTheirSlash64) {
    request req{http::verb::get, "/flows", 11};
    request_context a{req, "id", "/flows", "", false};
    request_context b{req, "id", "/flows", "", false};
    a.remote_ip = "2001:db8:1:2:aaaa::1";
    b.remote_ip = "2001:db8:1:2:bbbb::9";

    EXPECT_EQ(access_guard::client_key(a), "ip:2001:db8:1:2::/64");
    EXPECT_EQ(access_guard::client_key(a), access_guard::client_key(b));
}

class RateLimitedGuardTest : public AccessGuardTest {
protected:
    RateLimitedGuardTest() : AccessGuardTest(rate_limit_options{{1, 2}, {10, 10}, 1000}) {}
};

TEST_F(RateLimitedGuardTest, OverBudgetIs429WithRetryAfterPerClient) {
    use_tokens();
    ASSERT_EQ(call(http::verb::get, "/flows", "Bearer r-token").result_int(), 200U);
    ASSERT_EQ(call(http::verb::get, "/flows", "Bearer r-token").result_int(), 200U);

    string_response const r = call(http::verb::get, "/flows", "Bearer r-token");

    EXPECT_EQ(r.result_int(), 429U);
    EXPECT_EQ(problem_type_of(r), "https://flowd.invalid/problems/rate-limited");
    EXPECT_EQ(r[http::field::retry_after], "1");
    EXPECT_EQ(call(http::verb::get, "/flows", "Bearer b-token").result_int(), 200U);
    EXPECT_EQ(metrics_.throttled_requests.Value(), 1.0);
}

TEST_F(RateLimitedGuardTest, AuthFailuresComeBeforeTheRateLimit) {
    use_tokens();
    (void)call(http::verb::get, "/flows", "Bearer r-token");
    (void)call(http::verb::get, "/flows", "Bearer r-token");

    EXPECT_EQ(call(http::verb::post, "/flows", "Bearer r-token").result_int(), 403U);
    EXPECT_EQ(call(http::verb::get, "/flows").result_int(), 401U);
}

TEST_F(RateLimitedGuardTest, AnonymousClientsAreLimitedByAddress) {
    EXPECT_EQ(call(http::verb::get, "/flows", "", "10.0.0.1").result_int(), 200U);
    EXPECT_EQ(call(http::verb::get, "/flows", "", "10.0.0.1").result_int(), 200U);
    EXPECT_EQ(call(http::verb::get, "/flows", "", "10.0.0.1").result_int(), 429U);
    EXPECT_EQ(call(http::verb::get, "/flows", "", "10.0.0.2").result_int(), 200U);

    now_ += 1s;

    EXPECT_EQ(call(http::verb::get, "/flows", "", "10.0.0.1").result_int(), 200U);
}

}  // namespace
}  // namespace flowd
