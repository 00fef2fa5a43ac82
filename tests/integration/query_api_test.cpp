// GET /flows ranges and formats, GET /flows/summary, GET /hours, ETag/304, against the
// real binary.

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <string>

#include <boost/beast/http/field.hpp>
#include <gtest/gtest.h>

#include "flowd/codec/gzip.hpp"
#include "server_fixture.hpp"

namespace flowd::test {
namespace {

namespace http = boost::beast::http;

class QueryApiTest : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_EQ(client_.post("/flows", seed_batch()).result_int(), 200U); }
    flowd_process flowd_;
    http_client client_{flowd_.port()};
};

TEST_F(QueryApiTest, SpecSummaryExampleIsByteExact) {
    auto const r = client_.get("/flows/summary?from=0&to=24&group_by=src_app&top=1");

    EXPECT_EQ(r.result_int(), 200U);
    EXPECT_EQ(r[http::field::content_type], "application/json");
    EXPECT_EQ(r.body(), R"({"from":0,"to":24,"group_by":["src_app"],"order_by":"bytes",)"
                        R"("top":[{"src_app":"baz","bytes_tx":300,"bytes_rx":1500}],)"
                        R"("other":{"groups":1,"bytes_tx":300,"bytes_rx":900},)"
                        R"("total":{"groups":2,"bytes_tx":600,"bytes_rx":2400}})");
}

TEST_F(QueryApiTest, SummaryCsv) {
    auto const r = client_.get("/flows/summary?from=0&to=24&group_by=src_app&top=1&format=csv");

    EXPECT_EQ(r[http::field::content_type], "text/csv; charset=utf-8");
    EXPECT_EQ(r.body(),
              "rank,src_app,bytes_tx,bytes_rx\r\n1,baz,300,1500\r\nother,,300,900\r\n"
              "total,,600,2400\r\n");
}

TEST_F(QueryApiTest, RangeGroupedByVpcInEveryFormat) {
    std::string const target = "/flows?from=0&to=24&group_by=vpc_id";

    auto const json = client_.get(target);
    auto const ndjson = client_.get(target + "&format=ndjson");
    auto const csv = client_.get(target, {{"Accept", "text/csv"}});
    auto const by_accept = client_.get(target, {{"Accept", "application/x-ndjson"}});

    EXPECT_EQ(json.body(), R"([{"vpc_id":"vpc-0","bytes_tx":500,"bytes_rx":1900},)"
                           R"({"vpc_id":"vpc-1","bytes_tx":100,"bytes_rx":500}])");
    EXPECT_EQ(ndjson[http::field::content_type], "application/x-ndjson");
    EXPECT_EQ(ndjson.body(),
              "{\"vpc_id\":\"vpc-0\",\"bytes_tx\":500,\"bytes_rx\":1900}\n"
              "{\"vpc_id\":\"vpc-1\",\"bytes_tx\":100,\"bytes_rx\":500}\n");
    EXPECT_EQ(csv[http::field::content_type], "text/csv; charset=utf-8");
    EXPECT_EQ(csv.body(), "vpc_id,bytes_tx,bytes_rx\r\nvpc-0,500,1900\r\nvpc-1,100,500\r\n");
    EXPECT_EQ(by_accept.body(), ndjson.body());
}

TEST_F(QueryApiTest, FiltersOrderAndLimit) {
    auto const r = client_.get(
        "/flows?from=0&to=3&src_app=foo&src_app=baz&vpc_id_exclude=vpc-1&order_by=bytes&limit=2");

    EXPECT_EQ(
        r.body(),
        R"([{"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":300,"bytes_rx":900,"hour":1},)"
        R"({"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":1}])");
}

TEST_F(QueryApiTest, HoursListsPerHourTotals) {
    auto const r = client_.get("/hours");

    EXPECT_EQ(r.result_int(), 200U);
    EXPECT_EQ(r.body(), R"([{"hour":1,"keys":2,"bytes_tx":400,"bytes_rx":1400,"sealed":false},)"
                        R"({"hour":2,"keys":2,"bytes_tx":200,"bytes_rx":1000,"sealed":false}])");
    EXPECT_EQ(client_.get("/hours?hour=2").body(),
              R"([{"hour":2,"keys":2,"bytes_tx":200,"bytes_rx":1000,"sealed":false}])");
}

TEST_F(QueryApiTest, EveryAnswerCarriesCachingHeaders) {
    for (std::string const target :
         {"/flows?hour=1", "/flows?from=0&to=5&group_by=hour", "/flows/summary?hour=1", "/hours"}) {
        SCOPED_TRACE(target);
        auto const r = client_.get(target);

        EXPECT_EQ(r.result_int(), 200U);
        EXPECT_EQ(r[http::field::vary], "Accept, Accept-Encoding");
        EXPECT_EQ(r[http::field::cache_control], "no-cache");
        EXPECT_EQ(r[http::field::etag].size(), 34U);
    }
}

TEST_F(QueryApiTest, IfNoneMatchAnswers304UntilTheRangeChanges) {
    std::string const target = "/flows/summary?from=0&to=3";
    auto const first = client_.get(target);
    std::string const etag(first[http::field::etag]);

    auto const again = client_.get(target, {{"If-None-Match", etag}});
    EXPECT_EQ(again.result_int(), 304U);
    EXPECT_TRUE(again.body().empty());
    EXPECT_EQ(again[http::field::etag], etag);

    // A batch outside the range leaves it; one inside moves it.
    ASSERT_EQ(client_.post("/flows", "[" + flow_json("new", "x", "v", 1, 1, 7) + "]").result_int(),
              200U);
    EXPECT_EQ(client_.get(target, {{"If-None-Match", etag}}).result_int(), 304U);
    ASSERT_EQ(client_.post("/flows", "[" + flow_json("new", "x", "v", 1, 1, 2) + "]").result_int(),
              200U);
    auto const changed = client_.get(target, {{"If-None-Match", etag}});
    EXPECT_EQ(changed.result_int(), 200U);
    EXPECT_NE(changed[http::field::etag], etag);
}

TEST_F(QueryApiTest, EtagDependsOnFormatAndCoding) {
    std::string const target = "/flows?from=0&to=3";
    std::string const json(client_.get(target)[http::field::etag]);
    std::string const csv(client_.get(target + "&format=csv")[http::field::etag]);
    auto const gz = client_.get(target, {{"Accept-Encoding", "gzip"}});

    EXPECT_NE(json, csv);
    EXPECT_NE(json, std::string(gz[http::field::etag]));
    EXPECT_EQ(gz[http::field::content_encoding], "gzip");
    EXPECT_EQ(
        client_.get(target, {{"If-None-Match", json}, {"Accept-Encoding", "gzip"}}).result_int(),
        200U);
}

TEST_F(QueryApiTest, LimitsAreQueryTooLarge) {
    EXPECT_TRUE(is_problem(client_.get("/flows?from=0&to=745"), 422, "query-too-large"));
    EXPECT_TRUE(is_problem(client_.get("/flows?hour=1&from=0&to=2"), 400, "invalid-query"));
    EXPECT_TRUE(
        is_problem(client_.get("/flows/summary?hour=1&group_by=hour"), 400, "invalid-query"));
    EXPECT_TRUE(is_problem(client_.get("/hours?src_app=a"), 400, "invalid-query"));
}

TEST_F(QueryApiTest, QueriesAreCountedInMetrics) {
    auto const before = parse_metrics(client_.get("/metrics").body());
    EXPECT_EQ(metric_value(before, "flowd_query_rows_scanned_total", {{"route", "/flows/summary"}}),
              0.0);
    EXPECT_EQ(metric_value(before, "flowd_query_duration_seconds_count", {{"route", "/hours"}}),
              0.0);

    (void)client_.get("/flows/summary?from=0&to=24");
    (void)client_.get("/flows?from=0&to=1000");
    auto const after = parse_metrics(client_.get("/metrics").body());

    EXPECT_EQ(metric_value(after, "flowd_query_rows_scanned_total", {{"route", "/flows/summary"}}),
              4.0);
    EXPECT_EQ(
        metric_value(after, "flowd_query_duration_seconds_count", {{"route", "/flows/summary"}}),
        1.0);
    EXPECT_EQ(metric_value(after, "flowd_limit_rejections_total", {{"limit", "max_query_hours"}}),
              1.0);
}

TEST(QueryApiLimitsTest, ScanAndGroupLimitsFromConfig) {
    flowd_process flowd({}, {{"FLOWD_MAX_QUERY_SCAN_ROWS", "3"}, {"FLOWD_MAX_QUERY_GROUPS", "1"}});
    http_client client{flowd.port()};
    ASSERT_EQ(client.post("/flows", seed_batch()).result_int(), 200U);

    auto const scan = client.get("/flows?from=0&to=3");
    auto const groups = client.get("/flows/summary?hour=2");

    EXPECT_TRUE(is_problem(scan, 422, "query-too-large"));
    EXPECT_NE(scan.body().find("max_query_scan_rows (3)"), std::string::npos) << scan.body();
    EXPECT_TRUE(is_problem(groups, 422, "query-too-large"));
    EXPECT_NE(groups.body().find("max_query_groups (1)"), std::string::npos) << groups.body();

    // SPEC's GET order: 422 before 304, even for an If-None-Match that matches anything.
    EXPECT_TRUE(is_problem(client.get("/flows/summary?hour=2", {{"If-None-Match", "*"}}), 422,
                           "query-too-large"));
    // Within the bound, a query that had to be computed to know still revalidates.
    std::string const one_group = "/flows/summary?hour=1&group_by=vpc_id";
    auto const first = client.get(one_group);
    ASSERT_EQ(first.result_int(), 200U) << first.body();
    auto const again =
        client.get(one_group, {{"If-None-Match", std::string(first[http::field::etag])}});
    EXPECT_EQ(again.result_int(), 304U);
    EXPECT_TRUE(again.body().empty());
}

TEST(QueryApiEtagTest, EtagSurvivesARestartWithADataDirectory) {
    temp_dir dir;
    std::string etag;
    {
        flowd_process flowd({"--data-dir", dir.path()});
        http_client client{flowd.port()};
        ASSERT_EQ(client.post("/flows", seed_batch()).result_int(), 200U);
        etag = std::string(client.get("/flows/summary?from=0&to=24")[http::field::etag]);
        flowd.signal(SIGTERM);
        ASSERT_EQ(flowd.wait_exit(), 0);
    }
    flowd_process again({"--data-dir", dir.path()});
    http_client client{again.port()};
    ASSERT_TRUE(eventually([&] { return client.get("/readyz").result_int() == 200; }));

    EXPECT_EQ(client.get("/flows/summary?from=0&to=24")[http::field::etag], etag);
}

TEST(QueryApiStreamTest, LargeRangeAnswersAreStreamedAndGzipped) {
    flowd_process flowd;
    http_client client{flowd.port()};
    std::string batch = "[";
    for (int i = 0; i < 3000; ++i) {
        batch += (i == 0 ? "" : ",") + flow_json("app" + std::to_string(i), "d", "v", 1, 2,
                                                 static_cast<std::uint32_t>(i % 3));
    }
    ASSERT_EQ(client.post("/flows", batch + "]").result_int(), 200U);

    auto const plain = client.get("/flows?from=0&to=3&format=ndjson");
    auto const gz = client.get("/flows?from=0&to=3&format=ndjson", {{"Accept-Encoding", "gzip"}});

    EXPECT_EQ(plain[http::field::transfer_encoding], "chunked");
    EXPECT_GT(plain.body().size(), 64U * 1024);
    EXPECT_EQ(std::count(plain.body().begin(), plain.body().end(), '\n'), 3000);
    auto inflated = flowd::gunzip(gz.body(), std::size_t{1} << 30);
    ASSERT_TRUE(inflated);
    EXPECT_EQ(*inflated, plain.body());
}

}  // namespace
}  // namespace flowd::test
