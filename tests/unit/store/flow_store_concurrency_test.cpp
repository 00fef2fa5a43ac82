#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "flowd/store/flow_store.hpp"

namespace flowd {
namespace {

constexpr std::size_t thread_count = 8;

// Prepares and commits; returns false when the store refused.
bool apply(flow_store& store, flow_batch const& batch) {
    auto prepared = store.prepare(batch);
    if (!std::holds_alternative<prepared_batch>(prepared)) {
        return false;
    }
    store.commit(std::get<prepared_batch>(std::move(prepared)));
    return true;
}

std::string key_name(std::size_t i) {
    return "app-" + std::to_string(i);
}

// Holds a writer at its halfway point until the reader has read `n` times since the test
// began: on a loaded machine the reader may otherwise get no turn before the writers are
// done, and the test would check nothing.
void wait_for_reads(std::atomic<std::size_t> const& reads, std::size_t n = 8) {
    while (reads.load() < n) {
        std::this_thread::yield();
    }
}

// Starts `count` threads running body(thread_index) and joins them.
template <class F>
void run_threads(std::size_t count, F body) {
    std::vector<std::thread> threads;
    threads.reserve(count);
    for (std::size_t t = 0; t < count; ++t) {
        threads.emplace_back(body, t);
    }
    for (std::thread& th : threads) {
        th.join();
    }
}

TEST(FlowStoreConcurrencyTest, ThreadsAddingSameKeysGetExactTotals) {
    flow_store store{store_options{16, 1'000'000}};
    constexpr std::size_t batches_per_thread = 400;
    constexpr std::size_t key_count = 32;
    constexpr std::uint32_t hours = 2;
    std::atomic<std::size_t> refused{0};

    run_threads(thread_count, [&](std::size_t t) {
        for (std::size_t b = 0; b < batches_per_thread; ++b) {
            flow_batch batch;
            std::size_t record = 0;
            for (std::size_t k = 0; k < key_count; ++k) {
                for (std::uint32_t h = 0; h < hours; ++h) {
                    batch.add(key_name(k), "dest", "vpc", h, {1, t + 1}, record++);
                }
            }
            if (!apply(store, batch)) {
                refused.fetch_add(1);
            }
        }
    });

    EXPECT_EQ(refused.load(), 0U);
    EXPECT_EQ(store.key_count(), key_count * hours);
    std::uint64_t const rx_per_batch_round = thread_count * (thread_count + 1) / 2;
    for (std::uint32_t h = 0; h < hours; ++h) {
        hour_snapshot const snap = store.snapshot(h);
        ASSERT_EQ(snap.size(), key_count);
        for (std::size_t i = 0; i < snap.size(); ++i) {
            EXPECT_EQ(snap[i].counters.bytes_tx, thread_count * batches_per_thread);
            EXPECT_EQ(snap[i].counters.bytes_rx, rx_per_batch_round * batches_per_thread);
        }
    }
    EXPECT_EQ(store.saturated_adds(), 0U);
}

TEST(FlowStoreConcurrencyTest, ThreadsAddingDistinctNewKeysCountEachOnce) {
    flow_store store{store_options{16, 1'000'000}};
    constexpr std::size_t batches_per_thread = 200;

    run_threads(thread_count, [&](std::size_t t) {
        for (std::size_t b = 0; b < batches_per_thread; ++b) {
            flow_batch batch;
            // Every thread shares key b and adds one of its own.
            batch.add(key_name(b), "shared", "vpc", 1, {1, 1}, 0);
            batch.add(key_name(b), "thread-" + std::to_string(t), "vpc", 1, {1, 1}, 1);
            EXPECT_TRUE(apply(store, batch));
        }
    });

    EXPECT_EQ(store.key_count(), batches_per_thread * (thread_count + 1));
    EXPECT_EQ(store.snapshot(1).size(), batches_per_thread * (thread_count + 1));
}

TEST(FlowStoreConcurrencyTest, SnapshotNeverSeesPartOfABatch) {
    flow_store store{store_options{64, 1'000'000}};
    constexpr std::size_t writers = 4;
    constexpr std::size_t batches_per_writer = 1500;
    // Eight keys of one hour: with 64 shards they spread over several shards, so a
    // snapshot copying shard by shard would catch a batch half applied.
    constexpr std::size_t keys_per_batch = 8;
    constexpr std::uint32_t hour = 7;
    std::atomic<std::size_t> writers_done{0};
    std::atomic<std::size_t> torn{0};
    std::atomic<std::size_t> snapshots{0};

    std::thread reader([&] {
        while (writers_done.load() < writers) {
            hour_snapshot const snap = store.snapshot(hour);
            ++snapshots;
            if (snap.size() != 0 && snap.size() != keys_per_batch) {
                torn.fetch_add(1);
                continue;
            }
            for (std::size_t i = 0; i < snap.size(); ++i) {
                if (snap[i].counters.bytes_tx != snap[0].counters.bytes_tx ||
                    snap[i].counters.bytes_rx != 2 * snap[i].counters.bytes_tx) {
                    torn.fetch_add(1);
                    break;
                }
            }
        }
    });
    run_threads(writers, [&](std::size_t) {
        for (std::size_t b = 0; b < batches_per_writer; ++b) {
            if (b == batches_per_writer / 2) {
                wait_for_reads(snapshots);
            }
            flow_batch batch;
            for (std::size_t k = 0; k < keys_per_batch; ++k) {
                batch.add(key_name(k), "dest", "vpc", hour, {1, 2}, k);
            }
            EXPECT_TRUE(apply(store, batch));
        }
        writers_done.fetch_add(1);
    });
    reader.join();

    EXPECT_EQ(torn.load(), 0U);
    EXPECT_GT(snapshots.load(), 0U);
    hour_snapshot const final_snap = store.snapshot(hour);
    ASSERT_EQ(final_snap.size(), keys_per_batch);
    for (std::size_t i = 0; i < final_snap.size(); ++i) {
        EXPECT_EQ(final_snap[i].counters,
                  (flow_counters{writers * batches_per_writer, 2 * writers * batches_per_writer}));
    }
}

TEST(FlowStoreConcurrencyTest, RangeCopyNeverSeesPartOfABatch) {
    flow_store store{store_options{64, 1'000'000}};
    constexpr std::size_t writers = 4;
    constexpr std::size_t batches_per_writer = 1000;
    // Each batch touches four keys in each of three hours: a range copy or hour totals
    // read hour by hour, or shard by shard, would catch one half applied.
    constexpr std::size_t keys_per_hour = 4;
    constexpr std::uint32_t hours = 3;
    std::atomic<std::size_t> writers_done{0};
    std::atomic<std::size_t> torn{0};
    std::atomic<std::size_t> copies{0};

    std::thread reader([&] {
        while (writers_done.load() < writers) {
            std::vector<flow_store::exported_key> rows;
            std::vector<hour_stat> const stats = store.copy_range(
                10, 10 + hours, 1'000'000, [](app_key const&) { return true; }, rows);
            ++copies;
            if (rows.empty()) {
                continue;
            }
            if (rows.size() != keys_per_hour * hours || stats.size() != hours) {
                torn.fetch_add(1);
                continue;
            }
            for (auto const& r : rows) {
                if (r.counters.bytes_tx != rows[0].counters.bytes_tx) {
                    torn.fetch_add(1);
                    break;
                }
            }
            for (hour_stat const& h : stats) {
                if (h.bytes_tx != stats[0].bytes_tx || h.keys != keys_per_hour ||
                    h.bytes_tx != uint128{rows[0].counters.bytes_tx} * keys_per_hour) {
                    torn.fetch_add(1);
                    break;
                }
            }
        }
    });
    run_threads(writers, [&](std::size_t) {
        for (std::size_t b = 0; b < batches_per_writer; ++b) {
            if (b == batches_per_writer / 2) {
                wait_for_reads(copies);
            }
            flow_batch batch;
            for (std::uint32_t h = 0; h < hours; ++h) {
                for (std::size_t k = 0; k < keys_per_hour; ++k) {
                    batch.add(key_name(k), "dest", "vpc", 10 + h, {1, 2}, k);
                }
            }
            EXPECT_TRUE(apply(store, batch));
        }
        writers_done.fetch_add(1);
    });
    reader.join();

    EXPECT_EQ(torn.load(), 0U);
    EXPECT_GT(copies.load(), 0U);
    std::vector<hour_stat> const stats = store.hour_stats(0, 100);
    ASSERT_EQ(stats.size(), hours);
    EXPECT_EQ(stats[0].bytes_rx, uint128{2} * writers * batches_per_writer * keys_per_hour);
}

// Batches that create keys while a range is copied: a copy that missed a row created
// after its shard was copied, or added a change twice, breaks "rows of an hour = 1 + the
// common key's count".
TEST(FlowStoreConcurrencyTest, RangeCopyFoldsInRowsCreatedDuringTheCopy) {
    flow_store store{store_options{64, 10'000'000}};
    constexpr std::size_t writers = 4;
    constexpr std::size_t batches_per_writer = 1500;
    constexpr std::uint32_t hours = 3;
    std::atomic<std::size_t> writers_done{0};
    std::atomic<std::size_t> torn{0};
    std::atomic<std::size_t> copies{0};

    std::thread reader([&] {
        while (writers_done.load() < writers) {
            std::vector<flow_store::exported_key> rows;
            std::vector<hour_stat> const stats = store.copy_range(
                20, 20 + hours, 10'000'000, [](app_key const&) { return true; }, rows);
            ++copies;
            std::vector<std::uint64_t> per_hour(hours, 0);
            std::vector<std::uint64_t> common(hours, 0);
            for (auto const& r : rows) {
                ++per_hour.at(r.hour - 20);
                if (store.name(r.key.src) == "common") {
                    common.at(r.hour - 20) = r.counters.bytes_tx;
                }
            }
            for (std::uint32_t h = 0; h < hours; ++h) {
                bool const empty = per_hour[h] == 0 && common[h] == 0;
                if (!empty && (per_hour[h] != common[h] + 1 || common[h] != common[0])) {
                    torn.fetch_add(1);
                }
                if (!empty && (h >= stats.size() || stats[h].keys != per_hour[h])) {
                    torn.fetch_add(1);
                }
            }
        }
    });
    run_threads(writers, [&](std::size_t w) {
        for (std::size_t b = 0; b < batches_per_writer; ++b) {
            if (b == batches_per_writer / 2) {
                wait_for_reads(copies);
            }
            flow_batch batch;
            std::size_t record = 0;
            std::string const fresh = "w" + std::to_string(w) + "-" + std::to_string(b);
            for (std::uint32_t h = 0; h < hours; ++h) {
                batch.add("common", "dest", "vpc", 20 + h, {1, 0}, record++);
                batch.add(fresh, "dest", "vpc", 20 + h, {1, 0}, record++);
            }
            EXPECT_TRUE(apply(store, batch));
        }
        writers_done.fetch_add(1);
    });
    reader.join();

    EXPECT_EQ(torn.load(), 0U);
    EXPECT_GT(copies.load(), 0U);
}

// visit_range() sums as batches land: every batch adds 1 to a common key and creates a
// key with 1, in three hours. At one instant each hour sums to twice the common key, and
// the hours agree: a change missed or counted twice breaks that.
TEST(FlowStoreConcurrencyTest, RangeVisitSumsAsAtOneInstant) {
    flow_store store{store_options{64, 10'000'000}};
    constexpr std::size_t writers = 4;
    constexpr std::size_t batches_per_writer = 1500;
    std::atomic<std::size_t> writers_done{0};
    std::atomic<std::size_t> torn{0};
    std::atomic<std::size_t> visits{0};
    flow_batch first;  // names the common key before the reader looks its id up
    for (std::uint32_t h = 50; h < 53; ++h) {
        first.add("common", "dest", "vpc", h, {0, 0}, h - 50);
    }
    ASSERT_TRUE(apply(store, first));
    auto const common_id = store.names().find("common");

    std::thread reader([&] {
        while (writers_done.load() < writers) {
            std::array<std::uint64_t, 3> all{};
            std::array<std::uint64_t, 3> common{};
            auto const stats = store.visit_range(
                50, 53, 10'000'000, [](app_key const&) { return true; },
                [&](app_key const& k, std::uint32_t hour, flow_counters const& c) {
                    all.at(hour - 50) += c.bytes_tx;
                    if (k.src == common_id) {
                        common.at(hour - 50) += c.bytes_tx;
                    }
                });
            if (!stats) {
                continue;  // only retention makes it give up, and none runs here
            }
            ++visits;
            for (std::size_t h = 0; h < 3; ++h) {
                if (all[h] != 2 * common[h] || all[h] != all[0]) {
                    torn.fetch_add(1);
                }
                if (!stats->empty() && (h >= stats->size() || stats->at(h).bytes_tx != all[h])) {
                    torn.fetch_add(1);
                }
            }
        }
    });
    run_threads(writers, [&](std::size_t w) {
        for (std::size_t b = 0; b < batches_per_writer; ++b) {
            if (b == batches_per_writer / 2) {
                wait_for_reads(visits);
            }
            flow_batch batch;
            std::size_t record = 0;
            std::string const fresh = "v" + std::to_string(w) + "-" + std::to_string(b);
            for (std::uint32_t h = 50; h < 53; ++h) {
                batch.add("common", "dest", "vpc", h, {1, 0}, record++);
                batch.add(fresh, "dest", "vpc", h, {1, 0}, record++);
            }
            EXPECT_TRUE(apply(store, batch));
        }
        writers_done.fetch_add(1);
    });
    reader.join();

    EXPECT_EQ(torn.load(), 0U);
    EXPECT_GT(visits.load(), 0U);
}

// Retention dropping an hour while it is copied: a copy must not keep rows of a table
// dropped after its shard was copied, nor add the recreated table's counts to them.
// (Retention runs beside batches, not between them, so the writer drops between its own
// batches, as flowd does: writes to an hour stop before retention drops it.)
TEST(FlowStoreConcurrencyTest, RangeCopySeesRetentionAtOneInstant) {
    flow_store store{store_options{64, 10'000'000}};
    constexpr std::size_t rounds = 300;
    constexpr std::size_t batches_per_round = 20;
    constexpr std::size_t keys = 8;
    std::atomic<bool> done{false};
    std::atomic<std::size_t> torn{0};
    std::atomic<std::size_t> copies{0};

    std::thread reader([&] {
        while (!done.load()) {
            std::vector<flow_store::exported_key> rows;
            (void)store.copy_range(
                30, 33, 10'000'000, [](app_key const&) { return true; }, rows);
            ++copies;
            // Each batch adds 1 to every key of hours 30..32, and hour 30 is dropped every
            // round: at any instant between batches hours 31 and 32 hold `keys` rows of one
            // value v, and hour 30 none or `keys` rows of one value w <= v.
            std::array<std::vector<std::uint64_t>, 3> seen;
            for (auto const& r : rows) {
                seen.at(r.hour - 30).push_back(r.counters.bytes_tx);
            }
            auto const uniform = [&](std::vector<std::uint64_t> const& v) {
                return v.size() == keys &&
                       std::all_of(v.begin(), v.end(), [&](std::uint64_t x) { return x == v[0]; });
            };
            if (rows.empty()) {
                continue;
            }
            bool const ok = uniform(seen[1]) && uniform(seen[2]) && seen[1][0] == seen[2][0] &&
                            (seen[0].empty() || (uniform(seen[0]) && seen[0][0] <= seen[1][0]));
            if (!ok) {
                torn.fetch_add(1);
            }
        }
    });
    for (std::size_t r = 0; r < rounds; ++r) {
        if (r == rounds / 2) {
            wait_for_reads(copies);
        }
        for (std::size_t b = 0; b < batches_per_round; ++b) {
            flow_batch batch;
            std::size_t record = 0;
            for (std::uint32_t h = 30; h < 33; ++h) {
                for (std::size_t k = 0; k < keys; ++k) {
                    batch.add(key_name(k), "dest", "vpc", h, {1, 0}, record++);
                }
            }
            EXPECT_TRUE(apply(store, batch));
        }
        EXPECT_EQ(store.drop_hours_before(31), 1U);
    }
    done.store(true);
    reader.join();

    EXPECT_EQ(torn.load(), 0U);
    EXPECT_GT(copies.load(), 0U);
}

// A long range copy must not hold writers for the whole scan: while it is stopped inside
// `keep` (one shard's mutex held), batches on other shards commit. Eight one-key batches
// on eight threads: all eight landing in the one held shard has odds of 64^-8.
TEST(FlowStoreConcurrencyTest, WritersCommitWhileARangeIsCopied) {
    flow_store store{store_options{64, 1'000'000}};
    flow_batch seed;
    seed.add("seed", "dest", "vpc", 40, {1, 1}, 0);
    ASSERT_TRUE(apply(store, seed));

    std::atomic<std::size_t> committed{0};
    std::vector<std::thread> writers;
    std::atomic<bool> started{false};
    bool some_committed = false;
    std::vector<flow_store::exported_key> rows;
    (void)store.copy_range(
        40, 42, 1'000'000,
        [&](app_key const&) {
            if (started.exchange(true)) {
                return true;
            }
            for (std::size_t w = 0; w < 8; ++w) {
                writers.emplace_back([&store, &committed, w] {
                    flow_batch b;
                    b.add("writer-" + std::to_string(w), "dest", "vpc", 41, {1, 1}, 0);
                    EXPECT_TRUE(apply(store, b));
                    committed.fetch_add(1);
                });
            }
            auto const until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
            while (committed.load() == 0 && std::chrono::steady_clock::now() < until) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            some_committed = committed.load() > 0;
            return true;
        },
        rows);
    for (std::thread& t : writers) {
        t.join();
    }
    EXPECT_TRUE(some_committed) << "no batch could commit while a range copy ran";
    EXPECT_EQ(store.hour_stats(41, 42).at(0).keys, 8U);
}

TEST(FlowStoreConcurrencyTest, ConcurrentReservationsNeverPassMaxKeys) {
    constexpr std::uint64_t max_keys = 100;
    flow_store store{store_options{16, max_keys}};
    constexpr std::size_t attempts_per_thread = 50;
    std::atomic<std::size_t> accepted{0};

    run_threads(thread_count, [&](std::size_t t) {
        for (std::size_t a = 0; a < attempts_per_thread; ++a) {
            flow_batch batch;
            batch.add(key_name(t), key_name(a), "vpc", 1, {1, 1}, 0);
            auto prepared = store.prepare(batch);
            EXPECT_LE(store.key_count(), max_keys);
            if (std::holds_alternative<prepared_batch>(prepared)) {
                store.commit(std::get<prepared_batch>(std::move(prepared)));
                accepted.fetch_add(1);
            }
        }
    });

    EXPECT_EQ(accepted.load(), max_keys);
    EXPECT_EQ(store.key_count(), max_keys);
    EXPECT_EQ(store.snapshot(1).size(), max_keys);
}

TEST(FlowStoreConcurrencyTest, ReservationsOfOldKeysNeverPassMaxKeysNorHoldBackHalfOfIt) {
    // Batches of old keys reserve keys they never insert while the store is under half
    // full; batches of new keys race them up to max_keys.
    constexpr std::uint64_t max_keys = 100;
    flow_store store{store_options{16, max_keys}};
    flow_batch old_keys;
    for (std::size_t k = 0; k < 10; ++k) {
        old_keys.add(key_name(k), "old", "vpc", 1, {1, 1}, k);
    }
    ASSERT_TRUE(apply(store, old_keys));
    constexpr std::size_t attempts_per_thread = 60;
    std::atomic<std::size_t> old_refused{0};

    run_threads(thread_count, [&](std::size_t t) {
        for (std::size_t a = 0; a < attempts_per_thread; ++a) {
            flow_batch batch;
            if (t % 2 == 0) {
                batch = old_keys;
            } else {
                batch.add(key_name(t), key_name(a), "vpc", 1, {1, 1}, 0);
            }
            auto prepared = store.prepare(batch);
            EXPECT_LE(store.key_count(), max_keys);
            if (std::holds_alternative<prepared_batch>(prepared)) {
                store.commit(std::get<prepared_batch>(std::move(prepared)));
            } else if (t % 2 == 0) {
                old_refused.fetch_add(1);
            }
        }
    });

    EXPECT_EQ(old_refused.load(), 0U);
    std::size_t const present = store.snapshot(1).size();
    EXPECT_EQ(store.key_count(), present);
    EXPECT_GE(present, max_keys / 2);
    EXPECT_LE(present, max_keys);
    EXPECT_EQ(store.saturated_adds(), 0U);
}

}  // namespace
}  // namespace flowd
