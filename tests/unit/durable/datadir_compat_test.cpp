// Data directories written by earlier releases (tests/data/datadir-v<N>/, made by
// tests/data/make_datadir.py with that release's flowd) recover to exactly what was POSTed:
// a change of the on-disk format keeps every released format readable.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "durable_test_support.hpp"
#include "flowd/durable/recovery.hpp"

namespace flowd {
namespace {

namespace fs = std::filesystem;
using testing::key_totals;
using testing::quiet_logger;
using testing::scratch_dir;
using testing::totals_of;

struct written {
    std::uint64_t written_unix_ms = 0;
    std::size_t checkpointed = 0;
    key_totals totals;                           // every batch, summed per key
    std::map<std::string, std::uint64_t> keyed;  // Idempotency-Key -> its batch's records
};

written read_batches(fs::path const& file) {
    std::ifstream in(file);
    nlohmann::json const j = nlohmann::json::parse(in);
    written w;
    w.written_unix_ms = j.at("written_unix_ms").get<std::uint64_t>();
    w.checkpointed = j.at("checkpointed").get<std::size_t>();
    for (auto const& b : j.at("batches")) {
        for (auto const& r : b.at("body")) {
            auto& c =
                w.totals[{r.at("src_app").get<std::string>(), r.at("dest_app").get<std::string>(),
                          r.at("vpc_id").get<std::string>(), r.at("hour").get<std::uint32_t>()}];
            c.add(flow_counters{r.at("bytes_tx").get<std::uint64_t>(),
                                r.at("bytes_rx").get<std::uint64_t>()});
        }
        if (b.contains("idempotency_key")) {
            w.keyed[b.at("idempotency_key").get<std::string>()] = b.at("body").size();
        }
    }
    return w;
}

class DatadirCompatTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DatadirCompatTest, RecoversWhatWasPosted) {
    fs::path const release = fs::path(FLOWD_SOURCE_DIR) / "tests" / "data" / GetParam();
    written const w = read_batches(release / "batches.json");
    ASSERT_FALSE(w.totals.empty());
    for (char const* layout : {"log-only", "snapshot-and-log"}) {
        SCOPED_TRACE(layout);
        // Recovery may cut or append: it works on a copy.
        scratch_dir dir;
        fs::copy(release / layout, dir.path(), fs::copy_options::recursive);
        flow_store store{store_options{8, 1'000'000}};
        idempotency_table idempotency{std::chrono::minutes(10), 1000};
        auto const log = quiet_logger();
        // "Now" is just after the directory was written, so its keys are inside the window.
        auto const r =
            wal::recover(wal::recovery_options{dir.path(), false, w.written_unix_ms + 60'000},
                         store, idempotency, *log);
        EXPECT_EQ(totals_of(store), w.totals);
        if (std::string(layout) == "snapshot-and-log") {
            EXPECT_EQ(r.snapshot_seq, w.checkpointed);
            EXPECT_FALSE(r.snapshot.empty());
        } else {
            EXPECT_TRUE(r.snapshot.empty());
        }
        std::map<std::string, std::uint64_t> keys;
        for (auto const& e : idempotency.completed(w.written_unix_ms + 60'000)) {
            keys[e.claim.key] = e.accepted;
        }
        EXPECT_EQ(keys, w.keyed);
    }
}

// flowd goes on with a directory of an older release in a new segment of its own
// version, leaving the old one as it was (its own version's segment it appends to), and
// the next start reads both.
TEST_P(DatadirCompatTest, OnlyASegmentOfThisVersionIsAppendedTo) {
    fs::path const release = fs::path(FLOWD_SOURCE_DIR) / "tests" / "data" / GetParam();
    written const w = read_batches(release / "batches.json");
    scratch_dir dir;
    fs::copy(release / "log-only", dir.path(), fs::copy_options::recursive);
    auto const segment_bytes = [](fs::path const& p) {
        std::ifstream in(p, std::ios::binary);
        return std::string{std::istreambuf_iterator<char>(in), {}};
    };
    std::map<fs::path, std::string> before;
    std::uint32_t release_version = 0;
    for (auto const& e : fs::directory_iterator(dir.path())) {
        if (wal::parse_segment_name(e.path().filename().string())) {
            before[e.path()] = segment_bytes(e.path());
            ASSERT_TRUE(wal::read_segment_header(before[e.path()], &release_version));
        }
    }
    bool const older = release_version < wal::segment_version;
    key_totals expected = w.totals;
    flow_batch const more = testing::make_batch(3, 4);
    testing::add_to(expected, more);
    {
        testing::durable_run run{dir.path()};
        (void)run.ingest.recover(false);
        run.ingest.start();
        ASSERT_FALSE(run.post(more).error);
        run.ingest.stop();
    }
    std::size_t newer = 0;
    for (auto const& e : fs::directory_iterator(dir.path())) {
        if (!wal::parse_segment_name(e.path().filename().string())) {
            continue;
        }
        std::string const bytes = segment_bytes(e.path());
        std::uint32_t version = 0;
        ASSERT_TRUE(wal::read_segment_header(bytes, &version).has_value()) << e.path();
        if (auto const old = before.find(e.path()); old != before.end()) {
            // Compared as a bool: a failure would print two binary segments.
            bool const unchanged = bytes == old->second;
            EXPECT_EQ(unchanged, older) << e.path();
            EXPECT_TRUE(bytes.starts_with(old->second)) << e.path();
        } else {
            EXPECT_EQ(version, wal::segment_version);
            ++newer;
        }
    }
    EXPECT_EQ(newer, older ? 1U : 0U);
    testing::durable_run again{dir.path()};
    (void)again.ingest.recover(false);
    EXPECT_EQ(totals_of(again.store), expected);
}

INSTANTIATE_TEST_SUITE_P(Releases, DatadirCompatTest,
                         ::testing::Values("datadir-v1", "datadir-v2"));

}  // namespace
}  // namespace flowd
