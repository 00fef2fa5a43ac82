// The web console as a browser meets it: GET / redirects, /ui/* is served with its ETag and
// Content-Security-Policy and needs no token, and key `ui: false` turns it all off.

#include <string>

#include <boost/beast/http/write.hpp>
#include <gtest/gtest.h>

#include "server_fixture.hpp"

namespace {

using flowd::test::flowd_process;
using flowd::test::http_client;
using flowd::test::http_response;
using flowd::test::run_flowd;
using flowd::test::temp_dir;
namespace http = boost::beast::http;

TEST(ConsoleTest, RootRedirectsToTheConsole) {
    flowd_process p;

    http_response const r = http_client(p.port()).get("/");

    EXPECT_EQ(r.result_int(), 302U) << r;
    EXPECT_EQ(r[http::field::location], "/ui/");
}

TEST(ConsoleTest, FilesCarryTypeEtagAndContentSecurityPolicy) {
    flowd_process p;
    http_client c(p.port());

    for (auto const& [target, type] :
         {std::pair<std::string, std::string>{"/ui/", "text/html; charset=utf-8"},
          {"/ui/app.js", "text/javascript; charset=utf-8"},
          {"/ui/app.css", "text/css; charset=utf-8"},
          {"/ui/favicon.svg", "image/svg+xml"}}) {
        SCOPED_TRACE(target);
        http_response const r = c.get(target);
        ASSERT_EQ(r.result_int(), 200U) << r;
        EXPECT_EQ(r[http::field::content_type], type);
        EXPECT_EQ(r["Content-Security-Policy"], "default-src 'self'");
        EXPECT_FALSE(r[http::field::etag].empty());
        EXPECT_FALSE(r.body().empty());
    }
}

TEST(ConsoleTest, IfNoneMatchGetsNotModifiedAndAChangedTagDoesNot) {
    flowd_process p;
    http_client c(p.port());
    std::string const etag = std::string(c.get("/ui/app.js")[http::field::etag]);

    http_response const same = c.get("/ui/app.js", {{"If-None-Match", etag}});
    http_response const other = c.get("/ui/app.js", {{"If-None-Match", "\"stale\""}});

    EXPECT_EQ(same.result_int(), 304U) << same;
    EXPECT_TRUE(same.body().empty());
    EXPECT_EQ(same[http::field::etag], etag);
    EXPECT_EQ(other.result_int(), 200U);
}

TEST(ConsoleTest, NeedsNoTokenWhileTheApiDoes) {
    auto const created = run_flowd({"token", "create", "--name", "viewer", "--scopes", "read"});
    ASSERT_EQ(created.exit_code, 0) << created.err;
    std::string const line = created.out.substr(created.out.find('\n') + 1);
    temp_dir dir;
    flowd_process p({"--tokens-file", dir.write("tokens", line)});
    http_client c(p.port());

    EXPECT_EQ(c.get("/").result_int(), 302U);
    EXPECT_EQ(c.get("/ui/").result_int(), 200U);
    EXPECT_EQ(c.get("/ui/app.js").result_int(), 200U);
    EXPECT_EQ(c.get("/flows/summary?from=0&to=24").result_int(), 401U);
}

TEST(ConsoleTest, UnknownFileIsNotFound) {
    flowd_process p;

    http_response const r = http_client(p.port()).get("/ui/secret.txt");

    EXPECT_EQ(r.result_int(), 404U) << r;
    EXPECT_EQ(r[http::field::content_type], "application/problem+json");
}

TEST(ConsoleTest, UiFalseAnswersNotFound) {
    temp_dir dir;
    flowd_process p({"--config", dir.write("flowd.yaml", "ui: false\n")});
    http_client c(p.port());

    EXPECT_EQ(c.get("/").result_int(), 404U);
    EXPECT_EQ(c.get("/ui/").result_int(), 404U);
    EXPECT_EQ(c.get("/ui/app.js").result_int(), 404U);
    EXPECT_EQ(c.get("/healthz").result_int(), 200U);
}

}  // namespace
