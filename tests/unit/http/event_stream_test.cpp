#include "flowd/http/event_stream.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "flowd/http/stream_handler.hpp"
#include "flowd/metrics/stream_metrics.hpp"

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
    EXPECT_EQ(decide_resume("", epoch_, now_, 60s, journal_, 0, 10), resume_decision::fresh);
}

TEST_F(ResumeTest, RecentIdOfThisProcessResumes) {
    auto const w = journal_.subscribe(0, 10);
    std::uint64_t const seq = w.seq;
    flow_batch b;
    ASSERT_EQ(b.add("a", "b", "v", 1, {1, 1}, 0), flow_batch::add_status::ok);
    store_.replay(b, true);

    EXPECT_EQ(decide_resume(id(epoch_, seq + 1, now_ - 1000), epoch_, now_, 60s, journal_, 0, 10),
              resume_decision::resume);
    EXPECT_EQ(decide_resume(id(epoch_, seq + 2, now_ - 1000), epoch_, now_, 60s, journal_, 0, 10),
              resume_decision::resume);
    // Hours 10 to 20 were not watched: their changes are not held.
    EXPECT_EQ(decide_resume(id(epoch_, seq + 1, now_ - 1000), epoch_, now_, 60s, journal_, 0, 20),
              resume_decision::reset);
    journal_.unsubscribe(w.id);
}

TEST_F(ResumeTest, OtherProcessOldIdFullSendIdOrGarbageResets) {
    auto const w = journal_.subscribe(0, 10);
    flow_batch b;
    ASSERT_EQ(b.add("a", "b", "v", 1, {1, 1}, 0), flow_batch::add_status::ok);
    store_.replay(b, true);

    EXPECT_EQ(decide_resume(id(epoch_ + 1, 1, now_), epoch_, now_, 60s, journal_, 0, 10),
              resume_decision::reset);
    EXPECT_EQ(decide_resume(id(epoch_, 1, now_ - 61'000), epoch_, now_, 60s, journal_, 0, 10),
              resume_decision::reset);
    EXPECT_EQ(decide_resume(id(epoch_, 0, now_), epoch_, now_, 60s, journal_, 0, 10),
              resume_decision::reset);
    EXPECT_EQ(decide_resume(id(epoch_, 99, now_), epoch_, now_, 60s, journal_, 0, 10),
              resume_decision::reset);
    EXPECT_EQ(decide_resume("garbage", epoch_, now_, 60s, journal_, 0, 10), resume_decision::reset);
    journal_.unsubscribe(w.id);
}

// A stream as the session drives it: each pull() asks for the next piece, kept in `pieces`.
struct stream_reader {
    std::shared_ptr<event_source> source;
    std::vector<std::string> pieces;

    void pull() {
        source->pull([this](event_source::piece_type piece, bool end) {
            if (!end) {
                std::string text;
                for (auto const& part : piece) {
                    text += *part;
                }
                pieces.push_back(std::move(text));
            }
        });
    }
};

class StreamHubTest : public ::testing::Test {
protected:
    // A stream on `query` (interval 100 ms), its full send read up to `synced`.
    std::unique_ptr<stream_reader> open(std::string_view query) {
        auto plan = parse_query_plan(query_route::flows, query);
        EXPECT_TRUE(plan);
        bool too_many = false;
        auto r = std::make_unique<stream_reader>();
        r->source = hub_.open(*plan, 100ms, "", ioc_.get_executor(), too_many);
        EXPECT_NE(r->source, nullptr);
        while (r->pieces.empty() || r->pieces.back().find("event: synced") == std::string::npos) {
            r->pull();
        }
        return r;
    }

    // Applies `records` (src, hour) as one batch, then runs the streams' timers until each
    // of `readers` has one more piece.
    void apply_and_wait(std::vector<std::pair<std::string, std::uint32_t>> const& records,
                        std::vector<stream_reader*> const& readers) {
        flow_batch b;
        std::size_t i = 0;
        for (auto const& [src, hour] : records) {
            ASSERT_EQ(b.add(src, "d", "v", hour, {1, 2}, i++), flow_batch::add_status::ok);
        }
        std::vector<std::size_t> before;
        for (stream_reader* r : readers) {
            before.push_back(r->pieces.size());
            r->pull();
        }
        store_.replay(b, true);
        auto const waiting = [&] {
            for (std::size_t n = 0; n < readers.size(); ++n) {
                if (readers[n]->pieces.size() == before[n]) {
                    return true;
                }
            }
            return false;
        };
        while (waiting() && ioc_.run_one_for(5s) != 0) {
        }
        ASSERT_FALSE(waiting());
    }

    static std::string data_of(std::string const& event) {
        std::size_t const at = event.find("data: ");
        return at == std::string::npos ? std::string{} : event.substr(at);
    }

    boost::asio::io_context ioc_;
    flow_store store_;
    prometheus::Registry registry_;
    stream_metrics metrics_{registry_};
    stream_hub hub_{store_, stream_options{}, metrics_, query_limits{}};
};

// Streams of one query tick together and take one serialised event; one that synced at
// another cursor reads up to the same point, and shares from its next tick on; a filter
// makes another query.
TEST_F(StreamHubTest, StreamsOfOneQueryShareEachTicksEvent) {
    auto a = open("from=0&to=1");
    auto b = open("from=0&to=1");
    apply_and_wait({{"x", 0}}, {a.get(), b.get()});
    EXPECT_NE(a->pieces.back().find("event: rows"), std::string::npos);
    EXPECT_EQ(a->pieces.back(), b->pieces.back());
    store_.replay(
        [] {
            flow_batch elsewhere;
            EXPECT_EQ(elsewhere.add("x", "d", "v", 5, {1, 1}, 0), flow_batch::add_status::ok);
            return elsewhere;
        }(),
        true);
    auto c = open("from=0&to=1");
    auto f = open("from=0&to=1&src_app=y");

    apply_and_wait({{"y", 0}}, {a.get(), b.get(), c.get(), f.get()});

    EXPECT_EQ(a->pieces.back(), b->pieces.back());
    EXPECT_EQ(data_of(c->pieces.back()), data_of(a->pieces.back()));
    EXPECT_NE(data_of(a->pieces.back()).find("\"src_app\":\"y\""), std::string::npos);
    apply_and_wait({{"x", 0}, {"y", 0}}, {a.get(), b.get(), c.get(), f.get()});
    EXPECT_EQ(a->pieces.back(), b->pieces.back());
    EXPECT_EQ(a->pieces.back(), c->pieces.back());
    EXPECT_NE(data_of(a->pieces.back()).find("\"src_app\":\"x\""), std::string::npos);
    EXPECT_EQ(data_of(f->pieces.back()).find("\"src_app\":\"x\""), std::string::npos);
    EXPECT_NE(data_of(f->pieces.back()).find("\"src_app\":\"y\""), std::string::npos);
    for (auto* r : {a.get(), b.get(), c.get(), f.get()}) {
        r->source->stop();
    }
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
