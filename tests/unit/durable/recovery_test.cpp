#include "flowd/durable/recovery.hpp"

#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <unistd.h>

#include "durable_test_support.hpp"
#include "flowd/durable/wal_format.hpp"

namespace flowd {
namespace {

namespace fs = std::filesystem;
using testing::add_to;
using testing::durable_run;
using testing::key_totals;
using testing::make_batch;
using testing::scratch_dir;
using testing::totals_of;

// Recovers `dir` into a fresh store, as a restarted flowd would.
key_totals recovered(fs::path const& dir, bool truncate_corrupt = false) {
    durable_run run{dir};
    (void)run.ingest.recover(truncate_corrupt);
    return totals_of(run.store);
}

std::string read_all(fs::path const& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void write_all_bytes(fs::path const& p, std::string const& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
}

void set_marker(fs::path const& dir, std::uint64_t segment, std::uint64_t offset) {
    std::string file(wal::marker_slot_stride + wal::marker_slot_size, '\0');
    file.replace(0, wal::marker_slot_size,
                 wal::marker_slot(1000, wal::synced_position{segment, offset}));
    write_all_bytes(dir / "wal.synced", file);
}

// Three records in one segment, no checkpoint: writes them without a clean stop (as a
// crash would leave them) and returns the totals after each and the frame offsets.
struct three_records {
    std::vector<key_totals> after;       // after[i]: totals once records 0..i are applied
    std::vector<std::uint64_t> offsets;  // start of each frame, then the end
};

three_records crash_after_three(fs::path const& dir) {
    three_records r;
    key_totals t;
    durable_options o;
    o.checkpoint_interval = std::chrono::hours(1);
    {
        durable_run run{dir, o};
        (void)run.ingest.recover(false);
        run.ingest.start();
        for (int i = 0; i < 3; ++i) {
            flow_batch b = make_batch(i + 1, 4);
            add_to(t, b);
            EXPECT_FALSE(run.post(std::move(b)).error.has_value());
            r.after.push_back(t);
        }
        run.ingest.stop();
    }
    // The clean stop wrote a snapshot; a crash would not have.
    for (auto const& e : fs::directory_iterator(dir)) {
        if (e.path().extension() == ".snap") {
            fs::remove(e.path());
        }
    }
    std::string const seg = read_all(dir / wal::segment_name(1));
    std::uint64_t off = wal::segment_header_size;
    while (off < seg.size()) {
        r.offsets.push_back(off);
        auto const f = wal::read_frame(std::string_view(seg).substr(off));
        EXPECT_EQ(f.what, wal::frame::status::ok);
        off += f.size;
    }
    r.offsets.push_back(off);
    EXPECT_EQ(r.offsets.size(), 4U);
    return r;
}

TEST(RecoveryTest, ReplaysTheLogExactly) {
    scratch_dir dir;
    auto const r = crash_after_three(dir.path());
    EXPECT_EQ(recovered(dir.path()), r.after[2]);
}

TEST(RecoveryTest, TornLastRecordAtEveryByteRecoversTheStateBeforeIt) {
    scratch_dir dir;
    auto const r = crash_after_three(dir.path());
    fs::path const seg = dir.path() / wal::segment_name(1);
    std::string const whole = read_all(seg);
    for (std::uint64_t cut = r.offsets[2]; cut < r.offsets[3]; ++cut) {
        write_all_bytes(seg, whole.substr(0, cut));
        set_marker(dir.path(), 1, r.offsets[2]);  // the torn record was never synced
        EXPECT_EQ(recovered(dir.path()), r.after[1]) << "cut at " << cut;
        EXPECT_EQ(fs::file_size(seg), r.offsets[2]) << "the torn tail is cut off";
    }
}

TEST(RecoveryTest, CorruptTailPastTheMarkerIsCutOff) {
    scratch_dir dir;
    auto const r = crash_after_three(dir.path());
    fs::path const seg = dir.path() / wal::segment_name(1);
    std::string bytes = read_all(seg);
    bytes[r.offsets[2] + 20] ^= 0x01;
    write_all_bytes(seg, bytes);
    set_marker(dir.path(), 1, r.offsets[2]);
    EXPECT_EQ(recovered(dir.path()), r.after[1]);
}

TEST(RecoveryTest, CorruptRecordBeforeTheMarkerRefusesToStartUnlessTold) {
    scratch_dir dir;
    auto const r = crash_after_three(dir.path());
    fs::path const seg = dir.path() / wal::segment_name(1);
    std::string bytes = read_all(seg);
    bytes[r.offsets[1] + 20] ^= 0x01;  // the middle record
    write_all_bytes(seg, bytes);
    set_marker(dir.path(), 1, r.offsets[3]);
    try {
        (void)recovered(dir.path());
        FAIL() << "no recovery_error";
    } catch (wal::recovery_error const& e) {
        std::string const what = e.what();
        EXPECT_NE(what.find(seg.string()), std::string::npos) << what;
        EXPECT_NE(what.find("offset " + std::to_string(r.offsets[1])), std::string::npos) << what;
        EXPECT_NE(what.find("--truncate-corrupt-log"), std::string::npos) << what;
    }
    EXPECT_EQ(fs::file_size(seg), bytes.size()) << "a refused start changes nothing";
    EXPECT_EQ(recovered(dir.path(), true), r.after[0]);
    EXPECT_EQ(recovered(dir.path()), r.after[0]) << "and the next start is clean";
}

// --truncate-corrupt-log cuts valid records after the corrupt one too: they are kept next
// to the segment, and the log says how much was set aside.
TEST(RecoveryTest, TruncatedBytesAreKeptInADiscardedFileAndCounted) {
    scratch_dir dir;
    auto const r = crash_after_three(dir.path());
    fs::path const seg = dir.path() / wal::segment_name(1);
    std::string bytes = read_all(seg);
    bytes[r.offsets[1] + 20] ^= 0x01;  // the middle record; the last one is intact
    write_all_bytes(seg, bytes);
    set_marker(dir.path(), 1, r.offsets[3]);
    std::ostringstream log_text;
    spdlog::logger log{"test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text)};
    flow_store store{store_options{8, 1'000'000}};
    idempotency_table idempotency{std::chrono::minutes(10), 1000};

    wal::recovery_result const got =
        wal::recover(wal::recovery_options{dir.path(), true, 0}, store, idempotency, log);

    EXPECT_EQ(totals_of(store), r.after[0]);
    EXPECT_EQ(fs::file_size(seg), r.offsets[1]);
    fs::path const aside = seg.string() + ".discarded";
    ASSERT_TRUE(fs::exists(aside));
    EXPECT_EQ(read_all(aside), bytes.substr(r.offsets[1])) << "the cut bytes, unchanged";
    EXPECT_EQ(got.records_set_aside, 2U);
    EXPECT_EQ(got.bytes_set_aside, r.offsets[3] - r.offsets[1]);
    std::string const text = log_text.str();
    EXPECT_NE(text.find("2 records (" + std::to_string(r.offsets[3] - r.offsets[1]) + " bytes)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find(aside.string()), std::string::npos) << text;
    EXPECT_EQ(recovered(dir.path()), r.after[0]) << "and the next start is clean";
}

TEST(RecoveryTest, UnfinishedSnapshotIsIgnoredAndRemoved) {
    scratch_dir dir;
    auto const r = crash_after_three(dir.path());
    fs::path const tmp = dir.path() / (wal::snapshot_name(3) + ".tmp");
    write_all_bytes(tmp, "FLOWDSNP half a snapshot");
    EXPECT_EQ(recovered(dir.path()), r.after[2]);
    EXPECT_FALSE(fs::exists(tmp));
}

TEST(RecoveryTest, CheckpointPlusLogAndFallbackFromABadNewestSnapshot) {
    scratch_dir dir;
    key_totals t;
    for (int round = 0; round < 2; ++round) {
        durable_run run{dir.path()};
        (void)run.ingest.recover(false);
        run.ingest.start();
        for (int i = 0; i < 3; ++i) {
            flow_batch b = make_batch(round * 10 + i, 5);
            add_to(t, b);
            ASSERT_FALSE(run.post(std::move(b)).error.has_value());
        }
        run.ingest.stop();  // a checkpoint per round: snapshots at records 3 and 6
    }
    ASSERT_TRUE(fs::exists(dir.path() / wal::snapshot_name(3)));
    ASSERT_TRUE(fs::exists(dir.path() / wal::snapshot_name(6)));
    {
        // More log after the newest checkpoint, then a crash (no clean stop).
        durable_run run{dir.path()};
        (void)run.ingest.recover(false);
        run.ingest.start();
        flow_batch b = make_batch(77, 3);
        add_to(t, b);
        ASSERT_FALSE(run.post(std::move(b)).error.has_value());
        run.ingest.stop();
        fs::remove(dir.path() / wal::snapshot_name(7));
    }
    EXPECT_EQ(recovered(dir.path()), t);
    fs::path const newest = dir.path() / wal::snapshot_name(6);
    std::string bytes = read_all(newest);
    bytes[60] ^= 0x40;
    write_all_bytes(newest, bytes);
    EXPECT_EQ(recovered(dir.path()), t) << "falls back to snapshot 3 and the log after it";
}

TEST(RecoveryTest, IdempotencyKeysSurviveTheLogAndSnapshots) {
    scratch_dir dir;
    idempotency_claim const claim{"", "retry-1", 99};
    {
        durable_run run{dir.path()};
        (void)run.ingest.recover(false);
        run.ingest.start();
        ASSERT_EQ(run.idempotency.begin(claim, wall_clock_ms()).what,
                  idempotency_table::begin_result::kind::fresh);
        ASSERT_FALSE(run.post(make_batch(1, 2), claim).error.has_value());
        run.ingest.stop();
        fs::remove(dir.path() / wal::snapshot_name(1));  // from the log alone
    }
    for (int pass = 0; pass < 2; ++pass) {  // then from the snapshot the clean stop writes
        durable_run run{dir.path()};
        (void)run.ingest.recover(false);
        auto const again = run.idempotency.begin(claim, wall_clock_ms());
        EXPECT_EQ(again.what, idempotency_table::begin_result::kind::duplicate) << pass;
        EXPECT_EQ(again.accepted, 2U);
        run.ingest.start();
        run.ingest.stop();
    }
}

TEST(RecoveryTest, SecondOwnerOfADirectoryIsRefused) {
    scratch_dir dir;
    wal::directory_lock const first{dir.path()};
    EXPECT_THROW(wal::directory_lock{dir.path()}, wal::recovery_error);
}

TEST(RecoveryTest, LogRotatesIntoSegmentsAndCheckpointsRemoveCoveredOnes) {
    scratch_dir dir;
    durable_options o;
    o.segment_bytes = 1 << 16;
    key_totals t;
    for (int round = 0; round < 3; ++round) {
        durable_run run{dir.path(), o};
        (void)run.ingest.recover(false);
        run.ingest.start();
        for (int i = 0; i < 40; ++i) {
            flow_batch b = make_batch(round * 100 + i, 100);
            add_to(t, b);
            ASSERT_FALSE(run.post(std::move(b)).error.has_value());
        }
        run.ingest.stop();
    }
    std::size_t segments = 0;
    std::size_t snapshots = 0;
    for (auto const& e : fs::directory_iterator(dir.path())) {
        segments += e.path().extension() == ".log" ? 1U : 0U;
        snapshots += e.path().extension() == ".snap" ? 1U : 0U;
    }
    EXPECT_EQ(snapshots, 2U);
    EXPECT_LT(segments, 6U) << "segments covered by the older snapshot are removed";
    EXPECT_EQ(recovered(dir.path()), t);
}

}  // namespace
}  // namespace flowd
