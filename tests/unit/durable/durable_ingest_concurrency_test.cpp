// The local log's ingest under several submitting threads (run under ThreadSanitizer by
// the tsan stage) while its log thread writes groups, fsyncs, rotates and checkpoints:
// every record is applied once, and a restart recovers exactly what was acknowledged.
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "durable_test_support.hpp"

namespace flowd {
namespace {

using testing::add_to;
using testing::durable_run;
using testing::key_totals;
using testing::make_batch;
using testing::scratch_dir;
using testing::totals_of;

TEST(DurableIngestConcurrencyTest, ThreadsSubmittingWhileTheLogSyncsRotatesAndCheckpoints) {
    for (bool const always : {false, true}) {
        SCOPED_TRACE(always ? "fsync always" : "fsync interval");
        scratch_dir dir;
        durable_options o;
        o.fsync_always = always;
        o.fsync_interval = std::chrono::milliseconds(2);
        o.checkpoint_interval = std::chrono::milliseconds(15);
        o.segment_bytes = 16 * 1024;
        constexpr int threads = 4;
        constexpr int per_thread = 150;
        key_totals expected;
        for (int t = 0; t < threads; ++t) {
            for (int i = 0; i < per_thread; ++i) {
                add_to(expected, make_batch(t * per_thread + i, 3));
            }
        }
        {
            durable_run run{dir.path(), o};
            (void)run.ingest.recover(false);
            run.ingest.start();
            std::atomic<int> applied{0};
            std::vector<std::thread> submitters;
            for (int t = 0; t < threads; ++t) {
                submitters.emplace_back([&, t] {
                    for (int i = 0; i < per_thread; ++i) {
                        if (!run.post(make_batch(t * per_thread + i, 3)).error) {
                            applied.fetch_add(1);
                        }
                    }
                });
            }
            for (auto& s : submitters) {
                s.join();
            }
            EXPECT_EQ(applied.load(), threads * per_thread);
            EXPECT_EQ(totals_of(run.store), expected);
            run.ingest.stop();
        }
        durable_run again{dir.path(), o};
        (void)again.ingest.recover(false);
        EXPECT_EQ(totals_of(again.store), expected);
    }
}

}  // namespace
}  // namespace flowd
