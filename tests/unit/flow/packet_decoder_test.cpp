#include "flowd/flow/packet_decoder.hpp"

#include <gtest/gtest.h>

#include "packet_builder.hpp"

namespace flowd {
namespace {

using test::bytes;
using test::set;

constexpr std::uint32_t host(unsigned a, unsigned b, unsigned c, unsigned d) {
    return a << 24 | b << 16 | c << 8 | d;
}

ip_address v4(unsigned a, unsigned b, unsigned c, unsigned d) {
    return ip_address::from_v4(host(a, b, c, d));
}

ip_address const exporter = v4(192, 0, 2, 1);
constexpr std::uint64_t now_ms = 1'700'000'000'000ULL;

struct decoded {
    decode_outcome outcome;
    std::vector<decoded_flow> flows;
};

decoded run(packet_decoder& d, bytes const& p, ip_address const& from = exporter) {
    decoded r;
    r.outcome = d.decode(from, p.b, now_ms, r.flows);
    return r;
}

// A v9 template: id 256, IPv4 src/dst, IN_BYTES (4), LAST_SWITCHED.
bytes v9_template(unsigned id = 256) {
    bytes t;
    t.u16(id).u16(4).u16(8).u16(4).u16(12).u16(4).u16(1).u16(4).u16(21).u16(4);
    return set(0, t);
}

bytes v9_data(unsigned id, std::uint32_t src, std::uint32_t dst, std::uint32_t octets,
              std::uint32_t last) {
    bytes r;
    r.u32(src).u32(dst).u32(octets).u32(last);
    return set(id, r);
}

TEST(PacketDecoderTest, V5DecodesRecordsWithEndTimeFromUptime) {
    packet_decoder d;
    // Export at Unix 7200 s with uptime 100 s; the flow ended at uptime 40 s: Unix 7140 s.
    bytes const p = test::v5(100'000, 7200, 0, 3, 0,
                             {{host(10, 0, 1, 5), host(10, 0, 2, 9), 1500, 30'000, 40'000}});

    decoded const r = run(d, p);

    ASSERT_EQ(r.outcome.result, datagram_result::decoded);
    EXPECT_EQ(r.outcome.version, 5U);
    EXPECT_EQ(r.outcome.domain, 3U);
    ASSERT_EQ(r.flows.size(), 1U);
    EXPECT_EQ(r.flows[0].src, v4(10, 0, 1, 5));
    EXPECT_EQ(r.flows[0].dst, v4(10, 0, 2, 9));
    EXPECT_EQ(r.flows[0].octets, 1500U);
    EXPECT_EQ(r.flows[0].end_unix_ms, 7'140'000U);
}

TEST(PacketDecoderTest, V5UptimeArithmeticIsModulo2To32) {
    packet_decoder d;
    // The uptime wrapped: the flow ended 1 s before the export, at uptime 2^32 - 500 ms.
    bytes const p = test::v5(500, 7200, 0, 0, 0, {{1, 2, 10, 0, 0xffffffffU - 499}});

    decoded const r = run(d, p);

    ASSERT_EQ(r.flows.size(), 1U);
    EXPECT_EQ(r.flows[0].end_unix_ms, 7'199'000U);
}

TEST(PacketDecoderTest, V5SamplingIntervalMultipliesOctets) {
    packet_decoder d;
    // Mode bits (top two) set, interval 100.
    bytes const p = test::v5(1000, 7200, 0, 0, 0x4000 | 100, {{1, 2, 7, 1000, 1000}});

    decoded const r = run(d, p);

    ASSERT_EQ(r.flows.size(), 1U);
    EXPECT_EQ(r.flows[0].octets, 700U);
}

TEST(PacketDecoderTest, V5SequenceGapCountsMissingRecords) {
    packet_decoder d;
    (void)run(d, test::v5(1000, 7200, 10, 0, 0, {{1, 2, 7, 0, 0}, {1, 2, 7, 0, 0}}));

    decoded const r = run(d, test::v5(1000, 7200, 17, 0, 0, {{1, 2, 7, 0, 0}}));

    EXPECT_EQ(r.outcome.gap, 5U);
    EXPECT_EQ(d.exporters().at(0).sequence_gaps, 5U);
}

TEST(PacketDecoderTest, V5ShorterThanItsCountIsMalformed) {
    packet_decoder d;
    bytes p = test::v5(1000, 7200, 0, 0, 0, {{1, 2, 7, 0, 0}});
    p.b.pop_back();

    decoded const r = run(d, p);

    EXPECT_EQ(r.outcome.result, datagram_result::malformed);
    EXPECT_TRUE(r.flows.empty());
    EXPECT_EQ(d.exporter_count(), 0U);
}

TEST(PacketDecoderTest, V9TemplateThenDataInOneDatagram) {
    packet_decoder d;
    bytes const p =
        test::v9(100'000, 7200, 1, 42,
                 {v9_template(), v9_data(256, host(10, 0, 1, 1), host(10, 0, 2, 2), 900, 99'000)});

    decoded const r = run(d, p);

    ASSERT_EQ(r.outcome.result, datagram_result::decoded);
    EXPECT_EQ(r.outcome.domain, 42U);
    ASSERT_EQ(r.flows.size(), 1U);
    EXPECT_EQ(r.flows[0].octets, 900U);
    EXPECT_EQ(r.flows[0].end_unix_ms, 7'199'000U);
    EXPECT_EQ(d.template_count(), 1U);
}

TEST(PacketDecoderTest, V9DataBeforeItsTemplateIsHeldThenDecoded) {
    packet_decoder d;
    decoded const early = run(d, test::v9(100'000, 7200, 1, 0, {v9_data(300, 1, 2, 55, 100'000)}));

    decoded const late = run(d, test::v9(100'000, 7300, 2, 0, {v9_template(300)}));

    EXPECT_EQ(early.outcome.result, datagram_result::decoded);
    EXPECT_TRUE(early.flows.empty());
    ASSERT_EQ(late.flows.size(), 1U);
    EXPECT_EQ(late.flows[0].octets, 55U);
    // Its own export time, not the template's datagram's.
    EXPECT_EQ(late.flows[0].end_unix_ms, 7'200'000U);
}

TEST(PacketDecoderTest, V9DataWithoutTemplatePastTheHeldBoundIsNoTemplate) {
    packet_decoder d{decoder_limits{16, 16, 1, 1024}};
    (void)run(d, test::v9(0, 7200, 1, 0, {v9_data(300, 1, 2, 55, 0)}));

    decoded const r = run(d, test::v9(0, 7200, 2, 0, {v9_data(300, 1, 2, 55, 0)}));

    EXPECT_EQ(r.outcome.result, datagram_result::no_template);
}

TEST(PacketDecoderTest, V9TemplatesAreKeptPerSourceId) {
    packet_decoder d;
    (void)run(d, test::v9(0, 7200, 1, 1, {v9_template()}));

    decoded const r = run(d, test::v9(0, 7200, 1, 2, {v9_data(256, 1, 2, 5, 0)}));

    EXPECT_TRUE(r.flows.empty());
    EXPECT_EQ(d.exporter_count(), 2U);
}

TEST(PacketDecoderTest, V9OptionsSamplingIntervalMultipliesLaterFlows) {
    packet_decoder d;
    bytes opt;  // options template 257: scope System (1) 4 bytes; SAMPLING_INTERVAL (34) 4 bytes
    opt.u16(257).u16(4).u16(4).u16(1).u16(4).u16(34).u16(4);
    bytes opt_data;
    opt_data.u32(0).u32(10);
    (void)run(d, test::v9(0, 7200, 1, 0, {set(1, opt), set(257, opt_data), v9_template()}));

    decoded const r = run(d, test::v9(0, 7200, 2, 0, {v9_data(256, 1, 2, 33, 0)}));

    ASSERT_EQ(r.flows.size(), 1U);
    EXPECT_EQ(r.flows[0].octets, 330U);
}

TEST(PacketDecoderTest, V9SequenceGapCountsPackets) {
    packet_decoder d;
    (void)run(d, test::v9(0, 7200, 5, 0, {v9_template()}));

    decoded const r = run(d, test::v9(0, 7200, 9, 0, {v9_template()}));

    EXPECT_EQ(r.outcome.gap, 3U);
}

TEST(PacketDecoderTest, V9SetLongerThanTheDatagramIsMalformedAndChangesNothing) {
    packet_decoder d;
    bytes p = test::v9(0, 7200, 1, 0, {v9_template()});
    p.b[20 + 3] = 200;  // the template set claims 200 bytes

    decoded const r = run(d, p);

    EXPECT_EQ(r.outcome.result, datagram_result::malformed);
    EXPECT_EQ(d.template_count(), 0U);
    EXPECT_EQ(d.exporter_count(), 0U);
}

// IPFIX template 400: src/dst IPv4, octetDeltaCount (8), an enterprise field of variable
// length, reverseOctetDeltaCount (RFC 5103), flowEndMilliseconds.
bytes ipfix_template(unsigned id = 400) {
    bytes t;
    t.u16(id).u16(6);
    t.u16(8).u16(4).u16(12).u16(4).u16(1).u16(8);
    t.u16(0x8000 | 77).u16(65535).u32(9999);  // some vendor's string
    t.u16(0x8000 | 1).u16(8).u32(29305);
    t.u16(153).u16(8);
    return set(2, t);
}

bytes ipfix_record(std::uint32_t src, std::uint32_t dst, std::uint64_t octets,
                   std::string const& vendor, std::uint64_t reverse, std::uint64_t end_ms) {
    bytes r;
    r.u32(src).u32(dst).u64(octets);
    if (vendor.size() < 255) {
        r.u8(static_cast<unsigned>(vendor.size()));
    } else {
        r.u8(255).u16(static_cast<unsigned>(vendor.size()));
    }
    for (char c : vendor) {
        r.u8(static_cast<unsigned char>(c));
    }
    r.u64(reverse).u64(end_ms);
    return r;
}

TEST(PacketDecoderTest, IpfixVariableLengthEnterpriseFieldsAreSkippedAndBiflowsRead) {
    packet_decoder d;
    bytes data = ipfix_record(host(10, 0, 1, 1), host(10, 0, 2, 2), 1000, "abc", 4000, 3'600'000);
    data.raw(
        ipfix_record(host(10, 0, 1, 1), host(10, 0, 2, 2), 1, std::string(300, 'x'), 2, 7'300'000)
            .b);

    decoded const r = run(d, test::ipfix(7200, 0, 5, {ipfix_template(), set(400, data)}));

    ASSERT_EQ(r.outcome.result, datagram_result::decoded);
    ASSERT_EQ(r.flows.size(), 2U);
    EXPECT_EQ(r.flows[0].octets, 1000U);
    EXPECT_EQ(r.flows[0].reverse_octets, 4000U);
    EXPECT_EQ(r.flows[0].end_unix_ms, 3'600'000U);
    EXPECT_EQ(r.flows[1].octets, 1U);
    EXPECT_EQ(r.flows[1].reverse_octets, 2U);
    EXPECT_EQ(r.flows[1].end_unix_ms, 7'300'000U);
}

TEST(PacketDecoderTest, IpfixIpv6AddressesAndNoEndTimeTakesTheExportTime) {
    packet_decoder d;
    bytes t;
    t.u16(401).u16(3).u16(27).u16(16).u16(28).u16(16).u16(1).u16(4);
    bytes r;
    for (int i = 0; i < 16; ++i) {
        r.u8(i == 0 ? 0x20 : i == 15 ? 1 : 0);
    }
    for (int i = 0; i < 16; ++i) {
        r.u8(i == 0 ? 0x20 : i == 15 ? 2 : 0);
    }
    r.u32(64);

    decoded const out = run(d, test::ipfix(7200, 0, 0, {set(2, t), set(401, r)}));

    ASSERT_EQ(out.flows.size(), 1U);
    EXPECT_EQ(out.flows[0].src.to_string(), "2000::1");
    EXPECT_EQ(out.flows[0].dst.to_string(), "2000::2");
    EXPECT_EQ(out.flows[0].end_unix_ms, 7'200'000U);
}

TEST(PacketDecoderTest, IpfixEndSysUpTimeUsesSystemInitTime) {
    packet_decoder d;
    bytes t;
    t.u16(402).u16(5).u16(8).u16(4).u16(12).u16(4).u16(1).u16(4).u16(21).u16(4).u16(160).u16(8);
    bytes r;
    r.u32(1).u32(2).u32(9).u32(5000).u64(3'600'000);

    decoded const out = run(d, test::ipfix(7200, 0, 0, {set(2, t), set(402, r)}));

    ASSERT_EQ(out.flows.size(), 1U);
    // Export at 7,200,000 ms is uptime 3,600,000 ms; the flow ended at uptime 5,000 ms.
    EXPECT_EQ(out.flows[0].end_unix_ms, 3'605'000U);
}

TEST(PacketDecoderTest, IpfixWithdrawalForgetsTheTemplate) {
    packet_decoder d;
    (void)run(d, test::ipfix(7200, 0, 0, {ipfix_template()}));
    bytes w;
    w.u16(400).u16(0);
    (void)run(d, test::ipfix(7200, 0, 0, {set(2, w)}));

    decoded const r =
        run(d, test::ipfix(7200, 0, 0, {set(400, ipfix_record(1, 2, 3, "", 0, 3'600'000))}));

    EXPECT_EQ(d.template_count(), 0U);
    EXPECT_TRUE(r.flows.empty());
}

TEST(PacketDecoderTest, IpfixTemplateRefreshReplacesTheLayout) {
    packet_decoder d;
    (void)run(d, test::ipfix(7200, 0, 0, {ipfix_template()}));
    bytes t;
    t.u16(400).u16(3).u16(8).u16(4).u16(12).u16(4).u16(1).u16(4);
    bytes r;
    r.u32(1).u32(2).u32(77);

    decoded const out = run(d, test::ipfix(7200, 0, 0, {set(2, t), set(400, r)}));

    ASSERT_EQ(out.flows.size(), 1U);
    EXPECT_EQ(out.flows[0].octets, 77U);
    EXPECT_EQ(d.template_count(), 1U);
}

TEST(PacketDecoderTest, IpfixSequenceGapCountsRecords) {
    packet_decoder d;
    (void)run(d, test::ipfix(7200, 100, 0,
                             {ipfix_template(), set(400, ipfix_record(1, 2, 3, "", 0, 1))}));

    decoded const r =
        run(d, test::ipfix(7200, 104, 0, {set(400, ipfix_record(1, 2, 3, "", 0, 1))}));

    EXPECT_EQ(r.outcome.gap, 3U);
}

TEST(PacketDecoderTest, IpfixVariableLengthPastTheSetIsMalformedAndKeepsNoFlows) {
    packet_decoder d;
    bytes rec = ipfix_record(1, 2, 3, "abc", 0, 1);
    rec.b[16] = 200;  // the vendor string claims 200 bytes

    decoded const r = run(d, test::ipfix(7200, 0, 0, {ipfix_template(), set(400, rec)}));

    EXPECT_EQ(r.outcome.result, datagram_result::malformed);
    EXPECT_TRUE(r.flows.empty());
}

TEST(PacketDecoderTest, TemplateOfZeroLengthFieldsIsMalformed) {
    packet_decoder d;
    bytes t;
    t.u16(403).u16(2).u16(8).u16(0).u16(12).u16(0);

    decoded const r = run(d, test::ipfix(7200, 0, 0, {set(2, t)}));

    EXPECT_EQ(r.outcome.result, datagram_result::malformed);
    EXPECT_EQ(d.template_count(), 0U);
}

TEST(PacketDecoderTest, TemplateClaimingMoreFieldsThanItHasIsMalformed) {
    packet_decoder d;
    bytes t;
    t.u16(403).u16(65535).u16(8).u16(4);

    decoded const r = run(d, test::ipfix(7200, 0, 0, {set(2, t)}));

    EXPECT_EQ(r.outcome.result, datagram_result::malformed);
}

TEST(PacketDecoderTest, IpfixLengthPastTheDatagramIsMalformed) {
    packet_decoder d;
    bytes p = test::ipfix(7200, 0, 0, {ipfix_template()});
    p.b.pop_back();

    EXPECT_EQ(run(d, p).outcome.result, datagram_result::malformed);
}

TEST(PacketDecoderTest, UnknownVersionIsCountedAsSuch) {
    packet_decoder d;
    bytes p;
    p.u16(7).u16(0).u32(0);

    EXPECT_EQ(run(d, p).outcome.result, datagram_result::unknown_version);
}

TEST(PacketDecoderTest, ExportersPastTheLimitAreNotAllowed) {
    packet_decoder d{decoder_limits{1, 16, 8, 1024}};
    (void)run(d, test::v5(0, 7200, 0, 0, 0, {{1, 2, 3, 0, 0}}), v4(192, 0, 2, 1));

    decoded const r = run(d, test::v5(0, 7200, 0, 0, 0, {{1, 2, 3, 0, 0}}), v4(192, 0, 2, 2));

    EXPECT_EQ(r.outcome.result, datagram_result::not_allowed);
    EXPECT_EQ(d.exporter_count(), 1U);
}

TEST(PacketDecoderTest, TemplatesPastTheLimitAreRefused) {
    packet_decoder d{decoder_limits{16, 2, 8, 1024}};

    decoded const r =
        run(d, test::v9(0, 7200, 0, 0, {v9_template(256), v9_template(257), v9_template(258)}));

    EXPECT_EQ(r.outcome.templates_refused, 1U);
    EXPECT_EQ(d.template_count(), 2U);
}

TEST(PacketDecoderTest, ExportersListsWhatWasSeen) {
    packet_decoder d;
    (void)run(d, test::v9(0, 7200, 0, 7,
                          {v9_template(), v9_data(256, 1, 2, 3, 0), v9_data(256, 1, 2, 3, 0)}));

    std::vector<exporter_info> const e = d.exporters();

    ASSERT_EQ(e.size(), 1U);
    EXPECT_EQ(e[0].address, exporter);
    EXPECT_EQ(e[0].domain, 7U);
    EXPECT_EQ(e[0].version, 9U);
    EXPECT_EQ(e[0].packets, 1U);
    EXPECT_EQ(e[0].records, 2U);
    EXPECT_EQ(e[0].templates, 1U);
    EXPECT_EQ(e[0].last_seen_unix_ms, now_ms);
}

}  // namespace
}  // namespace flowd
