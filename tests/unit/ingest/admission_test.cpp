#include "flowd/ingest/admission.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <prometheus/registry.h>

namespace flowd {
namespace {

// A batch of `records` records of one key at `hour`.
flow_batch batch_of(std::size_t records, std::uint32_t hour = 1) {
    flow_batch b;
    for (std::size_t i = 0; i < records; ++i) {
        EXPECT_EQ(b.add("web", "db", "vpc-1", hour, flow_counters{1, 2}, i),
                  flow_batch::add_status::ok);
    }
    return b;
}

// Records what reaches the ingest below admission; applies nothing, or fails when asked.
struct recording_ingest : ingest {
    void submit(flow_batch batch, ingest_request info, completion done) override {
        submitted.push_back(batch.record_count());
        keys.push_back(info.idempotency ? info.idempotency->key : std::string());
        if (fail) {
            return done(ingest_outcome::refused(
                problem{problem_type::log_unavailable, "disk gone", {}, {}}));
        }
        done(ingest_outcome::applied(batch.record_count()));
    }
    std::vector<std::size_t> submitted;
    std::vector<std::string> keys;
    bool fail = false;
};

class AdmissionTest : public ::testing::Test {
protected:
    ingest_outcome submit(admission& front, flow_batch batch, std::optional<std::string> key = {},
                          std::string client = {}) {
        ingest_request info;
        info.request_id = "req-1";
        info.accepted_unix_ms = now_ms_;
        info.client = std::move(client);
        if (key) {
            info.idempotency = idempotency_claim{"token", *key, 42};
        }
        std::optional<ingest_outcome> out;
        front.submit(std::move(batch), std::move(info),
                     [&out](ingest_outcome o) { out = std::move(o); });
        EXPECT_TRUE(out.has_value());
        return std::move(*out);
    }

    admission_options options() {
        admission_options o;
        o.idempotency = &keys_;
        o.clock = [this] { return now_ms_; };
        return o;
    }

    std::uint64_t now_ms_ = 10 * 3'600'000ULL;
    prometheus::Registry registry_;
    service_metrics metrics_{registry_, "test", "none"};
    idempotency_table keys_{std::chrono::minutes(10), 1000};
    recording_ingest below_;
};

TEST_F(AdmissionTest, ARetryWithTheSameKeyAnswersTheFirstAnswerWithoutApplyingAgain) {
    admission front{below_, metrics_, options()};

    ingest_outcome const first = submit(front, batch_of(3), "k1");
    ingest_outcome const retry = submit(front, batch_of(3), "k1");

    EXPECT_FALSE(first.duplicate);
    EXPECT_TRUE(retry.duplicate);
    EXPECT_EQ(retry.accepted, 3U);
    EXPECT_EQ(below_.submitted, std::vector<std::size_t>{3});
}

TEST_F(AdmissionTest, AFailedApplyFreesTheKeyForARetry) {
    admission front{below_, metrics_, options()};
    below_.fail = true;

    EXPECT_TRUE(submit(front, batch_of(2), "k1").error.has_value());
    below_.fail = false;
    ingest_outcome const retry = submit(front, batch_of(2), "k1");

    EXPECT_FALSE(retry.error.has_value());
    EXPECT_FALSE(retry.duplicate);
    EXPECT_EQ(below_.submitted, (std::vector<std::size_t>{2, 2}));
}

TEST_F(AdmissionTest, AKeyReusedWithAnotherBodyIs422) {
    admission front{below_, metrics_, options()};
    (void)submit(front, batch_of(1), "k1");

    ingest_request info;
    info.idempotency = idempotency_claim{"token", "k1", 43};  // another body's fingerprint
    std::optional<ingest_outcome> out;
    front.submit(batch_of(1), std::move(info), [&out](ingest_outcome o) { out = std::move(o); });

    ASSERT_TRUE(out && out->error);
    EXPECT_EQ(out->error->type, problem_type::idempotency_key_reused);
}

// Cluster mode: no local table; the key goes down to the stream, every time.
TEST_F(AdmissionTest, WithoutATableTheKeyGoesToTheIngestBelow) {
    admission_options o = options();
    o.idempotency = nullptr;
    admission front{below_, metrics_, o};

    (void)submit(front, batch_of(1), "k1");
    (void)submit(front, batch_of(1), "k1");

    EXPECT_EQ(below_.keys, (std::vector<std::string>{"k1", "k1"}));
}

TEST_F(AdmissionTest, OutOfRetentionNamesTheFirstRecordAndFreesTheKey) {
    admission_options o = options();
    o.retention_hours = 2;  // hours 9..11 at hour 10
    admission front{below_, metrics_, o};
    flow_batch b = batch_of(1, 10);
    ASSERT_EQ(b.add("a", "b", "v", 8, flow_counters{1, 1}, 1), flow_batch::add_status::ok);

    ingest_outcome const late = submit(front, std::move(b), "k1");

    ASSERT_TRUE(late.error.has_value());
    EXPECT_EQ(late.error->type, problem_type::hour_out_of_retention);
    EXPECT_EQ(late.error->record, 1U);
    EXPECT_TRUE(below_.submitted.empty());
    EXPECT_FALSE(submit(front, batch_of(1, 10), "k1").error.has_value());
}

TEST_F(AdmissionTest, AnEmptyBatchIsAnsweredWithoutTheIngestBelow) {
    admission front{below_, metrics_, options()};

    ingest_outcome const o = submit(front, flow_batch{}, "k1");

    EXPECT_FALSE(o.error.has_value());
    EXPECT_EQ(o.accepted, 0U);
    EXPECT_TRUE(below_.submitted.empty());
    EXPECT_TRUE(submit(front, flow_batch{}, "k1").duplicate);
}

TEST_F(AdmissionTest, RecordsOverTheClientsBudgetAre429WithRetryAfter) {
    auto const start = rate_limiter::clock::time_point{std::chrono::hours(1)};
    rate_limiter limiter{rate_limit_options{{0, 0}, {10, 10}, 1000}, [start] { return start; }};
    admission_options o = options();
    o.limiter = &limiter;
    admission front{below_, metrics_, o};

    EXPECT_FALSE(submit(front, batch_of(8), {}, "ip:10.0.0.3").error.has_value());
    ingest_outcome const refused = submit(front, batch_of(8), {}, "ip:10.0.0.3");

    ASSERT_TRUE(refused.error.has_value());
    EXPECT_EQ(refused.error->type, problem_type::rate_limited);
    ASSERT_TRUE(refused.retry_after.has_value());
    EXPECT_EQ(refused.retry_after->count(), 1);
    EXPECT_EQ(metrics_.throttled_records.Value(), 1.0);
    EXPECT_EQ(below_.submitted, std::vector<std::size_t>{8});
    EXPECT_FALSE(submit(front, batch_of(8), {}, "ip:10.0.0.4").error.has_value());
}

}  // namespace
}  // namespace flowd
