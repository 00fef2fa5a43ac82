#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/field.hpp>
#include <gtest/gtest.h>

#include "flowd/codec/gzip.hpp"
#include "server_fixture.hpp"

namespace flowd::test {
namespace {

namespace http = boost::beast::http;

std::string gunzip_all(std::string const& body) {
    auto inflated = flowd::gunzip(body, std::size_t{1} << 30);
    if (!inflated) {
        return "<not gzip>";
    }
    return *inflated;
}

// A zero-padded name, so byte order is numeric order.
std::string numbered(std::string const& prefix, int n) {
    std::string digits = std::to_string(n);
    return prefix + std::string(4 - digits.size(), '0') + digits;
}

TEST(FlowsApiTest, SeedExampleRoundTrip) {
    flowd_process flowd;
    http_client client{flowd.port()};

    auto posted = client.post("/flows", seed_batch());
    auto hour1 = client.get("/flows?hour=1");
    auto hour2 = client.get("/flows?hour=2");
    auto hour3 = client.get("/flows?hour=3");

    EXPECT_EQ(posted.result_int(), 200U);
    EXPECT_EQ(posted.body(), R"({"accepted":5})");
    EXPECT_EQ(
        hour1.body(),
        R"([{"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":1},)"
        R"({"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":300,"bytes_rx":900,"hour":1}])");
    EXPECT_EQ(
        hour2.body(),
        R"([{"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":2},)"
        R"({"src_app":"baz","dest_app":"qux","vpc_id":"vpc-1","bytes_tx":100,"bytes_rx":500,"hour":2}])");
    EXPECT_EQ(hour3.body(), "[]");
}

TEST(FlowsApiTest, GetAnswersJsonContentType) {
    flowd_process flowd;
    http_client client{flowd.port()};
    client.post("/flows", seed_batch());

    auto r = client.get("/flows?hour=1");

    EXPECT_EQ(r.result_int(), 200U);
    EXPECT_EQ(r[http::field::content_type], "application/json");
}

TEST(FlowsApiTest, EmptyArrayAcceptsZero) {
    flowd_process flowd;
    http_client client{flowd.port()};

    auto r = client.post("/flows", " [ ] ");

    EXPECT_EQ(r.result_int(), 200U);
    EXPECT_EQ(r.body(), R"({"accepted":0})");
}

TEST(FlowsApiTest, AcceptsNdjsonWithBlankLines) {
    flowd_process flowd;
    http_client client{flowd.port()};
    std::string const body = flow_json("a", "b", "v", 1, 2, 5) + "\n\n" +
                             flow_json("a", "b", "v", 10, 20, 5) + "\r\n  \n" +
                             flow_json("c", "d", "v", 3, 4, 5) + "\n";

    auto posted = client.post("/flows", body, "application/x-ndjson");
    auto got = client.get("/flows?hour=5");

    EXPECT_EQ(posted.result_int(), 200U);
    EXPECT_EQ(posted.body(), R"({"accepted":3})");
    EXPECT_EQ(got.body(), "[" + flow_json("a", "b", "v", 11, 22, 5) + "," +
                              flow_json("c", "d", "v", 3, 4, 5) + "]");
}

TEST(FlowsApiTest, AcceptsGzipBodyAndMediaTypeParameters) {
    flowd_process flowd;
    http_client client{flowd.port()};

    auto posted = client.post("/flows", flowd::gzip(seed_batch()),
                              "Application/JSON; charset=utf-8", {{"Content-Encoding", "gzip"}});
    auto hour1 = client.get("/flows?hour=1");

    EXPECT_EQ(posted.result_int(), 200U) << posted.body();
    EXPECT_EQ(posted.body(), R"({"accepted":5})");
    EXPECT_EQ(hour1.body(), "[" + flow_json("baz", "qux", "vpc-0", 100, 500, 1) + "," +
                                flow_json("foo", "bar", "vpc-0", 300, 900, 1) + "]");
}

TEST(FlowsApiTest, AcceptsChunkedRequestBody) {
    flowd_process flowd;
    http_client client{flowd.port()};
    std::string const part1 = "[" + flow_json("a", "b", "v", 1, 2, 9);
    std::string const part2 = "," + flow_json("a", "b", "v", 3, 4, 9) + "]";
    auto hex = [](std::size_t n) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%zx", n);
        return std::string(buf);
    };
    std::string const bytes =
        request_head("POST", "/flows",
                     {{"Content-Type", "application/json"}, {"Transfer-Encoding", "chunked"}}) +
        hex(part1.size()) + "\r\n" + part1 + "\r\n" + hex(part2.size()) + "\r\n" + part2 +
        "\r\n0\r\n\r\n";

    auto answers = client.raw(bytes, 1);
    auto got = client.get("/flows?hour=9");

    EXPECT_EQ(answers.at(0).result_int(), 200U) << answers.at(0).body();
    EXPECT_EQ(answers.at(0).body(), R"({"accepted":2})");
    EXPECT_EQ(got.body(), "[" + flow_json("a", "b", "v", 4, 6, 9) + "]");
}

TEST(FlowsApiTest, FiltersBySrcDestAndVpc) {
    flowd_process flowd;
    http_client client{flowd.port()};
    std::string const body =
        "[" + flow_json("a", "x", "v1", 1, 1, 7) + "," + flow_json("a", "y", "v1", 2, 2, 7) + "," +
        flow_json("b", "x", "v2", 3, 3, 7) + "," + flow_json("b", "y", "v1", 4, 4, 7) + "]";
    ASSERT_EQ(client.post("/flows", body).result_int(), 200U);

    auto by_src = client.get("/flows?hour=7&src_app=a");
    auto by_dest = client.get("/flows?dest_app=x&hour=7");
    auto by_vpc = client.get("/flows?hour=7&vpc_id=v1");
    auto by_all = client.get("/flows?hour=7&src_app=b&dest_app=y&vpc_id=v1");
    auto no_match = client.get("/flows?hour=7&src_app=a&vpc_id=v2");
    auto unknown_name = client.get("/flows?hour=7&src_app=nobody");

    EXPECT_EQ(by_src.body(), "[" + flow_json("a", "x", "v1", 1, 1, 7) + "," +
                                 flow_json("a", "y", "v1", 2, 2, 7) + "]");
    EXPECT_EQ(by_dest.body(), "[" + flow_json("a", "x", "v1", 1, 1, 7) + "," +
                                  flow_json("b", "x", "v2", 3, 3, 7) + "]");
    EXPECT_EQ(by_vpc.body(), "[" + flow_json("a", "x", "v1", 1, 1, 7) + "," +
                                 flow_json("a", "y", "v1", 2, 2, 7) + "," +
                                 flow_json("b", "y", "v1", 4, 4, 7) + "]");
    EXPECT_EQ(by_all.body(), "[" + flow_json("b", "y", "v1", 4, 4, 7) + "]");
    EXPECT_EQ(no_match.body(), "[]");
    EXPECT_EQ(unknown_name.result_int(), 200U);
    EXPECT_EQ(unknown_name.body(), "[]");
}

TEST(FlowsApiTest, DecodesPercentEncodedFilterValues) {
    flowd_process flowd;
    http_client client{flowd.port()};
    // "a b&c=d/é" (UTF-8) and "x+y" with a literal plus.
    std::string const spaced = "a b&c=d/\xc3\xa9";
    std::string const body = "[" + flow_json(spaced, "dst", "v", 1, 2, 3) + "," +
                             flow_json("x+y", "dst", "v", 5, 6, 3) + "," +
                             flow_json("x y", "dst", "v", 7, 8, 3) + "]";
    ASSERT_EQ(client.post("/flows", body).result_int(), 200U);

    auto encoded = client.get("/flows?hour=3&src_app=a%20b%26c%3Dd%2F%C3%A9");
    auto lower_hex = client.get("/flows?hour=3&src_app=a%20b%26c%3dd%2f%c3%a9");
    auto plus = client.get("/flows?hour=3&src_app=x+y");
    auto space = client.get("/flows?hour=3&src_app=x%20y");
    auto encoded_name = client.get("/flows?%68our=3&src%5Fapp=x%2By");

    EXPECT_EQ(encoded.body(), "[" + flow_json(spaced, "dst", "v", 1, 2, 3) + "]");
    EXPECT_EQ(lower_hex.body(), encoded.body());
    // SPEC: '+' decodes to a space (form encoding), %2B is a literal plus.
    EXPECT_EQ(plus.body(), "[" + flow_json("x y", "dst", "v", 7, 8, 3) + "]");
    EXPECT_EQ(space.body(), plus.body());
    EXPECT_EQ(encoded_name.body(), "[" + flow_json("x+y", "dst", "v", 5, 6, 3) + "]");
}

TEST(FlowsApiTest, EscapesOnlyQuotesBackslashesAndControls) {
    flowd_process flowd;
    http_client client{flowd.port()};
    std::string const body =
        R"([{"src_app":"q\"b\\s\u00e9\/","dest_app":"tab\there","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":4}])";
    ASSERT_EQ(client.post("/flows", body).result_int(), 200U);

    auto got = client.get("/flows?hour=4");

    EXPECT_EQ(got.body(),
              "[{\"src_app\":\"q\\\"b\\\\s\xc3\xa9/"
              "\",\"dest_app\":\"tab\\there\",\"vpc_id\":\"v\",\"bytes_tx\":1,"
              "\"bytes_rx\":2,\"hour\":4}]");
}

TEST(FlowsApiTest, SortsBySrcDestVpcInByteOrder) {
    flowd_process flowd;
    http_client client{flowd.port()};
    std::string const e_acute = "\xc3\xa9";
    std::string const body =
        "[" + flow_json(e_acute, "d", "v", 1, 1, 1) + "," + flow_json("a", "d", "v2", 1, 1, 1) +
        "," + flow_json("a", "d", "v10", 1, 1, 1) + "," + flow_json("a", "D", "v", 1, 1, 1) + "," +
        flow_json("Z", "d", "v", 1, 1, 1) + "," + flow_json("B", "d", "v", 1, 1, 1) + "]";
    ASSERT_EQ(client.post("/flows", body).result_int(), 200U);

    auto got = client.get("/flows?hour=1");

    EXPECT_EQ(got.body(),
              "[" + flow_json("B", "d", "v", 1, 1, 1) + "," + flow_json("Z", "d", "v", 1, 1, 1) +
                  "," + flow_json("a", "D", "v", 1, 1, 1) + "," +
                  flow_json("a", "d", "v10", 1, 1, 1) + "," + flow_json("a", "d", "v2", 1, 1, 1) +
                  "," + flow_json(e_acute, "d", "v", 1, 1, 1) + "]");
}

TEST(FlowsApiTest, AnswersGzipWhenAccepted) {
    flowd_process flowd;
    http_client client{flowd.port()};
    ASSERT_EQ(client.post("/flows", seed_batch()).result_int(), 200U);

    auto plain = client.get("/flows?hour=1");
    auto zipped = client.get("/flows?hour=1", {{"Accept-Encoding", "deflate, gzip;q=0.8"}});
    auto refused = client.get("/flows?hour=1", {{"Accept-Encoding", "gzip;q=0"}});

    EXPECT_EQ(plain[http::field::content_encoding], "");
    EXPECT_EQ(zipped.result_int(), 200U);
    EXPECT_EQ(zipped[http::field::content_encoding], "gzip");
    EXPECT_NE(zipped.body(), plain.body());
    EXPECT_EQ(gunzip_all(zipped.body()), plain.body());
    EXPECT_EQ(refused[http::field::content_encoding], "");
    EXPECT_EQ(refused.body(), plain.body());
}

class LargeHourTest : public ::testing::Test {
protected:
    static constexpr int keys = 3000;

    void SetUp() override {
        // Posted in a scrambled order (7 is coprime with 3000), split over two batches, with
        // every key posted twice so the sums are checked too.
        std::string body = "[";
        std::string expect_body = "[";
        for (int i = 0; i < keys; ++i) {
            int const k = (i * 7) % keys;
            body += (i == 0 ? "" : ",") + flow_json(numbered("src-", k), numbered("dst-", k % 13),
                                                    "vpc-" + std::to_string(k % 3),
                                                    static_cast<std::uint64_t>(k), 1, 42);
        }
        body += "]";
        for (int k = 0; k < keys; ++k) {
            expect_body +=
                (k == 0 ? "" : ",") + flow_json(numbered("src-", k), numbered("dst-", k % 13),
                                                "vpc-" + std::to_string(k % 3),
                                                2 * static_cast<std::uint64_t>(k), 2, 42);
        }
        expected_ = expect_body + "]";
        http_client client{flowd_.port()};
        ASSERT_EQ(client.post("/flows", body).result_int(), 200U);
        ASSERT_EQ(client.post("/flows", body).result_int(), 200U);
    }

    flowd_process flowd_;
    std::string expected_;
};

TEST_F(LargeHourTest, StreamsChunkedWithEveryKeyExactAndSorted) {
    http_client client{flowd_.port()};
    ASSERT_GT(expected_.size(), 64U * 1024U);

    auto r = client.get("/flows?hour=42");

    EXPECT_EQ(r.result_int(), 200U);
    EXPECT_EQ(r[http::field::content_type], "application/json");
    EXPECT_EQ(r[http::field::transfer_encoding], "chunked");
    EXPECT_EQ(r.find(http::field::content_length), r.end());
    EXPECT_TRUE(r.body() == expected_) << "sizes " << r.body().size() << " vs " << expected_.size();
    // The connection stays usable after a streamed answer.
    EXPECT_EQ(client.get("/flows?hour=43").body(), "[]");
}

TEST_F(LargeHourTest, StreamsGzipWhenAccepted) {
    http_client client{flowd_.port()};

    auto r = client.get("/flows?hour=42", {{"Accept-Encoding", "gzip"}});

    EXPECT_EQ(r.result_int(), 200U);
    EXPECT_EQ(r[http::field::content_encoding], "gzip");
    EXPECT_EQ(r[http::field::transfer_encoding], "chunked");
    EXPECT_LT(r.body().size(), expected_.size());
    EXPECT_TRUE(gunzip_all(r.body()) == expected_);
}

TEST_F(LargeHourTest, FilteredAnswerUnderThresholdHasContentLength) {
    http_client client{flowd_.port()};

    auto r = client.get("/flows?hour=42&src_app=src-0007");

    EXPECT_EQ(r[http::field::content_length], std::to_string(r.body().size()));
    EXPECT_EQ(r.body(), "[" + flow_json("src-0007", "dst-0007", "vpc-1", 14, 2, 42) + "]");
}

TEST(FlowsApiTest, EchoesValidClientRequestId) {
    flowd_process flowd;
    http_client client{flowd.port()};
    std::string const id = "trace-0123_ABC.xyz~!";

    auto ok = client.get("/healthz", {{"X-Request-Id", id}});
    auto err = client.get("/flows", {{"X-Request-Id", id}});

    EXPECT_EQ(ok["X-Request-Id"], id);
    EXPECT_EQ(err["X-Request-Id"], id);
    EXPECT_TRUE(is_problem(err, 400, "invalid-query"));
}

TEST(FlowsApiTest, GeneratesRequestIdWhenAbsentOrInvalid) {
    flowd_process flowd;
    http_client client{flowd.port()};
    std::string const too_long(129, 'a');

    auto first = client.get("/healthz");
    auto second = client.get("/healthz");
    auto long_id = client.get("/healthz", {{"X-Request-Id", too_long}});
    auto spaced = client.get("/healthz", {{"X-Request-Id", "has space"}});
    auto err = client.get("/nowhere");
    auto max_len = client.get("/healthz", {{"X-Request-Id", std::string(128, 'b')}});

    EXPECT_FALSE(first["X-Request-Id"].empty());
    EXPECT_FALSE(second["X-Request-Id"].empty());
    EXPECT_NE(first["X-Request-Id"], second["X-Request-Id"]);
    EXPECT_FALSE(long_id["X-Request-Id"].empty());
    EXPECT_NE(long_id["X-Request-Id"], too_long);
    EXPECT_FALSE(spaced["X-Request-Id"].empty());
    EXPECT_NE(spaced["X-Request-Id"], "has space");
    EXPECT_TRUE(is_problem(err, 404, "not-found"));
    EXPECT_EQ(max_len["X-Request-Id"], std::string(128, 'b'));
}

TEST(FlowsApiTest, BatchWithBadLastRecordChangesNothing) {
    flowd_process flowd;
    http_client client{flowd.port()};
    ASSERT_EQ(client.post("/flows", "[" + flow_json("a", "b", "v", 1, 1, 6) + "]").result_int(),
              200U);
    auto before = client.get("/flows?hour=6");
    std::string const bad =
        "[" + flow_json("a", "b", "v", 5, 5, 6) + "," + flow_json("new", "key", "v", 5, 5, 6) +
        R"(,{"src_app":"c","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":-1,"hour":6}])";

    auto r = client.post("/flows", bad);
    auto after = client.get("/flows?hour=6");

    EXPECT_TRUE(is_problem(r, 400, "invalid-record"));
    EXPECT_EQ(after.body(), before.body());
    EXPECT_EQ(after.body(), "[" + flow_json("a", "b", "v", 1, 1, 6) + "]");
}

TEST(FlowsApiTest, ConcurrentBatchesSumExactlyAndGetNeverSeesHalfABatch) {
    flowd_process flowd;
    constexpr int threads = 16;
    constexpr int batches = 40;
    constexpr int keys = 8;
    // Every batch adds bytes_tx 1 to each shared key, so a consistent view has every key
    // at the same bytes_tx; bytes_rx adds the thread's number, so the sums tell threads apart.
    auto batch_of = [](int thread) {
        std::string body = "[";
        for (int k = 0; k < keys; ++k) {
            body += (k == 0 ? "" : ",") + flow_json("src", numbered("dst-", k), "vpc", 1,
                                                    static_cast<std::uint64_t>(thread + 1), 11);
        }
        return body + "]";
    };
    std::atomic<int> failures{0};
    std::atomic<bool> writers_done{false};
    std::atomic<int> torn_reads{0};
    std::atomic<int> reads{0};

    std::vector<std::thread> writers;
    for (int t = 0; t < threads; ++t) {
        writers.emplace_back([&, t] {
            try {
                http_client client{flowd.port()};
                std::string const body = batch_of(t);
                for (int b = 0; b < batches; ++b) {
                    if (client.post("/flows", body).result_int() != 200U) {
                        ++failures;
                    }
                }
            } catch (std::exception const&) {
                ++failures;
            }
        });
    }
    std::thread reader([&] {
        http_client client{flowd.port()};
        for (int i = 0; i < 2000 && !writers_done.load(); ++i) {
            auto const j = nlohmann::json::parse(client.get("/flows?hour=11").body());
            ++reads;
            for (auto const& e : j) {
                if (e["bytes_tx"] != j[0]["bytes_tx"] || j.size() != keys) {
                    ++torn_reads;
                    break;
                }
            }
        }
    });
    for (auto& w : writers) {
        w.join();
    }
    writers_done = true;
    reader.join();

    http_client client{flowd.port()};
    auto const final_answer = client.get("/flows?hour=11");
    std::uint64_t const rx = static_cast<std::uint64_t>(batches) * (threads * (threads + 1) / 2);
    std::string expected = "[";
    for (int k = 0; k < keys; ++k) {
        expected +=
            (k == 0 ? "" : ",") + flow_json("src", numbered("dst-", k), "vpc",
                                            static_cast<std::uint64_t>(threads * batches), rx, 11);
    }
    expected += "]";
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(torn_reads.load(), 0) << "of " << reads.load() << " reads";
    EXPECT_EQ(final_answer.body(), expected);
}

TEST(FlowsApiTest, PipelinedRequestsAreAnsweredInOrder) {
    flowd_process flowd;
    http_client client{flowd.port()};
    std::string const body = "[" + flow_json("p", "q", "v", 1, 2, 8) + "]";
    std::string const bytes = request_head("POST", "/flows",
                                           {{"Content-Type", "application/json"},
                                            {"Content-Length", std::to_string(body.size())}}) +
                              body + request_head("GET", "/flows?hour=8", {}) +
                              request_head("GET", "/nope", {}) +
                              request_head("GET", "/healthz", {});

    auto answers = client.raw(bytes, 4);

    ASSERT_EQ(answers.size(), 4U);
    EXPECT_EQ(answers[0].body(), R"({"accepted":1})");
    EXPECT_EQ(answers[1].body(), "[" + flow_json("p", "q", "v", 1, 2, 8) + "]");
    EXPECT_TRUE(is_problem(answers[2], 404, "not-found"));
    EXPECT_EQ(answers[3].result_int(), 200U);
    EXPECT_TRUE(answers[3].keep_alive());
}

TEST(FlowsApiTest, ExpectContinuePostWorks) {
    flowd_process flowd;
    http_client client{flowd.port()};
    std::string const body = "[" + flow_json("e", "c", "v", 3, 4, 12) + "]";

    client.write(request_head("POST", "/flows",
                              {{"Content-Type", "application/json"},
                               {"Content-Length", std::to_string(body.size())},
                               {"Expect", "100-continue"}}));
    auto interim = client.read();
    client.write(body);
    auto final_answer = client.read();

    EXPECT_EQ(interim.result_int(), 100U);
    EXPECT_EQ(final_answer.result_int(), 200U);
    EXPECT_EQ(final_answer.body(), R"({"accepted":1})");
    EXPECT_EQ(client.get("/flows?hour=12").body(), "[" + flow_json("e", "c", "v", 3, 4, 12) + "]");
}

TEST(FlowsApiTest, KeepAliveReusesOneConnection) {
    flowd_process flowd;
    http_client client{flowd.port()};

    for (int i = 0; i < 5; ++i) {
        auto r = client.post("/flows", "[" + flow_json("k", "a", "v", 1, 1, 1) + "]");
        ASSERT_EQ(r.result_int(), 200U);
        ASSERT_TRUE(r.keep_alive());
    }
    auto const samples = parse_metrics(client.get("/metrics").body());

    EXPECT_EQ(metric_value(samples, "flowd_http_connections_open"), 1.0);
    EXPECT_EQ(client.get("/flows?hour=1").body(), "[" + flow_json("k", "a", "v", 5, 5, 1) + "]");
}

TEST(FlowsApiTest, HealthAndReadinessAnswer200) {
    flowd_process flowd;
    http_client client{flowd.port()};

    auto health = client.get("/healthz");
    auto ready = client.get("/readyz");

    EXPECT_EQ(health.result_int(), 200U);
    EXPECT_EQ(ready.result_int(), 200U);
}

bool has_ipv6_loopback() {
    try {
        boost::asio::io_context ioc;
        boost::asio::ip::tcp::acceptor a{ioc, {boost::asio::ip::make_address("::1"), 0}};
        return true;
    } catch (std::exception const&) {
        return false;
    }
}

TEST(FlowsApiTest, ServesOverIpv6Loopback) {
    if (!has_ipv6_loopback()) {
        GTEST_SKIP() << "this host has no IPv6 loopback (cannot bind ::1)";
    }
    flowd_process flowd({"--listen", "[::1]:0", "--metrics-listen", "127.0.0.1:0"}, {}, false);
    http_client client{flowd.port(), "::1"};

    auto posted = client.post("/flows", seed_batch());
    auto got = client.get("/flows?hour=2&vpc_id=vpc-1");

    EXPECT_NE(flowd.log().find("http listening on [::1]:"), std::string::npos);
    EXPECT_EQ(posted.result_int(), 200U);
    EXPECT_EQ(got.body(), "[" + flow_json("baz", "qux", "vpc-1", 100, 500, 2) + "]");
}

}  // namespace
}  // namespace flowd::test
