#include "flowd/http/middleware.hpp"

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <spdlog/sinks/null_sink.h>

namespace flowd {
namespace {

namespace http = boost::beast::http;

std::shared_ptr<spdlog::logger> quiet_log() {
    return std::make_shared<spdlog::logger>("middleware-test",
                                            std::make_shared<spdlog::sinks::null_sink_mt>());
}

class MiddlewareTest : public ::testing::Test {
protected:
    MiddlewareTest() {
        routes_.add(http::verb::post, "/throws", route_id::other,
                    [](request_context&) -> handler_result {
                        return deferred{[](respond_fn) { throw std::runtime_error("submit"); }};
                    });
        routes_.add(http::verb::post, "/answers-then-throws", route_id::other,
                    [](request_context&) -> handler_result {
                        return deferred{[](respond_fn respond) {
                            respond(json_response(200, "{\"accepted\":1}"));
                            throw std::runtime_error("after the answer");
                        }};
                    });
    }

    // Every answer `later` received for one request.
    std::vector<unsigned> handle(std::string_view target) {
        request req{http::verb::post, std::string(target), 11};
        req.set(http::field::host, "flowd");
        std::vector<unsigned> answers;
        std::optional<response> now = pipeline_.handle(
            req, request_meta{}, [&](response r) { answers.push_back(status_of(r)); });
        EXPECT_FALSE(now.has_value());
        return answers;
    }

    prometheus::Registry registry_;
    service_metrics metrics_{registry_, "test", "none"};
    router routes_{quiet_log()};
    middleware pipeline_{routes_, metrics_, quiet_log()};
};

// The router's catch ends when dispatch() returns: a deferred start that throws used to
// leave the request unanswered and the exception to unwind into io_context::run.
TEST_F(MiddlewareTest, ADeferredStartThatThrowsIsAnswered500) {
    std::vector<unsigned> answers;
    EXPECT_NO_THROW(answers = handle("/throws"));
    EXPECT_EQ(answers, std::vector<unsigned>{500});
}

TEST_F(MiddlewareTest, AStartThatAnsweredBeforeThrowingIsAnsweredOnce) {
    std::vector<unsigned> answers;
    EXPECT_NO_THROW(answers = handle("/answers-then-throws"));
    EXPECT_EQ(answers, std::vector<unsigned>{200});
}

}  // namespace
}  // namespace flowd
