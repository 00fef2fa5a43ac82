#include "flowd/http/health_handlers.hpp"

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace flowd {
namespace {

namespace http = boost::beast::http;

std::string slug(response const& r) {
    std::string const type = nlohmann::json::parse(std::get<string_response>(r).body()).at("type");
    return type.substr(type.rfind('/') + 1);
}

TEST(ReadyzTest, ReadyIs200) {
    readiness r;
    r.ready = true;
    response const out = readyz_answer(r, "id");
    EXPECT_EQ(status_of(out), 200U);
    EXPECT_EQ(std::get<string_response>(out).body(), R"({"status":"ready"})");
}

TEST(ReadyzTest, StartingAndShuttingDownAre503) {
    readiness r;
    EXPECT_EQ(slug(readyz_answer(r, "id")), "starting");
    r.draining = true;
    EXPECT_EQ(slug(readyz_answer(r, "id")), "shutting-down");
}

// What a ready node may still lack, in the order /readyz names it.
TEST(ReadyzTest, AHaltedNodeComesBeforeCatchingUpAndCatchingUpBeforeTheLog) {
    readiness r;
    r.ready = true;
    r.log_failed = true;
    EXPECT_EQ(slug(readyz_answer(r, "id")), "log-unavailable");
    r.catching_up_at = 41;
    response const catching_up = readyz_answer(r, "id");
    EXPECT_EQ(slug(catching_up), "cluster-unavailable");
    EXPECT_EQ(std::get<string_response>(catching_up)[http::field::retry_after], "1");
    EXPECT_NE(std::get<string_response>(catching_up).body().find("applied sequence 41"),
              std::string::npos);
    r.halted_because = "a batch failed to apply";
    response const halted = readyz_answer(r, "id");
    EXPECT_EQ(status_of(halted), 503U);
    EXPECT_NE(std::get<string_response>(halted).body().find("a batch failed to apply"),
              std::string::npos);
    EXPECT_EQ(std::get<string_response>(halted)[http::field::retry_after], "");
}

}  // namespace
}  // namespace flowd
