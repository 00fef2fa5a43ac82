#include "flowd/store/hour_table.hpp"

#include <set>
#include <tuple>

#include <gtest/gtest.h>

namespace flowd {
namespace {

app_key key_of(std::uint32_t i) {
    return app_key{i, i + 1, i + 2};
}

TEST(HourTableTest, FindOnEmptyTableReturnsNull) {
    hour_table table;

    auto* found = table.find(key_of(1), hash_app_key(key_of(1)));

    EXPECT_EQ(found, nullptr);
    EXPECT_EQ(table.size(), 0U);
    EXPECT_EQ(table.memory_bytes(), 0U);
}

TEST(HourTableTest, UpsertInsertsZeroedCounters) {
    hour_table table;

    flow_counters& c = table.upsert(key_of(1), hash_app_key(key_of(1)));

    EXPECT_EQ(c, flow_counters{});
    EXPECT_EQ(table.size(), 1U);
}

TEST(HourTableTest, UpsertReturnsExistingCountersForSameKey) {
    hour_table table;
    table.upsert(key_of(1), hash_app_key(key_of(1))).add({10, 20});

    flow_counters& again = table.upsert(key_of(1), hash_app_key(key_of(1)));

    EXPECT_EQ(again, (flow_counters{10, 20}));
    EXPECT_EQ(table.size(), 1U);
}

TEST(HourTableTest, FindReturnsCountersOfInsertedKey) {
    hour_table table;
    table.upsert(key_of(7), hash_app_key(key_of(7))).add({3, 4});

    auto* found = table.find(key_of(7), hash_app_key(key_of(7)));
    auto* missing = table.find(key_of(8), hash_app_key(key_of(8)));

    ASSERT_NE(found, nullptr);
    EXPECT_EQ(*found, (flow_counters{3, 4}));
    EXPECT_EQ(missing, nullptr);
}

TEST(HourTableTest, KeysDifferingInOneFieldAreDistinct) {
    hour_table table;
    app_key const base{1, 2, 3};
    app_key const other_src{9, 2, 3};
    app_key const other_dest{1, 9, 3};
    app_key const other_vpc{1, 2, 9};

    for (app_key const& k : {base, other_src, other_dest, other_vpc}) {
        table.upsert(k, hash_app_key(k)).add({1, 1});
    }

    EXPECT_EQ(table.size(), 4U);
    EXPECT_NE(hash_app_key(base), hash_app_key(other_src));
    EXPECT_NE(hash_app_key(base), hash_app_key(other_dest));
    EXPECT_NE(hash_app_key(base), hash_app_key(other_vpc));
}

TEST(HourTableTest, CollidingHashesStillDistinguishKeys) {
    hour_table table;
    // Six keys stay under the first table's 7/8 load factor, so no grow() rehashes them
    // with hash_app_key: every probe starts from the same slot.
    constexpr std::uint64_t same_hash = 42;

    for (std::uint32_t i = 0; i < 6; ++i) {
        table.upsert(key_of(i), same_hash).add({i, 1});
    }

    ASSERT_EQ(table.size(), 6U);
    for (std::uint32_t i = 0; i < 6; ++i) {
        auto* found = table.find(key_of(i), same_hash);
        ASSERT_NE(found, nullptr);
        EXPECT_EQ(found->bytes_tx, i);
    }
    EXPECT_EQ(table.find(key_of(6), same_hash), nullptr);
}

TEST(HourTableTest, GrowsAndKeepsEveryKey) {
    hour_table table;
    constexpr std::uint32_t count = 10'000;

    for (std::uint32_t i = 0; i < count; ++i) {
        table.upsert(key_of(i), hash_app_key(key_of(i))).add({i, 2U * i});
    }

    ASSERT_EQ(table.size(), count);
    for (std::uint32_t i = 0; i < count; ++i) {
        auto* found = table.find(key_of(i), hash_app_key(key_of(i)));
        ASSERT_NE(found, nullptr);
        ASSERT_EQ(*found, (flow_counters{i, 2U * i}));
    }
    // Load factor at most 7/8, 32 bytes a slot.
    EXPECT_GE(table.memory_bytes() / sizeof(hour_table::slot) * 7, count * 8U);
}

TEST(HourTableTest, ForEachVisitsEveryKeyOnce) {
    hour_table table;
    for (std::uint32_t i = 0; i < 50; ++i) {
        table.upsert(key_of(i), hash_app_key(key_of(i))).add({i, i});
    }
    std::set<std::uint32_t> seen;
    std::size_t visits = 0;

    table.for_each([&](app_key const& k, flow_counters const& c) {
        ++visits;
        seen.insert(k.src);
        EXPECT_EQ(k, key_of(k.src));
        EXPECT_EQ(c.bytes_tx, k.src);
    });

    EXPECT_EQ(visits, 50U);
    EXPECT_EQ(seen.size(), 50U);
}

TEST(HourTableTest, ZeroKeyIsStorable) {
    hour_table table;
    app_key const zero{0, 0, 0};

    table.upsert(zero, hash_app_key(zero)).add({1, 2});

    auto* found = table.find(zero, hash_app_key(zero));
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(*found, (flow_counters{1, 2}));
}

}  // namespace
}  // namespace flowd
