#include "flowd/flow/flow_batcher.hpp"

#include <gtest/gtest.h>

namespace flowd {
namespace {

TEST(FlowBatcherTest, SumsRecordsOfTheSameKey) {
    flow_batcher b;
    ASSERT_TRUE(b.add("web", "db", "vpc", 1, {100, 10}));
    ASSERT_TRUE(b.add("web", "db", "vpc", 1, {5, 1}));
    ASSERT_TRUE(b.add("web", "db", "vpc", 2, {7, 0}));

    flow_batch const batch = b.build();

    EXPECT_EQ(b.records(), 3U);
    EXPECT_EQ(batch.record_count(), 3U);
    ASSERT_EQ(batch.entries().size(), 2U);
    EXPECT_EQ(batch.entries()[0].record.counters, (flow_counters{105, 11}));
    EXPECT_EQ(batch.entries()[0].first_record, 0U);
    EXPECT_EQ(batch.entries()[1].first_record, 1U);
}

TEST(FlowBatcherTest, RefusesARecordThatWouldOverflowItsKey) {
    flow_batcher b;
    ASSERT_TRUE(b.add("a", "b", "v", 1, {max_counter, 0}));

    EXPECT_FALSE(b.add("a", "b", "v", 1, {1, 0}));
    EXPECT_FALSE(b.add("a", "b", "v", 2, {max_counter + 1, 0}));
    EXPECT_EQ(b.records(), 1U);
}

TEST(FlowBatcherTest, RemoveKeyTakesOutItsRecords) {
    flow_batcher b;
    ASSERT_TRUE(b.add("a", "b", "v", 1, {1, 0}));
    ASSERT_TRUE(b.add("a", "b", "v", 1, {1, 0}));
    ASSERT_TRUE(b.add("c", "d", "v", 1, {5, 0}));

    EXPECT_EQ(b.remove_key(0), 2U);

    flow_batch const batch = b.build();
    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record.src_app, "c");
    EXPECT_EQ(batch.record_count(), 1U);
    // The moved key is still found under its new position.
    ASSERT_TRUE(b.add("c", "d", "v", 1, {1, 0}));
    EXPECT_EQ(b.keys(), 1U);
}

TEST(FlowBatcherTest, SameAddressWithOtherBytesIsAnotherName) {
    flow_batcher b;
    std::string name = "web";
    ASSERT_TRUE(b.add(name, "db", "v", 1, {1, 0}));

    name[0] = 'x';  // same buffer, other bytes: as a reloaded apps table may reuse memory
    ASSERT_TRUE(b.add(name, "db", "v", 1, {2, 0}));

    flow_batch const batch = b.build();
    ASSERT_EQ(batch.entries().size(), 2U);
    EXPECT_EQ(batch.entries()[0].record.src_app, "web");
    EXPECT_EQ(batch.entries()[1].record.src_app, "xeb");
}

}  // namespace
}  // namespace flowd
