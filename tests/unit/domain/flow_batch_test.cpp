#include "flowd/domain/flow_batch.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "flowd/domain/string_hash.hpp"

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

TEST(FlowBatchTest, NumbersEachDistinctNameOnce) {
    flow_batch batch;
    batch.add("a", "b", "shared", 1, {1, 1}, 0);
    batch.add("b", "a", "shared", 1, {1, 1}, 1);
    batch.add("a", "b", "shared", 2, {1, 1}, 2);

    EXPECT_EQ(batch.names(), (std::vector<std::string_view>{"a", "b", "shared"}));
    ASSERT_EQ(batch.entries().size(), 3U);
    EXPECT_EQ(batch.entries()[1].names, (std::array<std::uint32_t, 3>{1, 0, 2}));
    for (batch_entry const& e : batch.entries()) {
        EXPECT_EQ(batch.names()[e.names[0]], e.record.src_app);
        EXPECT_EQ(batch.names()[e.names[1]], e.record.dest_app);
        EXPECT_EQ(batch.names()[e.names[2]], e.record.vpc_id);
    }
}

TEST(FlowBatchTest, SameNamesInAnotherOrderAreAnotherKey) {
    flow_batch batch;
    batch.add("a", "b", "c", 1, {1, 1}, 0);
    batch.add("b", "a", "c", 1, {1, 1}, 1);
    batch.add("a", "c", "b", 1, {1, 1}, 2);

    EXPECT_EQ(batch.entries().size(), 3U);
}

TEST(FlowBatchTest, OverflowAddsNoName) {
    flow_batch batch;
    batch.add("a", "b", "c", 1, {max_counter, 0}, 0);

    auto const status = batch.add("a", "b", "c", 1, {1, 0}, 1);

    EXPECT_EQ(status, flow_batch::add_status::overflow_tx);
    EXPECT_EQ(batch.names().size(), 3U);
    EXPECT_EQ(batch.record_count(), 1U);
}

TEST(FlowBatchTest, NamesSurviveMovesAndManyBlocks) {
    flow_batch batch;
    // More distinct bytes than one storage block, and one name longer than a block.
    std::string const huge(10'000, 'h');
    batch.add(huge, "b", "c", 1, {1, 1}, 0);
    for (std::size_t i = 0; i < 3000; ++i) {
        batch.add("application-" + std::to_string(i), "b", "c", 1, {1, 1}, i + 1);
    }

    flow_batch moved = std::move(batch);
    flow_batch assigned;
    assigned = std::move(moved);

    ASSERT_EQ(assigned.entries().size(), 3001U);
    EXPECT_EQ(assigned.entries()[0].record.src_app, huge);
    for (std::size_t i = 0; i < 3000; ++i) {
        EXPECT_EQ(assigned.entries()[i + 1].record.src_app, "application-" + std::to_string(i));
    }
}

TEST(FlowBatchTest, MovedFromBatchIsEmptyAndUsable) {
    flow_batch first;
    first.add("a", "b", "c", 1, {1, 1}, 0);

    flow_batch second = std::move(first);
    first.add("x", "y", "z", 2, {2, 2}, 0);  // NOLINT(bugprone-use-after-move): on purpose

    ASSERT_EQ(first.entries().size(), 1U);
    EXPECT_EQ(first.entries()[0].record, (flow_record{"x", "y", "z", 2, {2, 2}}));
    EXPECT_EQ(first.record_count(), 1U);
    ASSERT_EQ(second.entries().size(), 1U);
    EXPECT_EQ(second.entries()[0].record, (flow_record{"a", "b", "c", 1, {1, 1}}));
}

TEST(FlowBatchTest, CopyOwnsItsNames) {
    auto original = std::make_unique<flow_batch>();
    original->add("source", "dest", "vpc", 3, {1, 2}, 0);
    original->add("other", "dest", "vpc", 3, {5, 6}, 1);
    original->add("source", "dest", "vpc", 3, {1, 2}, 2);

    flow_batch const copy = *original;
    original.reset();

    EXPECT_EQ(copy.record_count(), 3U);
    ASSERT_EQ(copy.entries().size(), 2U);
    EXPECT_EQ(copy.entries()[0].record, (flow_record{"source", "dest", "vpc", 3, {2, 4}}));
    EXPECT_EQ(copy.entries()[1].record, (flow_record{"other", "dest", "vpc", 3, {5, 6}}));
    EXPECT_EQ(copy.entries()[1].first_record, 1U);
}

TEST(StringHashTest, SameBytesComparesEveryLength) {
    std::string const base = "0123456789abcdefghijklmnopqrstuvwxyz";
    for (std::size_t n = 0; n <= base.size(); ++n) {
        std::string const a = base.substr(0, n);
        EXPECT_TRUE(same_bytes(a, std::string(a))) << n;
        for (std::size_t i = 0; i < n; ++i) {
            std::string b = a;
            b[i] = '#';
            EXPECT_FALSE(same_bytes(a, b)) << n << " " << i;
        }
        EXPECT_FALSE(same_bytes(a, a + "z")) << n;
    }
}

// Names of up to 16 bytes are hashed and compared as two words, longer ones byte by byte:
// every length on both sides of 4, 8 and 16 bytes, each byte position changed, and names
// that differ only by trailing NUL bytes are all told apart, and found again.
TEST(FlowBatchTest, TellsNamesApartAtEveryLengthAndByte) {
    std::vector<std::string> names;
    for (std::size_t n = 0; n <= 40; ++n) {
        std::string const base(n, 'x');
        names.push_back(base);
        for (std::size_t at = 0; at < n; ++at) {
            std::string changed = base;
            changed[at] = 'y';
            names.push_back(changed);
        }
        names.push_back(base + std::string(1, '\0'));
    }
    flow_batch batch;
    for (std::size_t i = 0; i < names.size(); ++i) {
        ASSERT_EQ(batch.add(names[i], "d", "v", 0, {1, 0}, i), flow_batch::add_status::ok);
    }
    ASSERT_EQ(batch.entries().size(), names.size());
    ASSERT_EQ(batch.names().size(), names.size() + 2);  // with "d" and "v"
    for (std::size_t i = 0; i < names.size(); ++i) {
        ASSERT_EQ(batch.add(names[i], "d", "v", 0, {1, 0}, names.size() + i),
                  flow_batch::add_status::ok);
    }
    ASSERT_EQ(batch.entries().size(), names.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
        EXPECT_EQ(batch.entries()[i].record.src_app, names[i]);
        EXPECT_EQ(batch.entries()[i].record.counters.bytes_tx, 2U) << i;
    }
}

TEST(FlowBatchTest, RecordViewConvertsToRecord) {
    flow_batch batch;
    batch.add("s", "d", "v", 9, {7, 8}, 0);

    EXPECT_EQ(batch.entries()[0].record.to_record(), (flow_record{"s", "d", "v", 9, {7, 8}}));
}

}  // namespace
}  // namespace flowd
