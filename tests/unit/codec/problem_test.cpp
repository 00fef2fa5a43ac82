#include "flowd/codec/problem.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace flowd {
namespace {

struct catalogue_entry {
    problem_type type;
    unsigned status;
    std::string_view slug;
};

// SPEC "Wire details" and the status of each error in "POST /flows".
std::vector<catalogue_entry> const catalogue{
    {problem_type::invalid_json, 400, "invalid-json"},
    {problem_type::invalid_record, 400, "invalid-record"},
    {problem_type::invalid_query, 400, "invalid-query"},
    {problem_type::unsupported_media_type, 415, "unsupported-media-type"},
    {problem_type::payload_too_large, 413, "payload-too-large"},
    {problem_type::too_many_records, 413, "too-many-records"},
    {problem_type::header_too_large, 431, "header-too-large"},
    {problem_type::counter_overflow, 422, "counter-overflow"},
    {problem_type::hour_out_of_retention, 422, "hour-out-of-retention"},
    {problem_type::idempotency_key_reused, 422, "idempotency-key-reused"},
    {problem_type::idempotency_key_in_flight, 409, "idempotency-key-in-flight"},
    {problem_type::unauthorized, 401, "unauthorized"},
    {problem_type::forbidden, 403, "forbidden"},
    {problem_type::rate_limited, 429, "rate-limited"},
    {problem_type::store_full, 507, "store-full"},
    {problem_type::not_found, 404, "not-found"},
    {problem_type::method_not_allowed, 405, "method-not-allowed"},
    {problem_type::shutting_down, 503, "shutting-down"},
    {problem_type::overloaded, 503, "overloaded"},
    {problem_type::log_unavailable, 503, "log-unavailable"},
    {problem_type::cluster_unavailable, 503, "cluster-unavailable"},
    {problem_type::internal_error, 500, "internal-error"},
    {problem_type::request_timeout, 408, "request-timeout"},
    {problem_type::not_implemented, 501, "not-implemented"},
    {problem_type::tls_required, 400, "tls-required"},
    {problem_type::starting, 503, "starting"},
    {problem_type::query_too_large, 422, "query-too-large"},
    {problem_type::hour_sealed, 422, "hour-sealed"},
};

TEST(ProblemTest, EveryTypeHasTheSpecStatusSlugAndATitle) {
    for (catalogue_entry const& e : catalogue) {
        SCOPED_TRACE(std::string(e.slug));

        EXPECT_EQ(status_of(e.type), e.status);
        EXPECT_EQ(slug_of(e.type), e.slug);
        EXPECT_FALSE(title_of(e.type).empty());
    }
}

TEST(ProblemTest, TypeUriIsBaseAndSlug) {
    problem const p{problem_type::store_full, "full", {}, {}};

    auto const j = nlohmann::json::parse(to_json(p, "req-1"));

    EXPECT_EQ(j.at("type"), "https://flowd.invalid/problems/store-full");
}

TEST(ProblemTest, BodyHasTypeTitleStatusDetailAndInstanceInOrder) {
    problem const p{problem_type::invalid_query, "hour is missing", {}, {}};

    std::string const body = to_json(p, "abc-123");

    EXPECT_EQ(
        body,
        R"({"type":"https://flowd.invalid/problems/invalid-query","title":"Invalid query string",)"
        R"("status":400,"detail":"hour is missing","instance":"abc-123"})");
}

TEST(ProblemTest, OmitsRecordAndFieldWhenUnset) {
    problem const p{problem_type::invalid_json, "bad", {}, {}};

    auto const j = nlohmann::json::parse(to_json(p, "id"));

    EXPECT_FALSE(j.contains("record"));
    EXPECT_FALSE(j.contains("field"));
}

TEST(ProblemTest, IncludesRecordAndFieldWhenSet) {
    problem const p{problem_type::invalid_record, "bad hour", 3, "hour"};

    auto const j = nlohmann::json::parse(to_json(p, "id"));

    EXPECT_EQ(j.at("record"), 3);
    EXPECT_EQ(j.at("field"), "hour");
}

TEST(ProblemTest, IncludesRecordZero) {
    problem const p{problem_type::invalid_record, "bad", 0, "src_app"};

    auto const j = nlohmann::json::parse(to_json(p, "id"));

    EXPECT_EQ(j.at("record"), 0);
}

TEST(ProblemTest, RecordWithEmptyFieldStillNamesTheField) {
    problem const p{problem_type::invalid_record, "record 2 must be a JSON object", 2, ""};

    auto const j = nlohmann::json::parse(to_json(p, "id"));

    EXPECT_EQ(j.at("record"), 2);
    EXPECT_EQ(j.at("field"), "");
}

TEST(ProblemTest, EscapesDetailAndInstance) {
    problem const p{problem_type::invalid_json, "quote \" backslash \\ newline \n", {}, {}};

    auto const j = nlohmann::json::parse(to_json(p, "id\"x"));

    EXPECT_EQ(j.at("detail"), "quote \" backslash \\ newline \n");
    EXPECT_EQ(j.at("instance"), "id\"x");
}

TEST(ProblemTest, InvalidUtf8InDetailDoesNotThrow) {
    problem const p{problem_type::invalid_record, "got 'caf\xc3' and '\xff\xfe'", 0, "src_app"};

    std::string body;
    EXPECT_NO_THROW(body = to_json(p, "id"));

    auto const j = nlohmann::json::parse(body);
    EXPECT_EQ(j.at("status"), 400);
    EXPECT_TRUE(j.at("detail").get<std::string>().starts_with("got 'caf"));
}

TEST(ProblemTest, BadRequestIsAboutBlank) {
    problem const p{problem_type::bad_request, "unparsable request", {}, {}};

    auto const j = nlohmann::json::parse(to_json(p, "id"));

    EXPECT_EQ(j.at("type"), "about:blank");
    EXPECT_EQ(j.at("status"), 400);
    EXPECT_EQ(status_of(problem_type::bad_request), 400U);
}

TEST(ProblemTest, QuoteValueKeepsShortValues) {
    EXPECT_EQ(quote_value("abc"), "'abc'");
    EXPECT_EQ(quote_value(""), "''");
}

TEST(ProblemTest, QuoteValueCutsAt64Bytes) {
    std::string const exact(64, 'x');
    std::string const longer(65, 'y');

    EXPECT_EQ(quote_value(exact), "'" + exact + "'");
    EXPECT_EQ(quote_value(longer), "'" + std::string(64, 'y') + "...'");
}

}  // namespace
}  // namespace flowd
