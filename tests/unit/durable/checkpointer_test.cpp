#include "flowd/durable/checkpointer.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>

#include "durable_test_support.hpp"
#include "flowd/durable/recovery.hpp"
#include "flowd/durable/wal_format.hpp"

namespace flowd {
namespace {

using testing::scratch_dir;

std::shared_ptr<spdlog::logger> quiet_log() {
    return std::make_shared<spdlog::logger>("checkpointer-test",
                                            std::make_shared<spdlog::sinks::null_sink_mt>());
}

// A store with one key; its checkpoint job as of sequence `seq`.
struct one_key_store {
    one_key_store() {
        flow_batch b;
        EXPECT_EQ(b.add("web", "db", "vpc-1", 7, flow_counters{10, 20}, 0),
                  flow_batch::add_status::ok);
        store.commit(std::get<prepared_batch>(store.prepare(b)));
    }
    [[nodiscard]] wal::checkpoint_job job(std::uint64_t seq) const {
        return wal::checkpoint_job{seq, store.export_all(), {}};
    }
    flow_store store{store_options{8, 1000}};
};

TEST(CheckpointerTest, AnOfferedJobIsWrittenAsASnapshotThatRecoveryLoads) {
    scratch_dir dir;
    one_key_store source;
    std::vector<std::uint64_t> written;
    wal::checkpointer checkpoints{
        dir.path(), source.store, quiet_log(),
        [&](wal::checkpoint_job const& job, wal::checkpoint_written const& w) {
            written.push_back(job.seq);
            EXPECT_EQ(w.info.keys, 1U);
        },
        [](std::string const& what) { ADD_FAILURE() << what; }};
    checkpoints.start();

    EXPECT_TRUE(checkpoints.offer(source.job(5)));
    checkpoints.wait_idle();

    EXPECT_EQ(written, std::vector<std::uint64_t>{5});
    EXPECT_TRUE(std::filesystem::exists(dir.path() / wal::snapshot_name(5)));
    flow_store loaded{store_options{8, 1000}};
    idempotency_table keys{std::chrono::minutes(10), 1000};
    spdlog::logger log{"test", std::make_shared<spdlog::sinks::null_sink_mt>()};
    wal::recovery_result const r =
        wal::recover(wal::recovery_options{dir.path(), false, 0}, loaded, keys, log);
    EXPECT_EQ(r.snapshot_seq, 5U);
    EXPECT_EQ(loaded.key_count(), 1U);
}

TEST(CheckpointerTest, OneJobAtATime) {
    scratch_dir dir;
    one_key_store source;
    // Not started: an offered job waits, so the next offer is refused.
    wal::checkpointer checkpoints{dir.path(), source.store, quiet_log(),
                                  [](wal::checkpoint_job const&, wal::checkpoint_written const&) {},
                                  [](std::string const& what) { ADD_FAILURE() << what; }};

    EXPECT_TRUE(checkpoints.offer(source.job(1)));
    EXPECT_TRUE(checkpoints.busy());
    EXPECT_FALSE(checkpoints.offer(source.job(2)));

    checkpoints.start();
    checkpoints.wait_idle();
    EXPECT_FALSE(checkpoints.busy());
    EXPECT_TRUE(std::filesystem::exists(dir.path() / wal::snapshot_name(1)));
    EXPECT_FALSE(std::filesystem::exists(dir.path() / wal::snapshot_name(2)));
}

TEST(CheckpointerTest, AFailedWriteIsReportedAndTheNextOneIsTaken) {
    scratch_dir dir;
    one_key_store source;
    std::filesystem::path const gone = dir.path() / "gone";
    std::vector<std::string> failures;
    wal::checkpointer checkpoints{gone, source.store, quiet_log(),
                                  [](wal::checkpoint_job const&, wal::checkpoint_written const&) {},
                                  [&](std::string const& what) { failures.push_back(what); }};
    checkpoints.start();

    EXPECT_TRUE(checkpoints.offer(source.job(1)));
    checkpoints.wait_idle();

    EXPECT_EQ(failures.size(), 1U);
    EXPECT_TRUE(checkpoints.offer(source.job(2)));
    checkpoints.stop();
    EXPECT_EQ(failures.size(), 2U) << "stop() writes what it holds first";
}

}  // namespace
}  // namespace flowd
