#include "flowd/domain/flow_batch.hpp"

#include <string>

#include <gtest/gtest.h>

namespace flowd {
namespace {

TEST(FlowBatchTest, StartsEmpty) {
    flow_batch batch;

    EXPECT_TRUE(batch.empty());
    EXPECT_EQ(batch.record_count(), 0U);
    EXPECT_TRUE(batch.entries().empty());
}

TEST(FlowBatchTest, MergesCountersForSameKey) {
    flow_batch batch;

    auto const first = batch.add("foo", "bar", "vpc-0", 1, {100, 300}, 0);
    auto const second = batch.add("foo", "bar", "vpc-0", 1, {200, 600}, 1);

    EXPECT_EQ(first, flow_batch::add_status::ok);
    EXPECT_EQ(second, flow_batch::add_status::ok);
    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record, (flow_record{"foo", "bar", "vpc-0", 1, {300, 900}}));
    EXPECT_EQ(batch.record_count(), 2U);
}

TEST(FlowBatchTest, KeepsKeysThatDifferInAnyPartApart) {
    flow_batch batch;

    batch.add("foo", "bar", "vpc-0", 1, {1, 1}, 0);
    batch.add("bar", "bar", "vpc-0", 1, {1, 1}, 1);
    batch.add("foo", "foo", "vpc-0", 1, {1, 1}, 2);
    batch.add("foo", "bar", "vpc-1", 1, {1, 1}, 3);
    batch.add("foo", "bar", "vpc-0", 2, {1, 1}, 4);

    EXPECT_EQ(batch.entries().size(), 5U);
    EXPECT_EQ(batch.record_count(), 5U);
}

TEST(FlowBatchTest, DoesNotConfuseKeysWhoseConcatenationsMatch) {
    flow_batch batch;

    batch.add("ab", "c", "d", 1, {1, 1}, 0);
    batch.add("a", "bc", "d", 1, {1, 1}, 1);

    EXPECT_EQ(batch.entries().size(), 2U);
}

TEST(FlowBatchTest, RemembersFirstRecordIndexOfEachKey) {
    flow_batch batch;

    batch.add("a", "b", "c", 1, {1, 1}, 0);
    batch.add("x", "y", "z", 1, {1, 1}, 1);
    batch.add("a", "b", "c", 1, {1, 1}, 2);

    ASSERT_EQ(batch.entries().size(), 2U);
    EXPECT_EQ(batch.entries()[0].first_record, 0U);
    EXPECT_EQ(batch.entries()[1].first_record, 1U);
}

TEST(FlowBatchTest, AcceptsSumExactlyAtMaxCounter) {
    flow_batch batch;
    batch.add("a", "b", "c", 1, {max_counter - 1, max_counter - 1}, 0);

    auto const status = batch.add("a", "b", "c", 1, {1, 1}, 1);

    EXPECT_EQ(status, flow_batch::add_status::ok);
    EXPECT_EQ(batch.entries()[0].record.counters, (flow_counters{max_counter, max_counter}));
}

TEST(FlowBatchTest, ReportsTxOverflowAndLeavesBatchUnchanged) {
    flow_batch batch;
    batch.add("a", "b", "c", 1, {max_counter, 5}, 0);

    auto const status = batch.add("a", "b", "c", 1, {1, 1}, 1);

    EXPECT_EQ(status, flow_batch::add_status::overflow_tx);
    EXPECT_EQ(batch.entries()[0].record.counters, (flow_counters{max_counter, 5}));
    EXPECT_EQ(batch.record_count(), 1U);
}

TEST(FlowBatchTest, ReportsRxOverflowAndLeavesBatchUnchanged) {
    flow_batch batch;
    batch.add("a", "b", "c", 1, {5, max_counter}, 0);

    auto const status = batch.add("a", "b", "c", 1, {1, 1}, 1);

    EXPECT_EQ(status, flow_batch::add_status::overflow_rx);
    EXPECT_EQ(batch.entries()[0].record.counters, (flow_counters{5, max_counter}));
    EXPECT_EQ(batch.record_count(), 1U);
}

TEST(FlowBatchTest, CopiesStringsSoCallerBuffersMayChange) {
    flow_batch batch;
    std::string src = "source-application-with-a-long-name";
    batch.add(src, "b", "c", 1, {1, 1}, 0);

    src.assign(src.size(), 'x');
    auto const status = batch.add("source-application-with-a-long-name", "b", "c", 1, {1, 1}, 1);

    EXPECT_EQ(status, flow_batch::add_status::ok);
    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record.src_app, "source-application-with-a-long-name");
    EXPECT_EQ(batch.entries()[0].record.counters, (flow_counters{2, 2}));
}

TEST(FlowBatchTest, FindsKeysAfterManyInsertions) {
    flow_batch batch;
    for (std::size_t i = 0; i < 1000; ++i) {
        batch.add("app-" + std::to_string(i), "b", "c", 1, {1, 1}, i);
    }

    for (std::size_t i = 0; i < 1000; ++i) {
        batch.add("app-" + std::to_string(i), "b", "c", 1, {1, 1}, 1000 + i);
    }

    ASSERT_EQ(batch.entries().size(), 1000U);
    for (batch_entry const& e : batch.entries()) {
        EXPECT_EQ(e.record.counters, (flow_counters{2, 2}));
    }
}

}  // namespace
}  // namespace flowd
