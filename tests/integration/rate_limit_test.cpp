#include <string>

#include <boost/beast/http/field.hpp>
#include <gtest/gtest.h>

#include "server_fixture.hpp"

namespace flowd::test {
namespace {

namespace http = boost::beast::http;

struct created_token {
    std::string token;
    std::string line;
};

created_token create_token(std::string const& name, std::string const& scopes) {
    run_result const r = run_flowd({"token", "create", "--name", name, "--scopes", scopes});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::size_t const nl = r.out.find('\n');
    return {r.out.substr(0, nl), r.out.substr(nl + 1, r.out.size() - nl - 2)};
}

std::map<std::string, std::string> bearer(std::string const& token) {
    return {{"Authorization", "Bearer " + token}};
}

double metric(std::uint16_t port, std::string const& name,
              std::map<std::string, std::string> const& labels = {}) {
    http_client c{port};
    return metric_value(parse_metrics(c.get("/metrics").body()), name, labels).value_or(-1);
}

bool retry_after_ok(http_response const& r) {
    std::string const v(r[http::field::retry_after]);
    return !v.empty() && v.find_first_not_of("0123456789") == std::string::npos &&
           std::stoi(v) >= 1;
}

class RateLimitTest : public ::testing::Test {
protected:
    RateLimitTest()
        : a_(create_token("client-a", "read,write")),
          b_(create_token("client-b", "read,write")),
          tokens_path_(dir_.write("tokens", a_.line + "\n" + b_.line + "\n")) {}

    temp_dir dir_;
    created_token a_;
    created_token b_;
    std::string tokens_path_;
};

TEST_F(RateLimitTest, ClientOverItsRequestBudgetGets429OthersAreUnaffected) {
    flowd_process flowd{
        {"--tokens-file", tokens_path_},
        {{"FLOWD_RATE_LIMIT_REQUESTS_PER_SECOND", "1"}, {"FLOWD_RATE_LIMIT_REQUESTS_BURST", "5"}}};
    http_client a{flowd.port()};
    http_client b{flowd.port()};

    // Five pass at once; the bucket refills at 1/s, so the 429 comes within a few more.
    std::optional<http_response> throttled;
    for (int i = 0; i < 50 && !throttled; ++i) {
        http_response r = a.get("/flows?hour=1", bearer(a_.token));
        if (r.result_int() == 429) {
            throttled = std::move(r);
        } else {
            ASSERT_EQ(r.result_int(), 200U) << r.body();
        }
    }

    ASSERT_TRUE(throttled.has_value());
    EXPECT_TRUE(is_problem(*throttled, 429, "rate-limited"));
    EXPECT_TRUE(retry_after_ok(*throttled)) << (*throttled)[http::field::retry_after];
    EXPECT_EQ(b.get("/flows?hour=1", bearer(b_.token)).result_int(), 200U);
    EXPECT_GE(metric(flowd.port(), "flowd_ratelimit_throttled_total", {{"reason", "requests"}}),
              1.0);
    // Probes are never limited.
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(a.get("/healthz").result_int(), 200U);
    }
}

TEST_F(RateLimitTest, BatchOverTheRecordBudgetIs429AndNotApplied) {
    flowd_process flowd{
        {"--tokens-file", tokens_path_},
        {{"FLOWD_RATE_LIMIT_RECORDS_PER_SECOND", "1"}, {"FLOWD_RATE_LIMIT_RECORDS_BURST", "100"}}};
    http_client a{flowd.port()};
    http_client b{flowd.port()};
    auto batch = [](std::string const& src, int n) {
        std::string body = "[";
        for (int i = 0; i < n; ++i) {
            body += (i == 0 ? "" : ",") + flow_json(src, "d", "v", 1, 1, 9);
        }
        return body + "]";
    };

    ASSERT_EQ(a.post("/flows", batch("a", 90), "application/json", bearer(a_.token)).result_int(),
              200U);
    http_response const over =
        a.post("/flows", batch("a", 50), "application/json", bearer(a_.token));
    http_response const other =
        b.post("/flows", batch("b", 100), "application/json", bearer(b_.token));

    EXPECT_TRUE(is_problem(over, 429, "rate-limited"));
    EXPECT_TRUE(retry_after_ok(over)) << over[http::field::retry_after];
    EXPECT_EQ(other.result_int(), 200U) << other.body();
    EXPECT_EQ(
        b.get("/flows?hour=9&src_app=a", bearer(b_.token)).body(),
        R"([{"src_app":"a","dest_app":"d","vpc_id":"v","bytes_tx":90,"bytes_rx":90,"hour":9}])");
    EXPECT_EQ(metric(flowd.port(), "flowd_ratelimit_throttled_total", {{"reason", "records"}}),
              1.0);
}

TEST_F(RateLimitTest, WithoutTokensClientsAreLimitedByAddress) {
    flowd_process flowd{
        {},
        {{"FLOWD_RATE_LIMIT_REQUESTS_PER_SECOND", "1"}, {"FLOWD_RATE_LIMIT_REQUESTS_BURST", "3"}}};
    http_client client{flowd.port()};

    bool throttled = false;
    for (int i = 0; i < 50 && !throttled; ++i) {
        throttled = client.get("/flows?hour=1").result_int() == 429;
    }

    EXPECT_TRUE(throttled);
}

}  // namespace
}  // namespace flowd::test
