#include "flowd/http/router.hpp"

#include <memory>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/null_sink.h>

namespace flowd {
namespace {

namespace http = boost::beast::http;

class RouterTest : public ::testing::Test {
protected:
    RouterTest() {
        routes_.add(
            http::verb::get, "/flows", route_id::flows,
            [](request_context&) -> handler_result { return response{json_response(200, "[]")}; });
        routes_.add(http::verb::post, "/flows", route_id::flows,
                    [](request_context&) -> handler_result {
                        return response{json_response(200, "{\"accepted\":0}")};
                    });
        routes_.add(http::verb::get, "/healthz", route_id::healthz,
                    [](request_context&) -> handler_result {
                        return response{text_response(200, "text/plain", "ok")};
                    });
        routes_.add(http::verb::get, "/boom", route_id::other,
                    [](request_context&) -> handler_result {
                        throw std::runtime_error("secret internal detail /etc/passwd");
                    });
    }

    string_response dispatch(http::verb method, std::string_view path) {
        request req{method, std::string(path), 11};
        request_context ctx{req, "req-42", path, "", false};
        handler_result result = routes_.dispatch(ctx);
        EXPECT_TRUE(std::holds_alternative<response>(result));
        response r = std::get<response>(std::move(result));
        EXPECT_TRUE(std::holds_alternative<string_response>(r));
        return std::get<string_response>(std::move(r));
    }

    router routes_{std::make_shared<spdlog::logger>(
        "router-test", std::make_shared<spdlog::sinks::null_sink_mt>())};
};

TEST_F(RouterTest, DispatchesToTheHandlerOfMethodAndPath) {
    string_response const get = dispatch(http::verb::get, "/flows");
    string_response const post = dispatch(http::verb::post, "/flows");

    EXPECT_EQ(get.result_int(), 200U);
    EXPECT_EQ(get.body(), "[]");
    EXPECT_EQ(post.body(), "{\"accepted\":0}");
}

TEST_F(RouterTest, UnknownPathIsNotFoundProblem) {
    string_response const r = dispatch(http::verb::get, "/nope");

    EXPECT_EQ(r.result_int(), 404U);
    EXPECT_EQ(r[http::field::content_type], "application/problem+json");
    auto const body = nlohmann::json::parse(r.body());
    EXPECT_EQ(body.at("type"), "https://flowd.invalid/problems/not-found");
    EXPECT_EQ(body.at("status"), 404);
    EXPECT_EQ(body.at("instance"), "req-42");
}

TEST_F(RouterTest, PathMatchIsExact) {
    EXPECT_EQ(dispatch(http::verb::get, "/flows/").result_int(), 404U);
    EXPECT_EQ(dispatch(http::verb::get, "/FLOWS").result_int(), 404U);
}

TEST_F(RouterTest, WrongMethodIsMethodNotAllowedWithAllow) {
    string_response const r = dispatch(http::verb::delete_, "/flows");

    EXPECT_EQ(r.result_int(), 405U);
    EXPECT_EQ(r[http::field::allow], "GET, HEAD, POST, OPTIONS");
    EXPECT_EQ(r[http::field::content_type], "application/problem+json");
    auto const body = nlohmann::json::parse(r.body());
    EXPECT_EQ(body.at("type"), "https://flowd.invalid/problems/method-not-allowed");
    EXPECT_EQ(body.at("status"), 405);
}

TEST_F(RouterTest, AllowListsOnlyTheMethodsOfThatPath) {
    string_response const r = dispatch(http::verb::post, "/healthz");

    EXPECT_EQ(r.result_int(), 405U);
    EXPECT_EQ(r[http::field::allow], "GET, HEAD, OPTIONS");
}

// SPEC Others: HEAD runs the GET route (the session drops the body); OPTIONS is 204 with
// Allow and needs no route of its own.
TEST_F(RouterTest, HeadRunsTheGetRoute) {
    string_response const get = dispatch(http::verb::get, "/healthz");
    string_response const head = dispatch(http::verb::head, "/healthz");

    EXPECT_EQ(head.result_int(), get.result_int());
    EXPECT_EQ(head.body(), get.body());
}

TEST_F(RouterTest, OptionsIsNoContentWithAllow) {
    string_response const r = dispatch(http::verb::options, "/flows");

    EXPECT_EQ(r.result_int(), 204U);
    EXPECT_EQ(r[http::field::allow], "GET, HEAD, POST, OPTIONS");
    EXPECT_TRUE(r.body().empty());
    EXPECT_EQ(dispatch(http::verb::options, "/nope").result_int(), 404U);
}

TEST_F(RouterTest, ExceptionInHandlerIsInternalErrorWithoutItsText) {
    string_response const r = dispatch(http::verb::get, "/boom");

    EXPECT_EQ(r.result_int(), 500U);
    EXPECT_EQ(r.body().find("secret"), std::string::npos);
    EXPECT_EQ(r.body().find("passwd"), std::string::npos);
    auto const body = nlohmann::json::parse(r.body());
    EXPECT_EQ(body.at("type"), "https://flowd.invalid/problems/internal-error");
    EXPECT_EQ(body.at("instance"), "req-42");
}

TEST_F(RouterTest, NonStandardExceptionInHandlerIsInternalError) {
    routes_.add(http::verb::get, "/throws-int", route_id::other,
                [](request_context&) -> handler_result { throw 42; });

    string_response const r = dispatch(http::verb::get, "/throws-int");

    EXPECT_EQ(r.result_int(), 500U);
    EXPECT_EQ(nlohmann::json::parse(r.body()).at("type"),
              "https://flowd.invalid/problems/internal-error");
}

TEST_F(RouterTest, RouteOfKnownAndUnknownPaths) {
    EXPECT_EQ(routes_.route_of("/flows"), route_id::flows);
    EXPECT_EQ(routes_.route_of("/healthz"), route_id::healthz);
    EXPECT_EQ(routes_.route_of("/secret"), route_id::other);
}

TEST_F(RouterTest, PathEndingInSlashTakesEverythingUnderIt) {
    routes_.add(http::verb::get, "/ui/", route_id::ui, [](request_context& ctx) -> handler_result {
        return response{text_response(200, "text/plain", std::string(ctx.path))};
    });

    EXPECT_EQ(dispatch(http::verb::get, "/ui/app.js").body(), "/ui/app.js");
    EXPECT_EQ(dispatch(http::verb::get, "/ui/").body(), "/ui/");
    EXPECT_EQ(dispatch(http::verb::get, "/ui").result_int(), 404U);
    EXPECT_EQ(dispatch(http::verb::post, "/ui/x").result_int(), 405U);
    EXPECT_EQ(routes_.route_of("/ui/a/b"), route_id::ui);
    EXPECT_EQ(routes_.allow_of("/ui/app.css"), "GET, HEAD, OPTIONS");
}

TEST_F(RouterTest, DeferredResultPassesThrough) {
    routes_.add(http::verb::put, "/later", route_id::other, [](request_context&) -> handler_result {
        return deferred{[](respond_fn respond) { respond(json_response(202, "{}")); }};
    });
    request req{http::verb::put, "/later", 11};
    request_context ctx{req, "id", "/later", "", false};
    std::optional<response> answered;

    handler_result result = routes_.dispatch(ctx);
    ASSERT_TRUE(std::holds_alternative<deferred>(result));
    std::get<deferred>(result).start([&answered](response r) { answered = std::move(r); });

    ASSERT_TRUE(answered.has_value());
    EXPECT_EQ(status_of(*answered), 202U);
}

}  // namespace
}  // namespace flowd
