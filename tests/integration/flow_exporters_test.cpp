// flowd as a NetFlow/IPFIX collector: hand-built v5, v9 and IPFIX datagrams over UDP to the
// real binary, and the totals read back through the HTTP API.

#include <csignal>
#include <regex>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/flow/packet_builder.hpp"
#include "server_fixture.hpp"

namespace flowd::test {
namespace {

namespace net = boost::asio;

constexpr std::uint32_t host(unsigned a, unsigned b, unsigned c, unsigned d) {
    return a << 24 | b << 16 | c << 8 | d;
}

std::string const apps_yaml = R"(apps:
  web: [10.0.1.0/24]
  db: [10.0.2.0/24]
vpcs:
  "127.0.0.1": vpc-lab
unmatched: unknown
)";

// flowd with a flow listener on port 0 and the apps file above; the UDP port comes from its
// `flow listening on` line.
class FlowExportersTest : public ::testing::Test {
protected:
    void start(std::vector<std::string> extra = {}, std::map<std::string, std::string> env = {},
               std::string const& flow_listen = "127.0.0.1:0") {
        apps_path_ = dir_.write("apps.yaml", apps_yaml);
        std::vector<std::string> args{"--flow-listen", flow_listen};
        args.insert(args.end(), extra.begin(), extra.end());
        env.emplace("FLOWD_APPS_FILE", apps_path_);
        env.emplace("FLOWD_FLOW_BATCH_INTERVAL", "20ms");
        flowd_ = std::make_unique<flowd_process>(args, env);
        std::smatch m;
        std::string const log = flowd_->log();
        ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(flow listening on \S+:(\d+))"))) << log;
        udp_port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
        client_ = std::make_unique<http_client>(flowd_->port());
    }

    // From one socket per family, as an exporter sends from one port: with several
    // sockets on the port (SO_REUSEPORT), the kernel keeps one sender on one of them.
    void send(bytes const& datagram, std::string const& to = "127.0.0.1") {
        auto const address = net::ip::make_address(to);
        net::ip::udp::socket& s = address.is_v6() ? sender_v6_ : sender_v4_;
        if (!s.is_open()) {
            s.open(address.is_v6() ? net::ip::udp::v6() : net::ip::udp::v4());
        }
        s.send_to(net::buffer(datagram.b), net::ip::udp::endpoint{address, udp_port_});
    }

    std::vector<metric_sample> metrics() { return parse_metrics(client_->get("/metrics").body()); }

    double metric(std::string const& name, std::map<std::string, std::string> const& labels) {
        return metric_value(metrics(), name, labels).value_or(-1);
    }

    // Waits until the records applied from flow exporters reach `n`.
    bool applied(double n) {
        return eventually([&] {
            return metric("flowd_flows_applied_total", {{"source", "flow"}}) >= n;
        });
    }

    nlohmann::json rows(std::string const& query = "/flows?from=0&to=100") {
        http_response const r = client_->get(query);
        EXPECT_EQ(r.result_int(), 200U) << r.body();
        return nlohmann::json::parse(r.body());
    }

    temp_dir dir_;
    std::string apps_path_;
    std::unique_ptr<flowd_process> flowd_;
    std::unique_ptr<http_client> client_;
    std::uint16_t udp_port_ = 0;
    net::io_context ioc_;
    net::ip::udp::socket sender_v4_{ioc_};
    net::ip::udp::socket sender_v6_{ioc_};
};

// v9 template 256: IPv4 src/dst, IN_BYTES, LAST_SWITCHED.
bytes v9_packet(std::uint32_t sequence, std::uint32_t unix_secs, std::uint32_t src,
                std::uint32_t dst, std::uint32_t octets) {
    bytes t;
    t.u16(256).u16(4).u16(8).u16(4).u16(12).u16(4).u16(1).u16(4).u16(21).u16(4);
    bytes r;
    r.u32(src).u32(dst).u32(octets).u32(50'000);  // ended at the export's uptime
    return v9(50'000, unix_secs, sequence, 0, {set(0, t), set(256, r)});
}

// IPFIX template 300: IPv4 src/dst, octetDeltaCount, reverseOctetDeltaCount (RFC 5103),
// flowEndSeconds.
bytes ipfix_packet(std::uint32_t sequence, std::uint32_t src, std::uint32_t dst,
                   std::uint64_t octets, std::uint64_t reverse, std::uint32_t end_secs) {
    bytes t;
    t.u16(300).u16(5).u16(8).u16(4).u16(12).u16(4).u16(1).u16(8);
    t.u16(0x8001).u16(8).u32(29305).u16(151).u16(4);
    bytes r;
    r.u32(src).u32(dst).u64(octets).u64(reverse).u32(end_secs);
    return ipfix(end_secs + 5, sequence, 1, {set(2, t), set(300, r)});
}

TEST_F(FlowExportersTest, V5V9AndIpfixAddUpExactlyPerApplicationAndHour) {
    start();

    // v5: two flows ending in hour 1 (Unix 3600 .. 7199).
    send(v5(10'000, 7000, 0, 0, 0,
            {{host(10, 0, 1, 5), host(10, 0, 2, 9), 1000, 9000, 10'000},
             {host(10, 0, 2, 9), host(10, 0, 1, 5), 500, 9000, 10'000}}));
    // v9: one flow in hour 2.
    send(v9_packet(1, 7300, host(10, 0, 1, 6), host(10, 0, 2, 9), 300));
    // IPFIX: a biflow in hour 2 and one whose source no prefix covers.
    send(ipfix_packet(0, host(10, 0, 1, 7), host(10, 0, 2, 1), 70, 30, 7400));
    send(ipfix_packet(1, host(192, 168, 9, 9), host(10, 0, 2, 1), 11, 0, 7400));
    ASSERT_TRUE(applied(5)) << flowd_->log();

    EXPECT_EQ(rows(), nlohmann::json::parse(R"([
 {"src_app":"db","dest_app":"web","vpc_id":"vpc-lab","bytes_tx":500,"bytes_rx":0,"hour":1},
 {"src_app":"unknown","dest_app":"db","vpc_id":"vpc-lab","bytes_tx":11,"bytes_rx":0,"hour":2},
 {"src_app":"web","dest_app":"db","vpc_id":"vpc-lab","bytes_tx":1000,"bytes_rx":0,"hour":1},
 {"src_app":"web","dest_app":"db","vpc_id":"vpc-lab","bytes_tx":370,"bytes_rx":30,"hour":2}])"));
    nlohmann::json const summary = rows("/flows/summary?from=0&to=10&group_by=src_app");
    EXPECT_EQ(summary["total"],
              nlohmann::json::parse(R"({"groups":3,"bytes_tx":1881,"bytes_rx":30})"));
    EXPECT_EQ(metric("flowd_flow_packets_total", {{"version", "5"}, {"result", "decoded"}}), 1);
    EXPECT_EQ(metric("flowd_flow_packets_total", {{"version", "9"}, {"result", "decoded"}}), 1);
    EXPECT_EQ(metric("flowd_flow_packets_total", {{"version", "10"}, {"result", "decoded"}}), 2);
    EXPECT_EQ(metric("flowd_flow_records_total", {{"version", "10"}}), 2);
    EXPECT_EQ(metric("flowd_flows_applied_total", {{"source", "flow"}}), 5);
}

TEST_F(FlowExportersTest, MalformedDatagramsAreCountedAndChangeNothing) {
    start();
    bytes truncated = v9_packet(1, 7300, host(10, 0, 1, 6), host(10, 0, 2, 9), 300);
    truncated.b.resize(30);
    bytes lying = ipfix_packet(0, host(10, 0, 1, 7), host(10, 0, 2, 1), 70, 30, 7400);
    lying.b[3] = 0xff;  // the message claims more bytes than it has
    bytes unknown;
    unknown.u16(7).u16(1).u32(0);

    send(truncated);
    send(lying);
    send(unknown);
    send(bytes{});
    send(v5(10'000, 7000, 0, 0, 0, {{host(10, 0, 1, 5), host(10, 0, 2, 9), 42, 0, 10'000}}));
    ASSERT_TRUE(applied(1)) << flowd_->log();

    EXPECT_EQ(
        rows(),
        nlohmann::json::parse(
            R"([{"src_app":"web","dest_app":"db","vpc_id":"vpc-lab","bytes_tx":42,"bytes_rx":0,"hour":1}])"));
    EXPECT_EQ(metric("flowd_flow_packets_total", {{"version", "9"}, {"result", "malformed"}}), 1);
    EXPECT_EQ(metric("flowd_flow_packets_total", {{"version", "10"}, {"result", "malformed"}}), 1);
    EXPECT_EQ(
        metric("flowd_flow_packets_total", {{"version", "other"}, {"result", "unknown_version"}}),
        1);
    EXPECT_EQ(metric("flowd_flow_packets_total", {{"version", "other"}, {"result", "malformed"}}),
              1);
    // The first is said (the rest within 10 s only counted), naming the sender.
    EXPECT_NE(flowd_->log().find(
                  "a malformed datagram of 30 bytes from 127.0.0.1 was dropped (version 9)"),
              std::string::npos)
        << flowd_->log();
}

TEST_F(FlowExportersTest, SighupReloadsTheAppsFileAndABadOneKeepsTheMapping) {
    start();
    send(v5(10'000, 7000, 0, 0, 0, {{host(10, 0, 1, 5), host(10, 0, 2, 9), 1, 0, 10'000}}));
    ASSERT_TRUE(applied(1));

    dir_.write("apps.yaml", "apps:\n  frontend: [10.0.1.0/24]\n  db: [10.0.2.0/24]\n");
    flowd_->signal(SIGHUP);
    ASSERT_TRUE(flowd_->wait_log("SIGHUP: reloaded")) << flowd_->log();
    send(v5(10'000, 7000, 1, 0, 0, {{host(10, 0, 1, 5), host(10, 0, 2, 9), 2, 0, 10'000}}));
    ASSERT_TRUE(applied(2));
    dir_.write("apps.yaml", "apps:\n  broken: [10.0.1.0/99]\n");
    flowd_->signal(SIGHUP);
    ASSERT_TRUE(flowd_->wait_log("apps file not reloaded")) << flowd_->log();
    send(v5(10'000, 7000, 2, 0, 0, {{host(10, 0, 1, 5), host(10, 0, 2, 9), 4, 0, 10'000}}));
    ASSERT_TRUE(applied(3));

    EXPECT_EQ(rows(), nlohmann::json::parse(R"([
 {"src_app":"frontend","dest_app":"db","vpc_id":"exporter-127.0.0.1","bytes_tx":6,"bytes_rx":0,"hour":1},
 {"src_app":"web","dest_app":"db","vpc_id":"vpc-lab","bytes_tx":1,"bytes_rx":0,"hour":1}])"));
    EXPECT_NE(flowd_->log().find("line 2"), std::string::npos);
    EXPECT_EQ(metric("flowd_flow_apps_reload_failures_total", {}), 1);
}

TEST_F(FlowExportersTest, RecordsOutsideRetentionAreDroppedAndCountedAlone) {
    start({"--config", dir_.write("flowd.yaml", "retention_hours: 24\n")});
    auto const now_secs = static_cast<std::uint32_t>(std::time(nullptr));

    send(ipfix_packet(0, host(10, 0, 1, 7), host(10, 0, 2, 1), 5, 0, 7400));
    send(ipfix_packet(1, host(10, 0, 1, 7), host(10, 0, 2, 1), 9, 0, now_secs));
    ASSERT_TRUE(applied(1)) << flowd_->log();

    nlohmann::json const hours = rows("/hours");
    ASSERT_EQ(hours.size(), 1U) << hours.dump();
    EXPECT_EQ(hours[0]["hour"], now_secs / 3600);
    EXPECT_EQ(hours[0]["bytes_tx"], 9);
    EXPECT_EQ(metric("flowd_flow_records_dropped_total", {{"reason", "retention"}}), 1);
    EXPECT_EQ(metric("flowd_flows_applied_total", {{"source", "flow"}}), 1);
}

TEST_F(FlowExportersTest, FlowExportersListsEachExporterAndDomain) {
    start();
    send(v9_packet(1, 7300, host(10, 0, 1, 6), host(10, 0, 2, 9), 300));
    send(v9_packet(3, 7300, host(10, 0, 1, 6), host(10, 0, 2, 9), 300));
    ASSERT_TRUE(applied(2));

    http_response const r = client_->get("/flow-exporters");

    ASSERT_EQ(r.result_int(), 200U);
    nlohmann::json const list = nlohmann::json::parse(r.body());
    ASSERT_EQ(list.size(), 1U) << r.body();
    EXPECT_EQ(list[0]["address"], "127.0.0.1");
    EXPECT_EQ(list[0]["domain"], 0);
    EXPECT_EQ(list[0]["version"], 9);
    EXPECT_EQ(list[0]["packets"], 2);
    EXPECT_EQ(list[0]["records"], 2);
    EXPECT_EQ(list[0]["templates"], 1);
    EXPECT_EQ(list[0]["sequence_gaps"], 1);
    EXPECT_TRUE(list[0]["last_seen"].is_string());
    EXPECT_EQ(metric("flowd_flow_sequence_gaps_total", {{"version", "9"}}), 1);
    EXPECT_NE(flowd_->log().find("new flow exporter 127.0.0.1 (domain 0), version 9"),
              std::string::npos);
}

TEST_F(FlowExportersTest, ExportersOutsideTheAllowListAreNotDecoded) {
    start({"--config", dir_.write("flowd.yaml", "flow_allowed_exporters: 192.0.2.0/24\n")});

    send(v5(10'000, 7000, 0, 0, 0, {{host(10, 0, 1, 5), host(10, 0, 2, 9), 1, 0, 10'000}}));

    ASSERT_TRUE(eventually([&] {
        return metric("flowd_flow_packets_total", {{"version", "5"}, {"result", "not_allowed"}}) ==
               1;
    }));
    EXPECT_EQ(client_->get("/flow-exporters").body(), "[]");
}

TEST_F(FlowExportersTest, Ipv6ListenerAndExporter) {
    start({}, {}, "[::1]:0");

    send(v5(10'000, 7000, 0, 0, 0, {{host(10, 0, 1, 5), host(10, 0, 2, 9), 5, 0, 10'000}}), "::1");

    ASSERT_TRUE(applied(1)) << flowd_->log();
    EXPECT_EQ(rows()[0]["vpc_id"], "exporter-::1");
    EXPECT_EQ(nlohmann::json::parse(client_->get("/flow-exporters").body())[0]["address"], "::1");
}

TEST_F(FlowExportersTest, SeveralSocketsShareThePortAndTheGauges) {
    // Three I/O threads: three sockets with SO_REUSEPORT; exporters from six source ports
    // spread over them, each a v5 engine of its own.
    start({"--threads", "3"});
    std::vector<net::ip::udp::socket> exporters;
    for (unsigned engine = 1; engine <= 6; ++engine) {
        exporters.emplace_back(ioc_, net::ip::udp::v4());
        bytes const d = v5(10'000, 7000, 0, engine, 0,
                           {{host(10, 0, 1, 5), host(10, 0, 2, 9), engine, 0, 10'000}});
        exporters.back().send_to(
            net::buffer(d.b),
            net::ip::udp::endpoint{net::ip::make_address("127.0.0.1"), udp_port_});
    }

    ASSERT_TRUE(applied(6)) << flowd_->log();
    EXPECT_EQ(rows()[0]["bytes_tx"], 21);
    EXPECT_EQ(nlohmann::json::parse(client_->get("/flow-exporters").body()).size(), 6U);
    EXPECT_EQ(metric("flowd_flow_exporters", {}), 6);
    EXPECT_NE(flowd_->log().find("3 sockets with SO_REUSEPORT"), std::string::npos);
}

TEST_F(FlowExportersTest, MicroBatchGoesAtFlowBatchRecordsBeforeItsInterval) {
    // An interval no test waits for: only the record count can send the batch.
    start({}, {{"FLOWD_FLOW_BATCH_INTERVAL", "1h"}, {"FLOWD_FLOW_BATCH_RECORDS", "3"}});

    send(v5(10'000, 7000, 0, 0, 0,
            {{host(10, 0, 1, 5), host(10, 0, 2, 9), 1, 0, 10'000},
             {host(10, 0, 1, 5), host(10, 0, 2, 9), 2, 0, 10'000}}));
    send(v5(10'000, 7000, 2, 0, 0, {{host(10, 0, 1, 5), host(10, 0, 2, 9), 4, 0, 10'000}}));

    ASSERT_TRUE(applied(3)) << flowd_->log();
    EXPECT_EQ(rows()[0]["bytes_tx"], 7);
}

TEST_F(FlowExportersTest, ShutdownSubmitsTheMicroBatchInProgress) {
    temp_dir data;
    start({"--data-dir", data.path()}, {{"FLOWD_FLOW_BATCH_INTERVAL", "1h"}});
    send(v5(10'000, 7000, 0, 0, 0, {{host(10, 0, 1, 5), host(10, 0, 2, 9), 9, 0, 10'000}}));
    ASSERT_TRUE(eventually([&] {
        return metric("flowd_flow_records_total", {{"version", "5"}}) == 1;
    }));

    flowd_->signal(SIGTERM);
    ASSERT_EQ(flowd_->wait_exit(), 0) << flowd_->log();
    start({"--data-dir", data.path()});

    EXPECT_EQ(
        rows(),
        nlohmann::json::parse(
            R"([{"src_app":"web","dest_app":"db","vpc_id":"vpc-lab","bytes_tx":9,"bytes_rx":0,"hour":1}])"));
}

}  // namespace
}  // namespace flowd::test
