#include "flowd/durable/wal_writer.hpp"

#include <array>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "durable_test_support.hpp"
#include "flowd/durable/data_files.hpp"
#include "flowd/durable/wal_format.hpp"

namespace flowd {
namespace {

using testing::scratch_dir;

std::string read_file(std::filesystem::path const& path) {
    std::ifstream in{path, std::ios::binary};
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// One whole frame holding `payload` as record `seq`.
std::string frame_of(std::uint64_t seq, std::string const& payload) {
    std::string out;
    wal::append_frame(out, seq, payload, 0);
    return out;
}

struct writer_in_dir {
    explicit writer_in_dir(std::uint64_t segment_bytes = 1 << 20)
        : writer(wal::wal_writer::options{dir.path(), segment_bytes, true},
                 [this](double) { ++fsyncs; }) {}

    [[nodiscard]] std::filesystem::path segment(std::uint64_t first_seq) const {
        return dir.path() / wal::segment_name(first_seq);
    }

    scratch_dir dir;
    int fsyncs = 0;
    wal::wal_writer writer;
};

TEST(WalWriterTest, NewLogStartsASegmentAtTheNextSeqAndMarksItsHeaderSynced) {
    writer_in_dir w;

    w.writer.open(std::nullopt, 5);

    std::string const bytes = read_file(w.segment(5));
    EXPECT_EQ(bytes.size(), wal::segment_header_size);
    EXPECT_EQ(wal::read_segment_header(bytes), std::optional<std::uint64_t>{5});
    EXPECT_EQ(wal::read_marker(w.dir.path()), (wal::synced_position{5, wal::segment_header_size}));
    EXPECT_FALSE(w.writer.dirty());
}

// A group of frames goes out as headers and payloads in pieces, more than one writev takes
// (IOV_MAX, 1024 here): all of them land, in order.
TEST(WalWriterTest, AppendInPiecesWritesThemAllInOrder) {
    writer_in_dir w;
    w.writer.open(std::nullopt, 1);
    std::vector<std::string> payloads;
    std::vector<std::array<char, wal::frame_header_size>> headers;
    for (std::uint64_t seq = 1; seq <= 1500; ++seq) {
        payloads.push_back("record " + std::to_string(seq) + std::string(seq % 7, '.'));
        headers.push_back(
            wal::frame_header(seq, static_cast<std::uint32_t>(payloads.back().size()), 0));
    }
    std::vector<std::string_view> pieces;
    std::string expected;
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        pieces.emplace_back(headers[i].data(), headers[i].size());
        pieces.emplace_back(payloads[i]);
        expected += frame_of(i + 1, payloads[i]);
    }

    w.writer.append(pieces, false);

    EXPECT_EQ(w.writer.segment_size(), wal::segment_header_size + expected.size());
    EXPECT_EQ(read_file(w.segment(1)).substr(wal::segment_header_size), expected);
}

TEST(WalWriterTest, AppendWritesFramesAndOnlySyncMovesTheMarker) {
    writer_in_dir w;
    w.writer.open(std::nullopt, 1);
    std::string const frame = frame_of(1, "one record");

    w.writer.append(frame, false);

    EXPECT_TRUE(w.writer.dirty());
    EXPECT_EQ(w.writer.segment_size(), wal::segment_header_size + frame.size());
    EXPECT_EQ(read_file(w.segment(1)).substr(wal::segment_header_size), frame);
    EXPECT_EQ(wal::read_marker(w.dir.path()), (wal::synced_position{1, wal::segment_header_size}));

    w.writer.sync();

    EXPECT_FALSE(w.writer.dirty());
    EXPECT_EQ(w.fsyncs, 1);
    EXPECT_EQ(wal::read_marker(w.dir.path()),
              (wal::synced_position{1, wal::segment_header_size + frame.size()}));
}

TEST(WalWriterTest, AppendWithSyncNowLeavesNothingDirty) {
    writer_in_dir w;
    w.writer.open(std::nullopt, 1);

    w.writer.append(frame_of(1, "payload"), true);

    EXPECT_FALSE(w.writer.dirty());
    EXPECT_EQ(w.fsyncs, 1);
    EXPECT_EQ(wal::read_marker(w.dir.path())->offset, w.writer.segment_size());
}

TEST(WalWriterTest, ResumeAppendsAtTheEndRecoveryFound) {
    scratch_dir dir;
    std::string const first = frame_of(3, "first");
    std::uint64_t size = 0;
    {
        wal::wal_writer before{wal::wal_writer::options{dir.path(), 1 << 20, true}, nullptr};
        before.open(std::nullopt, 3);
        before.append(first, true);
        size = before.segment_size();
    }
    wal::wal_writer after{wal::wal_writer::options{dir.path(), 1 << 20, true}, nullptr};
    std::string const second = frame_of(4, "second");

    after.open(wal::synced_position{3, size}, 4);
    after.append(second, true);

    EXPECT_EQ(after.segment_first(), 3U);
    EXPECT_EQ(read_file(dir.path() / wal::segment_name(3)).substr(wal::segment_header_size),
              first + second);
}

TEST(WalWriterTest, RotatesOnlyASegmentWithRecordsThatWouldPassSegmentBytes) {
    writer_in_dir w{wal::segment_header_size + 64};
    w.writer.open(std::nullopt, 1);
    EXPECT_FALSE(w.writer.needs_rotation(1'000));  // a lone large group still gets a segment
    w.writer.append(frame_of(1, "x"), false);
    EXPECT_FALSE(w.writer.needs_rotation(8));
    ASSERT_TRUE(w.writer.needs_rotation(64));

    w.writer.rotate(2);

    EXPECT_EQ(w.fsyncs, 1);  // the old segment's dirty tail first
    EXPECT_EQ(w.writer.segment_first(), 2U);
    EXPECT_EQ(w.writer.segment_size(), wal::segment_header_size);
    EXPECT_EQ(wal::read_marker(w.dir.path()), (wal::synced_position{2, wal::segment_header_size}));
    EXPECT_EQ(read_file(w.segment(1)).size(), wal::segment_header_size + frame_of(1, "x").size());
}

TEST(WalWriterTest, HealCutsTheSegmentBackToWhatWasWrittenWhole) {
    writer_in_dir w;
    w.writer.open(std::nullopt, 1);
    w.writer.append(frame_of(1, "kept"), false);
    std::uint64_t const kept = w.writer.segment_size();
    {
        std::ofstream torn{w.segment(1), std::ios::binary | std::ios::app};
        torn << "half a frame";
    }

    ASSERT_TRUE(w.writer.heal());

    EXPECT_EQ(read_file(w.segment(1)).size(), kept);
    EXPECT_FALSE(w.writer.dirty());
    EXPECT_EQ(wal::read_marker(w.dir.path()), (wal::synced_position{1, kept}));
}

}  // namespace
}  // namespace flowd
