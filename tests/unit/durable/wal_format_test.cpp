#include "flowd/durable/wal_format.hpp"

#include <gtest/gtest.h>

#include "flowd/durable/crc32c.hpp"

namespace flowd::wal {
namespace {

TEST(Crc32cTest, KnownValuesAndExtension) {
    // RFC 3720 B.4 test vectors.
    EXPECT_EQ(crc32c(0, "123456789"), 0xe3069283U);
    std::string const zeros(32, '\0');
    EXPECT_EQ(crc32c(0, zeros), 0x8a9136aaU);
    std::string const s = "the quick brown fox jumps over the lazy dog, twice or more";
    for (std::size_t cut = 0; cut <= s.size(); ++cut) {
        EXPECT_EQ(crc32c(crc32c(0, s.substr(0, cut)), s.substr(cut)), crc32c(0, s)) << cut;
    }
}

flow_batch sample() {
    flow_batch b;
    (void)b.add("foo", "bar", "vpc-0", 1, {100, 300}, 0);
    (void)b.add("foo", "bar", "vpc-0", 1, {200, 600}, 1);
    (void)b.add(std::string(255, 'x'), "b", "v", max_hour, {max_counter, 0}, 2);
    return b;
}

TEST(WalFormatTest, PayloadRoundTripsWithAndWithoutKey) {
    idempotency_claim const claim{"exporter-1", "key-42", 0xabcdef};
    for (auto const& [with_key, kind] :
         {std::pair{false, payload_kind::name_table}, std::pair{true, payload_kind::name_table},
          std::pair{false, payload_kind::inline_names},
          std::pair{true, payload_kind::inline_names}}) {
        SCOPED_TRACE(static_cast<int>(kind));
        auto const enc = encode_payload(sample(), with_key ? &claim : nullptr, 1234567, kind);
        EXPECT_EQ(static_cast<payload_kind>(enc.bytes.at(0)), kind);
        EXPECT_EQ(enc.crc, crc32c(0, enc.bytes));
        auto const rec = decode_payload(enc.bytes);
        ASSERT_TRUE(rec.has_value());
        EXPECT_EQ(rec->accepted_unix_ms, 1234567U);
        EXPECT_EQ(rec->batch.record_count(), 3U);
        EXPECT_EQ(rec->batch.entries().size(), 2U);
        EXPECT_EQ(rec->batch.entries()[0].record.counters, (flow_counters{300, 900}));
        EXPECT_EQ(rec->batch.entries()[1].record.src_app, std::string(255, 'x'));
        EXPECT_EQ(rec->batch.entries()[1].record.hour, max_hour);
        ASSERT_EQ(rec->idempotency.has_value(), with_key);
        if (with_key) {
            EXPECT_EQ(rec->idempotency->scope, "exporter-1");
            EXPECT_EQ(rec->idempotency->key, "key-42");
            EXPECT_EQ(rec->idempotency->fingerprint, 0xabcdefU);
        }
    }
}

TEST(WalFormatTest, SmallestEntryRoundTrips) {
    flow_batch b;
    (void)b.add("a", "b", "c", 0, {0, 0}, 0);
    auto const rec = decode_payload(encode_payload(b, nullptr, 1).bytes);
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->batch.entries().at(0).record.src_app, "a");
}

TEST(WalFormatTest, FrameDetectsEveryTruncationAndEveryFlippedByte) {
    auto const enc = encode_payload(sample(), nullptr, 1);
    std::string framed;
    append_frame(framed, 7, enc.bytes, enc.crc);
    frame const whole = read_frame(framed);
    ASSERT_EQ(whole.what, frame::status::ok);
    EXPECT_EQ(whole.seq, 7U);
    EXPECT_EQ(whole.size, framed.size());
    EXPECT_EQ(whole.payload, enc.bytes);
    for (std::size_t cut = 0; cut < framed.size(); ++cut) {
        EXPECT_NE(read_frame(std::string_view(framed).substr(0, cut)).what, frame::status::ok)
            << cut;
    }
    for (std::size_t i = 0; i < framed.size(); ++i) {
        std::string bad = framed;
        bad[i] = static_cast<char>(bad[i] ^ 0x20);
        EXPECT_NE(read_frame(bad).what, frame::status::ok) << i;
    }
}

TEST(WalFormatTest, MalformedPayloadsDoNotDecode) {
    for (auto const kind : {payload_kind::name_table, payload_kind::inline_names}) {
        auto const enc = encode_payload(sample(), nullptr, 1, kind);
        for (std::size_t cut = 0; cut < enc.bytes.size(); ++cut) {
            EXPECT_FALSE(decode_payload(enc.bytes.substr(0, cut)).has_value()) << cut;
        }
        EXPECT_FALSE(decode_payload(enc.bytes + "x").has_value());
        std::string unknown_kind = enc.bytes;
        unknown_kind[0] = 3;
        EXPECT_FALSE(decode_payload(unknown_kind).has_value());
    }
}

// A name table entry points at names by index: one past the table is refused, and each
// name is in the payload once however many entries use it.
TEST(WalFormatTest, NameTableIndicesAreCheckedAndNamesWrittenOnce) {
    flow_batch b;
    for (std::uint32_t hour = 0; hour < 50; ++hour) {
        (void)b.add("checkout-service", "payments-service", "vpc-production", hour, {1, 2}, hour);
    }
    auto const table = encode_payload(b, nullptr, 1, payload_kind::name_table);
    auto const inline_names = encode_payload(b, nullptr, 1, payload_kind::inline_names);
    auto const occurrences = [](std::string const& bytes) {
        std::size_t n = 0;
        for (auto at = bytes.find("checkout-service"); at != std::string::npos;
             at = bytes.find("checkout-service", at + 1)) {
            ++n;
        }
        return n;
    };
    EXPECT_EQ(occurrences(table.bytes), 1U);
    EXPECT_EQ(occurrences(inline_names.bytes), 50U);
    auto const back = decode_payload(table.bytes);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->batch.entries().size(), 50U);
    EXPECT_EQ(back->batch.entries()[49].record.vpc_id, "vpc-production");
    // The last entry's vpc index (3 names: 0..2) sits 20 bytes before the payload's end.
    std::string bad = table.bytes;
    ASSERT_EQ(bad[bad.size() - 20], 2);
    bad[bad.size() - 20] = 3;
    EXPECT_FALSE(decode_payload(bad).has_value());
}

TEST(WalFormatTest, SegmentHeaderNamesAndMarker) {
    std::string const h = segment_header(42);
    EXPECT_EQ(h.size(), segment_header_size);
    EXPECT_EQ(h.substr(0, 8), "FLOWDWAL");
    EXPECT_EQ(read_segment_header(h), 42U);
    std::string bad = h;
    bad[20] ^= 1;
    EXPECT_FALSE(read_segment_header(bad).has_value());
    EXPECT_EQ(segment_name(26), "wal-000000000000001a.log");
    EXPECT_EQ(parse_segment_name("wal-000000000000001a.log"), 26U);
    EXPECT_FALSE(parse_segment_name("wal-000000000000001A.log").has_value());
    EXPECT_EQ(parse_snapshot_name(snapshot_name(99)), 99U);
    EXPECT_FALSE(parse_snapshot_name("snapshot-0000000000000063.snap.tmp").has_value());
    std::string const slot = marker_slot(5, synced_position{3, 4096});
    auto const read = read_marker_slot(slot);
    ASSERT_TRUE(read.has_value());
    EXPECT_EQ(read->first, 5U);
    EXPECT_EQ(read->second, (synced_position{3, 4096}));
    std::string torn = slot;
    torn[12] ^= 1;
    EXPECT_FALSE(read_marker_slot(torn).has_value());
}

}  // namespace
}  // namespace flowd::wal
