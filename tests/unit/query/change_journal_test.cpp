#include "flowd/query/change_journal.hpp"

#include <chrono>
#include <initializer_list>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

namespace flowd {
namespace {

using namespace std::chrono_literals;

flow_batch batch_of(std::initializer_list<flow_record> records) {
    flow_batch batch;
    std::size_t index = 0;
    for (flow_record const& r : records) {
        EXPECT_EQ(batch.add(r.src_app, r.dest_app, r.vpc_id, r.hour, r.counters, index++),
                  flow_batch::add_status::ok);
    }
    return batch;
}

void apply(flow_store& store, flow_batch const& batch) {
    auto prepared = store.prepare(batch);
    ASSERT_TRUE(std::holds_alternative<prepared_batch>(prepared));
    store.commit(std::get<prepared_batch>(std::move(prepared)));
}

auto const everything = [](changed_row const&) { return true; };
constexpr std::uint32_t all_hours = 1U << 31;

// Counts what the store tells it.
class counting_sink final : public change_sink {
public:
    void rows_changed(std::vector<changed_row> const& rows) override {
        ++batches;
        last = rows;
    }
    int batches = 0;
    std::vector<changed_row> last;
};

TEST(FlowStoreChangesTest, SinkHearsOnlyWhileWatchedWithNewTotals) {
    flow_store store;
    counting_sink sink;
    store.set_change_sink(&sink);

    apply(store, batch_of({{"a", "b", "v", 1, {1, 2}}}));
    store.watch_changes({{0, all_hours}});
    apply(store, batch_of({{"a", "b", "v", 1, {10, 20}}, {"c", "b", "v", 2, {1, 1}}}));
    store.watch_changes({});
    apply(store, batch_of({{"a", "b", "v", 1, {100, 200}}}));

    ASSERT_EQ(sink.batches, 1);
    ASSERT_EQ(sink.last.size(), 2U);
    for (changed_row const& r : sink.last) {
        if (r.hour == 1) {
            EXPECT_EQ(r.counters.bytes_tx, 11U);
            EXPECT_EQ(r.counters.bytes_rx, 22U);
        }
    }
    store.set_change_sink(nullptr);
}

TEST(FlowStoreChangesTest, ReplayIsSilentUnlessAsked) {
    flow_store store;
    counting_sink sink;
    store.set_change_sink(&sink);
    store.watch_changes({{0, all_hours}});

    store.replay(batch_of({{"a", "b", "v", 1, {1, 2}}}));
    EXPECT_EQ(sink.batches, 0);
    store.replay(batch_of({{"a", "b", "v", 1, {1, 2}}}), true);
    EXPECT_EQ(sink.batches, 1);
    store.set_change_sink(nullptr);
}

TEST(FlowStoreChangesTest, SinkHearsOnlyTheWatchedHoursAndNotABatchOutsideThem) {
    flow_store store;
    counting_sink sink;
    store.set_change_sink(&sink);
    store.watch_changes({{1, 2}, {5, 7}});

    apply(store, batch_of({{"a", "b", "v", 0, {1, 1}},
                           {"a", "b", "v", 1, {1, 1}},
                           {"a", "b", "v", 2, {1, 1}},
                           {"a", "b", "v", 5, {1, 1}},
                           {"a", "b", "v", 6, {1, 1}},
                           {"a", "b", "v", 7, {1, 1}}}));
    apply(store, batch_of({{"a", "b", "v", 3, {1, 1}}, {"a", "b", "v", 7, {1, 1}}}));

    ASSERT_EQ(sink.batches, 1);
    std::set<std::uint32_t> hours;
    for (changed_row const& r : sink.last) {
        hours.insert(r.hour);
    }
    EXPECT_EQ(hours, (std::set<std::uint32_t>{1, 5, 6}));
    store.watch_changes({});
    store.set_change_sink(nullptr);
}

TEST(ChangeJournalTest, RecordsOnlyTheHoursItsStreamsWatch) {
    flow_store store;
    change_journal journal(store, 64, 60s);
    auto const w = journal.subscribe(1, 2);

    apply(store, batch_of({{"a", "b", "v", 1, {1, 1}}, {"a", "b", "v", 2, {1, 1}}}));
    apply(store, batch_of({{"c", "d", "v", 4, {1, 1}}}));  // no hour watched: no number
    std::vector<changed_row> out;
    std::uint64_t upto = 0;

    ASSERT_TRUE(journal.read_since(w.seq, 0, all_hours, everything, out, upto));
    EXPECT_EQ(upto, w.seq + 1);
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(out[0].hour, 1U);
    journal.unsubscribe(w.id);
}

// A resume holds only when every hour asked for was watched from the cursor on, by an open
// stream or one that left within the window.
TEST(ChangeJournalTest, AResumeHoldsOnlyHoursWatchedSinceItsCursor) {
    flow_store store;
    change_journal journal(store, 64, 60s);
    auto const first = journal.subscribe(1, 3);
    apply(store, batch_of({{"a", "b", "v", 1, {1, 1}}}));
    std::uint64_t const cursor = journal.sequence();
    apply(store, batch_of({{"a", "b", "v", 3, {1, 1}}}));  // hour 3 not watched yet
    auto const second = journal.subscribe(3, 5);
    apply(store, batch_of({{"a", "b", "v", 2, {1, 1}}, {"a", "b", "v", 3, {1, 1}}}));

    EXPECT_TRUE(journal.holds_since(cursor, 1, 3));
    EXPECT_TRUE(journal.holds_since(cursor, 2, 3));
    EXPECT_FALSE(journal.holds_since(cursor, 1, 5));
    EXPECT_FALSE(journal.holds_since(cursor, 3, 4));
    EXPECT_TRUE(journal.holds_since(second.seq, 1, 5));
    EXPECT_FALSE(journal.holds_since(second.seq, 1, 6));

    journal.unsubscribe(first.id);  // within the window: still held
    EXPECT_TRUE(journal.holds_since(cursor, 1, 3));
    auto const resumed = journal.subscribe(1, 3, cursor);
    EXPECT_TRUE(resumed.resumed);
    EXPECT_EQ(resumed.seq, cursor);
    auto const refused = journal.subscribe(3, 5, cursor);
    EXPECT_FALSE(refused.resumed);
    EXPECT_EQ(refused.seq, journal.sequence());
    journal.unsubscribe(resumed.id);
    journal.unsubscribe(refused.id);
    journal.unsubscribe(second.id);
}

// Once a stream's window passed, its hours are no longer recorded (nor held), while another
// stream's go on.
TEST(ChangeJournalTest, AnExpiredStreamsHoursAreDroppedAndOthersKept) {
    flow_store store;
    change_journal journal(store, 64, 0ms);
    auto const gone = journal.subscribe(1, 2);
    auto const kept = journal.subscribe(5, 6);
    apply(store, batch_of({{"a", "b", "v", 1, {1, 1}}, {"a", "b", "v", 5, {1, 1}}}));
    journal.unsubscribe(gone.id);
    auto const deadline = std::chrono::steady_clock::now() + 5ms;
    while (std::chrono::steady_clock::now() <= deadline) {
    }
    apply(store, batch_of({{"c", "d", "v", 1, {1, 1}}, {"c", "d", "v", 5, {1, 1}}}));
    std::vector<changed_row> out;
    std::uint64_t upto = 0;

    ASSERT_TRUE(journal.read_since(kept.seq, 0, all_hours, everything, out, upto));
    ASSERT_EQ(out.size(), 2U);
    EXPECT_EQ(out[0].hour, 5U);
    EXPECT_EQ(out[1].hour, 5U);
    EXPECT_EQ(store.name(out[1].key.src), "c");
    EXPECT_FALSE(journal.holds_since(gone.seq, 1, 2));
    EXPECT_TRUE(journal.holds_since(kept.seq, 5, 6));
    journal.unsubscribe(kept.id);
}

TEST(ChangeJournalTest, RecordsNothingWithoutSubscribers) {
    flow_store store;
    change_journal journal(store, 16, 60s);

    apply(store, batch_of({{"a", "b", "v", 1, {1, 2}}}));

    EXPECT_EQ(journal.sequence(), 0U);
    std::vector<changed_row> out;
    std::uint64_t upto = 0;
    EXPECT_FALSE(journal.read_since(0, 0, all_hours, everything, out, upto));
}

TEST(ChangeJournalTest, CoalescesToTheNewestTotalsPerRow) {
    flow_store store;
    change_journal journal(store, 64, 60s);
    auto const w = journal.subscribe(0, all_hours);
    std::uint64_t const start = w.seq;

    apply(store, batch_of({{"a", "b", "v", 1, {1, 2}}}));
    apply(store, batch_of({{"a", "b", "v", 1, {10, 20}}, {"c", "d", "v", 3, {5, 5}}}));
    apply(store, batch_of({{"a", "b", "v", 1, {100, 200}}}));
    std::vector<changed_row> out;
    std::uint64_t upto = 0;

    ASSERT_TRUE(journal.read_since(start, 0, all_hours, everything, out, upto));

    EXPECT_EQ(upto, start + 3);
    ASSERT_EQ(out.size(), 2U);
    EXPECT_EQ(out[0].hour, 1U);
    EXPECT_EQ(out[0].counters.bytes_tx, 111U);
    EXPECT_EQ(out[0].counters.bytes_rx, 222U);
    EXPECT_EQ(out[1].hour, 3U);
    journal.unsubscribe(w.id);
}

// Streams of one query read up to the same sequence in one tick: what changed after it is
// left for the next read, a key changed on both sides of it included (its newest totals
// come then), and a bound before the cursor reads nothing and keeps the cursor.
TEST(ChangeJournalTest, ReadBetweenStopsAtTheBound) {
    flow_store store;
    change_journal journal(store, 64, 60s);
    auto const w = journal.subscribe(0, all_hours);
    std::uint64_t const start = w.seq;
    apply(store, batch_of({{"a", "b", "v", 1, {1, 1}}, {"c", "d", "v", 1, {1, 1}}}));
    std::uint64_t const bound = journal.sequence();
    apply(store, batch_of({{"a", "b", "v", 1, {10, 10}}, {"e", "f", "v", 1, {1, 1}}}));
    std::vector<changed_row> out;
    std::uint64_t upto = 0;

    ASSERT_TRUE(journal.read_between(start, bound, 0, all_hours, everything, out, upto));

    EXPECT_EQ(upto, bound);
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(store.name(out[0].key.src), "c");
    out.clear();
    ASSERT_TRUE(
        journal.read_between(upto, journal.sequence(), 0, all_hours, everything, out, upto));
    EXPECT_EQ(upto, journal.sequence());
    ASSERT_EQ(out.size(), 2U);
    EXPECT_EQ(store.name(out[0].key.src), "a");
    EXPECT_EQ(out[0].counters.bytes_tx, 11U);
    out.clear();
    ASSERT_TRUE(journal.read_between(bound + 1, bound, 0, all_hours, everything, out, upto));
    EXPECT_EQ(upto, bound + 1);
    EXPECT_TRUE(out.empty());
    journal.unsubscribe(w.id);
}

TEST(ChangeJournalTest, ReadsOnlyWhatChangedAfterTheCursorAndPassesTheFilter) {
    flow_store store;
    change_journal journal(store, 64, 60s);
    auto const w = journal.subscribe(0, all_hours);
    apply(store, batch_of({{"a", "b", "v", 1, {1, 2}}}));
    std::uint64_t const cursor = journal.sequence();
    apply(store, batch_of({{"c", "d", "v", 1, {5, 5}}, {"e", "f", "v", 9, {5, 5}}}));
    std::vector<changed_row> out;
    std::uint64_t upto = 0;

    ASSERT_TRUE(journal.read_since(cursor, 0, 5, everything, out, upto));

    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(store.name(out[0].key.src), "c");
    journal.unsubscribe(w.id);
}

TEST(ChangeJournalTest, OverwrittenChangesAreNotHeld) {
    flow_store store;
    change_journal journal(store, 2, 60s);
    auto const w = journal.subscribe(0, all_hours);
    std::uint64_t const start = w.seq;

    apply(store, batch_of({{"a", "b", "v", 1, {1, 2}}}));
    apply(store, batch_of({{"c", "b", "v", 1, {1, 2}}, {"d", "b", "v", 1, {1, 2}}}));
    std::vector<changed_row> out;
    std::uint64_t upto = 0;

    EXPECT_FALSE(journal.holds_since(start, 0, all_hours));
    EXPECT_FALSE(journal.read_since(start, 0, all_hours, everything, out, upto));
    EXPECT_TRUE(journal.holds_since(start + 1, 0, all_hours));
    journal.unsubscribe(w.id);
}

TEST(ChangeJournalTest, AKeyEveryBatchChangesIsHeldOnceNotOncePerBatch) {
    flow_store store;
    change_journal journal(store, 4, 60s);
    auto const w = journal.subscribe(0, all_hours);
    std::uint64_t const start = w.seq;

    for (std::uint64_t i = 0; i < 100; ++i) {
        apply(store, batch_of({{"a", "b", "v", 1, {1, 1}}, {"c", "d", "v", 2, {2, 2}}}));
    }
    std::vector<changed_row> out;
    std::uint64_t upto = 0;

    ASSERT_TRUE(journal.read_since(start, 0, all_hours, everything, out, upto));
    EXPECT_EQ(upto, start + 100);
    ASSERT_EQ(out.size(), 2U);
    EXPECT_EQ(out[0].hour, 1U);
    EXPECT_EQ(out[0].counters.bytes_tx, 100U);
    EXPECT_EQ(out[1].hour, 2U);
    EXPECT_EQ(out[1].counters.bytes_tx, 200U);
    journal.unsubscribe(w.id);
}

TEST(ChangeJournalTest, ARowChangedBeforeAndAfterTheCursorComesOnceWithItsNewestTotals) {
    flow_store store;
    change_journal journal(store, 64, 60s);
    auto const w = journal.subscribe(0, all_hours);
    apply(store, batch_of({{"a", "b", "v", 1, {1, 1}}}));
    std::uint64_t const cursor = journal.sequence();
    apply(store, batch_of({{"c", "d", "v", 1, {5, 5}}}));
    // A key changed again and again is one entry, read once with its newest totals.
    for (int i = 0; i < 40; ++i) {
        apply(store, batch_of({{"a", "b", "v", 1, {1, 1}}}));
    }
    std::vector<changed_row> out;
    std::uint64_t upto = 0;

    ASSERT_TRUE(journal.read_since(cursor, 0, all_hours, everything, out, upto));

    ASSERT_EQ(out.size(), 2U);
    EXPECT_EQ(store.name(out[0].key.src), "c");
    EXPECT_EQ(store.name(out[1].key.src), "a");
    EXPECT_EQ(out[1].counters.bytes_tx, 41U);
    out.clear();
    ASSERT_TRUE(journal.read_since(journal.sequence() - 1, 0, all_hours, everything, out, upto));
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(store.name(out[0].key.src), "a");
    out.clear();
    ASSERT_TRUE(journal.read_since(journal.sequence(), 0, all_hours, everything, out, upto));
    EXPECT_TRUE(out.empty());
    journal.unsubscribe(w.id);
}

TEST(ChangeJournalTest, PastCapacityTheOldestRowsGoAndOnlyLaterCursorsHold) {
    flow_store store;
    change_journal journal(store, 8, 60s);
    auto const w = journal.subscribe(0, all_hours);
    std::uint64_t const start = w.seq;
    for (int i = 0; i < 20; ++i) {
        apply(store, batch_of({{"k" + std::to_string(i), "b", "v", 1, {1, 1}}}));
    }
    std::uint64_t const last = journal.sequence();
    std::vector<changed_row> out;
    std::uint64_t upto = 0;

    EXPECT_FALSE(journal.holds_since(start, 0, all_hours));
    ASSERT_TRUE(journal.holds_since(last - 2, 0, all_hours));
    ASSERT_TRUE(journal.read_since(last - 2, 0, all_hours, everything, out, upto));
    ASSERT_EQ(out.size(), 2U);
    EXPECT_EQ(store.name(out[0].key.src), "k18");
    EXPECT_EQ(store.name(out[1].key.src), "k19");
    journal.unsubscribe(w.id);
}

TEST(ChangeJournalTest, KeepsRecordingForTheResumeWindowAfterTheLastStreamLeaves) {
    flow_store store;
    change_journal journal(store, 64, 60s);
    auto const w = journal.subscribe(0, all_hours);
    std::uint64_t const start = w.seq;
    journal.unsubscribe(w.id);

    apply(store, batch_of({{"a", "b", "v", 1, {1, 2}}}));

    EXPECT_TRUE(journal.holds_since(start, 0, all_hours));
    EXPECT_EQ(journal.sequence(), start + 1);
}

TEST(ChangeJournalTest, StopsRecordingOnceTheResumeWindowPassed) {
    flow_store store;
    change_journal journal(store, 64, 0ms);
    auto const w = journal.subscribe(0, all_hours);
    std::uint64_t const start = w.seq;
    journal.unsubscribe(w.id);

    // The first batch past the window turns recording off; what follows is a gap.
    auto const deadline = std::chrono::steady_clock::now() + 5ms;
    while (std::chrono::steady_clock::now() <= deadline) {
    }
    apply(store, batch_of({{"a", "b", "v", 1, {1, 2}}}));

    EXPECT_FALSE(journal.holds_since(start, 0, all_hours));
    auto const w2 = journal.subscribe(0, all_hours);
    std::uint64_t const again = w2.seq;
    EXPECT_TRUE(journal.holds_since(again, 0, all_hours));
    journal.unsubscribe(w2.id);
}

// Against a model (each (hour, key)'s totals and the batch that last changed it): random
// batches over enough keys that the hours' generations turn over many times and the
// capacity drops entries mid-batch, read from random cursors and bounds. Every read that
// succeeds gives exactly the model's rows changed in (since, upto], each once, in the
// order they last changed; a read fails only for a cursor before what was dropped.
TEST(ChangeJournalTest, ReadsMatchAModelAcrossGenerationsAndDrops) {
    flow_store store;
    change_journal journal(store, 500, 60s);
    auto const w = journal.subscribe(0, all_hours);
    std::uint64_t const start = w.seq;
    std::mt19937 rng(20261205);
    struct model_row {
        std::uint64_t seq = 0;
        flow_counters counters;
    };
    std::map<std::pair<std::uint32_t, std::string>, model_row> model;
    int reads = 0;
    int failed = 0;
    for (int b = 0; b < 400; ++b) {
        flow_batch batch;
        std::set<std::pair<std::uint32_t, std::string>> in_batch;
        std::size_t const n = 1 + rng() % 40;
        for (std::size_t i = 0; i < n; ++i) {
            auto const hour = static_cast<std::uint32_t>(rng() % 3);
            // Most changes go to a few hot keys, the rest to many cold ones.
            std::string const key = "k" + std::to_string(rng() % 2 == 0 ? rng() % 8 : rng() % 200);
            flow_counters const c{1 + rng() % 100, 1 + rng() % 100};
            ASSERT_EQ(batch.add(key, "d", "v", hour, c, i), flow_batch::add_status::ok);
            in_batch.insert({hour, key});
            auto& m = model[{hour, key}];
            m.counters.bytes_tx += c.bytes_tx;
            m.counters.bytes_rx += c.bytes_rx;
        }
        apply(store, batch);
        for (auto const& k : in_batch) {
            model[k].seq = journal.sequence();
        }
        std::uint64_t const seq = journal.sequence();
        for (int r = 0; r < 3; ++r) {
            std::uint64_t const since = seq - std::min<std::uint64_t>(seq - start, rng() % 60);
            std::uint64_t const until = rng() % 2 == 0 ? seq : since + rng() % 40;
            std::vector<changed_row> out;
            std::uint64_t upto = 0;
            ++reads;
            if (!journal.read_between(since, until, 0, all_hours, everything, out, upto)) {
                EXPECT_FALSE(journal.holds_since(since, 0, all_hours));
                ++failed;
                continue;
            }
            ASSERT_EQ(upto, std::max(since, std::min(until, seq)));
            std::map<std::pair<std::uint32_t, std::string>, model_row> want;
            for (auto const& [k, m] : model) {
                if (m.seq > since && m.seq <= upto) {
                    want[k] = m;
                }
            }
            ASSERT_EQ(out.size(), want.size()) << "since " << since << " upto " << upto;
            std::tuple<std::uint32_t, std::uint64_t> last{0, 0};
            for (changed_row const& row : out) {
                auto const it = want.find({row.hour, std::string(store.name(row.key.src))});
                ASSERT_NE(it, want.end());
                EXPECT_EQ(row.counters.bytes_tx, it->second.counters.bytes_tx);
                EXPECT_EQ(row.counters.bytes_rx, it->second.counters.bytes_rx);
                std::tuple<std::uint32_t, std::uint64_t> const at{row.hour, it->second.seq};
                EXPECT_LE(last, at);  // by hour, then by last change
                last = at;
                want.erase(it);  // each row once
            }
        }
    }
    // The capacity dropped rows many times over and most reads still succeeded.
    EXPECT_FALSE(journal.holds_since(start, 0, all_hours));
    EXPECT_GT(failed, 0);
    EXPECT_LT(failed, reads / 2);
    journal.unsubscribe(w.id);
}

}  // namespace
}  // namespace flowd
