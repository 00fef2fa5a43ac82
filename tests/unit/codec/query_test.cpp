#include "flowd/codec/query.hpp"

#include <string>

#include <gtest/gtest.h>

namespace flowd {
namespace {

// The problem a query is rejected with; records a failure when it is accepted.
problem rejection(std::string_view query) {
    auto const q = parse_flows_query(query);
    if (q) {
        ADD_FAILURE() << "query was accepted: " << query;
        return problem{};
    }
    return q.error();
}

TEST(QueryTest, ParsesHourOnly) {
    auto const q = parse_flows_query("hour=1");

    ASSERT_TRUE(q);
    EXPECT_EQ(q->hour, 1U);
    EXPECT_FALSE(q->src_app);
    EXPECT_FALSE(q->dest_app);
    EXPECT_FALSE(q->vpc_id);
}

TEST(QueryTest, MinSeqIsKnownOnlyInClusterMode) {
    auto const cluster = parse_flows_query("hour=1&min_seq=42", true);
    auto const local = parse_flows_query("hour=1&min_seq=42");

    ASSERT_TRUE(cluster);
    EXPECT_EQ(cluster->min_seq, 42U);
    EXPECT_FALSE(local);
}

TEST(QueryTest, MinSeqMustBeOneBaseTenInteger) {
    EXPECT_FALSE(parse_flows_query("hour=1&min_seq=-1", true));
    EXPECT_FALSE(parse_flows_query("hour=1&min_seq=1x", true));
    EXPECT_FALSE(parse_flows_query("hour=1&min_seq=99999999999999999999", true));
    EXPECT_FALSE(parse_flows_query("hour=1&min_seq=1&min_seq=2", true));
}

TEST(QueryTest, ParsesEveryFilterInAnyOrder) {
    auto const q = parse_flows_query("vpc_id=vpc-0&src_app=foo&hour=7&dest_app=bar");

    ASSERT_TRUE(q);
    EXPECT_EQ(q->hour, 7U);
    EXPECT_EQ(q->src_app, "foo");
    EXPECT_EQ(q->dest_app, "bar");
    EXPECT_EQ(q->vpc_id, "vpc-0");
}

TEST(QueryTest, AcceptsHourZeroAndLargest) {
    auto const zero = parse_flows_query("hour=0");
    auto const largest = parse_flows_query("hour=2147483647");

    ASSERT_TRUE(zero);
    ASSERT_TRUE(largest);
    EXPECT_EQ(zero->hour, 0U);
    EXPECT_EQ(largest->hour, 2147483647U);
}

TEST(QueryTest, MissingHourIsInvalid) {
    EXPECT_EQ(rejection("src_app=foo").type, problem_type::invalid_query);
}

TEST(QueryTest, EmptyQueryIsMissingHour) {
    EXPECT_EQ(rejection("").type, problem_type::invalid_query);
}

TEST(QueryTest, NonNumericHourIsInvalid) {
    EXPECT_EQ(rejection("hour=x").type, problem_type::invalid_query);
}

TEST(QueryTest, NegativeHourIsInvalid) {
    EXPECT_EQ(rejection("hour=-1").type, problem_type::invalid_query);
}

TEST(QueryTest, HourPastRangeIsInvalid) {
    EXPECT_EQ(rejection("hour=2147483648").type, problem_type::invalid_query);
    EXPECT_EQ(rejection("hour=99999999999999999999999").type, problem_type::invalid_query);
}

TEST(QueryTest, HourWithSignSpaceFractionOrExponentIsInvalid) {
    EXPECT_EQ(rejection("hour=+1").type, problem_type::invalid_query);
    EXPECT_EQ(rejection("hour=%201").type, problem_type::invalid_query);
    EXPECT_EQ(rejection("hour=1.0").type, problem_type::invalid_query);
    EXPECT_EQ(rejection("hour=1e3").type, problem_type::invalid_query);
    EXPECT_EQ(rejection("hour=0x10").type, problem_type::invalid_query);
}

TEST(QueryTest, RepeatedHourIsInvalid) {
    EXPECT_EQ(rejection("hour=1&hour=1").type, problem_type::invalid_query);
}

TEST(QueryTest, RepeatedFilterIsInvalid) {
    EXPECT_EQ(rejection("hour=1&src_app=a&src_app=b").type, problem_type::invalid_query);
}

TEST(QueryTest, UnknownParameterIsInvalid) {
    problem const p = rejection("hour=1&limit=10");

    EXPECT_EQ(p.type, problem_type::invalid_query);
    EXPECT_NE(p.detail.find("limit"), std::string::npos);
}

TEST(QueryTest, MinSeqIsUnknownOutsideClusterMode) {
    EXPECT_EQ(rejection("hour=1&min_seq=3").type, problem_type::invalid_query);
}

TEST(QueryTest, EmptyValueIsInvalid) {
    EXPECT_EQ(rejection("hour=1&src_app=").type, problem_type::invalid_query);
    EXPECT_EQ(rejection("hour=").type, problem_type::invalid_query);
}

TEST(QueryTest, ParameterWithoutValueIsInvalid) {
    EXPECT_EQ(rejection("hour=1&vpc_id").type, problem_type::invalid_query);
}

TEST(QueryTest, EmptyParameterIsInvalid) {
    EXPECT_EQ(rejection("hour=1&&src_app=a").type, problem_type::invalid_query);
    EXPECT_EQ(rejection("hour=1&=a").type, problem_type::invalid_query);
}

TEST(QueryTest, PercentDecodesValues) {
    auto const q =
        parse_flows_query("hour=%31&src_app=caf%C3%A9&dest_app=a%2fb%26c%3Dd&vpc_id=vpc%200");

    ASSERT_TRUE(q);
    EXPECT_EQ(q->hour, 1U);
    EXPECT_EQ(q->src_app, "caf\xc3\xa9");
    EXPECT_EQ(q->dest_app, "a/b&c=d");
    EXPECT_EQ(q->vpc_id, "vpc 0");
}

TEST(QueryTest, PercentDecodesNames) {
    auto const q = parse_flows_query("%68our=2&src%5Fapp=x");

    ASSERT_TRUE(q);
    EXPECT_EQ(q->hour, 2U);
    EXPECT_EQ(q->src_app, "x");
}

TEST(QueryTest, PlusStaysAPlus) {
    auto const q = parse_flows_query("hour=1&src_app=a+b&dest_app=c%2Bd");

    ASSERT_TRUE(q);
    EXPECT_EQ(q->src_app, "a+b");
    EXPECT_EQ(q->dest_app, "c+d");
}

TEST(QueryTest, BadPercentEncodingIsInvalid) {
    EXPECT_EQ(rejection("hour=1&src_app=%zz").type, problem_type::invalid_query);
    EXPECT_EQ(rejection("hour=1&src_app=a%4").type, problem_type::invalid_query);
    EXPECT_EQ(rejection("hour=1&src_app=a%").type, problem_type::invalid_query);
    EXPECT_EQ(rejection("hour=1%").type, problem_type::invalid_query);
}

TEST(PercentDecodeTest, DecodesHexPairsInEitherCase) {
    EXPECT_EQ(percent_decode("%41%62%7e%7E"), "Ab~~");
}

TEST(PercentDecodeTest, DecodesEscapeAtTheVeryEnd) {
    EXPECT_EQ(percent_decode("ab%21"), "ab!");
}

TEST(PercentDecodeTest, DecodesNulAndHighBytes) {
    EXPECT_EQ(percent_decode("%00%FF"), std::string("\0\xff", 2));
}

TEST(PercentDecodeTest, LeavesPlusAndPlainTextAlone) {
    EXPECT_EQ(percent_decode("a+b c"), "a+b c");
    EXPECT_EQ(percent_decode(""), "");
}

TEST(PercentDecodeTest, RejectsIncompleteOrNonHexEscapes) {
    EXPECT_EQ(percent_decode("%"), std::nullopt);
    EXPECT_EQ(percent_decode("%4"), std::nullopt);
    EXPECT_EQ(percent_decode("%g1"), std::nullopt);
    EXPECT_EQ(percent_decode("%1g"), std::nullopt);
}

TEST(PercentDecodeTest, DoesNotDecodeTwice) {
    EXPECT_EQ(percent_decode("%2541"), "%41");
}

}  // namespace
}  // namespace flowd
