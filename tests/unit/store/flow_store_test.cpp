#include "flowd/store/flow_store.hpp"

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

namespace flowd {
namespace {

flow_batch batch_of(std::initializer_list<flow_record> records) {
    flow_batch batch;
    std::size_t index = 0;
    for (flow_record const& r : records) {
        EXPECT_EQ(batch.add(r.src_app, r.dest_app, r.vpc_id, r.hour, r.counters, index++),
                  flow_batch::add_status::ok);
    }
    return batch;
}

// Prepares and commits; fails the test when the store refuses.
void apply(flow_store& store, flow_batch const& batch) {
    auto prepared = store.prepare(batch);
    ASSERT_TRUE(std::holds_alternative<prepared_batch>(prepared));
    store.commit(std::get<prepared_batch>(std::move(prepared)));
}

store_rejection rejection_of(flow_store& store, flow_batch const& batch) {
    auto prepared = store.prepare(batch);
    EXPECT_TRUE(std::holds_alternative<store_rejection>(prepared));
    if (auto* r = std::get_if<store_rejection>(&prepared)) {
        return *r;
    }
    return store_rejection{store_rejection::reason::store_full, 999, "none"};
}

std::vector<flow_record> rows(hour_snapshot const& snap) {
    std::vector<flow_record> out;
    for (std::size_t i = 0; i < snap.size(); ++i) {
        hour_snapshot::entry const& e = snap[i];
        out.push_back(flow_record{std::string(snap.name(e.key.src)),
                                  std::string(snap.name(e.key.dest)),
                                  std::string(snap.name(e.key.vpc)), snap.hour(), e.counters});
    }
    return out;
}

flow_batch seed_batch() {
    return batch_of({{"foo", "bar", "vpc-0", 1, {100, 300}},
                     {"foo", "bar", "vpc-0", 1, {200, 600}},
                     {"baz", "qux", "vpc-0", 1, {100, 500}},
                     {"baz", "qux", "vpc-0", 2, {100, 500}},
                     {"baz", "qux", "vpc-1", 2, {100, 500}}});
}

TEST(FlowStoreTest, RejectsShardCountThatIsNotAPowerOfTwo) {
    EXPECT_THROW(flow_store(store_options{3, 10}), std::invalid_argument);
    EXPECT_THROW(flow_store(store_options{0, 10}), std::invalid_argument);
}

TEST(FlowStoreTest, SnapshotOfEmptyStoreIsEmpty) {
    flow_store store;

    auto const snap = store.snapshot(1);

    EXPECT_EQ(snap.size(), 0U);
    EXPECT_EQ(snap.hour(), 1U);
}

TEST(FlowStoreTest, AggregatesSeedExamplePerHour) {
    flow_store store;

    apply(store, seed_batch());

    EXPECT_EQ(rows(store.snapshot(1)),
              (std::vector<flow_record>{{"baz", "qux", "vpc-0", 1, {100, 500}},
                                        {"foo", "bar", "vpc-0", 1, {300, 900}}}));
    EXPECT_EQ(rows(store.snapshot(2)),
              (std::vector<flow_record>{{"baz", "qux", "vpc-0", 2, {100, 500}},
                                        {"baz", "qux", "vpc-1", 2, {100, 500}}}));
    EXPECT_TRUE(rows(store.snapshot(3)).empty());
    EXPECT_EQ(store.key_count(), 4U);
    EXPECT_EQ(store.hour_count(), 2U);
}

TEST(FlowStoreTest, MergesCountersForSameKeyAcrossBatches) {
    flow_store store;
    apply(store, batch_of({{"a", "b", "c", 5, {1, 2}}}));

    apply(store, batch_of({{"a", "b", "c", 5, {10, 20}}}));

    EXPECT_EQ(rows(store.snapshot(5)), (std::vector<flow_record>{{"a", "b", "c", 5, {11, 22}}}));
    EXPECT_EQ(store.key_count(), 1U);
}

TEST(FlowStoreTest, SnapshotOfOneHourReturnsOnlyThatHour) {
    flow_store store;
    flow_batch batch;
    for (std::uint32_t hour = 0; hour < 50; ++hour) {
        batch.add("a", "b", "c", hour, {hour, hour}, hour);
        batch.add("d", "e", "f", hour, {hour, hour}, 50 + hour);
    }
    apply(store, batch);

    auto const snap = store.snapshot(17);

    ASSERT_EQ(snap.size(), 2U);
    for (flow_record const& r : rows(snap)) {
        EXPECT_EQ(r.hour, 17U);
        EXPECT_EQ(r.counters, (flow_counters{17, 17}));
    }
    EXPECT_EQ(store.hour_count(), 50U);
}

TEST(FlowStoreTest, HoursAtTheEndsOfTheRangeAreKept) {
    flow_store store;

    apply(store, batch_of({{"a", "b", "c", 0, {1, 1}}, {"a", "b", "c", max_hour, {2, 2}}}));

    EXPECT_EQ(rows(store.snapshot(0)), (std::vector<flow_record>{{"a", "b", "c", 0, {1, 1}}}));
    EXPECT_EQ(rows(store.snapshot(max_hour)),
              (std::vector<flow_record>{{"a", "b", "c", max_hour, {2, 2}}}));
}

TEST(FlowStoreTest, SortsBySrcThenDestThenVpcInByteOrder) {
    flow_store store;
    apply(store, batch_of({{"b", "a", "a", 1, {1, 1}},
                           {"a", "b", "b", 1, {1, 1}},
                           {"a", "b", "a", 1, {1, 1}},
                           {"a", "a", "z", 1, {1, 1}},
                           {"B", "z", "z", 1, {1, 1}}}));

    auto const got = rows(store.snapshot(1));

    ASSERT_EQ(got.size(), 5U);
    EXPECT_EQ(got[0].src_app, "B");  // 'B' (0x42) sorts before 'a' (0x61)
    EXPECT_EQ((std::tuple{got[1].src_app, got[1].dest_app, got[1].vpc_id}),
              (std::tuple{"a", "a", "z"}));
    EXPECT_EQ((std::tuple{got[2].src_app, got[2].dest_app, got[2].vpc_id}),
              (std::tuple{"a", "b", "a"}));
    EXPECT_EQ((std::tuple{got[3].src_app, got[3].dest_app, got[3].vpc_id}),
              (std::tuple{"a", "b", "b"}));
    EXPECT_EQ(got[4].src_app, "b");
}

TEST(FlowStoreTest, SortsPrefixBeforeLongerString) {
    flow_store store;
    apply(store, batch_of({{"abc", "x", "x", 1, {1, 1}},
                           {"ab", "x", "x", 1, {1, 1}},
                           {"abd", "x", "x", 1, {1, 1}}}));

    auto const got = rows(store.snapshot(1));

    ASSERT_EQ(got.size(), 3U);
    EXPECT_EQ(got[0].src_app, "ab");
    EXPECT_EQ(got[1].src_app, "abc");
    EXPECT_EQ(got[2].src_app, "abd");
}

TEST(FlowStoreTest, SortsNonAsciiBytesAfterAsciiAsUnsigned) {
    flow_store store;
    // "é" is 0xC3 0xA9 and "\x7f" is DEL: unsigned byte order puts é last.
    apply(store, batch_of({{"\xc3\xa9", "x", "x", 1, {1, 1}},
                           {"z", "x", "x", 1, {1, 1}},
                           {"\x7f", "x", "x", 1, {1, 1}},
                           {"\xe2\x82\xac", "x", "x", 1, {1, 1}}}));

    auto const got = rows(store.snapshot(1));

    ASSERT_EQ(got.size(), 4U);
    EXPECT_EQ(got[0].src_app, "z");
    EXPECT_EQ(got[1].src_app, "\x7f");
    EXPECT_EQ(got[2].src_app, "\xc3\xa9");
    EXPECT_EQ(got[3].src_app, "\xe2\x82\xac");
}

TEST(FlowStoreTest, SortOrderDoesNotDependOnInsertionOrder) {
    flow_store forward;
    flow_store backward;
    flow_batch ascending;
    flow_batch descending;
    for (std::size_t i = 0; i < 300; ++i) {
        ascending.add("app-" + std::to_string(i), "d", "v", 1, {1, 1}, i);
        descending.add("app-" + std::to_string(299 - i), "d", "v", 1, {1, 1}, i);
    }

    apply(forward, ascending);
    apply(backward, descending);

    auto const a = rows(forward.snapshot(1));
    auto const b = rows(backward.snapshot(1));
    ASSERT_EQ(a.size(), 300U);
    EXPECT_EQ(a, b);
    for (std::size_t i = 1; i < a.size(); ++i) {
        EXPECT_LT(a[i - 1].src_app, a[i].src_app);
    }
}

TEST(FlowStoreTest, FiltersBySrcApp) {
    flow_store store;
    apply(store, seed_batch());
    flow_filter filter;
    filter.src_app = "foo";

    auto const got = rows(store.snapshot(1, filter));

    EXPECT_EQ(got, (std::vector<flow_record>{{"foo", "bar", "vpc-0", 1, {300, 900}}}));
}

TEST(FlowStoreTest, FiltersByDestAppAndVpcTogether) {
    flow_store store;
    apply(store, seed_batch());
    flow_filter filter;
    filter.dest_app = "qux";
    filter.vpc_id = "vpc-1";

    auto const got = rows(store.snapshot(2, filter));

    EXPECT_EQ(got, (std::vector<flow_record>{{"baz", "qux", "vpc-1", 2, {100, 500}}}));
}

TEST(FlowStoreTest, FilterOnUnknownNameMatchesNothing) {
    flow_store store;
    apply(store, seed_batch());
    flow_filter filter;
    filter.src_app = "nobody";

    auto const got = store.snapshot(1, filter);

    EXPECT_EQ(got.size(), 0U);
}

TEST(FlowStoreTest, FilterOnNameKnownOnlyInOtherFieldMatchesNothing) {
    flow_store store;
    apply(store, seed_batch());
    flow_filter filter;
    filter.src_app = "bar";  // a dest_app, never a src_app

    auto const got = store.snapshot(1, filter);

    EXPECT_EQ(got.size(), 0U);
}

TEST(FlowStoreTest, EmptyBatchAppliesNothing) {
    flow_store store;

    apply(store, flow_batch{});

    EXPECT_EQ(store.key_count(), 0U);
    EXPECT_EQ(store.hour_count(), 0U);
}

TEST(FlowStoreTest, AcceptsSumExactlyAtMaxCounter) {
    flow_store store;
    apply(store, batch_of({{"a", "b", "c", 1, {max_counter - 1, 0}}}));

    apply(store, batch_of({{"a", "b", "c", 1, {1, max_counter}}}));

    EXPECT_EQ(rows(store.snapshot(1)),
              (std::vector<flow_record>{{"a", "b", "c", 1, {max_counter, max_counter}}}));
}

TEST(FlowStoreTest, OverflowNamesRecordAndBytesTx) {
    flow_store store;
    apply(store, batch_of({{"a", "b", "c", 1, {max_counter, 0}}}));

    auto const r = rejection_of(store, batch_of({{"x", "y", "z", 1, {1, 1}},
                                                 {"q", "r", "s", 1, {1, 1}},
                                                 {"a", "b", "c", 1, {1, 0}}}));

    EXPECT_EQ(r.why, store_rejection::reason::counter_overflow);
    EXPECT_EQ(r.record, 2U);
    EXPECT_EQ(r.field, "bytes_tx");
}

TEST(FlowStoreTest, OverflowNamesBytesRx) {
    flow_store store;
    apply(store, batch_of({{"a", "b", "c", 1, {0, max_counter}}}));

    auto const r = rejection_of(store, batch_of({{"a", "b", "c", 1, {0, 1}}}));

    EXPECT_EQ(r.why, store_rejection::reason::counter_overflow);
    EXPECT_EQ(r.record, 0U);
    EXPECT_EQ(r.field, "bytes_rx");
}

TEST(FlowStoreTest, OverflowNamesFirstRecordOfTheAggregatedKey) {
    flow_store store;
    apply(store, batch_of({{"a", "b", "c", 1, {max_counter - 1, 0}}}));
    flow_batch batch;
    batch.add("x", "y", "z", 1, {1, 1}, 0);
    batch.add("a", "b", "c", 1, {1, 0}, 1);
    batch.add("a", "b", "c", 1, {1, 0}, 2);  // the sum of records 1 and 2 passes the limit

    auto const r = rejection_of(store, batch);

    EXPECT_EQ(r.why, store_rejection::reason::counter_overflow);
    EXPECT_EQ(r.record, 1U);
    EXPECT_EQ(r.field, "bytes_tx");
}

TEST(FlowStoreTest, ANameInSeveralPositionsKeepsEachKeyApart) {
    flow_store store;
    apply(store, batch_of({{"x", "y", "x", 1, {1, 1}}, {"y", "x", "x", 1, {2, 2}}}));
    apply(store, batch_of({{"x", "y", "x", 1, {10, 10}}}));

    EXPECT_EQ(rows(store.snapshot(1)),
              (std::vector<flow_record>{{"x", "y", "x", 1, {11, 11}}, {"y", "x", "x", 1, {2, 2}}}));
}

TEST(FlowStoreTest, AKeyRepeatedAcrossBatchesReachesTheLimitThenOverflows) {
    flow_store store;
    apply(store, batch_of({{"a", "b", "c", 1, {max_counter - 2, 0}}}));
    apply(store, batch_of({{"q", "r", "s", 1, {1, 1}}, {"a", "b", "c", 1, {2, 0}}}));

    flow_batch batch;
    batch.add("q", "r", "s", 1, {1, 1}, 0);
    batch.add("q", "r", "s", 1, {1, 1}, 1);
    batch.add("a", "b", "c", 1, {0, 1}, 2);
    batch.add("a", "b", "c", 1, {1, 0}, 3);
    auto const r = rejection_of(store, batch);

    EXPECT_EQ(r.why, store_rejection::reason::counter_overflow);
    EXPECT_EQ(r.record, 2U);
    EXPECT_EQ(r.field, "bytes_tx");
    EXPECT_EQ(rows(store.snapshot(1)),
              (std::vector<flow_record>{{"a", "b", "c", 1, {max_counter, 0}},
                                        {"q", "r", "s", 1, {1, 1}}}));
}

TEST(FlowStoreTest, RejectedPrepareAppliesNothing) {
    flow_store store;
    apply(store, batch_of({{"a", "b", "c", 1, {max_counter, 0}}}));

    auto const r = rejection_of(
        store, batch_of({{"new", "key", "here", 1, {5, 5}}, {"a", "b", "c", 1, {1, 0}}}));

    EXPECT_EQ(r.why, store_rejection::reason::counter_overflow);
    EXPECT_EQ(rows(store.snapshot(1)),
              (std::vector<flow_record>{{"a", "b", "c", 1, {max_counter, 0}}}));
    EXPECT_EQ(store.key_count(), 1U);
}

TEST(FlowStoreTest, PreparedBatchIsInvisibleUntilCommitted) {
    flow_store store;
    auto prepared = store.prepare(batch_of({{"a", "b", "c", 1, {1, 1}}}));
    ASSERT_TRUE(std::holds_alternative<prepared_batch>(prepared));

    auto const before = store.snapshot(1);
    store.commit(std::get<prepared_batch>(std::move(prepared)));
    auto const after = store.snapshot(1);

    EXPECT_EQ(before.size(), 0U);
    EXPECT_EQ(after.size(), 1U);
    EXPECT_EQ(store.key_count(), 1U);
}

TEST(FlowStoreTest, PreparedBatchKnowsItsRecordCount) {
    flow_store store;

    auto prepared = store.prepare(seed_batch());

    ASSERT_TRUE(std::holds_alternative<prepared_batch>(prepared));
    EXPECT_EQ(std::get<prepared_batch>(prepared).record_count(), 5U);
}

TEST(FlowStoreTest, StoreFullWhenBatchWouldPassMaxKeys) {
    flow_store store{store_options{4, 3}};
    apply(store, batch_of({{"a", "b", "c", 1, {1, 1}}, {"a", "b", "c", 2, {1, 1}}}));

    auto const r = rejection_of(store, batch_of({{"a", "b", "c", 1, {1, 1}},
                                                 {"x", "y", "z", 1, {1, 1}},
                                                 {"x", "y", "z", 2, {1, 1}}}));

    EXPECT_EQ(r.why, store_rejection::reason::store_full);
    EXPECT_EQ(store.key_count(), 2U);
    EXPECT_EQ(rows(store.snapshot(1)), (std::vector<flow_record>{{"a", "b", "c", 1, {1, 1}}}));
    EXPECT_EQ(store.snapshot(2).size(), 1U);
}

TEST(FlowStoreTest, BatchFillingStoreExactlyToMaxKeysIsAccepted) {
    flow_store store{store_options{4, 3}};
    apply(store, batch_of({{"a", "b", "c", 1, {1, 1}}}));

    apply(store, batch_of({{"a", "b", "c", 1, {1, 1}},
                           {"d", "e", "f", 1, {1, 1}},
                           {"g", "h", "i", 1, {1, 1}}}));

    EXPECT_EQ(store.key_count(), 3U);
}

TEST(FlowStoreTest, ExistingKeysStillAcceptedWhenStoreIsFull) {
    flow_store store{store_options{4, 1}};
    apply(store, batch_of({{"a", "b", "c", 1, {1, 1}}}));

    apply(store, batch_of({{"a", "b", "c", 1, {1, 1}}}));

    EXPECT_EQ(rows(store.snapshot(1)), (std::vector<flow_record>{{"a", "b", "c", 1, {2, 2}}}));
}

// max_store_bytes (issue 13): long names make a key cost far more than max_keys assumes.
// Filling a store bounded at 6 MB with keys of 255-byte names stops at the bound with
// store_bytes_full, memory_bytes() never passes it, and existing keys are still added to.
TEST(FlowStoreTest, StoreBytesFullStopsLongNamesAtMaxStoreBytes) {
    constexpr std::uint64_t bound = 6'000'000;
    flow_store store{store_options{4, 50'000'000, bound}};
    std::string const pad(250, 'n');
    std::optional<store_rejection> refused;
    std::size_t refused_id_size = 0;
    std::uint64_t accepted = 0;
    for (int i = 0; i < 100'000 && !refused; ++i) {
        std::string const id = std::to_string(i);
        auto prepared = store.prepare(batch_of({{pad + "s" + id, pad + "d" + id, "v", 1, {1, 1}}}));
        if (auto* r = std::get_if<store_rejection>(&prepared)) {
            refused = *r;
            refused_id_size = id.size();
            break;
        }
        store.commit(std::get<prepared_batch>(std::move(prepared)));
        ++accepted;
        ASSERT_LE(store.memory_bytes(), bound) << "after " << accepted << " keys";
    }

    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(refused->why, store_rejection::reason::store_bytes_full);
    EXPECT_GT(accepted, 1000U);  // the bound, not something else, stopped it
    EXPECT_GT(store.memory_bytes(), bound * 8 / 10);
    // Refused batches intern nothing: new names cannot creep past the bound either. Each
    // late batch grows the store as much as the refused one would have (new names of the
    // same lengths, one new key), so each is refused too.
    ASSERT_GE(refused_id_size, 2U);
    for (int i = 0; i < 50; ++i) {
        std::string id(refused_id_size, 'x');
        id[0] = static_cast<char>('a' + i % 26);
        id[1] = static_cast<char>('a' + i / 26);
        EXPECT_EQ(
            rejection_of(store, batch_of({{pad + "s" + id, pad + "d" + id, "v", 1, {1, 1}}})).why,
            store_rejection::reason::store_bytes_full);
    }
    EXPECT_LE(store.memory_bytes(), bound);
    std::string const first = pad + "s0";
    apply(store, batch_of({{first, pad + "d0", "v", 1, {1, 1}}}));
    EXPECT_EQ(store.snapshot(1, flow_filter{first, {}, {}})[0].counters.bytes_tx, 2U);
}

TEST(FlowStoreTest, MemoryBytesCountsInternedNames) {
    flow_store store;
    std::size_t const before = store.memory_bytes();

    apply(store,
          batch_of(
              {{std::string(255, 'a'), std::string(255, 'b'), std::string(255, 'c'), 1, {1, 1}}}));

    EXPECT_GE(store.memory_bytes() - before, 3U * 256U);
}

TEST(FlowStoreTest, PreparedBatchReservesItsNewKeys) {
    flow_store store{store_options{4, 2}};
    auto held = store.prepare(batch_of({{"a", "b", "c", 1, {1, 1}}, {"d", "e", "f", 1, {1, 1}}}));
    ASSERT_TRUE(std::holds_alternative<prepared_batch>(held));

    auto const r = rejection_of(store, batch_of({{"x", "y", "z", 1, {1, 1}}}));

    EXPECT_EQ(r.why, store_rejection::reason::store_full);
    EXPECT_EQ(store.key_count(), 2U);
}

TEST(FlowStoreTest, DroppingPreparedBatchReleasesItsReservation) {
    flow_store store{store_options{4, 2}};
    {
        auto dropped =
            store.prepare(batch_of({{"a", "b", "c", 1, {1, 1}}, {"d", "e", "f", 1, {1, 1}}}));
        ASSERT_TRUE(std::holds_alternative<prepared_batch>(dropped));
    }

    auto prepared =
        store.prepare(batch_of({{"x", "y", "z", 1, {1, 1}}, {"u", "v", "w", 1, {1, 1}}}));

    ASSERT_TRUE(std::holds_alternative<prepared_batch>(prepared));
    store.commit(std::get<prepared_batch>(std::move(prepared)));
    EXPECT_EQ(store.key_count(), 2U);
    EXPECT_EQ(store.snapshot(1).size(), 2U);
}

TEST(FlowStoreTest, MovedFromPreparedBatchReleasesNothingTwice) {
    // max_keys 1: prepare() counts the new key (and key_count() shows the reservation).
    flow_store store{store_options{4, 1}};
    {
        auto prepared = store.prepare(batch_of({{"a", "b", "c", 1, {1, 1}}}));
        ASSERT_TRUE(std::holds_alternative<prepared_batch>(prepared));
        prepared_batch moved{std::get<prepared_batch>(std::move(prepared))};
        EXPECT_EQ(store.key_count(), 1U);
    }

    EXPECT_EQ(store.key_count(), 0U);
}

// Far from max_keys prepare() reserves a key per item without looking: flowd_store_keys
// must not show those reservations (a batch of keys already present would double it).
TEST(FlowStoreTest, KeyCountLeavesOutReservationsMadeWithoutCounting) {
    flow_store store{store_options{4, 1000}};
    store.commit(std::get<prepared_batch>(
        store.prepare(batch_of({{"a", "b", "c", 1, {1, 1}}, {"a", "b", "d", 1, {1, 1}}}))));
    ASSERT_EQ(store.key_count(), 2U);
    {
        auto again =
            store.prepare(batch_of({{"a", "b", "c", 1, {1, 1}}, {"a", "b", "d", 1, {1, 1}}}));
        ASSERT_TRUE(std::holds_alternative<prepared_batch>(again));
        EXPECT_EQ(store.key_count(), 2U) << "while prepared";
        auto fresh = store.prepare(batch_of({{"x", "y", "z", 1, {1, 1}}}));
        ASSERT_TRUE(std::holds_alternative<prepared_batch>(fresh));
        EXPECT_EQ(store.key_count(), 2U) << "while prepared";
        store.commit(std::get<prepared_batch>(std::move(again)));
        EXPECT_EQ(store.key_count(), 2U) << "the batch added no key";
        store.commit(std::get<prepared_batch>(std::move(fresh)));
    }
    EXPECT_EQ(store.key_count(), 3U);
    // A prepared batch dropped without a commit gives its reservation back.
    {
        auto dropped = store.prepare(batch_of({{"p", "q", "r", 1, {1, 1}}}));
        ASSERT_TRUE(std::holds_alternative<prepared_batch>(dropped));
    }
    EXPECT_EQ(store.key_count(), 3U);
    // Far from the limit still: a batch of 400 new keys fits, counted or not.
    flow_batch many;
    for (std::size_t i = 0; i < 400; ++i) {
        ASSERT_EQ(many.add("m", "n", std::to_string(i), 2, {1, 1}, i), flow_batch::add_status::ok);
    }
    store.commit(std::get<prepared_batch>(store.prepare(many)));
    EXPECT_EQ(store.key_count(), 403U);
}

// A snapshot is sorted by the names' bytes (unsigned), src then dest then vpc: through
// integer ranks when the interner's ids are dense, by comparing names when they are
// sparse (many names interned, few in the hour). Both give the same order.
TEST(FlowStoreTest, SnapshotSortsByNameBytesWithDenseAndSparseIds) {
    std::vector<std::string> const names = {"b", "a", "ab", "B", "\xc3\xa9", "a b", "~", "aa", "0"};
    flow_store store{store_options{8, 1'000'000}};
    std::vector<flow_record> expected;
    flow_batch batch;
    std::size_t index = 0;
    auto add = [&](flow_batch& b, std::uint32_t hour) {
        for (std::size_t i = 0; i < names.size(); ++i) {
            for (std::size_t j = 0; j < names.size(); j += 2) {
                std::string const& vpc = names[(i + j) % names.size()];
                ASSERT_EQ(b.add(names[i], names[j], vpc, hour, {i + 1, j + 1}, index++),
                          flow_batch::add_status::ok);
                if (hour == 1) {
                    expected.push_back({names[i], names[j], vpc, 1, {i + 1, j + 1}});
                }
            }
        }
    };
    auto by_names = [](flow_record const& a, flow_record const& b) {
        return std::tie(a.src_app, a.dest_app, a.vpc_id) <
               std::tie(b.src_app, b.dest_app, b.vpc_id);
    };
    add(batch, 1);
    apply(store, batch);
    std::sort(expected.begin(), expected.end(), by_names);
    EXPECT_EQ(rows(store.snapshot(1)), expected) << "dense ids";

    // 20,000 names interned in another hour make the ids of hour 1's new keys sparse.
    flow_batch other;
    for (std::size_t i = 0; i < 20'000; ++i) {
        ASSERT_EQ(other.add("n" + std::to_string(i), "d", "v", 2, {1, 1}, i),
                  flow_batch::add_status::ok);
    }
    apply(store, other);
    flow_batch late = batch_of({{"zz-late", "a", "a", 1, {7, 7}}, {"\x01", "a", "a", 1, {8, 8}}});
    apply(store, late);
    expected.push_back({"zz-late", "a", "a", 1, {7, 7}});
    expected.push_back({"\x01", "a", "a", 1, {8, 8}});
    std::sort(expected.begin(), expected.end(), by_names);
    EXPECT_EQ(rows(store.snapshot(1)), expected) << "sparse ids";
}

// Hours past a few thousand keys are sorted by a radix sort of the packed ranks, smaller
// ones by std::sort: both give the names' byte order, whatever the insertion order.
TEST(FlowStoreTest, LargeHourSortsByNameBytes) {
    for (std::size_t const keys : {std::size_t{3000}, std::size_t{9000}}) {
        flow_store store{store_options{16, 1'000'000}};
        std::vector<flow_record> expected;
        flow_batch batch;
        std::uint64_t x = 12345;
        auto next = [&x] {  // xorshift: a fixed scramble of names and order
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            return x;
        };
        std::set<std::tuple<std::string, std::string, std::string>> seen;
        while (expected.size() < keys) {
            std::string const src =
                "s" + std::to_string(next() % 211) + std::string(next() % 3, 'z');
            std::string const dest = std::to_string(next() % 97) + "\xc3\xa9";
            std::string const vpc = "vpc-" + std::to_string(next() % 53);
            if (!seen.emplace(src, dest, vpc).second) {
                continue;
            }
            std::uint64_t const n = expected.size();
            ASSERT_EQ(batch.add(src, dest, vpc, 3, {n, n + 1}, n), flow_batch::add_status::ok);
            expected.push_back({src, dest, vpc, 3, {n, n + 1}});
        }
        apply(store, batch);
        std::sort(expected.begin(), expected.end(), [](flow_record const& a, flow_record const& b) {
            return std::tie(a.src_app, a.dest_app, a.vpc_id) <
                   std::tie(b.src_app, b.dest_app, b.vpc_id);
        });

        EXPECT_TRUE(rows(store.snapshot(3)) == expected) << keys << " keys";
    }
}

TEST(FlowStoreTest, TwoPreparedBatchesWithSameNewKeyCountItOnceAfterCommit) {
    flow_store store{store_options{4, 10}};
    auto first = store.prepare(batch_of({{"a", "b", "c", 1, {1, 1}}}));
    auto second = store.prepare(batch_of({{"a", "b", "c", 1, {2, 2}}}));
    ASSERT_TRUE(std::holds_alternative<prepared_batch>(first));
    ASSERT_TRUE(std::holds_alternative<prepared_batch>(second));

    store.commit(std::get<prepared_batch>(std::move(first)));
    store.commit(std::get<prepared_batch>(std::move(second)));

    EXPECT_EQ(store.key_count(), 1U);
    EXPECT_EQ(rows(store.snapshot(1)), (std::vector<flow_record>{{"a", "b", "c", 1, {3, 3}}}));
}

TEST(FlowStoreTest, CommitSaturatesWhenAConcurrentBatchRacedPastTheLimit) {
    flow_store store;
    apply(store, batch_of({{"a", "b", "c", 1, {max_counter - 1, 0}}}));
    auto first = store.prepare(batch_of({{"a", "b", "c", 1, {1, 0}}}));
    auto second = store.prepare(batch_of({{"a", "b", "c", 1, {1, 0}}}));
    ASSERT_TRUE(std::holds_alternative<prepared_batch>(first));
    ASSERT_TRUE(std::holds_alternative<prepared_batch>(second));

    store.commit(std::get<prepared_batch>(std::move(first)));
    store.commit(std::get<prepared_batch>(std::move(second)));

    EXPECT_EQ(rows(store.snapshot(1)),
              (std::vector<flow_record>{{"a", "b", "c", 1, {max_counter, 0}}}));
    EXPECT_EQ(store.saturated_adds(), 1U);
}

TEST(FlowStoreTest, SingleShardStoreWorks) {
    flow_store store{store_options{1, 100}};

    apply(store, seed_batch());

    EXPECT_EQ(store.snapshot(1).size(), 2U);
    EXPECT_EQ(store.snapshot(2).size(), 2U);
}

TEST(FlowStoreTest, SpreadsManyKeysOfOneHourAndReturnsThemAll) {
    flow_store store{store_options{8, 1'000'000}};
    flow_batch batch;
    for (std::size_t i = 0; i < 5000; ++i) {
        batch.add("src-" + std::to_string(i % 50), "dest-" + std::to_string(i / 50), "vpc", 3,
                  {i, i}, i);
    }

    apply(store, batch);

    auto const got = rows(store.snapshot(3));
    ASSERT_EQ(got.size(), 5000U);
    std::uint64_t sum = 0;
    for (flow_record const& r : got) {
        sum += r.counters.bytes_tx;
    }
    EXPECT_EQ(sum, 4999U * 5000U / 2U);
    EXPECT_EQ(store.key_count(), 5000U);
}

TEST(FlowStoreTest, MemoryBytesGrowsWithKeys) {
    flow_store store;
    auto const empty = store.memory_bytes();

    apply(store, seed_batch());

    EXPECT_GT(store.memory_bytes(), empty);
}

TEST(FlowStoreTest, RetentionDropsWholeHoursAndTheirKeys) {
    flow_store store;
    apply(store, seed_batch());
    apply(store, batch_of({{"a", "b", "c", 7, {1, 1}}}));
    ASSERT_EQ(store.key_count(), 5U);
    EXPECT_EQ(store.drop_hours_before(2), 1U);  // hour 1 and its two keys
    EXPECT_EQ(store.key_count(), 3U);
    EXPECT_EQ(store.snapshot(1).size(), 0U);
    EXPECT_EQ(store.snapshot(2).size(), 2U);
    EXPECT_EQ(store.drop_hours_before(2), 0U);
    EXPECT_EQ(store.drop_hours_before(100), 2U);
    EXPECT_EQ(store.key_count(), 0U);
}

TEST(FlowStoreTest, ReplayAppliesWithoutLimitsAndExportSeesEveryKey) {
    flow_store store{store_options{4, 1}};
    store.replay(seed_batch());  // four keys past max_keys 1: the data existed
    EXPECT_EQ(store.key_count(), 4U);
    auto const all = store.export_all();
    ASSERT_EQ(all.size(), 4U);
    std::uint64_t tx = 0;
    for (auto const& k : all) {
        tx += k.counters.bytes_tx;
        EXPECT_FALSE(store.name(k.key.src).empty());
    }
    EXPECT_EQ(tx, 600U);
}

// Far from max_keys prepare() skips its probes; the tests below pin down that the
// shortcut changes no answer.

TEST(FlowStoreTest, ManyAddsNearTheLimitAreStillRefusedWithTheRecordAtFault) {
    flow_store store;
    std::uint64_t const step = std::uint64_t{1} << 61;
    for (int i = 0; i < 3; ++i) {
        apply(store, batch_of({{"q", "r", "s", 1, {1, 1}}, {"a", "b", "c", 1, {step, 1}}}));
    }

    // 4 * 2^61 = 2^63: one past the limit.
    auto const r = rejection_of(store, batch_of({{"new", "key", "here", 1, {1, 1}},
                                                 {"q", "r", "s", 1, {1, 1}},
                                                 {"a", "b", "c", 1, {step, 1}}}));

    EXPECT_EQ(r.why, store_rejection::reason::counter_overflow);
    EXPECT_EQ(r.record, 2U);
    EXPECT_EQ(r.field, "bytes_tx");
    EXPECT_EQ(store.key_count(), 2U);
}

TEST(FlowStoreTest, AShardWithASumNearTheLimitIsStillProbed) {
    flow_store store{store_options{1, 1000}};
    apply(store, batch_of({{"a", "b", "c", 1, {max_counter - 1, 0}}}));

    apply(store, batch_of({{"q", "r", "s", 1, {5, 5}}, {"a", "b", "c", 1, {1, 0}}}));
    auto const r = rejection_of(store, batch_of({{"q", "r", "s", 1, {0, max_counter - 5}},
                                                 {"a", "b", "c", 1, {0, 1}},
                                                 {"a", "b", "c", 2, {1, 0}},
                                                 {"a", "b", "c", 1, {1, 0}}}));

    EXPECT_EQ(r.why, store_rejection::reason::counter_overflow);
    EXPECT_EQ(r.record, 1U);
    EXPECT_EQ(r.field, "bytes_tx");
}

TEST(FlowStoreTest, OverflowAgainstReplayedSumsIsRefused) {
    flow_store store;
    store.replay(batch_of({{"a", "b", "c", 1, {0, max_counter}}}));

    auto const r = rejection_of(store, batch_of({{"a", "b", "c", 1, {0, 1}}}));

    EXPECT_EQ(r.why, store_rejection::reason::counter_overflow);
    EXPECT_EQ(r.field, "bytes_rx");
}

TEST(FlowStoreTest, MaxKeysStaysExactAcrossHalfFull) {
    flow_store store{store_options{4, 10}};
    flow_batch five;
    flow_batch six_more;
    for (std::size_t k = 0; k < 11; ++k) {
        auto& b = k < 5 ? five : six_more;
        b.add("app-" + std::to_string(k), "d", "v", 1, {1, 1}, b.entries().size());
    }
    apply(store, five);  // 0 + 5 <= 10 / 2
    EXPECT_EQ(store.key_count(), 5U);
    apply(store, five);  // nothing new; counted exactly past half full
    EXPECT_EQ(store.key_count(), 5U);

    // Five old keys and six new: one too many.
    flow_batch eleven = five;
    for (auto const& e : six_more.entries()) {
        eleven.add(e.record.src_app, "d", "v", 1, {1, 1}, eleven.entries().size());
    }
    EXPECT_EQ(rejection_of(store, eleven).why, store_rejection::reason::store_full);
    EXPECT_EQ(store.key_count(), 5U);

    // Five old keys and five new: exactly max_keys.
    flow_batch ten = five;
    for (std::size_t k = 5; k < 10; ++k) {
        ten.add("app-" + std::to_string(k), "d", "v", 1, {1, 1}, ten.entries().size());
    }
    apply(store, ten);
    EXPECT_EQ(store.key_count(), 10U);
    EXPECT_EQ(store.snapshot(1).size(), 10U);
    apply(store, ten);
    EXPECT_EQ(rejection_of(store, batch_of({{"x", "y", "z", 1, {1, 1}}})).why,
              store_rejection::reason::store_full);
    EXPECT_EQ(store.key_count(), 10U);
}

TEST(FlowStoreTest, CommitGivesBackWhatAnUncountedReservationDidNotInsert) {
    flow_store store{store_options{4, 100}};
    flow_batch const three = batch_of(
        {{"a", "b", "c", 1, {1, 1}}, {"d", "e", "f", 1, {1, 1}}, {"g", "h", "i", 1, {1, 1}}});
    apply(store, three);

    auto held = store.prepare(three);
    ASSERT_TRUE(std::holds_alternative<prepared_batch>(held));
    EXPECT_EQ(store.key_count(), 3U) << "an uncounted reservation is not shown";
    store.commit(std::get<prepared_batch>(std::move(held)));

    EXPECT_EQ(store.key_count(), 3U);
    // ...and was given back: 97 new keys fit exactly under max_keys 100 (counted: past half).
    flow_batch rest;
    for (std::size_t k = 0; k < 97; ++k) {
        ASSERT_EQ(rest.add("r", "s", std::to_string(k), 1, {1, 1}, k), flow_batch::add_status::ok);
    }
    auto fits = store.prepare(rest);
    ASSERT_TRUE(std::holds_alternative<prepared_batch>(fits));
    store.commit(std::get<prepared_batch>(std::move(fits)));
    EXPECT_EQ(store.key_count(), 100U);
}

TEST(FlowStoreTest, BatchesInFlightNeverRefuseABatchThatKeepsTheStoreHalfFull) {
    flow_store store{store_options{4, 100}};
    flow_batch old_keys;
    for (std::size_t k = 0; k < 10; ++k) {
        old_keys.add("old-" + std::to_string(k), "d", "v", 1, {1, 1}, k);
    }
    apply(store, old_keys);
    // Each reserves ten keys it will not insert, until the reservations reach half full.
    std::vector<prepared_batch> in_flight;
    for (int i = 0; i < 6; ++i) {
        auto p = store.prepare(old_keys);
        ASSERT_TRUE(std::holds_alternative<prepared_batch>(p));
        in_flight.push_back(std::get<prepared_batch>(std::move(p)));
        EXPECT_LE(store.key_count(), 50U);
    }

    flow_batch new_keys;
    for (std::size_t k = 0; k < 40; ++k) {
        new_keys.add("new-" + std::to_string(k), "d", "v", 1, {1, 1}, k);
    }
    apply(store, new_keys);
    EXPECT_LE(store.key_count(), 100U);
    for (prepared_batch& p : in_flight) {
        store.commit(std::move(p));
    }

    EXPECT_EQ(store.key_count(), 50U);
    EXPECT_EQ(store.snapshot(1).size(), 50U);
}

TEST(FlowStoreTest, HourStatsAreKeptAsBatchesApplyAndDropWithRetention) {
    flow_store store;
    apply(store, batch_of({{"foo", "bar", "vpc-0", 1, {100, 300}},
                           {"foo", "bar", "vpc-0", 1, {200, 600}},
                           {"baz", "qux", "vpc-0", 1, {100, 500}},
                           {"baz", "qux", "vpc-0", 2, {100, 500}}}));

    std::vector<hour_stat> const stats = store.hour_stats(0, 10);

    ASSERT_EQ(stats.size(), 2U);
    EXPECT_EQ(stats[0], (hour_stat{1, 2, 400, 1400}));
    EXPECT_EQ(stats[1], (hour_stat{2, 1, 100, 500}));
    EXPECT_EQ(store.hour_stats(2, 3), (std::vector<hour_stat>{stats[1]}));
    EXPECT_TRUE(store.hour_stats(3, 2147483647U).empty());
    store.drop_hours_before(2);
    EXPECT_EQ(store.hour_stats(0, 10), (std::vector<hour_stat>{stats[1]}));
}

TEST(FlowStoreTest, HourStatsCountWhatASaturatedAddKept) {
    flow_store store;
    store.replay(batch_of({{"a", "b", "c", 1, {max_counter, 0}}}));
    store.replay(batch_of({{"a", "b", "c", 1, {5, 1}}, {"x", "b", "c", 1, {max_counter, 0}}}));

    std::vector<hour_stat> const stats = store.hour_stats(1, 2);

    ASSERT_EQ(stats.size(), 1U);
    EXPECT_EQ(stats[0].bytes_tx, uint128{max_counter} * 2);
    EXPECT_EQ(stats[0].bytes_rx, 1U);
}

TEST(FlowStoreTest, CopyRangeFiltersAndRefusesOverMaxRows) {
    flow_store store;
    apply(store, batch_of({{"a", "b", "c", 1, {1, 1}},
                           {"b", "b", "c", 2, {1, 1}},
                           {"a", "b", "c", 3, {1, 1}}}));
    std::uint32_t const a = store.names().find("a");
    std::vector<flow_store::exported_key> rows;

    auto stats = store.copy_range(
        1, 3, 10, [a](app_key const& k) { return k.src == a; }, rows);

    EXPECT_EQ(stats.size(), 2U);
    ASSERT_EQ(rows.size(), 1U);
    EXPECT_EQ(rows[0].hour, 1U);
    rows.clear();
    stats = store.copy_range(
        0, 4, 2, [](app_key const&) { return true; }, rows);
    EXPECT_EQ(stats.size(), 3U);
    EXPECT_TRUE(rows.empty());
}

}  // namespace
}  // namespace flowd
