// The operators' kit (deploy/), checked against the real tools: promtool on flowd's live
// /metrics, a real Prometheus scraping the real flowd, the Grafana dashboard's PromQL, the
// alert rules and their unit tests, and systemd-analyze on the unit. A missing tool fails
// the test: scripts/install-deps.sh installs the Debian packages prometheus and systemd.
#include <algorithm>
#include <iterator>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "../integration/server_fixture.hpp"
#include "ops_tools.hpp"

namespace flowd::test {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> lines_of(std::string const& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty()) {
            out.push_back(line);
        }
    }
    return out;
}

// Traffic that makes every labelled family show a series: a good batch, a bad one, an
// unknown path, a GET, and a body over max_body_bytes (a limit rejection).
void exercise(flowd_process const& flowd) {
    http_client client{flowd.port()};
    ASSERT_EQ(client.post("/flows", seed_batch()).result_int(), 200U);
    ASSERT_EQ(client.post("/flows", "[{").result_int(), 400U);
    ASSERT_EQ(client.get("/nope").result_int(), 404U);
    ASSERT_EQ(client.get("/flows?hour=1").result_int(), 200U);
    http_client big{flowd.port()};
    auto const r = big.post("/flows", "[" + std::string(8000, ' ') + "]");
    ASSERT_EQ(r.result_int(), 413U) << r.body();
}

std::map<std::string, std::string> const small_body_env{{"FLOWD_MAX_BODY_BYTES", "4096"}};

std::string scrape(std::uint16_t port) {
    http_client client{port};
    auto const r = client.get("/metrics");
    EXPECT_EQ(r.result_int(), 200U);
    return r.body();
}

::testing::AssertionResult promtool_clean(std::string const& exposition) {
    auto const r = run_tool({"promtool", "check", "metrics"}, exposition);
    if (!r.spawn_error.empty()) {
        return ::testing::AssertionFailure() << r.describe();
    }
    // Clean, with no exception: exit 0 and no finding (the hour-bucket names no longer
    // read as a time unit to promtool's linter).
    if (r.exit_code != 0 || !lines_of(r.out + r.err).empty()) {
        return ::testing::AssertionFailure() << r.describe();
    }
    return ::testing::AssertionSuccess();
}

TEST(OpsMetricsTest, PromtoolCheckMetricsIsCleanOnBothListeners) {
    flowd_process flowd({}, small_body_env);
    ASSERT_NO_FATAL_FAILURE(exercise(flowd));
    std::string const main_text = scrape(flowd.port());
    ASSERT_NE(main_text.find("flowd_limit_rejections_total{"), std::string::npos) << main_text;
    ASSERT_NE(main_text.find("flowd_http_requests_total{"), std::string::npos);
    EXPECT_TRUE(promtool_clean(main_text)) << "main listener /metrics";
    EXPECT_TRUE(promtool_clean(scrape(flowd.metrics_port()))) << "exposer /metrics";
}

TEST(OpsMetricsTest, PromtoolCheckMetricsReportsAProblemItIsShown) {
    // The check above is only worth something if promtool does complain on a bad exposition.
    auto const r = run_tool({"promtool", "check", "metrics"},
                            "# HELP flowd_bad_count a counter without _total\n"
                            "# TYPE flowd_bad_count counter\nflowd_bad_count 1\n");
    ASSERT_TRUE(r.spawn_error.empty()) << r.describe();
    EXPECT_NE(r.exit_code, 0) << r.describe();
    EXPECT_FALSE(
        promtool_clean("# HELP flowd_bad_count x\n# TYPE flowd_bad_count counter\n"
                       "flowd_bad_count 1\n"));
}

std::string scrape_config_for(std::uint16_t metrics_port) {
    return "  - job_name: flowd\n    static_configs:\n      - targets: ['127.0.0.1:" +
           std::to_string(metrics_port) + "']\n";
}

// The single sample value of an instant-vector answer, or "" when there is not exactly one.
std::string single_value(nlohmann::json const& answer) {
    if (answer.value("status", "") != "success") {
        return "";
    }
    auto const& result = answer["data"]["result"];
    if (!result.is_array() || result.size() != 1) {
        return "";
    }
    return result[0]["value"][1].get<std::string>();
}

TEST(OpsPrometheusTest, RealScrapeSeesUpAndEveryIngestedRecord) {
    flowd_process flowd;
    http_client client{flowd.port()};
    ASSERT_EQ(client.post("/flows", seed_batch()).result_int(), 200U);  // 5 records
    std::string ndjson;
    for (int i = 0; i < 7; ++i) {
        ndjson += flow_json("src" + std::to_string(i), "dst", "vpc-0", 10, 20, 3) + "\n";
    }
    ASSERT_EQ(client.post("/flows", ndjson, "application/x-ndjson").result_int(), 200U);
    // A rejected batch adds nothing.
    ASSERT_EQ(client.post("/flows", "[" + flow_json("a", "b", "c", 1, 1, 1) + ",{}]").result_int(),
              400U);

    prometheus_server prometheus{scrape_config_for(flowd.metrics_port())};
    std::string up;
    std::string ingested;
    bool const scraped = eventually(
        [&] {
            up = single_value(prometheus.query(R"(up{job="flowd"})"));
            ingested = single_value(prometheus.query(R"(flowd_flows_ingested_total{job="flowd"})"));
            return up == "1" && ingested == "12";
        },
        60s);
    ASSERT_TRUE(scraped) << "up=" << up << " flowd_flows_ingested_total=" << ingested
                         << "\nprometheus log:\n"
                         << prometheus.log();

    // Later posts show up in a later scrape.
    ASSERT_EQ(client.post("/flows", "[" + flow_json("x", "y", "z", 1, 1, 4) + "]").result_int(),
              200U);
    EXPECT_TRUE(eventually(
        [&] {
            ingested = single_value(prometheus.query(R"(flowd_flows_ingested_total{job="flowd"})"));
            return ingested == "13";
        },
        30s))
        << "flowd_flows_ingested_total=" << ingested;
}

// Every "expr" in the dashboard JSON, wherever it is nested.
void collect_exprs(nlohmann::json const& j, std::vector<std::string>& out) {
    if (j.is_object()) {
        for (auto const& [key, value] : j.items()) {
            if (key == "expr" && value.is_string()) {
                out.push_back(value.get<std::string>());
            } else {
                collect_exprs(value, out);
            }
        }
    } else if (j.is_array()) {
        for (auto const& v : j) {
            collect_exprs(v, out);
        }
    }
}

// The names flowd exports: every sample name on the metrics listener's /metrics
// (histograms as their _bucket/_sum/_count series); the main listener serves the same.
std::set<std::string> exported_names(flowd_process const& flowd) {
    std::set<std::string> names;
    for (auto const& s : parse_metrics(scrape(flowd.metrics_port()))) {
        names.insert(s.name);
    }
    return names;
}

std::vector<std::string> rule_exprs() {
    std::vector<std::string> out;
    YAML::Node const rules = YAML::LoadFile(source_path("deploy/prometheus/flowd-rules.yml"));
    for (auto const& group : rules["groups"]) {
        for (auto const& rule : group["rules"]) {
            out.push_back(rule["expr"].as<std::string>());
        }
    }
    return out;
}

TEST(OpsDashboardTest, EveryExpressionNamesExportedMetricsAndIsValidPromQL) {
    flowd_process flowd({}, small_body_env);
    ASSERT_NO_FATAL_FAILURE(exercise(flowd));
    std::set<std::string> exported = exported_names(flowd);
    // The cluster panels and alert read metrics only a flowd in cluster mode exports; one
    // whose NATS servers are unreachable registers them all the same (from start, at 0).
    {
        flowd_process cluster_node({"--cluster", "nats://127.0.0.1:9"},
                                   {{"FLOWD_NODE_NAME", "ops"}});
        exported.merge(exported_names(cluster_node));
    }

    auto const dashboard =
        nlohmann::json::parse(read_text(source_path("deploy/grafana/flowd-dashboard.json")));
    std::vector<std::string> exprs;
    collect_exprs(dashboard["panels"], exprs);
    ASSERT_GE(exprs.size(), 20U);
    // The instance variable's query is Grafana's label_values(selector, label): its selector
    // is PromQL too.
    for (auto const& var : dashboard["templating"]["list"]) {
        if (var.value("type", "") != "query") {
            continue;
        }
        std::string const q = var["query"].is_object() ? var["query"].value("query", "")
                                                       : var["query"].get<std::string>();
        std::smatch m;
        std::regex const label_values(R"(^label_values\((.*),\s*[a-zA-Z_]+\)$)");
        ASSERT_TRUE(std::regex_match(q, m, label_values)) << q;
        exprs.push_back(m[1]);
    }

    std::set<std::string> used;
    std::vector<std::string> promql;
    for (auto const& raw : exprs) {
        std::string const expr = substitute_grafana_variables(raw);
        for (auto const& name : promql_metric_names(expr)) {
            used.insert(name);
            EXPECT_EQ(exported.count(name), 1U) << "dashboard expression names '" << name
                                                << "', which flowd does not export: " << raw;
        }
        promql.push_back(expr);
    }
    // The panels the issue asks for: ingest, requests/latency/errors, store, log and
    // checkpoints, process CPU and memory.
    for (std::string const name : {"flowd_flows_ingested_total",
                                   "flowd_batches_total",
                                   "flowd_http_requests_total",
                                   "flowd_http_request_duration_seconds_bucket",
                                   "flowd_store_keys",
                                   "flowd_store_hour_buckets",
                                   "flowd_store_memory_bytes",
                                   "flowd_wal_bytes_total",
                                   "flowd_wal_fsync_duration_seconds_bucket",
                                   "flowd_checkpoint_last_success_timestamp_seconds",
                                   "process_cpu_seconds_total",
                                   "process_resident_memory_bytes",
                                   "flowd_query_duration_seconds_count",
                                   "flowd_query_duration_seconds_bucket",
                                   "flowd_query_rows_scanned_total",
                                   "flowd_store_max_bytes",
                                   "flowd_flow_packets_total",
                                   "flowd_flow_records_total",
                                   "flowd_flow_records_dropped_total",
                                   "flowd_flow_sequence_gaps_total",
                                   "flowd_flow_socket_drops_total",
                                   "flowd_cluster_publish_retries_total",
                                   "flowd_cluster_failover_seconds_bucket",
                                   "flowd_cluster_consumer_restarts_total",
                                   "flowd_streams_open",
                                   "flowd_streams_max",
                                   "flowd_stream_resets_total"}) {
        EXPECT_EQ(used.count(name), 1U) << "no dashboard panel shows " << name;
    }
    // The alert rules name only exported metrics too (plus Prometheus' own `up`).
    for (auto const& expr : rule_exprs()) {
        for (auto const& name : promql_metric_names(expr)) {
            EXPECT_TRUE(name == "up" || exported.count(name) == 1U)
                << "rule expression names '" << name << "', which flowd does not export: " << expr;
        }
        promql.push_back(expr);
    }

    prometheus_server prometheus{scrape_config_for(flowd.metrics_port())};
    ASSERT_TRUE(eventually(
        [&] { return single_value(prometheus.query(R"(up{job="flowd"})")) == "1"; }, 60s))
        << prometheus.log();
    for (auto const& expr : promql) {
        auto const answer = prometheus.query(expr);
        EXPECT_EQ(answer.value("status", ""), "success") << expr << "\n" << answer.dump();
    }
    // Data reaches the panels: the ingest panel's series is there once two scrapes exist.
    EXPECT_TRUE(eventually(
        [&] {
            auto const a = prometheus.query(
                R"(sum by (instance) (rate(flowd_flows_ingested_total{job="flowd"}[1m])))");
            return a["data"]["result"].size() == 1;
        },
        30s));
}

TEST(OpsDashboardTest, MetricNameExtractionIgnoresLabelsFunctionsAndKeywords) {
    EXPECT_EQ(
        promql_metric_names(
            R"(histogram_quantile(0.99, sum by (route, le) (rate(a_bucket{code=~"5..", x="y z"}[5m]))) > on (job) b and c offset 5m)"),
        (std::set<std::string>{"a_bucket", "b", "c"}));
    EXPECT_EQ(promql_metric_names("time() - process_start_time_seconds"),
              (std::set<std::string>{"process_start_time_seconds"}));
    EXPECT_EQ(substitute_grafana_variables(R"(rate(x{i=~"$instance"}[$__rate_interval]))"),
              R"(rate(x{i=~".*"}[1m]))");
    EXPECT_THROW(substitute_grafana_variables("rate(x[$nope])"), std::runtime_error);
}

std::string const rules_file = "deploy/prometheus/flowd-rules.yml";
std::string const rules_test_file = "deploy/prometheus/flowd-rules.test.yml";

TEST(OpsRulesTest, PromtoolCheckRulesPassesWithEveryLint) {
    auto const r = run_tool(
        {"promtool", "check", "rules", "--lint=all", "--lint-fatal", source_path(rules_file)});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_NE(r.out.find("SUCCESS: 11 rules found"), std::string::npos) << r.describe();
}

TEST(OpsRulesTest, PromtoolUnitTestsPass) {
    auto const r = run_tool({"promtool", "test", "rules", source_path(rules_test_file)});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_NE(r.out.find("SUCCESS"), std::string::npos) << r.describe();
}

TEST(OpsRulesTest, EveryAlertIsTestedFiringAndQuiet) {
    std::set<std::string> alerts;
    YAML::Node const rules = YAML::LoadFile(source_path(rules_file));
    for (auto const& group : rules["groups"]) {
        for (auto const& rule : group["rules"]) {
            alerts.insert(rule["alert"].as<std::string>());
        }
    }
    EXPECT_EQ(alerts,
              (std::set<std::string>{"FlowdDown", "FlowdHighErrorRatio", "FlowdHighLatencyP99",
                                     "FlowdLogFsyncSlow", "FlowdCheckpointTooOld",
                                     "FlowdRateLimitedHigh", "FlowdStoreNearKeyLimit",
                                     "FlowdStoreNearMemoryLimit", "FlowdFlowExportsLost",
                                     "FlowdClusterStreamUnavailable", "FlowdStreamsNearLimit"}));
    std::set<std::string> fires;
    std::set<std::string> quiet;
    YAML::Node const tests = YAML::LoadFile(source_path(rules_test_file));
    for (auto const& test : tests["tests"]) {
        // Every test has an instance that must never alert: no expected alert names it.
        bool const has_good = [&] {
            for (auto const& s : test["input_series"]) {
                if (s["series"].as<std::string>().find("instance=\"good:9464\"") !=
                    std::string::npos) {
                    return true;
                }
            }
            return false;
        }();
        for (auto const& check : test["alert_rule_test"]) {
            std::string const name = check["alertname"].as<std::string>();
            if (check["exp_alerts"].size() == 0) {
                quiet.insert(name);
            } else if (has_good) {
                fires.insert(name);
            }
            for (auto const& a : check["exp_alerts"]) {
                EXPECT_NE(a["exp_labels"]["instance"].as<std::string>(), "good:9464") << name;
            }
        }
    }
    EXPECT_EQ(fires, alerts) << "each alert needs a test where it fires beside a quiet instance";
    EXPECT_EQ(quiet, alerts) << "each alert needs an evaluation where nothing fires";
}

TEST(OpsRulesTest, ExampleScrapeConfigIsValidAndLoadsTheRules) {
    auto const r = run_tool({"promtool", "check", "config", "--lint=all", "--lint-fatal",
                             source_path("deploy/prometheus/prometheus.yml")});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_NE(r.out.find("SUCCESS: 1 rule files found"), std::string::npos) << r.describe();
    EXPECT_NE(r.out.find("SUCCESS: 11 rules found"), std::string::npos) << r.describe();
}

std::string const unit_file = "deploy/systemd/flowd.service";

// The unit's [Service] settings; a key given twice keeps its values in order.
std::multimap<std::string, std::string> unit_settings(std::string const& text) {
    std::multimap<std::string, std::string> out;
    for (auto const& line : lines_of(text)) {
        if (line[0] == '#' || line[0] == '[') {
            continue;
        }
        auto const eq = line.find('=');
        if (eq != std::string::npos) {
            out.emplace(line.substr(0, eq), line.substr(eq + 1));
        }
    }
    return out;
}

std::string one(std::multimap<std::string, std::string> const& settings, std::string const& key) {
    auto const [b, e] = settings.equal_range(key);
    if (b == e || std::next(b) != e) {
        return "<" + key + " not set exactly once>";
    }
    return b->second;
}

// A copy of the unit whose ExecStart runs the binary this build made.
std::string unit_for_built_binary(temp_dir const& dir) {
    std::string const text = read_text(source_path(unit_file));
    std::regex const exec(R"(^ExecStart=/usr/local/bin/flowd )", std::regex::multiline);
    EXPECT_TRUE(std::regex_search(text, exec)) << "ExecStart is not /usr/local/bin/flowd";
    return dir.write(
        "flowd.service",
        std::regex_replace(text, exec, "ExecStart=" + std::string(FLOWD_BINARY) + " "));
}

TEST(OpsSystemdTest, SystemdAnalyzeVerifyAcceptsTheUnitWithTheBuiltBinary) {
    temp_dir dir;
    std::string const unit = unit_for_built_binary(dir);
    // --man=no: no man pages in minimal images; --generators=no: generators need a running
    // systemd's /run. Neither needs systemd as PID 1 (checked in a container without it).
    auto const r = run_tool({"systemd-analyze", "verify", "--man=no", "--generators=no", unit});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    // verify only warns (exit 0) on unknown keys and bad values: any output is a finding.
    EXPECT_EQ(r.out + r.err, "") << r.describe();

    // And it does catch a mistake: an unknown key is reported.
    std::string const bad =
        dir.write("bad.service",
                  std::regex_replace(read_text(unit), std::regex("\nRestart="), "\nRestartt="));
    auto const b = run_tool({"systemd-analyze", "verify", "--man=no", "--generators=no", bad});
    EXPECT_NE(b.out + b.err, "") << b.describe();
}

TEST(OpsSystemdTest, UnitIsHardenedAndOutlastsTheDrain) {
    auto const settings = unit_settings(read_text(source_path(unit_file)));
    EXPECT_EQ(one(settings, "DynamicUser"), "yes");
    EXPECT_EQ(one(settings, "StateDirectory"), "flowd");
    EXPECT_EQ(one(settings, "ProtectSystem"), "strict");
    EXPECT_EQ(one(settings, "NoNewPrivileges"), "yes");
    EXPECT_EQ(one(settings, "Restart"), "on-failure");
    std::string const exec = one(settings, "ExecStart");
    EXPECT_NE(exec.find(" --data-dir /var/lib/flowd"), std::string::npos) << exec;
    EXPECT_NE(exec.find(" --config /etc/flowd/flowd.yaml"), std::string::npos) << exec;

    // Every flag of ExecStart is one the built binary documents.
    auto const help = run_flowd({"--help"});
    ASSERT_EQ(help.exit_code, 0);
    std::regex const flag(R"(--[a-z-]+)");
    for (std::sregex_iterator it(exec.begin(), exec.end(), flag), end; it != end; ++it) {
        EXPECT_NE(help.out.find(it->str()), std::string::npos) << it->str() << " not in --help";
    }

    // With the shipped config (installed as /etc/flowd/flowd.yaml), flowd logs its effective
    // grace_period and max_connections: the unit must outlast the one and exceed the other.
    flowd_process flowd({"--config", source_path("config/flowd.yaml")});
    std::string const log = flowd.log();
    std::smatch m;
    ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(grace_period=(\d+)ms)"))) << log;
    long long const grace_ms = std::stoll(m[1]);
    ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(max_connections=(\d+))"))) << log;
    long long const max_connections = std::stoll(m[1]);
    std::string const stop = one(settings, "TimeoutStopSec");
    ASSERT_TRUE(std::regex_match(stop, m, std::regex(R"((\d+)s?)"))) << stop;
    EXPECT_GT(std::stoll(m[1]) * 1000, grace_ms) << "TimeoutStopSec=" << stop;
    EXPECT_GT(std::stoll(one(settings, "LimitNOFILE")), max_connections);

    // systemd's own exposure score: 2.0 or lower ("OK") on its 0-10 scale.
    auto const r = run_tool({"systemd-analyze", "security", "--offline=true", "--threshold=20",
                             source_path(unit_file)});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
}

}  // namespace
}  // namespace flowd::test
