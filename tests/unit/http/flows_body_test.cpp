#include "flowd/http/flows_body.hpp"

#include <string>
#include <variant>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "flowd/codec/flow_json.hpp"

namespace flowd {
namespace {

// A store holding `keys` keys in hour 1, with names long enough to pass several chunks.
void fill(flow_store& store, std::size_t keys) {
    flow_batch batch;
    for (std::size_t i = 0; i < keys; ++i) {
        batch.add("source-application-" + std::to_string(i),
                  "destination-\"quoted\"-" + std::to_string(i % 7), "vpc-\xc3\xa9", 1, {i, 2 * i},
                  i);
    }
    auto prepared = store.prepare(batch);
    ASSERT_TRUE(std::holds_alternative<prepared_batch>(prepared));
    store.commit(std::get<prepared_batch>(std::move(prepared)));
}

std::string one_shot(hour_snapshot const& snap) {
    std::string out = "[";
    append_snapshot_json(out, snap, 0, snap.size(), true);
    out += "]";
    return out;
}

// Runs a serializer to the end; counts its pieces.
std::string drain(flows_serializer& s, std::size_t& pieces) {
    std::string body;
    std::string piece;
    bool more = true;
    while (more) {
        more = s.next(piece);
        body += piece;
        ++pieces;
        if (more) {
            EXPECT_FALSE(piece.empty()) << "an empty chunk would end a chunked body";
        }
    }
    return body;
}

TEST(FlowsBodyTest, AppendSnapshotJsonSeparatesWithCommas) {
    flow_store store;
    fill(store, 3);
    auto const snap = store.snapshot(1);
    std::string first_part = "[";
    std::string rest;

    append_snapshot_json(first_part, snap, 0, 1, true);
    append_snapshot_json(rest, snap, 1, 3, false);

    auto const parsed = nlohmann::json::parse(first_part + rest + "]");
    ASSERT_EQ(parsed.size(), 3U);
    EXPECT_EQ(first_part + rest + "]", one_shot(snap));
}

TEST(FlowsBodyTest, EmptySnapshotSerializesToEmptyArray) {
    flow_store store;
    auto const snap = store.snapshot(1);
    flows_serializer serializer{snap, false};
    std::size_t pieces = 0;

    std::string const body = drain(serializer, pieces);

    EXPECT_EQ(body, "[]");
    EXPECT_EQ(pieces, 1U);
}

TEST(FlowsBodyTest, SmallSnapshotIsOnePiece) {
    flow_store store;
    fill(store, 2);
    auto const snap = store.snapshot(1);
    flows_serializer serializer{snap, false};
    std::size_t pieces = 0;

    std::string const body = drain(serializer, pieces);

    EXPECT_EQ(body, one_shot(snap));
    EXPECT_EQ(pieces, 1U);
}

TEST(FlowsBodyTest, ChunkedOutputEqualsOneShotOutput) {
    flow_store store;
    fill(store, 5000);
    auto const snap = store.snapshot(1);
    flows_serializer serializer{snap, false};
    std::size_t pieces = 0;

    std::string const body = drain(serializer, pieces);

    EXPECT_GT(pieces, 3U);
    EXPECT_EQ(body, one_shot(snap));
    auto const parsed = nlohmann::json::parse(body);
    ASSERT_EQ(parsed.size(), 5000U);
    EXPECT_EQ(parsed[0].at("vpc_id"), "vpc-\xc3\xa9");
}

TEST(FlowsBodyTest, PiecesStayNearTheChunkSize) {
    flow_store store;
    fill(store, 5000);
    auto const snap = store.snapshot(1);
    flows_serializer serializer{snap, false};
    std::string piece;

    bool more = true;
    while (more) {
        more = serializer.next(piece);

        EXPECT_LE(piece.size(), flows_serializer::chunk_bytes + 1024);
    }
}

TEST(FlowsBodyTest, GzipChunkedOutputInflatesToOneShotOutput) {
    flow_store store;
    fill(store, 5000);
    auto const snap = store.snapshot(1);
    flows_serializer serializer{snap, true};
    std::size_t pieces = 0;

    std::string const compressed = drain(serializer, pieces);

    auto const inflated = gunzip(compressed, std::size_t{1} << 30);
    ASSERT_TRUE(inflated);
    EXPECT_EQ(*inflated, one_shot(snap));
    EXPECT_LT(compressed.size(), inflated->size());
}

// GET writes the first records itself and hands them over as the prefix; the serialiser
// goes on from the record after them, with or without gzip, whatever the split.
TEST(FlowsBodyTest, PrefixThenTheRestEqualsOneShotOutput) {
    flow_store store;
    fill(store, 3000);
    auto const snap = store.snapshot(1);
    for (std::size_t const split :
         {std::size_t{1}, std::size_t{2}, std::size_t{1234}, snap.size()}) {
        std::string prefix = "[";
        append_snapshot_json(prefix, snap, 0, split, true);
        for (bool const gzip : {false, true}) {
            flows_serializer serializer{snap, gzip, prefix, split};
            std::size_t pieces = 0;

            std::string const body = drain(serializer, pieces);

            std::string plain = body;
            if (gzip) {
                auto const inflated = gunzip(body, std::size_t{1} << 30);
                ASSERT_TRUE(inflated);
                plain = *inflated;
            }
            EXPECT_TRUE(plain == one_shot(snap)) << "split " << split << " gzip " << gzip;
        }
    }
}

TEST(FlowsBodyTest, GzipEmptySnapshotInflatesToEmptyArray) {
    flow_store store;
    auto const snap = store.snapshot(1);
    flows_serializer serializer{snap, true};
    std::size_t pieces = 0;

    std::string const compressed = drain(serializer, pieces);

    auto const inflated = gunzip(compressed, 1024);
    ASSERT_TRUE(inflated);
    EXPECT_EQ(*inflated, "[]");
}

TEST(FlowsBodyTest, WriterStreamsTheWholeBodyThenStops) {
    flow_store store;
    fill(store, 3000);
    flows_body::value_type value{store.snapshot(1), false, {}, 0, nullptr};
    boost::beast::http::response_header<> header;
    flows_body::writer writer{header, value};
    boost::beast::error_code ec;
    writer.init(ec);
    ASSERT_FALSE(ec);
    std::string body;

    for (;;) {
        auto piece = writer.get(ec);
        ASSERT_FALSE(ec);
        if (!piece) {
            break;
        }
        body.append(static_cast<char const*>(piece->first.data()), piece->first.size());
        if (!piece->second) {
            EXPECT_FALSE(writer.get(ec).has_value());
            break;
        }
    }

    EXPECT_EQ(body, one_shot(value.snapshot));
}

}  // namespace
}  // namespace flowd
