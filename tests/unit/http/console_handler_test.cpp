#include "flowd/http/console_handler.hpp"

#include <string>

#include <gtest/gtest.h>

namespace flowd {
namespace {

namespace http = boost::beast::http;

string_response get(std::string const& path, std::string const& if_none_match = "") {
    request req{http::verb::get, path, 11};
    if (!if_none_match.empty()) {
        req.set(http::field::if_none_match, if_none_match);
    }
    request_context ctx{req, "req-1", req.target(), "", false};
    handler_result result = path == "/" ? console_redirect(ctx) : console_file_response(ctx);
    return std::get<string_response>(std::get<response>(std::move(result)));
}

TEST(ConsoleHandlerTest, RootRedirectsToTheConsole) {
    string_response const r = get("/");

    EXPECT_EQ(r.result_int(), 302U);
    EXPECT_EQ(r[http::field::location], "/ui/");
}

TEST(ConsoleHandlerTest, IndexIsServedAtTheConsoleRoot) {
    string_response const r = get("/ui/");

    EXPECT_EQ(r.result_int(), 200U);
    EXPECT_EQ(r[http::field::content_type], "text/html; charset=utf-8");
    EXPECT_EQ(r["Content-Security-Policy"], "default-src 'self'");
    EXPECT_NE(r.body().find("<script src=\"/ui/app.js\""), std::string::npos);
}

TEST(ConsoleHandlerTest, EachFileHasItsContentTypeAndAStrongEtag) {
    for (console_file const& f : console_files()) {
        SCOPED_TRACE(std::string(f.name));

        string_response const r = get("/ui/" + std::string(f.name));

        EXPECT_EQ(r.result_int(), 200U);
        EXPECT_EQ(r[http::field::content_type], f.content_type);
        EXPECT_EQ(r.body(), f.body);
        ASSERT_GT(f.etag.size(), 2U);
        EXPECT_EQ(f.etag.front(), '"');
        EXPECT_EQ(f.etag.back(), '"');
        EXPECT_EQ(r[http::field::etag], f.etag);
    }
}

TEST(ConsoleHandlerTest, MatchingIfNoneMatchIsNotModifiedWithoutBody) {
    std::string const etag = std::string(get("/ui/app.js")[http::field::etag]);

    string_response const r = get("/ui/app.js", "\"other\", " + etag);

    EXPECT_EQ(r.result_int(), 304U);
    EXPECT_TRUE(r.body().empty());
    EXPECT_EQ(r[http::field::etag], etag);
    EXPECT_EQ(get("/ui/app.js", "\"other\"").result_int(), 200U);
}

TEST(ConsoleHandlerTest, UnknownFileIsNotFound) {
    EXPECT_EQ(get("/ui/nope.txt").result_int(), 404U);
    EXPECT_EQ(get("/ui/../config/flowd.yaml").result_int(), 404U);
}

TEST(ConsoleHandlerTest, PageLoadsOnlyItsOwnFilesAndNoInlineScript) {
    std::string const page{get("/ui/").body()};

    EXPECT_EQ(page.find("<script>"), std::string::npos);
    EXPECT_EQ(page.find("style="), std::string::npos);
    EXPECT_EQ(page.find("http://"), std::string::npos);
    EXPECT_EQ(page.find("https://"), std::string::npos);
}

}  // namespace
}  // namespace flowd
