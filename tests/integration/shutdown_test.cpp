#include <csignal>
#include <optional>
#include <string>

#include <boost/beast/http/field.hpp>
#include <gtest/gtest.h>

#include "server_fixture.hpp"

namespace flowd::test {
namespace {

namespace http = boost::beast::http;

// A POST whose head was read by flowd (it answered 100 Continue, so the request is in
// flight) and of whose body only the first half was sent.
struct held_post {
    explicit held_post(std::uint16_t port, std::uint32_t hour) : client(port) {
        body = "[" + flow_json("held", "post", "v", 7, 9, hour) + "]";
        client.write(request_head("POST", "/flows",
                                  {{"Content-Type", "application/json"},
                                   {"Content-Length", std::to_string(body.size())},
                                   {"Expect", "100-continue"}}));
        interim = client.read().result_int();
        client.write(body.substr(0, body.size() / 2));
    }
    // Sends the rest of the body (and `then`, pipelined) and reads the answer.
    http_response finish(std::string const& then = {}) {
        client.write(body.substr(body.size() / 2) + then);
        return client.read();
    }

    http_client client;
    std::string body;
    unsigned interim = 0;
};

TEST(ShutdownTest, IdleServerExitsZeroOnSigterm) {
    flowd_process flowd;

    flowd.signal(SIGTERM);

    EXPECT_EQ(flowd.wait_exit(), 0);
    EXPECT_NE(flowd.log().find("flowd stopped"), std::string::npos);
}

TEST(ShutdownTest, IdleServerExitsZeroOnSigint) {
    flowd_process flowd;

    flowd.signal(SIGINT);

    EXPECT_EQ(flowd.wait_exit(), 0);
}

TEST(ShutdownTest, InFlightRequestCompletesAfterSigterm) {
    flowd_process flowd({}, {{"FLOWD_GRACE_PERIOD", "60s"}});
    held_post post{flowd.port(), 5};
    ASSERT_EQ(post.interim, 100U);

    flowd.signal(SIGTERM);
    ASSERT_TRUE(flowd.wait_log("shutdown requested"));
    auto answer = post.finish();

    EXPECT_NE(flowd.log().find("draining 1 in-flight"), std::string::npos) << flowd.log();
    EXPECT_EQ(answer.result_int(), 200U) << answer.body();
    EXPECT_EQ(answer.body(), R"({"accepted":1})");
    EXPECT_EQ(flowd.wait_exit(), 0);
}

TEST(ShutdownTest, ReadyzTurns503DuringDrain) {
    flowd_process flowd({}, {{"FLOWD_GRACE_PERIOD", "60s"}});
    held_post keeps_draining{flowd.port(), 1};
    held_post asks{flowd.port(), 2};
    ASSERT_EQ(keeps_draining.interim, 100U);
    ASSERT_EQ(asks.interim, 100U);

    flowd.signal(SIGTERM);
    ASSERT_TRUE(flowd.wait_log("shutdown requested"));
    auto posted = asks.finish(request_head("GET", "/readyz", {}));
    auto readyz = asks.client.read();
    auto last = keeps_draining.finish();

    EXPECT_EQ(posted.result_int(), 200U);
    EXPECT_TRUE(is_problem(readyz, 503, "shutting-down"));
    EXPECT_FALSE(readyz.keep_alive());
    EXPECT_EQ(readyz[http::field::connection], "close");
    EXPECT_EQ(last.result_int(), 200U);
    EXPECT_EQ(flowd.wait_exit(), 0);
}

TEST(ShutdownTest, PipelinedRequestBehindTheLastInFlightOneIsAnswered) {
    flowd_process flowd({}, {{"FLOWD_GRACE_PERIOD", "60s"}});
    held_post only{flowd.port(), 3};
    ASSERT_EQ(only.interim, 100U);

    flowd.signal(SIGTERM);
    ASSERT_TRUE(flowd.wait_log("shutdown requested"));
    auto posted = only.finish(request_head("GET", "/healthz", {}));
    auto pipelined = only.client.try_read();

    // The last request in flight ended with another one already buffered behind it: the
    // drain must not stop the server in between, and the newcomer is told to go away.
    EXPECT_EQ(posted.result_int(), 200U);
    ASSERT_TRUE(pipelined.has_value()) << "the pipelined request got no answer";
    EXPECT_TRUE(is_problem(*pipelined, 503, "shutting-down"));
    EXPECT_EQ(flowd.wait_exit(), 0);
}

TEST(ShutdownTest, IdleKeepAliveConnectionIsClosedOrToldShuttingDown) {
    flowd_process flowd({}, {{"FLOWD_GRACE_PERIOD", "60s"}});
    held_post keeps_draining{flowd.port(), 1};
    http_client idle{flowd.port()};
    ASSERT_EQ(idle.get("/healthz").result_int(), 200U);

    flowd.signal(SIGTERM);
    ASSERT_TRUE(flowd.wait_log("shutdown requested"));
    std::optional<http_response> answer;
    bool closed = false;
    try {
        idle.write(request_head("GET", "/healthz", {}));
        answer = idle.try_read();
        closed = !answer.has_value();
    } catch (std::exception const&) {
        closed = true;  // the write or read failed: the connection was closed
    }

    if (!closed) {
        ASSERT_TRUE(answer.has_value());
        EXPECT_TRUE(is_problem(*answer, 503, "shutting-down"));
        EXPECT_EQ((*answer)[http::field::connection], "close");
    }
    EXPECT_EQ(keeps_draining.finish().result_int(), 200U);
    EXPECT_EQ(flowd.wait_exit(), 0);
}

TEST(ShutdownTest, NewConnectionsAreRefusedDuringDrain) {
    flowd_process flowd({}, {{"FLOWD_GRACE_PERIOD", "60s"}});
    held_post keeps_draining{flowd.port(), 1};

    flowd.signal(SIGTERM);
    ASSERT_TRUE(flowd.wait_log("shutdown requested"));
    bool const refused = eventually([&] {
        try {
            http_client late{flowd.port()};
            return !late.try_read().has_value();
        } catch (std::exception const&) {
            return true;
        }
    });

    EXPECT_TRUE(refused);
    EXPECT_EQ(keeps_draining.finish().result_int(), 200U);
    EXPECT_EQ(flowd.wait_exit(), 0);
}

TEST(ShutdownTest, SecondSignalExitsAtOnceWithCodeOne) {
    flowd_process flowd({}, {{"FLOWD_GRACE_PERIOD", "60s"}});
    held_post keeps_draining{flowd.port(), 1};
    ASSERT_EQ(keeps_draining.interim, 100U);

    flowd.signal(SIGTERM);
    ASSERT_TRUE(flowd.wait_log("shutdown requested"));
    flowd.signal(SIGINT);

    EXPECT_EQ(flowd.wait_exit(std::chrono::seconds(10)), 1);
}

TEST(ShutdownTest, GracePeriodBoundsTheDrain) {
    flowd_process flowd({}, {{"FLOWD_GRACE_PERIOD", "300ms"}});
    held_post never_finished{flowd.port(), 1};
    ASSERT_EQ(never_finished.interim, 100U);

    flowd.signal(SIGTERM);

    EXPECT_EQ(flowd.wait_exit(std::chrono::seconds(15)), 0);
    EXPECT_NE(flowd.log().find("grace period over"), std::string::npos);
}

}  // namespace
}  // namespace flowd::test
