#include <algorithm>
#include <csignal>
#include <string>

#include <boost/beast/http/field.hpp>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "server_fixture.hpp"

namespace flowd::test {
namespace {

namespace http = boost::beast::http;

struct created_token {
    std::string token;  // what a client sends
    std::string line;   // what the tokens file holds
};

// `flowd token create`, as an operator runs it.
created_token create_token(std::string const& name, std::string const& scopes) {
    run_result const r = run_flowd({"token", "create", "--name", name, "--scopes", scopes});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::size_t const nl = r.out.find('\n');
    EXPECT_NE(nl, std::string::npos) << r.out;
    created_token t{r.out.substr(0, nl), r.out.substr(nl + 1)};
    if (!t.line.empty() && t.line.back() == '\n') {
        t.line.pop_back();
    }
    return t;
}

std::map<std::string, std::string> bearer(std::string const& token) {
    return {{"Authorization", "Bearer " + token}};
}

double metric(std::uint16_t port, std::string const& name,
              std::map<std::string, std::string> const& labels = {}) {
    http_client c{port};
    return metric_value(parse_metrics(c.get("/metrics").body()), name, labels).value_or(-1);
}

class AuthTest : public ::testing::Test {
protected:
    AuthTest()
        : writer_(create_token("exporter-1", "write")),
          reader_(create_token("grafana", "read")),
          both_(create_token("admin", "read,write")),
          tokens_path_(dir_.write("tokens", "# flowd tokens\n" + writer_.line + "\n" +
                                                reader_.line + "\n\n" + both_.line + "\n")) {}

    temp_dir dir_;
    created_token writer_;
    created_token reader_;
    created_token both_;
    std::string tokens_path_;
};

// Issue 13 item 10: a POST waiting on `Expect: 100-continue` is refused from its head
// (401, 403, 415) before any 100, so the client never sends the body; one that will be read
// gets 100, then its answer.
TEST_F(AuthTest, ExpectContinueIsRefusedBeforeTheHundredWhenTheHeadDecidesIt) {
    flowd_process flowd{{"--tokens-file", tokens_path_}};
    std::string const body = "[" + flow_json("e", "c", "v", 3, 4, 12) + "]";
    auto head = [&](std::map<std::string, std::string> headers) {
        headers["Content-Length"] = std::to_string(body.size());
        headers["Expect"] = "100-continue";
        if (!headers.contains("Content-Type")) {
            headers["Content-Type"] = "application/json";
        }
        return request_head("POST", "/flows", headers);
    };
    struct refusal {
        std::map<std::string, std::string> headers;
        unsigned status;
        std::string slug;
    };
    std::vector<refusal> const refusals{
        {{}, 401, "unauthorized"},
        {bearer(reader_.token), 403, "forbidden"},
        {{{"Authorization", "Bearer " + writer_.token}, {"Content-Type", "text/plain"}},
         415,
         "unsupported-media-type"},
    };
    for (refusal const& r : refusals) {
        SCOPED_TRACE(r.slug);
        http_client c{flowd.port()};
        c.write(head(r.headers));
        auto const answer = c.read();
        EXPECT_TRUE(is_problem(answer, r.status, r.slug)) << answer.result_int();
        EXPECT_FALSE(answer.keep_alive());
    }

    http_client c{flowd.port()};
    c.write(head(bearer(writer_.token)));
    EXPECT_EQ(c.read().result_int(), 100U);
    c.write(body);
    EXPECT_EQ(c.read().body(), R"({"accepted":1})");
}

TEST_F(AuthTest, EachStatusPerScope) {
    flowd_process flowd{{"--tokens-file", tokens_path_}};
    http_client client{flowd.port()};
    std::string const body = flow_json("a", "b", "v", 10, 20, 5);

    auto const missing_post = client.post("/flows", body);
    auto const missing_get = client.get("/flows?hour=5");
    EXPECT_TRUE(is_problem(missing_post, 401, "unauthorized"));
    EXPECT_TRUE(is_problem(missing_get, 401, "unauthorized"));
    EXPECT_EQ(missing_post[http::field::www_authenticate].substr(0, 6), "Bearer");

    auto const unknown = client.post("/flows", body, "application/json", bearer("flowd_nope"));
    EXPECT_TRUE(is_problem(unknown, 401, "unauthorized"));
    EXPECT_EQ(unknown[http::field::www_authenticate].substr(0, 6), "Bearer");
    auto const scheme = client.get("/flows?hour=5", {{"Authorization", "Basic " + reader_.token}});
    EXPECT_TRUE(is_problem(scheme, 401, "unauthorized"));
    auto const raw = client.get("/flows?hour=5", {{"Authorization", reader_.token}});
    EXPECT_TRUE(is_problem(raw, 401, "unauthorized"));

    EXPECT_TRUE(is_problem(client.post("/flows", body, "application/json", bearer(reader_.token)),
                           403, "forbidden"));
    EXPECT_TRUE(is_problem(client.get("/flows?hour=5", bearer(writer_.token)), 403, "forbidden"));

    auto const ok_post = client.post("/flows", "[" + body + "]", "application/json",
                                     {{"Authorization", "bearer " + writer_.token}});
    EXPECT_EQ(ok_post.result_int(), 200U) << ok_post.body();
    EXPECT_EQ(client.post("/flows", "[" + body + "]", "application/json", bearer(both_.token))
                  .result_int(),
              200U);
    auto const ok_get = client.get("/flows?hour=5", {{"Authorization", "BEARER " + reader_.token}});
    EXPECT_EQ(ok_get.result_int(), 200U);
    EXPECT_EQ(
        ok_get.body(),
        R"([{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":20,"bytes_rx":40,"hour":5}])");
    EXPECT_EQ(client.get("/flows?hour=5", bearer(both_.token)).result_int(), 200U);
}

TEST_F(AuthTest, QueryRoutesNeedTheReadScope) {
    flowd_process flowd{{"--tokens-file", tokens_path_}};
    http_client client{flowd.port()};

    for (std::string const target : {"/flows/summary?from=0&to=24", "/hours"}) {
        SCOPED_TRACE(target);
        EXPECT_TRUE(is_problem(client.get(target), 401, "unauthorized"));
        EXPECT_TRUE(is_problem(client.get(target, bearer(writer_.token)), 403, "forbidden"));
        EXPECT_EQ(client.get(target, bearer(reader_.token)).result_int(), 200U);
        EXPECT_EQ(client.get(target, bearer(both_.token)).result_int(), 200U);
    }
}

TEST_F(AuthTest, RejectedRequestsApplyNothing) {
    flowd_process flowd{{"--tokens-file", tokens_path_}};
    http_client client{flowd.port()};
    std::string const batch = "[" + flow_json("a", "b", "v", 1, 1, 7) + "]";

    ASSERT_EQ(client.post("/flows", batch).result_int(), 401U);
    ASSERT_EQ(client.post("/flows", batch, "application/json", bearer(reader_.token)).result_int(),
              403U);

    EXPECT_EQ(client.get("/flows?hour=7", bearer(reader_.token)).body(), "[]");
}

TEST_F(AuthTest, ProbesAndMetricsNeedNoToken) {
    flowd_process flowd{{"--tokens-file", tokens_path_}};
    http_client client{flowd.port()};

    EXPECT_EQ(client.get("/healthz").result_int(), 200U);
    EXPECT_EQ(client.get("/readyz").result_int(), 200U);
    EXPECT_EQ(client.get("/metrics").result_int(), 200U);
}

TEST_F(AuthTest, NotFoundAndMethodNotAllowedComeBeforeAuth) {
    flowd_process flowd{{"--tokens-file", tokens_path_}};
    http_client client{flowd.port()};

    EXPECT_TRUE(is_problem(client.get("/nowhere"), 404, "not-found"));
    http_request del{http::verb::delete_, "/flows", 11};
    del.set(http::field::host, "127.0.0.1");
    EXPECT_TRUE(is_problem(client.send(del), 405, "method-not-allowed"));
}

TEST_F(AuthTest, AuthComesBeforeContentTypeAndBodySize) {
    flowd_process flowd{{"--tokens-file", tokens_path_}, {{"FLOWD_MAX_BODY_BYTES", "64"}}};
    http_client client{flowd.port()};

    EXPECT_TRUE(is_problem(client.post("/flows", "[]", "text/plain"), 401, "unauthorized"));
    http_client big{flowd.port()};
    EXPECT_TRUE(is_problem(big.post("/flows", std::string(1000, ' ') + "[]", "application/json",
                                    bearer(reader_.token)),
                           403, "forbidden"));
}

TEST_F(AuthTest, WithoutTokensFileNoAuthIsAsked) {
    flowd_process flowd;
    http_client client{flowd.port()};

    EXPECT_EQ(client.post("/flows", "[]").result_int(), 200U);
    EXPECT_EQ(client.get("/flows?hour=1").result_int(), 200U);
}

TEST_F(AuthTest, TokenFileHoldsOnlyHashes) {
    std::string const text = writer_.line + "\n" + reader_.line + "\n" + both_.line;

    for (created_token const* t : {&writer_, &reader_, &both_}) {
        EXPECT_EQ(t->token.rfind("flowd_", 0), 0U) << t->token;
        EXPECT_EQ(text.find(t->token), std::string::npos);
        EXPECT_EQ(text.find(t->token.substr(6)), std::string::npos);
    }
    EXPECT_EQ(writer_.line.rfind("exporter-1 write sha256:", 0), 0U) << writer_.line;
    EXPECT_EQ(both_.line.rfind("admin read,write sha256:", 0), 0U) << both_.line;
}

TEST_F(AuthTest, TokenCreateRoundTrip) {
    created_token const fresh = create_token("round-trip", "read,write");
    std::string const path = dir_.write("only", fresh.line + "\n");
    flowd_process flowd{{"--tokens-file", path}};
    http_client client{flowd.port()};

    EXPECT_EQ(client
                  .post("/flows", "[" + flow_json("x", "y", "z", 1, 2, 3) + "]", "application/json",
                        bearer(fresh.token))
                  .result_int(),
              200U);
    EXPECT_EQ(client.get("/flows?hour=3", bearer(fresh.token)).result_int(), 200U);
    EXPECT_EQ(client.get("/flows?hour=3", bearer(writer_.token)).result_int(), 401U);
}

TEST(TokenCommandTest, BadArgumentsExitTwoWithOneLine) {
    for (std::vector<std::string> const& args :
         {std::vector<std::string>{"token"},
          {"token", "delete"},
          {"token", "create", "--scopes", "read"},
          {"token", "create", "--name", "a"},
          {"token", "create", "--name", "a b", "--scopes", "read"},
          {"token", "create", "--name", "a", "--scopes", "admin"},
          {"token", "create", "--name", "a", "--scopes", "read", "--ttl", "1d"},
          {"token", "create", "--name"}}) {
        SCOPED_TRACE(args.size() > 2 ? args[2] : args.back());

        run_result const r = run_flowd(args);

        EXPECT_EQ(r.exit_code, 2);
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_EQ(r.out, "");
    }
}

TEST(TokenCommandTest, EachRunPrintsANewToken) {
    run_result const a = run_flowd({"token", "create", "--name=n", "--scopes=read"});
    run_result const b = run_flowd({"token", "create", "--name=n", "--scopes=read"});

    ASSERT_EQ(a.exit_code, 0);
    ASSERT_EQ(b.exit_code, 0);
    EXPECT_EQ(std::count(a.out.begin(), a.out.end(), '\n'), 2) << a.out;
    EXPECT_NE(a.out, b.out);
}

TEST(TokensFileConfigTest, MissingTokensFileExitsTwoNamingIt) {
    run_result const r = run_flowd({"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                                    "--tokens-file", "/nonexistent/flowd-tokens"});

    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("/nonexistent/flowd-tokens"), std::string::npos) << r.err;
}

TEST(TokensFileConfigTest, BadLineExitsTwoNamingFileAndLine) {
    temp_dir dir;
    std::string const path = dir.write("tokens", "# ok\n\nexporter write my-plain-token\n");

    run_result const r = run_flowd({"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"},
                                   {{"FLOWD_TOKENS_FILE", path}});

    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(path + ":3:"), std::string::npos) << r.err;
}

std::size_t occurrences(std::string const& text, std::string const& needle) {
    std::size_t n = 0;
    for (std::size_t pos = text.find(needle); pos != std::string::npos;
         pos = text.find(needle, pos + 1)) {
        ++n;
    }
    return n;
}

// An empty tokens file turns every /flows request into a 401, and a tokens file others can
// read leaks the hashes: both are said at start and again at each reload.
TEST_F(AuthTest, EmptyOrOpenTokensFileIsWarnedAtStartAndOnReload) {
    std::string const path = dir_.write("live", "# nobody yet\n");
    ::chmod(path.c_str(), 0600);
    flowd_process flowd{{"--tokens-file", path}};
    EXPECT_EQ(occurrences(flowd.log(), "holds no tokens"), 1U) << flowd.log();
    EXPECT_EQ(occurrences(flowd.log(), "chmod 600"), 0U) << flowd.log();

    flowd.signal(SIGHUP);
    EXPECT_TRUE(eventually([&] { return occurrences(flowd.log(), "holds no tokens") == 2; }))
        << flowd.log();

    (void)dir_.write("live", reader_.line + "\n");
    ::chmod(path.c_str(), 0644);
    flowd.signal(SIGHUP);
    ASSERT_TRUE(flowd.wait_log("reloaded 1 tokens")) << flowd.log();
    EXPECT_TRUE(eventually([&] { return occurrences(flowd.log(), "chmod 600") == 1; }))
        << flowd.log();
    EXPECT_EQ(occurrences(flowd.log(), "holds no tokens"), 2U) << flowd.log();
}

TEST_F(AuthTest, SighupReloadKeepsConnectionsAndAddsTokens) {
    std::string const path = dir_.write("live", writer_.line + "\n");
    flowd_process flowd{{"--tokens-file", path}};
    http_client opened_before{flowd.port()};
    ASSERT_EQ(opened_before.get("/flows?hour=1", bearer(reader_.token)).result_int(), 401U);

    (void)dir_.write("live", writer_.line + "\n" + reader_.line + "\n");
    flowd.signal(SIGHUP);
    ASSERT_TRUE(flowd.wait_log("reloaded 2 tokens")) << flowd.log();

    EXPECT_EQ(opened_before.get("/flows?hour=1", bearer(reader_.token)).result_int(), 200U);
    EXPECT_EQ(
        opened_before.post("/flows", "[]", "application/json", bearer(writer_.token)).result_int(),
        200U);
    EXPECT_EQ(metric(flowd.port(), "flowd_tokens_reload_failures_total"), 0.0);
}

TEST_F(AuthTest, SighupWithBrokenFileKeepsTheOldTokensAndCountsIt) {
    std::string const path = dir_.write("live", reader_.line + "\n");
    flowd_process flowd{{"--tokens-file", path}};
    http_client client{flowd.port()};
    ASSERT_EQ(client.get("/flows?hour=1", bearer(reader_.token)).result_int(), 200U);

    (void)dir_.write("live", both_.line + "\nthis line is broken\n");
    flowd.signal(SIGHUP);
    ASSERT_TRUE(flowd.wait_log("tokens not reloaded")) << flowd.log();

    EXPECT_NE(flowd.log().find(path + ":2:"), std::string::npos) << flowd.log();
    EXPECT_EQ(client.get("/flows?hour=1", bearer(reader_.token)).result_int(), 200U);
    EXPECT_EQ(client.get("/flows?hour=1", bearer(both_.token)).result_int(), 401U);
    EXPECT_EQ(metric(flowd.port(), "flowd_tokens_reload_failures_total"), 1.0);

    // A fixed file is picked up by the next SIGHUP.
    (void)dir_.write("live", both_.line + "\n");
    flowd.signal(SIGHUP);
    ASSERT_TRUE(flowd.wait_log("reloaded 1 tokens")) << flowd.log();
    EXPECT_EQ(client.get("/flows?hour=1", bearer(both_.token)).result_int(), 200U);
    EXPECT_EQ(client.get("/flows?hour=1", bearer(reader_.token)).result_int(), 401U);
}

TEST_F(AuthTest, SighupWithoutTokensFileDoesNotStopFlowd) {
    flowd_process flowd;
    flowd.signal(SIGHUP);
    ASSERT_TRUE(flowd.wait_log("no tokens_file configured")) << flowd.log();

    http_client client{flowd.port()};
    EXPECT_EQ(client.get("/healthz").result_int(), 200U);
}

}  // namespace
}  // namespace flowd::test
