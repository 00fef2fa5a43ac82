#include "flowd/auth/rate_limiter.hpp"

#include <string>

#include <gtest/gtest.h>

namespace flowd {
namespace {

using namespace std::chrono_literals;

// A clock the test moves by hand.
struct manual_clock {
    rate_limiter::clock::time_point now{std::chrono::hours(1)};
    rate_limiter::now_fn fn() {
        return [this] { return now; };
    }
};

TEST(RateLimiterTest, OffAdmitsEverything) {
    manual_clock clock;
    rate_limiter limiter{rate_limit_options{}, clock.fn()};

    EXPECT_FALSE(limiter.enabled());
    for (int i = 0; i < 1000; ++i) {
        EXPECT_TRUE(limiter.admit_request("a").allowed);
        EXPECT_TRUE(limiter.admit_records("a", 1'000'000).allowed);
    }
    EXPECT_EQ(limiter.client_count(), 0U);
}

TEST(RateLimiterTest, BurstThenRefusedWithRetryAfter) {
    manual_clock clock;
    rate_limiter limiter{rate_limit_options{{2, 5}, {}, 1000}, clock.fn()};

    for (int i = 0; i < 5; ++i) {
        EXPECT_TRUE(limiter.admit_request("a").allowed) << i;
    }
    rate_limiter::decision const d = limiter.admit_request("a");

    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.retry_after, 1s);
}

TEST(RateLimiterTest, RefillsAtTheRate) {
    manual_clock clock;
    rate_limiter limiter{rate_limit_options{{2, 4}, {}, 1000}, clock.fn()};
    for (int i = 0; i < 4; ++i) {
        ASSERT_TRUE(limiter.admit_request("a").allowed);
    }
    ASSERT_FALSE(limiter.admit_request("a").allowed);

    clock.now += 500ms;  // one token at 2/s

    EXPECT_TRUE(limiter.admit_request("a").allowed);
    EXPECT_FALSE(limiter.admit_request("a").allowed);

    clock.now += 1h;  // never past the burst

    for (int i = 0; i < 4; ++i) {
        EXPECT_TRUE(limiter.admit_request("a").allowed) << i;
    }
    EXPECT_FALSE(limiter.admit_request("a").allowed);
}

TEST(RateLimiterTest, RetryAfterRoundsUpToWholeSeconds) {
    manual_clock clock;
    // 0.1 token per second is not expressible; 1 per second with burst 1 and records of 10.
    rate_limiter limiter{rate_limit_options{{}, {1, 10}, 1000}, clock.fn()};
    ASSERT_TRUE(limiter.admit_records("a", 10).allowed);

    clock.now += 2500ms;  // 2.5 records back; 7.5 short of a 10-record batch
    rate_limiter::decision const d = limiter.admit_records("a", 10);

    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.retry_after, 8s);
}

TEST(RateLimiterTest, ClientsHaveSeparateBuckets) {
    manual_clock clock;
    rate_limiter limiter{rate_limit_options{{1, 1}, {}, 1000}, clock.fn()};

    EXPECT_TRUE(limiter.admit_request("a").allowed);
    EXPECT_FALSE(limiter.admit_request("a").allowed);
    EXPECT_TRUE(limiter.admit_request("b").allowed);
    EXPECT_FALSE(limiter.admit_request("b").allowed);
    EXPECT_EQ(limiter.client_count(), 2U);
}

TEST(RateLimiterTest, RefusedBatchIsNotCharged) {
    manual_clock clock;
    rate_limiter limiter{rate_limit_options{{}, {100, 100}, 1000}, clock.fn()};
    ASSERT_TRUE(limiter.admit_records("a", 60).allowed);

    EXPECT_FALSE(limiter.admit_records("a", 50).allowed);
    EXPECT_TRUE(limiter.admit_records("a", 40).allowed);
    EXPECT_FALSE(limiter.admit_records("a", 1).allowed);
}

TEST(RateLimiterTest, BatchLargerThanBurstPassesOnAFullBucketAndOwesTheRest) {
    manual_clock clock;
    rate_limiter limiter{rate_limit_options{{}, {100, 100}, 1000}, clock.fn()};

    EXPECT_TRUE(limiter.admit_records("a", 300).allowed);  // the bucket is now at -200
    rate_limiter::decision const d = limiter.admit_records("a", 1);

    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.retry_after, 3s);  // 201 records at 100/s
    clock.now += 3s;
    EXPECT_TRUE(limiter.admit_records("a", 100).allowed);
}

TEST(RateLimiterTest, RequestAndRecordBudgetsAreIndependent) {
    manual_clock clock;
    rate_limiter limiter{rate_limit_options{{1, 2}, {10, 10}, 1000}, clock.fn()};

    EXPECT_TRUE(limiter.admit_request("a").allowed);
    EXPECT_TRUE(limiter.admit_records("a", 10).allowed);
    EXPECT_TRUE(limiter.admit_request("a").allowed);
    EXPECT_FALSE(limiter.admit_records("a", 1).allowed);
    EXPECT_FALSE(limiter.admit_request("a").allowed);
}

TEST(RateLimiterTest, TableStaysWithinMaxClients) {
    manual_clock clock;
    rate_limiter limiter{rate_limit_options{{1, 1}, {}, 64}, clock.fn()};

    for (int i = 0; i < 10'000; ++i) {
        (void)limiter.admit_request("client-" + std::to_string(i));
    }

    // 16 shards of ceil(64 / 16) entries each.
    EXPECT_LE(limiter.client_count(), 64U);
    EXPECT_GT(limiter.client_count(), 0U);
}

TEST(RateLimiterTest, RefilledClientsAreForgottenBeforeOneThatOwes) {
    manual_clock clock;
    rate_limiter limiter{rate_limit_options{{}, {10, 10}, 64}, clock.fn()};  // 4 per shard
    ASSERT_TRUE(limiter.admit_records("heavy", 1000).allowed);  // owes 990 records: 99 s

    // 60 light clients, one a second: each has refilled by the time the next arrives, so
    // a full shard always finds room by forgetting them, never by dropping "heavy".
    for (int i = 0; i < 60; ++i) {
        clock.now += 1s;
        ASSERT_TRUE(limiter.admit_records("light-" + std::to_string(i), 1).allowed);
        ASSERT_LE(limiter.client_count(), 64U);
    }

    rate_limiter::decision const d = limiter.admit_records("heavy", 1);

    EXPECT_FALSE(d.allowed);  // 990 - 600 = 390 records still owed
    EXPECT_EQ(d.retry_after, 40s);
}

}  // namespace
}  // namespace flowd
