#include "flowd/store/idempotency_table.hpp"

#include <gtest/gtest.h>

namespace flowd {
namespace {

using kind = idempotency_table::begin_result::kind;

TEST(IdempotencyTableTest, RetryDuplicateReuseAndInFlight) {
    idempotency_table t{std::chrono::minutes(10), 100};
    idempotency_claim const a{"", "k", 1};
    EXPECT_EQ(t.begin(a, 1000).what, kind::fresh);
    EXPECT_EQ(t.begin(a, 1001).what, kind::in_flight);
    t.complete(a, 5, 1002);
    auto const dup = t.begin(a, 2000);
    EXPECT_EQ(dup.what, kind::duplicate);
    EXPECT_EQ(dup.accepted, 5U);
    EXPECT_EQ(t.begin(idempotency_claim{"", "k", 2}, 2000).what, kind::reused);
    // Another scope (token name) is another key.
    EXPECT_EQ(t.begin(idempotency_claim{"other", "k", 2}, 2000).what, kind::fresh);
}

TEST(IdempotencyTableTest, FingerprintOfACompletedKeyInsideTheWindow) {
    idempotency_table t{std::chrono::seconds(60), 100};
    idempotency_claim const a{"", "k", 7};
    EXPECT_FALSE(t.fingerprint_of(a, 0).has_value()) << "unknown";
    ASSERT_EQ(t.begin(a, 0).what, kind::fresh);
    EXPECT_FALSE(t.fingerprint_of(a, 0).has_value()) << "in flight is not completed";
    // Restored from another node's record with another body: that one is what counts.
    t.restore(idempotency_table::entry{idempotency_claim{"", "k", 9}, 1, 1000}, 1000);
    EXPECT_EQ(t.fingerprint_of(a, 1000), std::optional<std::uint64_t>{9});
    EXPECT_FALSE(t.fingerprint_of(idempotency_claim{"s", "k", 9}, 1000).has_value())
        << "another scope";
    EXPECT_FALSE(t.fingerprint_of(a, 61'000).has_value()) << "expired";
}

TEST(IdempotencyTableTest, RejectedBatchesAreForgotten) {
    idempotency_table t{std::chrono::minutes(10), 100};
    idempotency_claim const a{"", "k", 1};
    ASSERT_EQ(t.begin(a, 0).what, kind::fresh);
    t.abort(a);
    EXPECT_EQ(t.begin(idempotency_claim{"", "k", 2}, 1).what, kind::fresh);
}

TEST(IdempotencyTableTest, KeysExpireAfterTheWindow) {
    idempotency_table t{std::chrono::seconds(60), 100};
    idempotency_claim const a{"", "k", 1};
    ASSERT_EQ(t.begin(a, 0).what, kind::fresh);
    t.complete(a, 1, 1000);
    EXPECT_EQ(t.begin(a, 60'999).what, kind::duplicate);
    EXPECT_EQ(t.begin(a, 61'000).what, kind::fresh) << "outside the window: a new batch";
}

TEST(IdempotencyTableTest, RestoreAndExportKeepOnlyKeysInsideTheWindow) {
    idempotency_table t{std::chrono::seconds(60), 100};
    t.restore({{"s", "old", 1}, 3, 0}, 70'000);
    t.restore({{"s", "new", 2}, 4, 50'000}, 70'000);
    auto const kept = t.completed(70'000);
    ASSERT_EQ(kept.size(), 1U);
    EXPECT_EQ(kept[0].claim.scope, "s");
    EXPECT_EQ(kept[0].claim.key, "new");
    EXPECT_EQ(kept[0].accepted, 4U);
}

TEST(IdempotencyTableTest, BoundedByForgettingTheOldestCompletedKey) {
    idempotency_table t{std::chrono::hours(1), 3};
    for (int i = 0; i < 10; ++i) {
        idempotency_claim const c{"", "k" + std::to_string(i), 1};
        ASSERT_EQ(t.begin(c, static_cast<std::uint64_t>(i)).what, kind::fresh);
        t.complete(c, 1, static_cast<std::uint64_t>(i));
        EXPECT_LE(t.size(), 3U);
    }
    EXPECT_EQ(t.begin(idempotency_claim{"", "k9", 1}, 20).what, kind::duplicate);
    EXPECT_EQ(t.begin(idempotency_claim{"", "k0", 1}, 20).what, kind::fresh);
}

}  // namespace
}  // namespace flowd
