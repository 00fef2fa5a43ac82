#include "flowd/query/plan.hpp"

#include <string>

#include <gtest/gtest.h>

namespace flowd {
namespace {

// The problem a query is rejected with; records a failure when it is accepted.
problem rejection(std::string_view query, query_route route = query_route::flows,
                  query_limits const& limits = {}) {
    auto const q = parse_query_plan(route, query, limits);
    if (q) {
        ADD_FAILURE() << "query was accepted: " << query;
        return problem{};
    }
    return q.error();
}

query_plan accepted(std::string_view query, query_route route = query_route::flows) {
    auto const q = parse_query_plan(route, query);
    if (!q) {
        ADD_FAILURE() << "query was refused: " << query << ": " << q.error().detail;
        return query_plan{};
    }
    return *q;
}

TEST(QueryPlanTest, HourIsTheRangeOfOneHourWithTheDefaultGrouping) {
    query_plan const q = accepted("hour=1");

    EXPECT_EQ(q.from, 1U);
    EXPECT_EQ(q.to, 2U);
    EXPECT_FALSE(q.has_filters());
    EXPECT_TRUE(q.plain_hour());
    EXPECT_EQ(q.group_by.size(), 4U);
    EXPECT_EQ(q.order, order_key::none);
}

TEST(QueryPlanTest, FromToIsAHalfOpenRange) {
    query_plan const q = accepted("from=0&to=24");

    EXPECT_EQ(q.from, 0U);
    EXPECT_EQ(q.to, 24U);
    EXPECT_FALSE(q.plain_hour());
}

TEST(QueryPlanTest, ToMayBeTwoToThe31) {
    query_plan const q = accepted("from=2147483000&to=2147483648");

    EXPECT_EQ(q.to, 2147483648U);
}

TEST(QueryPlanTest, RangeErrorsAreInvalidQuery) {
    for (std::string_view const bad :
         {"", "src_app=a", "from=1", "to=2", "from=2&to=2", "from=3&to=2", "from=-1&to=2",
          "from=0&to=2147483649", "from=2147483648&to=2147483648", "hour=1&from=0&to=2",
          "hour=1&to=2", "hour=2147483648", "hour=x", "hour=+1", "hour=%201", "hour=1.0",
          "hour=1e3", "hour=0x10", "hour=1&hour=1"}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(rejection(bad).type, problem_type::invalid_query);
    }
}

TEST(QueryPlanTest, RangeOverMaxQueryHoursIsQueryTooLarge) {
    problem const p = rejection("from=0&to=745");

    EXPECT_EQ(p.type, problem_type::query_too_large);
    EXPECT_NE(p.detail.find("max_query_hours (744)"), std::string::npos) << p.detail;
    EXPECT_NE(p.detail.find("745 hours"), std::string::npos) << p.detail;
    EXPECT_TRUE(parse_query_plan(query_route::flows, "from=0&to=744"));
}

TEST(QueryPlanTest, MaxQueryHoursIsConfigurable) {
    query_limits limits;
    limits.max_query_hours = 2;

    EXPECT_EQ(rejection("from=0&to=3", query_route::flows, limits).type,
              problem_type::query_too_large);
    EXPECT_TRUE(parse_query_plan(query_route::flows, "from=0&to=2", limits));
}

TEST(QueryPlanTest, RepeatedFilterIsAnInList) {
    query_plan const q =
        accepted("hour=1&src_app=a&src_app=b&vpc_id_prefix=vpc-&dest_app_exclude=x");

    EXPECT_EQ(q.filters[0].equals, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(q.filters[2].prefixes, (std::vector<std::string>{"vpc-"}));
    EXPECT_EQ(q.filters[1].excludes, (std::vector<std::string>{"x"}));
    EXPECT_FALSE(q.plain_hour());
}

TEST(QueryPlanTest, FilterSemantics) {
    dimension_filter f;
    f.equals = {"a"};
    f.prefixes = {"web-"};
    f.excludes = {"web-2"};

    EXPECT_TRUE(f.passes("a"));
    EXPECT_TRUE(f.passes("web-1"));
    EXPECT_FALSE(f.passes("web-2"));
    EXPECT_FALSE(f.passes("b"));
    dimension_filter only_exclude;
    only_exclude.excludes = {"x"};
    EXPECT_TRUE(only_exclude.passes("y"));
    EXPECT_FALSE(only_exclude.passes("x"));
}

TEST(QueryPlanTest, NonFilterParametersMayNotRepeat) {
    for (std::string_view const bad :
         {"hour=1&limit=1&limit=2", "hour=1&group_by=src_app&group_by=hour",
          "hour=1&order_by=bytes&order_by=bytes", "hour=1&format=csv&format=csv",
          "from=1&from=1&to=2"}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(rejection(bad).type, problem_type::invalid_query);
    }
}

TEST(QueryPlanTest, GroupByIsADistinctListOfKnownFields) {
    query_plan const q = accepted("hour=1&group_by=vpc_id,src_app");

    EXPECT_EQ(q.group_by, (std::vector<group_field>{group_field::vpc_id, group_field::src_app}));
    EXPECT_TRUE(q.group_by_given);
    for (std::string_view const bad :
         {"hour=1&group_by=src_app,src_app", "hour=1&group_by=bytes_tx", "hour=1&group_by=",
          "hour=1&group_by=src_app,", "hour=1&group_by=,src_app", "hour=1&group_by=Src_app"}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(rejection(bad).type, problem_type::invalid_query);
    }
}

TEST(QueryPlanTest, OrderLimitAndFormat) {
    query_plan const q = accepted("hour=1&order_by=bytes_rx&limit=5&format=ndjson");

    EXPECT_EQ(q.order, order_key::bytes_rx);
    EXPECT_EQ(q.limit, 5U);
    EXPECT_EQ(q.format, answer_format::ndjson);
    for (std::string_view const bad :
         {"hour=1&order_by=hour", "hour=1&limit=0", "hour=1&limit=-1", "hour=1&limit=x",
          "hour=1&format=xml", "hour=1&format=JSON", "hour=1&top=3", "hour=1&series=hour"}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(rejection(bad).type, problem_type::invalid_query);
    }
}

TEST(QueryPlanTest, SummaryDefaultsAndRules) {
    query_plan const q = accepted("from=0&to=24", query_route::summary);

    EXPECT_EQ(q.top, 10U);
    EXPECT_EQ(q.order, order_key::bytes);
    EXPECT_EQ(q.group_by.size(), 3U);
    query_plan const s =
        accepted("from=0&to=24&top=1000&series=hour&format=csv", query_route::summary);
    EXPECT_EQ(s.top, 1000U);
    EXPECT_TRUE(s.series_hour);
    for (std::string_view const bad :
         {"from=0&to=24&group_by=hour", "from=0&to=24&group_by=src_app,hour", "from=0&to=24&top=0",
          "from=0&to=24&top=1001", "from=0&to=24&series=day", "from=0&to=24&format=ndjson",
          "from=0&to=24&limit=3"}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(rejection(bad, query_route::summary).type, problem_type::invalid_query);
    }
}

TEST(QueryPlanTest, HoursTakesOnlyARange) {
    query_plan const all = accepted("", query_route::hours);
    EXPECT_EQ(all.from, 0U);
    EXPECT_EQ(all.to, 2147483648U);
    query_plan const wide = accepted("from=0&to=100000", query_route::hours);
    EXPECT_EQ(wide.to, 100000U);
    EXPECT_EQ(rejection("src_app=a", query_route::hours).type, problem_type::invalid_query);
    EXPECT_EQ(rejection("hour=1&limit=1", query_route::hours).type, problem_type::invalid_query);
}

TEST(QueryPlanTest, UnknownEmptyAndMalformedAreInvalid) {
    for (std::string_view const bad :
         {"hour=1&colour=red", "hour=1&src_app=", "hour=", "hour=1&vpc_id", "hour=1&=a",
          "hour=1&src_app=%zz", "hour=1&src_app=a%4", "hour=1%", "hour=1&min_seq=3"}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(rejection(bad).type, problem_type::invalid_query);
    }
}

TEST(QueryPlanTest, EmptySegmentsAreIgnored) {
    query_plan const q = accepted("&hour=1&&src_app=a&");

    EXPECT_EQ(q.from, 1U);
    EXPECT_EQ(q.filters[0].equals, (std::vector<std::string>{"a"}));
}

TEST(QueryPlanTest, PlusIsASpaceAndEncodedPlusAPlus) {
    query_plan const q = accepted("hour=1&src_app=a+b&dest_app=c%2Bd");

    EXPECT_EQ(q.filters[0].equals.front(), "a b");
    EXPECT_EQ(q.filters[1].equals.front(), "c+d");
}

TEST(QueryPlanTest, PercentDecodesNamesAndValues) {
    query_plan const q = accepted("%68our=%31&src%5Fapp=caf%C3%A9");

    EXPECT_EQ(q.from, 1U);
    EXPECT_EQ(q.filters[0].equals.front(), "caf\xc3\xa9");
}

TEST(QueryPlanTest, MinSeqIsKnownOnlyInClusterMode) {
    auto const cluster = parse_query_plan(query_route::flows, "hour=1&min_seq=42", {}, true);

    ASSERT_TRUE(cluster);
    EXPECT_EQ(cluster->min_seq, 42U);
    EXPECT_FALSE(parse_query_plan(query_route::flows, "hour=1&min_seq=42"));
    EXPECT_FALSE(parse_query_plan(query_route::flows, "hour=1&min_seq=-1", {}, true));
    EXPECT_FALSE(parse_query_plan(query_route::flows, "hour=1&min_seq=1&min_seq=2", {}, true));
    EXPECT_FALSE(
        parse_query_plan(query_route::flows, "hour=1&min_seq=99999999999999999999", {}, true));
}

TEST(QueryPlanTest, EqualQueriesWrittenDifferentlyNormaliseTheSame) {
    EXPECT_EQ(accepted("hour=3&src_app=b&src_app=a").normalised,
              accepted("src_app=a&from=3&to=4&src_app=b").normalised);
    EXPECT_NE(accepted("hour=3").normalised, accepted("hour=4").normalised);
    EXPECT_NE(accepted("hour=3&limit=1").normalised, accepted("hour=3&limit=2").normalised);
    // Found by the query fuzzer: a leading zero is the same number.
    EXPECT_EQ(accepted("hour=3&limit=0311").normalised, accepted("hour=3&limit=311").normalised);
}

TEST(QueryPlanTest, AcceptNegotiation) {
    EXPECT_EQ(negotiate_format(""), answer_format::json);
    EXPECT_EQ(negotiate_format("text/html"), answer_format::json);
    EXPECT_EQ(negotiate_format("text/csv"), answer_format::csv);
    EXPECT_EQ(negotiate_format("application/x-ndjson"), answer_format::ndjson);
    EXPECT_EQ(negotiate_format("application/ndjson"), answer_format::ndjson);
    EXPECT_EQ(negotiate_format("TEXT/CSV; charset=utf-8"), answer_format::csv);
    EXPECT_EQ(negotiate_format("text/csv;q=0.5, application/x-ndjson;q=0.9"),
              answer_format::ndjson);
    EXPECT_EQ(negotiate_format("text/csv, application/json"), answer_format::json);
    EXPECT_EQ(negotiate_format("text/csv, application/x-ndjson"), answer_format::ndjson);
    EXPECT_EQ(negotiate_format("*/*"), answer_format::json);
    EXPECT_EQ(negotiate_format("text/csv;q=0"), answer_format::json);
    EXPECT_EQ(negotiate_format("application/x-ndjson", false), answer_format::json);
    EXPECT_EQ(negotiate_format("application/json;q=0.1, text/*"), answer_format::csv);
}

}  // namespace
}  // namespace flowd
