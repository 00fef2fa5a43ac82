#include "flowd/http/event_stream.hpp"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "flowd/http/stream_handler.hpp"

namespace flowd {
namespace {

using namespace std::chrono_literals;

TEST(EventStreamTest, EventHasIdTypeAndDataLinesThenABlankLine) {
    std::string out;

    append_sse_event(out, "7", "rows", "[1,2]");

    EXPECT_EQ(out, "id: 7\nevent: rows\ndata: [1,2]\n\n");
}

TEST(EventStreamTest, MultiLineDataBecomesOneDataLineEach) {
    std::string out;

    append_sse_event(out, "", "synced", "a\nb\n");

    EXPECT_EQ(out, "event: synced\ndata: a\ndata: b\ndata: \n\n");
}

TEST(EventStreamTest, CommentStartsWithAColon) {
    std::string out;

    append_sse_comment(out, "keep-alive");

    EXPECT_EQ(out, ": keep-alive\n\n");
}

TEST(EventStreamTest, EventIdsRoundTripAndJunkIsRefused) {
    stream_event_id const id{0xabcdef0123456789ULL, 42, 1'764'900'000'123};

    auto const back = parse_event_id(format_event_id(id));

    ASSERT_TRUE(back);
    EXPECT_EQ(back->epoch, id.epoch);
    EXPECT_EQ(back->seq, 42U);
    EXPECT_EQ(back->unix_ms, id.unix_ms);
    for (char const* junk : {"", "x", "1-2", "1-2-", "1--3", "zz-1-2", "1-2-3-4", "1-a-3"}) {
        EXPECT_FALSE(parse_event_id(junk)) << junk;
    }
}

class ResumeTest : public ::testing::Test {
protected:
    flow_store store_;
    change_journal journal_{store_, 64, 60s};
    std::uint64_t const epoch_ = 0x1234;
    std::uint64_t const now_ = 10'000'000;

    std::string id(std::uint64_t epoch, std::uint64_t seq, std::uint64_t ms) const {
        return format_event_id({epoch, seq, ms});
    }
};

TEST_F(ResumeTest, NoLastEventIdIsAFreshStream) {
    EXPECT_EQ(decide_resume("", epoch_, now_, 60s, journal_), resume_decision::fresh);
}

TEST_F(ResumeTest, RecentIdOfThisProcessResumes) {
    std::uint64_t const seq = journal_.subscribe();
    flow_batch b;
    ASSERT_EQ(b.add("a", "b", "v", 1, {1, 1}, 0), flow_batch::add_status::ok);
    store_.replay(b, true);

    EXPECT_EQ(decide_resume(id(epoch_, seq + 1, now_ - 1000), epoch_, now_, 60s, journal_),
              resume_decision::resume);
    EXPECT_EQ(decide_resume(id(epoch_, seq + 2, now_ - 1000), epoch_, now_, 60s, journal_),
              resume_decision::resume);
    journal_.unsubscribe();
}

TEST_F(ResumeTest, OtherProcessOldIdFullSendIdOrGarbageResets) {
    (void)journal_.subscribe();
    flow_batch b;
    ASSERT_EQ(b.add("a", "b", "v", 1, {1, 1}, 0), flow_batch::add_status::ok);
    store_.replay(b, true);

    EXPECT_EQ(decide_resume(id(epoch_ + 1, 1, now_), epoch_, now_, 60s, journal_),
              resume_decision::reset);
    EXPECT_EQ(decide_resume(id(epoch_, 1, now_ - 61'000), epoch_, now_, 60s, journal_),
              resume_decision::reset);
    EXPECT_EQ(decide_resume(id(epoch_, 0, now_), epoch_, now_, 60s, journal_),
              resume_decision::reset);
    EXPECT_EQ(decide_resume(id(epoch_, 99, now_), epoch_, now_, 60s, journal_),
              resume_decision::reset);
    EXPECT_EQ(decide_resume("garbage", epoch_, now_, 60s, journal_), resume_decision::reset);
    journal_.unsubscribe();
}

TEST(StreamIntervalTest, AcceptsDurationsFrom100msTo60s) {
    EXPECT_EQ(parse_stream_interval("100ms"), 100ms);
    EXPECT_EQ(parse_stream_interval("1s"), 1s);
    EXPECT_EQ(parse_stream_interval("1m"), 60s);
    for (char const* bad : {"99ms", "61s", "2m", "1", "s", "1h", "-1s", "1.5s", ""}) {
        EXPECT_FALSE(parse_stream_interval(bad)) << bad;
    }
}

}  // namespace
}  // namespace flowd
