#include <cstdint>
#include <string>
#include <vector>

#include <boost/beast/http/field.hpp>
#include <gtest/gtest.h>

#include "flowd/codec/gzip.hpp"
#include "server_fixture.hpp"

namespace flowd::test {
namespace {

namespace http = boost::beast::http;

constexpr std::uint64_t max_counter = 9223372036854775807ULL;

nlohmann::json body_json(http_response const& r) {
    return nlohmann::json::parse(r.body());
}

// A valid one-record batch of exactly `size` bytes: the record plus an ignored field padded
// with 'x' (the batch is valid JSON however long the padding is).
std::string batch_of_size(std::size_t size) {
    std::string const head = "[" + flow_json("a", "b", "v", 1, 2, 3);
    std::string const open = head.substr(0, head.size() - 1) + R"(,"pad":")";
    std::string const close = "\"}]";
    return open + std::string(size - open.size() - close.size(), 'x') + close;
}

std::string chunked_post(std::string const& body) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx", body.size());
    return request_head("POST", "/flows",
                        {{"Content-Type", "application/json"}, {"Transfer-Encoding", "chunked"}}) +
           size + "\r\n" + body + "\r\n0\r\n\r\n";
}

class ProblemsTest : public ::testing::Test {
protected:
    flowd_process flowd_;
    http_client client_{flowd_.port()};
};

TEST_F(ProblemsTest, MalformedJsonIsInvalidJson) {
    std::string const ok = flow_json("a", "b", "v", 1, 1, 1);
    for (std::string const& body :
         {std::string("[{"), std::string(), std::string("{}"), "[" + ok + ",]", "[" + ok + "] x",
          std::string("nul"), "[" + ok}) {
        SCOPED_TRACE(body);

        auto r = client_.post("/flows", body);

        EXPECT_TRUE(is_problem(r, 400, "invalid-json"));
    }
}

TEST_F(ProblemsTest, InvalidRecordNamesRecordAndField) {
    struct bad_case {
        std::string record;
        std::string field;
    };
    std::vector<bad_case> const cases{
        {R"({"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":-1,"bytes_rx":2,"hour":1})",
         "bytes_tx"},
        {R"({"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1.0,"bytes_rx":2,"hour":1})",
         "bytes_tx"},
        {R"({"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":1e2,"hour":1})",
         "bytes_rx"},
        {R"({"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":-0,"bytes_rx":2,"hour":1})",
         "bytes_tx"},
        {R"({"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":"1","bytes_rx":2,"hour":1})",
         "bytes_tx"},
        {R"({"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":null,"hour":1})",
         "bytes_rx"},
        {R"({"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":true,"bytes_rx":2,"hour":1})",
         "bytes_tx"},
        {R"({"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":9223372036854775808,"bytes_rx":2,"hour":1})",
         "bytes_tx"},
        {R"({"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":2147483648})",
         "hour"},
        {R"({"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2})", "hour"},
        {R"({"src_app":"","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":1})",
         "src_app"},
        {R"({"src_app":"a","dest_app":")" + std::string(256, 'd') +
             R"(","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":1})",
         "dest_app"},
        {R"({"src_app":"a","dest_app":"b","vpc_id":7,"bytes_tx":1,"bytes_rx":2,"hour":1})",
         "vpc_id"},
        {R"({"src_app":"a","dest_app":"b","vpc_id":"v","vpc_id":"w","bytes_tx":1,"bytes_rx":2,"hour":1})",
         "vpc_id"},
    };
    for (auto const& c : cases) {
        SCOPED_TRACE(c.record);

        auto r = client_.post("/flows",
                              "[" + flow_json("ok", "ok", "v", 1, 1, 1) + "," + c.record + "]");

        ASSERT_TRUE(is_problem(r, 400, "invalid-record"));
        auto const j = body_json(r);
        EXPECT_EQ(j["record"], 1);
        EXPECT_EQ(j["field"], c.field);
    }
    EXPECT_EQ(client_.get("/flows?hour=1").body(), "[]");
}

TEST_F(ProblemsTest, MaximumValuesAreValid) {
    std::string const name(255, 'n');

    auto r = client_.post(
        "/flows", "[" + flow_json(name, "b", "v", max_counter, max_counter, 2147483647) + "]");
    auto got = client_.get("/flows?hour=2147483647");

    EXPECT_EQ(r.result_int(), 200U) << r.body();
    EXPECT_EQ(got.body(),
              "[" + flow_json(name, "b", "v", max_counter, max_counter, 2147483647) + "]");
}

TEST_F(ProblemsTest, NdjsonRecordIndexCountsNonBlankLines) {
    std::string const body =
        flow_json("a", "b", "v", 1, 1, 1) + "\n\n   \n" + flow_json("a", "b", "v", 1, 1, 1) + "\n" +
        R"({"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2})" + "\n";

    auto r = client_.post("/flows", body, "application/x-ndjson");

    ASSERT_TRUE(is_problem(r, 400, "invalid-record"));
    EXPECT_EQ(body_json(r)["record"], 2);
    EXPECT_EQ(body_json(r)["field"], "hour");
}

TEST_F(ProblemsTest, BadQueryIsInvalidQuery) {
    for (std::string const target :
         {"/flows", "/flows?", "/flows?hour=", "/flows?hour=abc", "/flows?hour=-1",
          "/flows?hour=+1", "/flows?hour=1.0", "/flows?hour=2147483648",
          "/flows?hour=99999999999999999999", "/flows?hour=1&hour=1", "/flows?hour=1&src_app=",
          "/flows?hour=1&bogus=1", "/flows?hour=1&limit=1&limit=2", "/flows?hour=1&src_app=%zz",
          "/flows?hour=1&src_app=%4", "/flows?src_app=a", "/flows?hour=1&min_seq=1"}) {
        SCOPED_TRACE(target);

        auto r = client_.get(target);

        EXPECT_TRUE(is_problem(r, 400, "invalid-query"));
    }
}

TEST_F(ProblemsTest, UnknownPathIsNotFound) {
    auto get = client_.get("/nope");
    auto post = client_.post("/flows/extra", "[]");

    EXPECT_TRUE(is_problem(get, 404, "not-found"));
    EXPECT_TRUE(is_problem(post, 404, "not-found"));
}

TEST_F(ProblemsTest, WrongMethodIsMethodNotAllowedWithAllow) {
    http_request del{http::verb::delete_, "/flows", 11};
    http_request put{http::verb::put, "/healthz", 11};

    auto on_flows = client_.send(std::move(del));
    auto on_healthz = client_.send(std::move(put));
    auto post_metrics = client_.post("/metrics", "[]");

    EXPECT_TRUE(is_problem(on_flows, 405, "method-not-allowed"));
    std::string const allow(on_flows[http::field::allow]);
    EXPECT_NE(allow.find("GET"), std::string::npos) << allow;
    EXPECT_NE(allow.find("POST"), std::string::npos) << allow;
    EXPECT_TRUE(is_problem(on_healthz, 405, "method-not-allowed"));
    EXPECT_EQ(on_healthz[http::field::allow], "GET, HEAD, OPTIONS");
    EXPECT_TRUE(is_problem(post_metrics, 405, "method-not-allowed"));
    EXPECT_EQ(post_metrics[http::field::allow], "GET, HEAD, OPTIONS");
}

TEST_F(ProblemsTest, UnsupportedMediaType) {
    std::string const body = "[" + flow_json("a", "b", "v", 1, 1, 1) + "]";

    auto none = client_.post("/flows", body, "");
    auto text = client_.post("/flows", body, "text/plain");
    auto form = client_.post("/flows", body, "application/x-www-form-urlencoded");
    auto brotli = client_.post("/flows", body, "application/json", {{"Content-Encoding", "br"}});

    EXPECT_TRUE(is_problem(none, 415, "unsupported-media-type"));
    EXPECT_TRUE(is_problem(text, 415, "unsupported-media-type"));
    EXPECT_TRUE(is_problem(form, 415, "unsupported-media-type"));
    EXPECT_TRUE(is_problem(brotli, 415, "unsupported-media-type"));
    EXPECT_EQ(client_.get("/flows?hour=1").body(), "[]");
}

TEST_F(ProblemsTest, CounterOverflowRejectsBatchAndKeepsTotals) {
    ASSERT_EQ(client_.post("/flows", "[" + flow_json("a", "b", "v", max_counter - 10, 5, 1) + "]")
                  .result_int(),
              200U);
    auto before = client_.get("/flows?hour=1");

    auto r = client_.post("/flows", "[" + flow_json("new", "key", "v", 1, 1, 1) + "," +
                                        flow_json("a", "b", "v", 11, 1, 1) + "]");
    auto after = client_.get("/flows?hour=1");
    auto exact = client_.post("/flows", "[" + flow_json("a", "b", "v", 10, 0, 1) + "]");

    ASSERT_TRUE(is_problem(r, 422, "counter-overflow"));
    EXPECT_EQ(body_json(r)["record"], 1);
    EXPECT_EQ(body_json(r)["field"], "bytes_tx");
    EXPECT_EQ(after.body(), before.body());
    EXPECT_EQ(exact.result_int(), 200U);
    EXPECT_EQ(client_.get("/flows?hour=1").body(),
              "[" + flow_json("a", "b", "v", max_counter, 5, 1) + "]");
}

TEST_F(ProblemsTest, CounterOverflowWithinOneBatch) {
    std::string const half = std::to_string(max_counter / 2 + 1);

    auto r =
        client_.post("/flows", "[" + flow_json("a", "b", "v", 1, max_counter / 2 + 1, 1) + "," +
                                   flow_json("a", "b", "v", 1, max_counter / 2 + 1, 1) + "]");

    ASSERT_TRUE(is_problem(r, 422, "counter-overflow"));
    EXPECT_EQ(body_json(r)["record"], 1);
    EXPECT_EQ(body_json(r)["field"], "bytes_rx");
    EXPECT_EQ(client_.get("/flows?hour=1").body(), "[]");
}

TEST_F(ProblemsTest, HeaderTooLarge) {
    auto r = client_.get("/healthz", {{"X-Big", std::string(20 * 1024, 'h')}});

    EXPECT_TRUE(is_problem(r, 431, "header-too-large"));
}

TEST_F(ProblemsTest, GarbageThatIsNotHttpIsBadRequest) {
    auto answers = client_.raw("\x16\x03\x01\x02\x00 this is not http\r\n\r\n", 1);

    ASSERT_EQ(answers.size(), 1U);
    EXPECT_EQ(answers[0].result_int(), 400U);
    EXPECT_EQ(answers[0][http::field::content_type], "application/problem+json");
    EXPECT_FALSE(answers[0]["X-Request-Id"].empty());
    EXPECT_EQ(body_json(answers[0])["instance"], std::string(answers[0]["X-Request-Id"]));
    EXPECT_FALSE(answers[0].keep_alive());
}

TEST(ProblemsLimitsTest, BodyOverMaxBodyBytesIsPayloadTooLarge) {
    flowd_process flowd({}, {{"FLOWD_MAX_BODY_BYTES", "1000"}});
    std::string const exact = batch_of_size(1000);
    std::string const over = batch_of_size(1001);
    ASSERT_EQ(exact.size(), 1000U);

    http_client a{flowd.port()};
    auto accepted = a.post("/flows", exact);
    http_client b{flowd.port()};
    auto rejected = b.post("/flows", over);

    EXPECT_EQ(accepted.result_int(), 200U) << accepted.body();
    EXPECT_EQ(accepted.body(), R"({"accepted":1})");
    EXPECT_TRUE(is_problem(rejected, 413, "payload-too-large"));
    EXPECT_FALSE(rejected.keep_alive());
    http_client c{flowd.port()};
    EXPECT_EQ(c.get("/flows?hour=3").body(), "[" + flow_json("a", "b", "v", 1, 2, 3) + "]");
}

TEST(ProblemsLimitsTest, ChunkedBodyOverMaxBodyBytesIsPayloadTooLarge) {
    flowd_process flowd({}, {{"FLOWD_MAX_BODY_BYTES", "1000"}});

    http_client a{flowd.port()};
    auto accepted = a.raw(chunked_post(batch_of_size(1000)), 1);
    http_client b{flowd.port()};
    auto rejected = b.raw(chunked_post(batch_of_size(1001)), 1);

    EXPECT_EQ(accepted.at(0).result_int(), 200U) << accepted.at(0).body();
    EXPECT_TRUE(is_problem(rejected.at(0), 413, "payload-too-large"));
}

TEST(ProblemsLimitsTest, GzipBodyInflatingPastMaxBodyBytesIsPayloadTooLarge) {
    flowd_process flowd({}, {{"FLOWD_MAX_BODY_BYTES", "1000"}});
    std::string const exact = flowd::gzip(batch_of_size(1000));
    std::string const over = flowd::gzip(batch_of_size(1001));
    ASSERT_LT(over.size(), 1000U);

    http_client client{flowd.port()};
    auto accepted =
        client.post("/flows", exact, "application/json", {{"Content-Encoding", "gzip"}});
    auto rejected = client.post("/flows", over, "application/json", {{"Content-Encoding", "gzip"}});

    EXPECT_EQ(accepted.result_int(), 200U) << accepted.body();
    EXPECT_TRUE(is_problem(rejected, 413, "payload-too-large"));
}

TEST(ProblemsLimitsTest, TooManyRecords) {
    flowd_process flowd({}, {{"FLOWD_MAX_RECORDS_PER_BATCH", "2"}});
    http_client client{flowd.port()};
    std::string const rec = flow_json("a", "b", "v", 1, 1, 1);

    auto two = client.post("/flows", "[" + rec + "," + rec + "]");
    auto three = client.post("/flows", "[" + rec + "," + rec + "," + rec + "]");
    auto three_ndjson =
        client.post("/flows", rec + "\n" + rec + "\n\n" + rec + "\n", "application/x-ndjson");

    EXPECT_EQ(two.result_int(), 200U);
    EXPECT_TRUE(is_problem(three, 413, "too-many-records"));
    EXPECT_TRUE(is_problem(three_ndjson, 413, "too-many-records"));
    EXPECT_EQ(client.get("/flows?hour=1").body(), "[" + flow_json("a", "b", "v", 2, 2, 1) + "]");
}

TEST(ProblemsLimitsTest, StoreFull) {
    flowd_process flowd({}, {{"FLOWD_MAX_KEYS", "3"}});
    http_client client{flowd.port()};
    std::string const three =
        "[" + flow_json("a", "b", "v", 1, 1, 1) + "," + flow_json("c", "d", "v", 1, 1, 1) + "]";

    auto filled = client.post("/flows", three);
    auto third = client.post("/flows", "[" + flow_json("a", "b", "v", 1, 1, 2) + "]");
    auto fourth = client.post("/flows", "[" + flow_json("a", "b", "v", 5, 5, 1) + "," +
                                            flow_json("x", "y", "v", 1, 1, 1) + "]");
    auto existing = client.post("/flows", "[" + flow_json("c", "d", "v", 1, 1, 1) + "]");

    EXPECT_EQ(filled.result_int(), 200U);
    EXPECT_EQ(third.result_int(), 200U);
    EXPECT_TRUE(is_problem(fourth, 507, "store-full"));
    EXPECT_EQ(existing.result_int(), 200U);
    EXPECT_EQ(client.get("/flows?hour=1").body(), "[" + flow_json("a", "b", "v", 1, 1, 1) + "," +
                                                      flow_json("c", "d", "v", 2, 2, 1) + "]");
}

// SPEC: 404/405, 401/403, 429, 415, 413, 400, 422, 507 - the first that applies wins.
TEST(ProblemsPrecedenceTest, NotFoundAndMethodNotAllowedWinOverMediaType) {
    flowd_process flowd;
    http_client client{flowd.port()};
    http_request put{http::verb::put, "/flows", 11};
    put.set(http::field::content_type, "text/plain");
    put.body() = "junk";

    auto not_found = client.post("/elsewhere", "junk", "text/plain");
    auto not_allowed = client.send(std::move(put));

    EXPECT_TRUE(is_problem(not_found, 404, "not-found"));
    EXPECT_TRUE(is_problem(not_allowed, 405, "method-not-allowed"));
}

TEST(ProblemsPrecedenceTest, MediaTypeWinsOverPayloadTooLarge) {
    flowd_process flowd({}, {{"FLOWD_MAX_BODY_BYTES", "1000"}});
    http_client a{flowd.port()};
    http_client b{flowd.port()};

    auto text = a.post("/flows", batch_of_size(1001), "text/plain");
    auto brotli =
        b.post("/flows", batch_of_size(1001), "application/json", {{"Content-Encoding", "br"}});

    EXPECT_TRUE(is_problem(text, 415, "unsupported-media-type"));
    EXPECT_TRUE(is_problem(brotli, 415, "unsupported-media-type"));
}

TEST(ProblemsPrecedenceTest, MediaTypeWinsOverInvalidJson) {
    flowd_process flowd;
    http_client client{flowd.port()};

    auto r = client.post("/flows", "[{", "text/plain");

    EXPECT_TRUE(is_problem(r, 415, "unsupported-media-type"));
}

TEST(ProblemsPrecedenceTest, PayloadTooLargeWinsOverInvalidJson) {
    flowd_process flowd({}, {{"FLOWD_MAX_BODY_BYTES", "1000"}});
    http_client client{flowd.port()};

    auto r = client.post("/flows", "[{" + std::string(1100, ' '));

    EXPECT_TRUE(is_problem(r, 413, "payload-too-large"));
}

TEST(ProblemsPrecedenceTest, TooManyRecordsWinsOverInvalidRecord) {
    flowd_process flowd({}, {{"FLOWD_MAX_RECORDS_PER_BATCH", "2"}});
    http_client client{flowd.port()};
    std::string const bad =
        R"({"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":-1,"bytes_rx":1,"hour":1})";
    std::string const ok = flow_json("a", "b", "v", 1, 1, 1);

    auto array = client.post("/flows", "[" + bad + "," + ok + "," + ok + "]");
    auto ndjson = client.post("/flows", bad + "\n" + ok + "\n" + ok + "\n", "application/x-ndjson");

    EXPECT_TRUE(is_problem(array, 413, "too-many-records"));
    EXPECT_TRUE(is_problem(ndjson, 413, "too-many-records"));
}

TEST(ProblemsPrecedenceTest, InvalidRecordWinsOverCounterOverflow) {
    flowd_process flowd;
    http_client client{flowd.port()};
    std::string const big = flow_json("a", "b", "v", max_counter, 1, 1);
    std::string const bad =
        R"({"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":1})";
    ASSERT_EQ(client.post("/flows", "[" + big + "]").result_int(), 200U);

    auto against_store = client.post("/flows", "[" + big + "," + bad + "]");
    auto within_batch =
        client.post("/flows", "[" + flow_json("c", "d", "v", max_counter, 1, 1) + "," +
                                  flow_json("c", "d", "v", 1, 1, 1) + "," + bad + "]");

    EXPECT_TRUE(is_problem(against_store, 400, "invalid-record"));
    EXPECT_TRUE(is_problem(within_batch, 400, "invalid-record"));
    EXPECT_EQ(body_json(within_batch)["record"], 2);
}

TEST(ProblemsPrecedenceTest, CounterOverflowWinsOverStoreFull) {
    flowd_process flowd({}, {{"FLOWD_MAX_KEYS", "1"}});
    http_client client{flowd.port()};
    ASSERT_EQ(
        client.post("/flows", "[" + flow_json("a", "b", "v", max_counter, 1, 1) + "]").result_int(),
        200U);

    auto r = client.post("/flows", "[" + flow_json("new", "key", "v", 1, 1, 1) + "," +
                                       flow_json("a", "b", "v", 1, 1, 1) + "]");

    EXPECT_TRUE(is_problem(r, 422, "counter-overflow"));
}

}  // namespace
}  // namespace flowd::test
