#include <chrono>
#include <csignal>
#include <cstdio>
#include <set>
#include <string>

#include <boost/beast/http/field.hpp>
#include <gtest/gtest.h>

#include "server_fixture.hpp"

namespace flowd::test {
namespace {

namespace http = boost::beast::http;

std::set<std::string> flowd_names(std::vector<metric_sample> const& samples) {
    std::set<std::string> names;
    for (auto const& s : samples) {
        if (s.name.rfind("flowd_", 0) == 0) {
            names.insert(s.name);
        }
    }
    return names;
}

TEST(MetricsEndpointTest, MainListenerServesPrometheusText) {
    flowd_process flowd;
    http_client client{flowd.port()};
    ASSERT_EQ(client.get("/healthz").result_int(), 200U);

    auto r = client.get("/metrics");
    auto const samples = parse_metrics(r.body());

    EXPECT_EQ(r.result_int(), 200U);
    EXPECT_EQ(r[http::field::content_type], "text/plain; version=0.0.4");
    EXPECT_FALSE(samples.empty());
    for (std::string const name :
         {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
          "process_max_fds", "process_start_time_seconds"}) {
        EXPECT_TRUE(metric_value(samples, name).has_value()) << name;
    }
    auto const build = metric_value(samples, "flowd_build_info");
    ASSERT_TRUE(build.has_value());
    EXPECT_EQ(*build, 1.0);
    for (auto const& s : samples) {
        if (s.name == "flowd_build_info") {
            EXPECT_FALSE(s.labels.at("version").empty());
            EXPECT_TRUE(s.labels.count("commit"));
        }
    }
    EXPECT_NE(r.body().find("# TYPE flowd_http_requests_total counter"), std::string::npos);
}

TEST(MetricsEndpointTest, CountsRecordsRequestsAndKeysExactly) {
    flowd_process flowd;
    http_client client{flowd.port()};
    ASSERT_EQ(client.post("/flows", seed_batch()).result_int(), 200U);
    ASSERT_EQ(
        client
            .post("/flows",
                  flow_json("n", "d", "v", 1, 1, 1) + "\n" + flow_json("n", "d", "v", 1, 1, 1),
                  "application/x-ndjson")
            .result_int(),
        200U);
    ASSERT_EQ(client.post("/flows", "[{").result_int(), 400U);
    ASSERT_EQ(client.post("/flows", "[]", "text/plain").result_int(), 415U);
    ASSERT_EQ(client.get("/flows?hour=1").result_int(), 200U);
    ASSERT_EQ(client.get("/flows?hour=2").result_int(), 200U);
    ASSERT_EQ(client.get("/nowhere").result_int(), 404U);
    ASSERT_EQ(client.get("/healthz").result_int(), 200U);

    auto const samples = parse_metrics(client.get("/metrics").body());
    auto requests = [&](std::string const& route, std::string const& method,
                        std::string const& code) {
        return metric_value(samples, "flowd_http_requests_total",
                            {{"route", route}, {"method", method}, {"code", code}});
    };

    EXPECT_EQ(metric_value(samples, "flowd_flows_ingested_total"), 7.0);
    EXPECT_EQ(metric_value(samples, "flowd_flows_applied_total", {{"source", "post"}}), 7.0);
    EXPECT_EQ(metric_value(samples, "flowd_batches_total", {{"result", "accepted"}}), 2.0);
    EXPECT_EQ(metric_value(samples, "flowd_batches_total", {{"result", "rejected"}}), 2.0);
    EXPECT_EQ(requests("/flows", "POST", "200"), 2.0);
    EXPECT_EQ(requests("/flows", "POST", "400"), 1.0);
    EXPECT_EQ(requests("/flows", "POST", "415"), 1.0);
    EXPECT_EQ(requests("/flows", "GET", "200"), 2.0);
    EXPECT_EQ(requests("other", "GET", "404"), 1.0);
    EXPECT_EQ(requests("/healthz", "GET", "200"), 1.0);
    // seed: (foo,bar,vpc-0,1) (baz,qux,vpc-0,1) (baz,qux,vpc-0,2) (baz,qux,vpc-1,2); ndjson:
    // (n,d,v,1)
    EXPECT_EQ(metric_value(samples, "flowd_store_keys"), 5.0);
    EXPECT_EQ(metric_value(samples, "flowd_store_hour_buckets"), 2.0);
    EXPECT_EQ(metric_value(samples, "flowd_http_connections_open"), 1.0);
    EXPECT_GT(metric_value(samples, "flowd_http_request_duration_seconds_count",
                           {{"route", "/flows"}, {"method", "POST"}})
                  .value_or(0),
              3.0);
}

TEST(MetricsEndpointTest, LimitRejectionsAreCountedByLimit) {
    flowd_process flowd({}, {{"FLOWD_MAX_RECORDS_PER_BATCH", "1"}});
    http_client client{flowd.port()};
    std::string const rec = flow_json("a", "b", "v", 1, 1, 1);
    ASSERT_EQ(client.post("/flows", "[" + rec + "," + rec + "]").result_int(), 413U);

    auto const samples = parse_metrics(client.get("/metrics").body());

    EXPECT_EQ(
        metric_value(samples, "flowd_limit_rejections_total", {{"limit", "max_records_per_batch"}}),
        1.0);
    EXPECT_EQ(metric_value(samples, "flowd_flows_ingested_total"), 0.0);
}

TEST(MetricsEndpointTest, ExposerServesTheSameFlowdMetrics) {
    flowd_process flowd;
    http_client client{flowd.port()};
    ASSERT_EQ(client.post("/flows", seed_batch()).result_int(), 200U);
    auto const main_samples = parse_metrics(client.get("/metrics").body());

    http_client exposer{flowd.metrics_port()};
    auto r = exposer.get("/metrics");
    auto const exposer_samples = parse_metrics(r.body());

    EXPECT_EQ(r.result_int(), 200U);
    EXPECT_EQ(metric_value(exposer_samples, "flowd_flows_ingested_total"), 5.0);
    EXPECT_EQ(metric_value(exposer_samples, "flowd_store_keys"), 4.0);
    EXPECT_EQ(metric_value(exposer_samples, "flowd_build_info"), 1.0);
    EXPECT_TRUE(metric_value(exposer_samples, "process_start_time_seconds").has_value());
    std::set<std::string> const on_main = flowd_names(main_samples);
    std::set<std::string> const on_exposer = flowd_names(exposer_samples);
    EXPECT_EQ(on_main, on_exposer);
}

// The metrics listener is flowd's own HTTP stack: IPv6 as the main listener takes it, and
// the probes a load balancer or kubelet sends without a client certificate.
TEST(MetricsEndpointTest, MetricsListenerTakesIpv6AndAnswersProbes) {
    flowd_process flowd({"--listen", "127.0.0.1:0", "--metrics-listen", "[::1]:0"}, {}, false);
    http_client m{flowd.metrics_port(), "::1"};

    EXPECT_EQ(m.get("/metrics").result_int(), 200U);
    EXPECT_EQ(m.get("/healthz").result_int(), 200U);
    EXPECT_EQ(m.get("/readyz").result_int(), 200U);
    EXPECT_TRUE(is_problem(m.get("/flows?hour=1"), 404, "not-found"));
    EXPECT_NE(flowd.log().find("metrics listening on [::1]:"), std::string::npos) << flowd.log();
}

TEST(MetricsEndpointTest, MetricsPortInUseExitsOneSayingSo) {
    flowd_process first;
    std::string const address = "127.0.0.1:" + std::to_string(first.metrics_port());

    auto r = run_flowd({"--listen", "127.0.0.1:0", "--metrics-listen", address});

    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find(address), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("already in use"), std::string::npos) << r.err;
}

// An idle flowd exits promptly on SIGTERM: nothing (the old civetweb exposer took ~2 s)
// holds the exit. A loose bound: what it guards against is seconds.
TEST(MetricsEndpointTest, IdleFlowdExitsPromptlyOnSigterm) {
    flowd_process flowd;
    {
        http_client m{flowd.metrics_port()};
        ASSERT_EQ(m.get("/metrics").result_int(), 200U);
    }
    auto const start = std::chrono::steady_clock::now();
    flowd.signal(SIGTERM);

    EXPECT_EQ(flowd.wait_exit(), 0);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
}

// SPEC Metrics, last paragraph: the series dashboards and alerts use exist from the start,
// and none exists for a route x method the route does not allow.
TEST(MetricsEndpointTest, KnownSeriesExistAtZeroAndNoneForDisallowedMethods) {
    flowd_process flowd;
    http_client m{flowd.metrics_port()};
    auto const at_start = parse_metrics(m.get("/metrics").body());

    for (std::string const method : {"POST", "GET", "HEAD", "OPTIONS"}) {
        EXPECT_EQ(metric_value(at_start, "flowd_http_requests_total",
                               {{"route", "/flows"}, {"method", method}, {"code", "200"}}),
                  0.0)
            << method;
        EXPECT_EQ(metric_value(at_start, "flowd_http_request_duration_seconds_count",
                               {{"route", "/flows"}, {"method", method}}),
                  0.0)
            << method;
    }
    for (std::string const limit :
         {"max_body_bytes", "max_header_bytes", "header_timeout", "max_connections", "max_keys",
          "max_store_bytes", "max_query_hours", "max_query_scan_rows"}) {
        EXPECT_EQ(metric_value(at_start, "flowd_limit_rejections_total", {{"limit", limit}}), 0.0)
            << limit;
    }
    for (std::string const source : {"post", "replay", "stream", "flow"}) {
        EXPECT_EQ(metric_value(at_start, "flowd_flows_applied_total", {{"source", source}}), 0.0)
            << source;
    }
    for (std::string const result : {"accepted", "rejected", "duplicate"}) {
        EXPECT_EQ(metric_value(at_start, "flowd_batches_total", {{"result", result}}), 0.0)
            << result;
    }
    EXPECT_FALSE(metric_value(at_start, "flowd_http_request_duration_seconds_count",
                              {{"route", "/flows"}, {"method", "PUT"}})
                     .has_value());
    EXPECT_FALSE(metric_value(at_start, "flowd_http_request_duration_seconds_count",
                              {{"route", "/healthz"}, {"method", "POST"}})
                     .has_value());

    http_client c{flowd.port()};
    http_request put{boost::beast::http::verb::put, "/flows", 11};
    EXPECT_EQ(c.send(put).result_int(), 405U);
    auto const after = parse_metrics(m.get("/metrics").body());
    EXPECT_FALSE(
        metric_value(after, "flowd_http_requests_total", {{"route", "/flows"}, {"method", "PUT"}})
            .has_value());
    EXPECT_EQ(metric_value(after, "flowd_http_requests_total",
                           {{"route", "other"}, {"method", "PUT"}, {"code", "405"}}),
              1.0);
}

// Records whose three names are unique and 200+ bytes long: what max_keys alone did not
// bound (issue 13).
std::string long_name_batch(int first, int count) {
    std::string body = "[";
    std::string const pad(200, 'x');
    for (int i = first; i < first + count; ++i) {
        std::string const id = std::to_string(i);
        if (i != first) {
            body += ",";
        }
        body += flow_json(pad + "s" + id, pad + "d" + id, pad + "v" + id, 1, 1, 1);
    }
    return body + "]";
}

TEST(MetricsEndpointTest, MaxStoreBytesRefusesWhatWouldPassItAndIsExported) {
    flowd_process flowd({}, {{"FLOWD_MAX_STORE_BYTES", "8000000"}});
    http_client c{flowd.port()};
    int refused_at = -1;
    for (int i = 0; i < 400 && refused_at < 0; ++i) {
        auto r = c.post("/flows", long_name_batch(i * 100, 100));
        if (r.result_int() != 200U) {
            EXPECT_TRUE(is_problem(r, 507, "store-full")) << r.body();
            EXPECT_NE(r.body().find("max_store_bytes"), std::string::npos) << r.body();
            refused_at = i;
        }
    }
    ASSERT_GT(refused_at, 5) << "the bound, not something else, refused";

    auto const samples = parse_metrics(c.get("/metrics").body());
    EXPECT_EQ(metric_value(samples, "flowd_store_max_bytes"), 8e6);
    EXPECT_LE(metric_value(samples, "flowd_store_memory_bytes").value_or(9e9), 8e6);
    EXPECT_NE(flowd.log().find("max_store_bytes=8000000"), std::string::npos) << flowd.log();
}

TEST(MetricsEndpointTest, MaxStoreBytesDefaultsToHalfTheMemoryLimit) {
    flowd_process flowd;
    auto const samples = parse_metrics(http_client{flowd.port()}.get("/metrics").body());

    double const bound = metric_value(samples, "flowd_store_max_bytes").value_or(0);
    EXPECT_GT(bound, 0);
    EXPECT_NE(flowd.log().find("store bounded at max_store_bytes="), std::string::npos);
    EXPECT_NE(flowd.log().find("(half of "), std::string::npos) << flowd.log();
}

// flowd_store_memory_bytes follows what the store really costs: 20,000 keys of long names
// grow it by about what they grow the process's resident memory.
TEST(MetricsEndpointTest, StoreMemoryBytesFollowsResidentMemory) {
    flowd_process flowd;
    http_client c{flowd.port()};
    auto value = [&](std::string const& name) {
        return metric_value(parse_metrics(c.get("/metrics").body()), name).value_or(0);
    };
    ASSERT_EQ(c.post("/flows", long_name_batch(0, 100)).result_int(), 200U);  // warm up
    double const rss0 = value("process_resident_memory_bytes");
    double const store0 = value("flowd_store_memory_bytes");

    for (int i = 1; i <= 200; ++i) {
        ASSERT_EQ(c.post("/flows", long_name_batch(i * 100, 100)).result_int(), 200U);
    }
    double const rss_growth = value("process_resident_memory_bytes") - rss0;
    double const store_growth = value("flowd_store_memory_bytes") - store0;

    std::printf("[ memory ] 20,000 keys: RSS +%.1f MB, flowd_store_memory_bytes +%.1f MB\n",
                rss_growth / 1e6, store_growth / 1e6);
    // At least the names' own bytes: 60,000 distinct names of 205+ bytes.
    EXPECT_GT(store_growth, 60'000 * 205.0);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    // A sanitizer's shadow memory and quarantine inflate RSS several times over: only the
    // names' bound above is meaningful under it.
#else
    EXPECT_GT(store_growth, 0.5 * rss_growth);
    EXPECT_LT(store_growth, 2.0 * rss_growth);
#endif
}

}  // namespace
}  // namespace flowd::test
