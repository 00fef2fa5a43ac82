#include "flowd/http/flows_handler.hpp"

#include <chrono>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <prometheus/registry.h>

#include "flowd/codec/gzip.hpp"
#include "flowd/ingest/admission.hpp"
#include "flowd/ingest/memory_ingest.hpp"

namespace flowd {
namespace {

namespace http = boost::beast::http;

std::string const seed_body = R"([
 {"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":300,"hour":1},
 {"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":200,"bytes_rx":600,"hour":1},
 {"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":1},
 {"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":2},
 {"src_app":"baz","dest_app":"qux","vpc_id":"vpc-1","bytes_tx":100,"bytes_rx":500,"hour":2}])";

std::string record(std::string_view src, std::uint64_t tx, std::uint32_t hour) {
    return R"({"src_app":")" + std::string(src) + R"(","dest_app":"d","vpc_id":"v","bytes_tx":)" +
           std::to_string(tx) + R"(,"bytes_rx":1,"hour":)" + std::to_string(hour) + "}";
}

class FlowsHandlerTest : public ::testing::Test {
protected:
    // Runs a handler result to its answer, deferred or not.
    static response finish(handler_result result) {
        if (auto* r = std::get_if<response>(&result)) {
            return std::move(*r);
        }
        std::optional<response> answered;
        std::get<deferred>(result).start([&answered](response r) { answered = std::move(r); });
        EXPECT_TRUE(answered.has_value()) << "the deferred answer never came";
        return answered ? std::move(*answered) : response{json_response(599, "")};
    }

    response post(std::string body, std::optional<std::string> content_type = "application/json",
                  std::optional<std::string> content_encoding = std::nullopt,
                  bool too_large = false) {
        request req{http::verb::post, "/flows", 11};
        if (content_type) {
            req.set(http::field::content_type, *content_type);
        }
        if (content_encoding) {
            req.set(http::field::content_encoding, *content_encoding);
        }
        req.body() = std::move(body);
        request_context ctx{req, "req-1", "/flows", "", too_large};
        return finish(handler_.post(ctx));
    }

    response get(std::string_view query,
                 std::optional<std::string> accept_encoding = std::nullopt) {
        request req{http::verb::get, "/flows?" + std::string(query), 11};
        if (accept_encoding) {
            req.set(http::field::accept_encoding, *accept_encoding);
        }
        request_context ctx{req, "req-2", "/flows", query, false};
        return finish(handler_.get(ctx));
    }

    static string_response const& whole(response const& r) {
        EXPECT_TRUE(std::holds_alternative<string_response>(r));
        static string_response const none;
        auto const* s = std::get_if<string_response>(&r);
        return s != nullptr ? *s : none;
    }

    static nlohmann::json json_of(response const& r) {
        return nlohmann::json::parse(whole(r).body());
    }

    static std::string slug_of_response(response const& r) {
        std::string const type = json_of(r).at("type");
        return type.substr(problem_type_base.size());
    }

    prometheus::Registry registry_;
    service_metrics metrics_{registry_, "test", "none"};
    flow_store store_{store_options{8, 1000}};
    memory_ingest ingest_{store_, metrics_};
    admission front_{ingest_, metrics_, admission_options{}};
    flows_handler handler_{store_, front_, metrics_, flows_options{}};
};

// SPEC sealing, with a clock of the test's: hour 100 ends at 101 h; with seal_after 30 min
// it is sealed from 101.5 h on. Per record in order, out of retention before sealed.
TEST(FlowsHandlerSealTest, RecordInASealedHourIsHourSealedAndNothingIsApplied) {
    prometheus::Registry registry;
    service_metrics metrics{registry, "test", "none"};
    flow_store store{store_options{8, 1000}};
    memory_ingest ingest{store, metrics};
    std::uint64_t now_ms = 101 * 3'600'000ULL + 1'800'000ULL;
    flows_options options;
    options.clock = [&now_ms] { return now_ms; };
    options.seal_after = std::chrono::minutes(30);
    admission front{ingest, metrics,
                    admission_options{nullptr, nullptr, 0, options.seal_after, options.clock}};
    flows_handler handler{store, front, metrics, options};
    auto post = [&](std::string body) {
        request req{http::verb::post, "/flows", 11};
        req.set(http::field::content_type, "application/json");
        req.body() = std::move(body);
        request_context ctx{req, "req-1", "/flows", "", false};
        handler_result result = handler.post(ctx);
        if (auto* r = std::get_if<response>(&result)) {
            return std::move(*r);
        }
        std::optional<response> answered;
        std::get<deferred>(result).start([&answered](response r) { answered = std::move(r); });
        return std::move(*answered);
    };

    response const sealed = post("[" + record("a", 1, 101) + "," + record("a", 1, 100) + "]");

    ASSERT_EQ(status_of(sealed), 422U);
    auto const body = nlohmann::json::parse(std::get<string_response>(sealed).body());
    EXPECT_EQ(body.at("type"), "https://flowd.invalid/problems/hour-sealed");
    EXPECT_EQ(body.at("record"), 1);
    EXPECT_EQ(body.at("field"), "hour");
    EXPECT_EQ(store.key_count(), 0U);
    now_ms -= 1;  // a millisecond before the seal: hour 100 is still open
    EXPECT_EQ(status_of(post("[" + record("a", 1, 100) + "]")), 200U);
}

// SPEC, cluster mode: POST decides sealing by the node's clock, caching by the stamp of
// the last stream message applied (seal_clock), so nodes at one sequence agree.
TEST(FlowsHandlerSealTest, CachingSealsHoursByTheSealClockNotTheWallClock) {
    prometheus::Registry registry;
    service_metrics metrics{registry, "test", "none"};
    flow_store store{store_options{8, 1000}};
    memory_ingest ingest{store, metrics};
    std::uint64_t now_ms = 100 * 3'600'000ULL;
    std::uint64_t stamp_ms = 0;
    flows_options options;
    options.clock = [&now_ms] { return now_ms; };
    options.seal_clock = [&stamp_ms] { return stamp_ms; };
    options.seal_after = std::chrono::minutes(30);
    admission front{ingest, metrics,
                    admission_options{nullptr, nullptr, 0, options.seal_after, options.clock}};
    flows_handler handler{store, front, metrics, options};
    auto run = [](handler_result result) {
        if (auto* r = std::get_if<response>(&result)) {
            return std::move(*r);
        }
        std::optional<response> answered;
        std::get<deferred>(result).start([&answered](response r) { answered = std::move(r); });
        return std::move(*answered);
    };
    auto hours = [&] {
        request req{http::verb::get, "/hours?from=100&to=101", 11};
        request_context ctx{req, "req-2", "/hours", "from=100&to=101", false};
        return std::get<string_response>(run(handler.hours(ctx)));
    };
    {
        request req{http::verb::post, "/flows", 11};
        req.set(http::field::content_type, "application/json");
        req.body() = "[" + record("a", 1, 100) + "]";
        request_context ctx{req, "req-1", "/flows", "", false};
        ASSERT_EQ(status_of(run(handler.post(ctx))), 200U);
    }
    now_ms = 101 * 3'600'000ULL + 1'800'000ULL;  // hour 100 sealed by the node's clock

    request req{http::verb::post, "/flows", 11};
    req.set(http::field::content_type, "application/json");
    req.body() = "[" + record("a", 1, 100) + "]";
    request_context ctx{req, "req-3", "/flows", "", false};
    EXPECT_EQ(status_of(run(handler.post(ctx))), 422U);
    string_response const open = hours();
    EXPECT_EQ(open.body(), R"([{"hour":100,"keys":1,"bytes_tx":1,"bytes_rx":1,"sealed":false}])");
    EXPECT_EQ(open[http::field::cache_control], "no-cache");

    stamp_ms = now_ms;  // a message stamped after the seal time was applied
    string_response const sealed = hours();
    EXPECT_EQ(sealed.body(), R"([{"hour":100,"keys":1,"bytes_tx":1,"bytes_rx":1,"sealed":true}])");
    EXPECT_NE(sealed[http::field::cache_control], "no-cache");
    EXPECT_NE(sealed[http::field::etag], open[http::field::etag]);
}

TEST_F(FlowsHandlerTest, PostsSeedBatchAndGetsItBackSorted) {
    response const posted = post(seed_body);
    response const hour1 = get("hour=1");
    response const hour3 = get("hour=3");

    EXPECT_EQ(status_of(posted), 200U);
    EXPECT_EQ(whole(posted).body(), R"({"accepted":5})");
    EXPECT_EQ(status_of(hour1), 200U);
    EXPECT_EQ(whole(hour1)[http::field::content_type], "application/json");
    EXPECT_EQ(
        whole(hour1).body(),
        R"([{"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":1},)"
        R"({"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":300,"bytes_rx":900,"hour":1}])");
    EXPECT_EQ(whole(hour3).body(), "[]");
}

TEST_F(FlowsHandlerTest, EmptyArrayAcceptsZero) {
    response const r = post("[]");

    EXPECT_EQ(status_of(r), 200U);
    EXPECT_EQ(whole(r).body(), R"({"accepted":0})");
    EXPECT_EQ(store_.key_count(), 0U);
}

TEST_F(FlowsHandlerTest, MissingContentTypeIsUnsupportedMediaType) {
    response const r = post(seed_body, std::nullopt);

    EXPECT_EQ(status_of(r), 415U);
    EXPECT_EQ(whole(r)[http::field::content_type], "application/problem+json");
    EXPECT_EQ(slug_of_response(r), "unsupported-media-type");
    EXPECT_EQ(json_of(r).at("instance"), "req-1");
}

TEST_F(FlowsHandlerTest, TextPlainIsUnsupportedMediaType) {
    response const r = post(seed_body, "text/plain");

    EXPECT_EQ(status_of(r), 415U);
}

TEST_F(FlowsHandlerTest, FormEncodingIsUnsupportedMediaType) {
    response const r = post(seed_body, "application/x-www-form-urlencoded");

    EXPECT_EQ(status_of(r), 415U);
}

TEST_F(FlowsHandlerTest, MediaTypeWithCharsetIsAccepted) {
    response const r = post(seed_body, "application/json; charset=utf-8");

    EXPECT_EQ(status_of(r), 200U);
}

TEST_F(FlowsHandlerTest, MediaTypeComparesCaseInsensitively) {
    response const r = post(seed_body, "Application/JSON;Charset=UTF-8");

    EXPECT_EQ(status_of(r), 200U);
}

TEST_F(FlowsHandlerTest, MediaTypePrefixIsNotAccepted) {
    response const r = post(seed_body, "application/jsonx");

    EXPECT_EQ(status_of(r), 415U);
}

TEST_F(FlowsHandlerTest, AcceptsNdjson) {
    response const r =
        post(record("a", 1, 1) + "\n\n" + record("b", 2, 1) + "\r\n", "application/x-ndjson");

    EXPECT_EQ(status_of(r), 200U);
    EXPECT_EQ(whole(r).body(), R"({"accepted":2})");
    EXPECT_EQ(store_.snapshot(1).size(), 2U);
}

TEST_F(FlowsHandlerTest, AcceptsGzipContentEncoding) {
    response const r = post(gzip(seed_body), "application/json", "gzip");

    EXPECT_EQ(status_of(r), 200U);
    EXPECT_EQ(whole(r).body(), R"({"accepted":5})");
}

// RFC 9110 section 8.4.1.3: a recipient should treat x-gzip as gzip.
TEST_F(FlowsHandlerTest, AcceptsXGzipContentEncodingAsGzip) {
    response const r = post(gzip(seed_body), "application/json", "x-gzip");

    EXPECT_EQ(status_of(r), 200U);
    EXPECT_EQ(whole(r).body(), R"({"accepted":5})");
}

// The media type the NDJSON spec names, as well as the older x- one.
TEST_F(FlowsHandlerTest, AcceptsApplicationNdjson) {
    response const r = post(record("a", 1, 1) + "\n" + record("b", 2, 1) + "\n",
                            "Application/NDJSON; charset=utf-8");

    EXPECT_EQ(status_of(r), 200U);
    EXPECT_EQ(whole(r).body(), R"({"accepted":2})");
}

TEST_F(FlowsHandlerTest, AcceptsIdentityContentEncoding) {
    response const r = post(seed_body, "application/json", "identity");

    EXPECT_EQ(status_of(r), 200U);
}

TEST_F(FlowsHandlerTest, UnknownContentEncodingIsUnsupportedMediaType) {
    response const r = post(seed_body, "application/json", "br");

    EXPECT_EQ(status_of(r), 415U);
    EXPECT_EQ(slug_of_response(r), "unsupported-media-type");
}

TEST_F(FlowsHandlerTest, CorruptGzipBodyIsBadRequest) {
    response const r = post("not gzip at all", "application/json", "gzip");

    EXPECT_EQ(status_of(r), 400U);
    EXPECT_EQ(store_.key_count(), 0U);
}

TEST_F(FlowsHandlerTest, BodyTooLargeIsPayloadTooLarge) {
    response const r = post("", "application/json", std::nullopt, true);

    EXPECT_EQ(status_of(r), 413U);
    EXPECT_EQ(slug_of_response(r), "payload-too-large");
}

TEST_F(FlowsHandlerTest, UnsupportedMediaTypeWinsOverBodyTooLarge) {
    response const r = post("", "text/plain", std::nullopt, true);

    EXPECT_EQ(status_of(r), 415U);
}

TEST_F(FlowsHandlerTest, InflatedBodyOverLimitIsPayloadTooLarge) {
    flows_options options;
    options.max_body_bytes = 1000;
    flows_handler small{store_, ingest_, metrics_, options};
    request req{http::verb::post, "/flows", 11};
    req.set(http::field::content_type, "application/json");
    req.set(http::field::content_encoding, "gzip");
    req.body() = gzip("[" + std::string(2000, ' ') + "]");
    request_context ctx{req, "id", "/flows", "", false};

    response const r = finish(small.post(ctx));

    EXPECT_EQ(status_of(r), 413U);
}

TEST_F(FlowsHandlerTest, InvalidRecordIsBadRequestNamingRecordAndField) {
    response const r = post("[" + record("a", 1, 1) + R"(,{"src_app":"x"}])");

    EXPECT_EQ(status_of(r), 400U);
    auto const body = json_of(r);
    EXPECT_EQ(body.at("type"), "https://flowd.invalid/problems/invalid-record");
    EXPECT_EQ(body.at("record"), 1);
    EXPECT_EQ(body.at("field"), "dest_app");
}

TEST_F(FlowsHandlerTest, MalformedJsonIsInvalidJson) {
    response const r = post("[{");

    EXPECT_EQ(status_of(r), 400U);
    EXPECT_EQ(slug_of_response(r), "invalid-json");
}

TEST_F(FlowsHandlerTest, BatchWithOneBadRecordChangesNothing) {
    ASSERT_EQ(status_of(post("[" + record("a", 1, 1) + "]")), 200U);

    response const r = post(
        "[" + record("a", 5, 1) + "," + record("new", 5, 1) + "," + record("b", 1, 1) +
        R"(,{"src_app":"c","dest_app":"d","vpc_id":"v","bytes_tx":-1,"bytes_rx":1,"hour":1}])");
    response const after = get("hour=1");

    EXPECT_EQ(status_of(r), 400U);
    EXPECT_EQ(
        whole(after).body(),
        R"([{"src_app":"a","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":1}])");
}

TEST_F(FlowsHandlerTest, StoreOverflowIsCounterOverflowAndChangesNothing) {
    ASSERT_EQ(status_of(post("[" + record("a", max_counter, 1) + "]")), 200U);

    response const r = post("[" + record("b", 1, 1) + "," + record("a", 1, 1) + "]");
    response const after = get("hour=1");

    EXPECT_EQ(status_of(r), 422U);
    auto const body = json_of(r);
    EXPECT_EQ(body.at("type"), "https://flowd.invalid/problems/counter-overflow");
    EXPECT_EQ(body.at("record"), 1);
    EXPECT_EQ(body.at("field"), "bytes_tx");
    EXPECT_EQ(json_of(after).size(), 1U);
}

TEST_F(FlowsHandlerTest, StoreFullIsInsufficientStorage) {
    std::string body = "[";
    for (int i = 0; i < 1001; ++i) {
        body += (i == 0 ? "" : ",") + record("app-" + std::to_string(i), 1, 1);
    }
    body += "]";

    response const r = post(body);

    EXPECT_EQ(status_of(r), 507U);
    EXPECT_EQ(slug_of_response(r), "store-full");
    EXPECT_EQ(store_.key_count(), 0U);
}

TEST_F(FlowsHandlerTest, TooManyRecordsIsPayloadTooLarge) {
    flows_options options;
    options.limits.max_records = 2;
    flows_handler small{store_, ingest_, metrics_, options};
    request req{http::verb::post, "/flows", 11};
    req.set(http::field::content_type, "application/json");
    req.body() = "[" + record("a", 1, 1) + "," + record("a", 1, 1) + "," + record("a", 1, 1) + "]";
    request_context ctx{req, "id", "/flows", "", false};

    response const r = finish(small.post(ctx));

    EXPECT_EQ(status_of(r), 413U);
    EXPECT_EQ(slug_of_response(r), "too-many-records");
}

TEST_F(FlowsHandlerTest, GetFiltersByEachParameter) {
    ASSERT_EQ(status_of(post(seed_body)), 200U);

    response const by_src = get("hour=1&src_app=foo");
    response const by_vpc = get("hour=2&vpc_id=vpc-1");
    response const by_dest = get("hour=2&dest_app=qux&src_app=baz");
    response const none = get("hour=1&dest_app=nothing");

    ASSERT_EQ(json_of(by_src).size(), 1U);
    EXPECT_EQ(json_of(by_src)[0].at("bytes_tx"), 300);
    ASSERT_EQ(json_of(by_vpc).size(), 1U);
    EXPECT_EQ(json_of(by_vpc)[0].at("vpc_id"), "vpc-1");
    EXPECT_EQ(json_of(by_dest).size(), 2U);
    EXPECT_EQ(whole(none).body(), "[]");
}

TEST_F(FlowsHandlerTest, GetFilterIsPercentDecoded) {
    ASSERT_EQ(status_of(post("[" + record("a b+c", 1, 1) + "," + record("a", 1, 1) + "]")), 200U);

    // '+' is a space (form encoding), %2B a literal plus.
    response const r = get("hour=1&src_app=a%20b%2Bc");
    response const plus_is_space = get("hour=1&src_app=a+b%2Bc");

    ASSERT_EQ(json_of(r).size(), 1U);
    EXPECT_EQ(json_of(r)[0].at("src_app"), "a b+c");
    EXPECT_EQ(json_of(plus_is_space), json_of(r));
}

TEST_F(FlowsHandlerTest, GetSortsInByteOrder) {
    ASSERT_EQ(status_of(post("[" + record("b", 1, 1) + "," + record("\xc3\xa9", 1, 1) + "," +
                             record("B", 1, 1) + "," + record("ab", 1, 1) + "," +
                             record("a", 1, 1) + "]")),
              200U);

    auto const body = json_of(get("hour=1"));

    ASSERT_EQ(body.size(), 5U);
    EXPECT_EQ(body[0].at("src_app"), "B");
    EXPECT_EQ(body[1].at("src_app"), "a");
    EXPECT_EQ(body[2].at("src_app"), "ab");
    EXPECT_EQ(body[3].at("src_app"), "b");
    EXPECT_EQ(body[4].at("src_app"), "\xc3\xa9");
}

TEST_F(FlowsHandlerTest, GetWithoutHourIsInvalidQuery) {
    response const r = get("src_app=foo");

    EXPECT_EQ(status_of(r), 400U);
    EXPECT_EQ(whole(r)[http::field::content_type], "application/problem+json");
    EXPECT_EQ(slug_of_response(r), "invalid-query");
}

TEST_F(FlowsHandlerTest, GetWithUnknownParameterIsInvalidQuery) {
    response const r = get("hour=1&top=5");

    EXPECT_EQ(status_of(r), 400U);
}

TEST_F(FlowsHandlerTest, GetHonoursAcceptEncodingGzip) {
    ASSERT_EQ(status_of(post(seed_body)), 200U);
    std::string const plain = whole(get("hour=1")).body();

    response const r = get("hour=1", "deflate, gzip;q=0.5");

    EXPECT_EQ(whole(r)[http::field::content_encoding], "gzip");
    EXPECT_EQ(whole(r)[http::field::vary], "Accept, Accept-Encoding");
    auto const inflated = gunzip(whole(r).body(), 1 << 20);
    ASSERT_TRUE(inflated);
    EXPECT_EQ(*inflated, plain);
}

TEST_F(FlowsHandlerTest, GetIgnoresGzipWithZeroWeight) {
    ASSERT_EQ(status_of(post(seed_body)), 200U);

    response const r = get("hour=1", "gzip;q=0");

    EXPECT_EQ(whole(r).count(http::field::content_encoding), 0U);
    EXPECT_NO_THROW((void)json_of(r));
}

TEST_F(FlowsHandlerTest, LargeHourIsStreamedAndSerializesToTheExpectedJson) {
    flow_store big_store{store_options{8, 100'000}};
    memory_ingest big_ingest{big_store, metrics_};
    flows_handler big{big_store, big_ingest, metrics_, flows_options{}};
    nlohmann::json expected = nlohmann::json::array();
    std::string body = "[";
    for (int i = 0; i < 2000; ++i) {
        char name[16];
        std::snprintf(name, sizeof name, "app-%05d", i);
        body += (i == 0 ? "" : ",") + record(name, static_cast<std::uint64_t>(i), 9);
        expected.push_back({{"src_app", name},
                            {"dest_app", "d"},
                            {"vpc_id", "v"},
                            {"bytes_tx", i},
                            {"bytes_rx", 1},
                            {"hour", 9}});
    }
    body += "]";
    request post_req{http::verb::post, "/flows", 11};
    post_req.set(http::field::content_type, "application/json");
    post_req.body() = body;
    request_context post_ctx{post_req, "p", "/flows", "", false};
    ASSERT_EQ(status_of(finish(big.post(post_ctx))), 200U);
    request get_req{http::verb::get, "/flows?hour=9", 11};
    request_context get_ctx{get_req, "g", "/flows", "hour=9", false};

    response r = finish(big.get(get_ctx));

    ASSERT_TRUE(std::holds_alternative<stream_response>(r));
    stream_response const& streamed = std::get<stream_response>(r);
    EXPECT_EQ(streamed.result_int(), 200U);
    EXPECT_EQ(streamed[http::field::content_type], "application/json");
    EXPECT_EQ(streamed.body().prefix.front(), '[');  // the first records, written by get()
    flows_serializer serializer{streamed.body().snapshot, streamed.body().gzip,
                                streamed.body().prefix, streamed.body().next};
    std::string json;
    std::string piece;
    for (bool more = true; more;) {
        more = serializer.next(piece);
        json += piece;
    }
    EXPECT_GT(json.size(), flows_handler::stream_threshold);
    EXPECT_EQ(nlohmann::json::parse(json), expected);
}

TEST_F(FlowsHandlerTest, LargeHourIsStreamedGzippedWhenAccepted) {
    std::string body = "[";
    for (int i = 0; i < 900; ++i) {
        body += (i == 0 ? "" : ",") + record("application-" + std::to_string(i), 1, 4);
    }
    body += "]";
    ASSERT_EQ(status_of(post(body)), 200U);

    response r = get("hour=4", "gzip");

    ASSERT_TRUE(std::holds_alternative<stream_response>(r));
    stream_response const& streamed = std::get<stream_response>(r);
    EXPECT_EQ(streamed[http::field::content_encoding], "gzip");
    flows_serializer serializer{streamed.body().snapshot, streamed.body().gzip,
                                streamed.body().prefix, streamed.body().next};
    std::string compressed;
    std::string piece;
    for (bool more = true; more;) {
        more = serializer.next(piece);
        compressed += piece;
    }
    auto const inflated = gunzip(compressed, 1 << 24);
    ASSERT_TRUE(inflated);
    EXPECT_EQ(nlohmann::json::parse(*inflated).size(), 900U);
}

// Cluster mode as flows_handler sees it: an ingest that answers a stream sequence (or 503
// cluster-unavailable) and a wait_applied that says whether min_seq was reached.
class ClusterFlowsHandlerTest : public FlowsHandlerTest {
protected:
    struct stream_ingest : ingest {
        void submit(flow_batch batch, ingest_request info, completion done) override {
            keys.push_back(info.idempotency ? info.idempotency->key : std::string());
            if (down) {
                return done(ingest_outcome::refused(
                    problem{problem_type::cluster_unavailable, "down", {}, {}}));
            }
            done(ingest_outcome::applied(batch.record_count(), ++seq));
        }
        std::uint64_t seq = 0;
        bool down = false;
        std::vector<std::string> keys;
    };

    flows_options cluster_options() {
        flows_options o;
        o.wait_applied = [this](std::uint64_t seq, std::chrono::milliseconds,
                                std::function<void(bool)> done) {
            asked.push_back(seq);
            done(seq <= applied);
        };
        return o;
    }

    response cluster_post(std::string body, std::optional<std::string> key = std::nullopt) {
        request req{http::verb::post, "/flows", 11};
        req.set(http::field::content_type, "application/json");
        if (key) {
            req.set("Idempotency-Key", *key);
        }
        req.body() = std::move(body);
        request_context ctx{req, "req-3", "/flows", "", false};
        return finish(cluster_handler_.post(ctx));
    }

    response cluster_get(std::string_view query) {
        request req{http::verb::get, "/flows?" + std::string(query), 11};
        request_context ctx{req, "req-4", "/flows", query, false};
        return finish(cluster_handler_.get(ctx));
    }

    std::uint64_t applied = 0;
    std::vector<std::uint64_t> asked;
    stream_ingest stream_;
    flows_handler cluster_handler_{store_, stream_, metrics_, cluster_options()};
};

TEST_F(ClusterFlowsHandlerTest, PostAnswersTheStreamSequenceInBodyAndHeader) {
    (void)cluster_post("[" + record("a", 1, 1) + "]");

    auto const r = cluster_post("[" + record("a", 1, 1) + "," + record("b", 1, 1) + "]");

    EXPECT_EQ(whole(r).result_int(), 200);
    EXPECT_EQ(whole(r).body(), R"({"accepted":2,"seq":2})");
    EXPECT_EQ(whole(r)["Flowd-Seq"], "2");
}

TEST_F(ClusterFlowsHandlerTest, IdempotencyKeyGoesToTheStreamNotTheLocalTable) {
    (void)cluster_post("[" + record("a", 1, 1) + "]", "key-1");
    (void)cluster_post("[" + record("a", 1, 1) + "]", "key-1");

    EXPECT_EQ(stream_.keys, (std::vector<std::string>{"key-1", "key-1"}));
}

TEST_F(ClusterFlowsHandlerTest, StreamDownIs503WithRetryAfter) {
    stream_.down = true;

    auto const r = cluster_post("[" + record("a", 1, 1) + "]");

    EXPECT_EQ(whole(r).result_int(), 503);
    EXPECT_EQ(slug_of_response(r), "cluster-unavailable");
    EXPECT_EQ(whole(r)["Retry-After"], "1");
}

TEST_F(ClusterFlowsHandlerTest, GetWithMinSeqAnswersOnceApplied) {
    applied = 5;

    auto const r = cluster_get("hour=1&min_seq=5");

    EXPECT_EQ(whole(r).result_int(), 200);
    EXPECT_EQ(asked, (std::vector<std::uint64_t>{5}));
}

TEST_F(ClusterFlowsHandlerTest, GetWithMinSeqNotReachedIs503) {
    applied = 4;

    auto const r = cluster_get("hour=1&min_seq=5");

    EXPECT_EQ(whole(r).result_int(), 503);
    EXPECT_EQ(slug_of_response(r), "cluster-unavailable");
    EXPECT_EQ(whole(r)["Retry-After"], "1");
}

TEST_F(ClusterFlowsHandlerTest, GetWithoutMinSeqDoesNotWait) {
    auto const r = cluster_get("hour=1");

    EXPECT_EQ(whole(r).result_int(), 200);
    EXPECT_TRUE(asked.empty());
}

TEST(AcceptsGzipTest, ReadsCodingsAndWeights) {
    EXPECT_TRUE(accepts_gzip("gzip"));
    EXPECT_TRUE(accepts_gzip("deflate, GZIP"));
    EXPECT_TRUE(accepts_gzip("gzip;q=0.1"));
    EXPECT_TRUE(accepts_gzip("br;q=1.0, gzip ; q=1"));
    EXPECT_FALSE(accepts_gzip(""));
    EXPECT_FALSE(accepts_gzip("identity"));
    EXPECT_FALSE(accepts_gzip("gzip;q=0"));
    EXPECT_FALSE(accepts_gzip("gzip;q=0.000"));
    EXPECT_FALSE(accepts_gzip("x-gzip2"));
}

TEST(QueryPoolTest, HeavyQueriesRunOffTheIoThreadAndHoldASlotUntilAnswered) {
    prometheus::Registry registry;
    service_metrics metrics{registry, "test", "none"};
    flow_store store{store_options{8, 1000}};
    memory_ingest ingest{store, metrics};
    flows_options options;
    options.query_threads = 1;
    options.max_concurrent_queries = 1;
    flows_handler handler{store, ingest, metrics, options};
    request post_req{http::verb::post, "/flows", 11};
    post_req.set(http::field::content_type, "application/json");
    post_req.body() = seed_body;
    request_context post_ctx{post_req, "p", "/flows", "", false};
    handler_result posted = handler.post(post_ctx);
    if (auto* d = std::get_if<deferred>(&posted)) {
        d->start([](response r) { EXPECT_EQ(status_of(r), 200U); });
    }
    request req{http::verb::get, "/flows/summary?from=0&to=24", 11};
    request_context ctx{req, "s", "/flows/summary", "from=0&to=24&group_by=src_app&top=1", false};
    request plain_req{http::verb::get, "/flows?hour=1", 11};
    request_context plain_ctx{plain_req, "h", "/flows", "hour=1", false};

    handler_result first = handler.summary(ctx);
    ASSERT_TRUE(std::holds_alternative<deferred>(first));
    // Not answered yet: it holds the only slot.
    handler_result const second = handler.summary(ctx);
    ASSERT_TRUE(std::holds_alternative<response>(second));
    EXPECT_EQ(status_of(std::get<response>(second)), 503U);
    EXPECT_EQ(
        header_of(const_cast<response&>(std::get<response>(second)))[http::field::retry_after],
        "1");
    // One hour alone is not a heavy query: answered at once, on this thread.
    handler_result const plain = handler.get(plain_ctx);
    ASSERT_TRUE(std::holds_alternative<response>(plain));
    EXPECT_EQ(status_of(std::get<response>(plain)), 200U);

    std::promise<response> answered;
    std::get<deferred>(first).start([&answered](response r) { answered.set_value(std::move(r)); });
    first = response{json_response(200, "")};  // as the middleware drops it once started
    response const r = answered.get_future().get();
    ASSERT_TRUE(std::holds_alternative<string_response>(r));
    EXPECT_EQ(std::get<string_response>(r).body(),
              R"({"from":0,"to":24,"group_by":["src_app"],"order_by":"bytes",)"
              R"("top":[{"src_app":"baz","bytes_tx":300,"bytes_rx":1500}],)"
              R"("other":{"groups":1,"bytes_tx":300,"bytes_rx":900},)"
              R"("total":{"groups":2,"bytes_tx":600,"bytes_rx":2400}})");
    // The slot comes back once the pool task that answered ends.
    bool freed = false;
    for (int i = 0; i < 1000 && !freed; ++i) {
        freed = std::holds_alternative<deferred>(handler.summary(ctx));
        if (!freed) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    EXPECT_TRUE(freed);
}

}  // namespace
}  // namespace flowd
