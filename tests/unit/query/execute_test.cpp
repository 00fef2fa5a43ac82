#include "flowd/query/execute.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "flowd/codec/flow_json.hpp"
#include "flowd/codec/json_writer.hpp"

namespace flowd {
namespace {

struct rec {
    std::string src, dest, vpc;
    std::uint32_t hour;
    std::uint64_t tx, rx;
};

void load(flow_store& store, std::vector<rec> const& records) {
    flow_batch batch;
    std::size_t i = 0;
    for (rec const& r : records) {
        ASSERT_EQ(batch.add(r.src, r.dest, r.vpc, r.hour, flow_counters{r.tx, r.rx}, i++),
                  flow_batch::add_status::ok);
    }
    store.replay(batch);
}

std::vector<rec> seed_records() {
    return {{"foo", "bar", "vpc-0", 1, 100, 300},
            {"foo", "bar", "vpc-0", 1, 200, 600},
            {"baz", "qux", "vpc-0", 1, 100, 500},
            {"baz", "qux", "vpc-0", 2, 100, 500},
            {"baz", "qux", "vpc-1", 2, 100, 500}};
}

// The whole answer of `query` on `route`, in `format`; empty and a failure when refused.
std::string answer(flow_store const& store, query_route route, std::string_view query,
                   answer_format format = answer_format::json, query_limits limits = {}) {
    auto plan = parse_query_plan(route, query, limits);
    if (!plan) {
        ADD_FAILURE() << query << ": " << plan.error().detail;
        return {};
    }
    auto a = execute_query(store, *plan, format, limits);
    if (!a) {
        ADD_FAILURE() << query << ": " << a.error().detail;
        return {};
    }
    answer_writer w(std::move(*a));
    std::string out;
    // Small pieces, as a streamed answer is written.
    while (!w.write(out, out.size() + 100)) {
    }
    return out;
}

// Retention dropping an hour of the range while a summary sums it makes the executor start
// again from a copy: what it had summed must be forgotten, names' array slots included.
// Every key adds 1 to each of hours 10..12 and hour 10 is dropped and written back whole,
// so a summary's total is 2N or 3N, never anything else.
TEST(QueryExecuteTest, SummaryStartsAgainWhenRetentionRunsDuringIt) {
    flow_store store{store_options{64, 1'000'000}};
    constexpr std::size_t keys = 20'000;
    auto hour_batch = [&](std::uint32_t hour) {
        flow_batch b;
        for (std::size_t k = 0; k < keys; ++k) {
            b.add("app-" + std::to_string(k % 500), "d-" + std::to_string(k), "v", hour, {1, 0}, k);
        }
        return b;
    };
    for (std::uint32_t h = 10; h < 13; ++h) {
        store.replay(hour_batch(h));
    }
    flow_batch const again = hour_batch(10);
    std::atomic<bool> done{false};
    std::thread retention([&] {
        while (!done.load()) {
            (void)store.drop_hours_before(11);
            store.replay(again);
        }
    });
    query_limits const limits{};
    std::size_t wrong = 0;
    for (int i = 0; i < 60; ++i) {
        auto plan =
            parse_query_plan(query_route::summary, "from=10&to=13&group_by=src_app&top=3", limits);
        ASSERT_TRUE(plan);
        auto a = execute_query(store, *plan, answer_format::json, limits);
        ASSERT_TRUE(a);
        if (a->total.bytes_tx != uint128{2 * keys} && a->total.bytes_tx != uint128{3 * keys}) {
            ++wrong;
        }
    }
    done.store(true);
    retention.join();
    EXPECT_EQ(wrong, 0U);
}

TEST(QueryExecuteTest, SpecSummaryExampleIsExact) {
    flow_store store;
    load(store, seed_records());

    EXPECT_EQ(answer(store, query_route::summary, "from=0&to=24&group_by=src_app&top=1"),
              R"({"from":0,"to":24,"group_by":["src_app"],"order_by":"bytes",)"
              R"("top":[{"src_app":"baz","bytes_tx":300,"bytes_rx":1500}],)"
              R"("other":{"groups":1,"bytes_tx":300,"bytes_rx":900},)"
              R"("total":{"groups":2,"bytes_tx":600,"bytes_rx":2400}})");
}

TEST(QueryExecuteTest, SeedHourAnswersAsBefore) {
    flow_store store;
    load(store, seed_records());

    EXPECT_EQ(
        answer(store, query_route::flows, "from=1&to=2"),
        R"([{"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":1},)"
        R"({"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":300,"bytes_rx":900,"hour":1}])");
    EXPECT_EQ(answer(store, query_route::flows, "hour=3"), "[]");
}

TEST(QueryExecuteTest, SummarySeriesAndCsv) {
    flow_store store;
    load(store, seed_records());

    EXPECT_EQ(answer(store, query_route::summary, "from=1&to=3&group_by=vpc_id&top=1&series=hour"),
              R"({"from":1,"to":3,"group_by":["vpc_id"],"order_by":"bytes","hours":[1,2],)"
              R"("top":[{"vpc_id":"vpc-0","bytes_tx":500,"bytes_rx":1900,)"
              R"("bytes_tx_by_hour":[400,100],"bytes_rx_by_hour":[1400,500]}],)"
              R"("other":{"groups":1,"bytes_tx":100,"bytes_rx":500,)"
              R"("bytes_tx_by_hour":[0,100],"bytes_rx_by_hour":[0,500]},)"
              R"("total":{"groups":2,"bytes_tx":600,"bytes_rx":2400,)"
              R"("bytes_tx_by_hour":[400,200],"bytes_rx_by_hour":[1400,1000]}})");
    EXPECT_EQ(answer(store, query_route::summary, "from=0&to=24&group_by=src_app&top=1",
                     answer_format::csv),
              "rank,src_app,bytes_tx,bytes_rx\r\n1,baz,300,1500\r\nother,,300,900\r\n"
              "total,,600,2400\r\n");
}

// Grouped by two fields, rows are looked up a few rows after they arrive (the lookups
// overlap): with thousands of groups and rows far more than that queue, every row must
// still land in its group, in order of first sight, and the last rows too.
TEST(QueryExecuteTest, ManyGroupsOfTwoFieldsSumExactly) {
    flow_store store;
    std::vector<rec> records;
    std::map<std::pair<std::string, std::string>, std::uint64_t> expected;
    std::uint64_t total = 0;
    for (std::uint32_t hour = 0; hour < 3; ++hour) {
        for (std::uint64_t i = 0; i < 3001; ++i) {
            std::string const src = "s" + std::to_string(i % 97);
            std::string const dest = "d" + std::to_string(i % 89);
            std::uint64_t const tx = 1 + (i * 7 + hour) % 1000;
            records.push_back({src, dest, "v" + std::to_string(i % 3), hour, tx, 0});
            expected[{src, dest}] += tx;
            total += tx;
        }
    }
    load(store, records);
    std::string const got =
        answer(store, query_route::summary, "from=0&to=3&group_by=src_app,dest_app&top=1");
    auto const best =
        std::max_element(expected.begin(), expected.end(),
                         [](auto const& a, auto const& b) { return a.second < b.second; });
    EXPECT_NE(got.find("\"total\":{\"groups\":" + std::to_string(expected.size()) +
                       ",\"bytes_tx\":" + std::to_string(total) + ","),
              std::string::npos)
        << got;
    EXPECT_NE(got.find("\"bytes_tx\":" + std::to_string(best->second) + ","), std::string::npos)
        << got;
}

// series=hour over thousands of groups of two fields, with sums past 2^64 in some: the top
// rows, `other` and `total`, each with its hours, equal a naive computation over the records.
TEST(QueryExecuteTest, SeriesWithTopAndOtherOverManyGroupsMatchesNaive) {
    flow_store store;
    std::mt19937_64 rng{16};
    constexpr std::uint32_t from = 3;
    constexpr std::uint32_t hours = 6;
    constexpr std::size_t top = 7;
    std::uint64_t const big = 9223372036854775807ULL;  // 2^63-1
    struct sums {
        uint128 tx = 0;
        uint128 rx = 0;
        std::vector<uint128> tx_h = std::vector<uint128>(hours, 0);
        std::vector<uint128> rx_h = std::vector<uint128>(hours, 0);
    };
    std::map<std::pair<std::string, std::string>, sums> naive;
    std::vector<rec> records;
    for (std::uint32_t h = from - 1; h < from + hours + 1; ++h) {
        for (std::size_t i = 0; i < 6000; ++i) {
            std::size_t const g = rng() % 4000;
            std::string const src = "s" + std::to_string(g % 61);
            std::string const dest = "d" + std::to_string(g);
            // A few groups get sums past 2^64 (tx) or near it (rx).
            bool const huge = g % 500 == 7;
            std::uint64_t const tx = huge ? big - rng() % 1000 : rng() % 100000;
            std::uint64_t const rx = huge ? big / 3 : rng() % 100000;
            // A vpc per record: no key repeats within the batch, so no sum there passes 2^63-1.
            records.push_back({src, dest, "v" + std::to_string(i), h, tx, rx});
            if (h >= from && h < from + hours) {
                sums& s = naive[{src, dest}];
                s.tx += tx;
                s.rx += rx;
                s.tx_h[h - from] += tx;
                s.rx_h[h - from] += rx;
            }
        }
    }
    load(store, records);
    std::vector<std::pair<std::pair<std::string, std::string>, sums>> ranked(naive.begin(),
                                                                             naive.end());
    std::stable_sort(ranked.begin(), ranked.end(), [](auto const& a, auto const& b) {
        return a.second.tx + a.second.rx > b.second.tx + b.second.rx;
    });
    sums other;
    sums total;
    for (std::size_t i = 0; i < ranked.size(); ++i) {
        for (sums* s : {&total, i < top ? nullptr : &other}) {
            if (s == nullptr) {
                continue;
            }
            s->tx += ranked[i].second.tx;
            s->rx += ranked[i].second.rx;
            for (std::size_t h = 0; h < hours; ++h) {
                s->tx_h[h] += ranked[i].second.tx_h[h];
                s->rx_h[h] += ranked[i].second.rx_h[h];
            }
        }
    }
    query_limits const limits{};
    auto plan = parse_query_plan(query_route::summary,
                                 "from=3&to=9&group_by=src_app,dest_app&top=7&series=hour", limits);
    ASSERT_TRUE(plan);

    auto a = execute_query(store, *plan, answer_format::json, limits);

    ASSERT_TRUE(a);
    auto line = [&](std::size_t n) {
        std::vector<uint128> tx(
            a->series_tx.begin() + static_cast<std::ptrdiff_t>(n * hours),
            a->series_tx.begin() + static_cast<std::ptrdiff_t>(n * hours + hours));
        std::vector<uint128> rx(
            a->series_rx.begin() + static_cast<std::ptrdiff_t>(n * hours),
            a->series_rx.begin() + static_cast<std::ptrdiff_t>(n * hours + hours));
        return std::pair{tx, rx};
    };
    ASSERT_EQ(a->rows.size(), top);
    ASSERT_EQ(a->series_tx.size(), (top + 2) * hours);
    for (std::size_t i = 0; i < top; ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(store.name(a->rows[i].field[0]), ranked[i].first.first);
        EXPECT_EQ(store.name(a->rows[i].field[1]), ranked[i].first.second);
        EXPECT_EQ(a->rows[i].bytes_tx, ranked[i].second.tx);
        EXPECT_EQ(a->rows[i].bytes_rx, ranked[i].second.rx);
        EXPECT_EQ(line(i), std::pair(ranked[i].second.tx_h, ranked[i].second.rx_h));
    }
    EXPECT_EQ(a->other_groups, ranked.size() - top);
    EXPECT_EQ(a->other.bytes_tx, other.tx);
    EXPECT_EQ(a->other.bytes_rx, other.rx);
    EXPECT_EQ(line(top), std::pair(other.tx_h, other.rx_h));
    EXPECT_EQ(a->total_groups, ranked.size());
    EXPECT_EQ(a->total.bytes_tx, total.tx);
    EXPECT_EQ(a->total.bytes_rx, total.rx);
    EXPECT_EQ(line(top + 1), std::pair(total.tx_h, total.rx_h));
    EXPECT_GT(total.tx, uint128{1} << 64);
}

// A series is summed by a second visit of the range: batches applied meanwhile must never
// show, so each line's hours add up to its sums and the top rows' and other's to the total.
TEST(QueryExecuteTest, SeriesIsOneInstantWhileBatchesApply) {
    flow_store store{store_options{64, 1'000'000}};
    auto hour_batch = [](std::uint32_t hour, std::size_t keys) {
        flow_batch b;
        for (std::size_t k = 0; k < keys; ++k) {
            b.add("s" + std::to_string(k % 40), "d" + std::to_string(k % 300), "v", hour,
                  {1 + k % 7, 1}, k);
        }
        return b;
    };
    for (std::uint32_t h = 0; h < 4; ++h) {
        store.replay(hour_batch(h, 20'000));
    }
    std::vector<flow_batch> batches;
    for (std::uint32_t h = 0; h < 4; ++h) {
        batches.push_back(hour_batch(h, 50));
    }
    std::atomic<bool> done{false};
    std::thread writer([&] {
        for (std::size_t i = 0; !done.load(); ++i) {
            store.replay(batches[i % batches.size()]);
        }
    });
    query_limits const limits{};
    auto plan = parse_query_plan(query_route::summary,
                                 "from=0&to=4&group_by=src_app,dest_app&top=5&series=hour", limits);
    ASSERT_TRUE(plan);
    std::size_t wrong = 0;
    for (int i = 0; i < 40; ++i) {
        auto a = execute_query(store, *plan, answer_format::json, limits);
        ASSERT_TRUE(a);
        std::vector<answer_row> lines = a->rows;
        lines.push_back(a->other);
        lines.push_back(a->total);
        uint128 tops = 0;
        for (std::size_t n = 0; n < lines.size(); ++n) {
            uint128 tx = 0;
            for (std::size_t h = 0; h < 4; ++h) {
                tx += a->series_tx[n * 4 + h];
            }
            if (tx != lines[n].bytes_tx) {
                ++wrong;
            }
            tops += n + 1 < lines.size() ? lines[n].bytes_tx : 0;
        }
        if (tops != a->total.bytes_tx) {
            ++wrong;
        }
    }
    done.store(true);
    writer.join();
    EXPECT_EQ(wrong, 0U);
}

TEST(QueryExecuteTest, HoursAreKeptAsBatchesApply) {
    flow_store store;
    load(store, seed_records());

    EXPECT_EQ(answer(store, query_route::hours, ""),
              R"([{"hour":1,"keys":2,"bytes_tx":400,"bytes_rx":1400,"sealed":false},)"
              R"({"hour":2,"keys":2,"bytes_tx":200,"bytes_rx":1000,"sealed":false}])");
    EXPECT_EQ(answer(store, query_route::hours, "hour=2"),
              R"([{"hour":2,"keys":2,"bytes_tx":200,"bytes_rx":1000,"sealed":false}])");
    store.drop_hours_before(2);
    EXPECT_EQ(answer(store, query_route::hours, "from=0&to=2"), "[]");
}

TEST(QueryExecuteTest, SumsPastTwoToThe63AreExact) {
    flow_store store;
    std::uint64_t const big = 9223372036854775807ULL;  // 2^63-1
    std::vector<rec> records;
    for (std::uint32_t h = 0; h < 4; ++h) {
        records.push_back({"a", "b", "v", h, big, 1});
    }
    load(store, records);

    EXPECT_EQ(answer(store, query_route::flows, "from=0&to=1&group_by=src_app"),
              R"([{"src_app":"a","bytes_tx":9223372036854775807,"bytes_rx":1}])");
    EXPECT_EQ(answer(store, query_route::flows, "from=0&to=2&group_by=src_app"),
              R"([{"src_app":"a","bytes_tx":18446744073709551614,"bytes_rx":2}])");
    EXPECT_EQ(answer(store, query_route::flows, "from=0&to=4&group_by=src_app"),
              R"([{"src_app":"a","bytes_tx":36893488147419103228,"bytes_rx":4}])");
}

TEST(QueryExecuteTest, DecimalWritingAtTheEdges) {
    EXPECT_EQ(to_decimal(0), "0");
    EXPECT_EQ(to_decimal(9223372036854775807ULL), "9223372036854775807");
    EXPECT_EQ(to_decimal(uint128{1} << 64), "18446744073709551616");
    EXPECT_EQ(to_decimal((uint128{1} << 64) - 1), "18446744073709551615");
    EXPECT_EQ(to_decimal(uint128{1} << 127), "170141183460469231731687303715884105728");
    EXPECT_EQ(to_decimal(~uint128{0}), "340282366920938463463374607431768211455");
}

TEST(QueryExecuteTest, CsvQuotingAndFormulaGuard) {
    auto cell = [](std::string_view s) {
        std::string out;
        append_csv_cell(out, s);
        return out;
    };
    EXPECT_EQ(cell("plain"), "plain");
    EXPECT_EQ(cell("a,b"), "\"a,b\"");
    EXPECT_EQ(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    EXPECT_EQ(cell("a\nb"), "\"a\nb\"");
    EXPECT_EQ(cell("a\rb"), "\"a\rb\"");
    EXPECT_EQ(cell("=1+1"), "'=1+1");
    EXPECT_EQ(cell("+1"), "'+1");
    EXPECT_EQ(cell("-1"), "'-1");
    EXPECT_EQ(cell("@x"), "'@x");
    EXPECT_EQ(cell("\tx"), "'\tx");
    EXPECT_EQ(cell("\rx"), "\"'\rx\"");
    EXPECT_EQ(cell("=a,b"), "\"'=a,b\"");
    EXPECT_EQ(cell("a=b"), "a=b");
}

TEST(QueryExecuteTest, RowsCsvAndNdjson) {
    flow_store store;
    load(store, {{"=cmd", "x,y", "v", 5, 1, 2}});

    EXPECT_EQ(answer(store, query_route::flows, "hour=5", answer_format::csv),
              "src_app,dest_app,vpc_id,bytes_tx,bytes_rx,hour\r\n'=cmd,\"x,y\",v,1,2,5\r\n");
    EXPECT_EQ(answer(store, query_route::flows, "hour=6", answer_format::csv),
              "src_app,dest_app,vpc_id,bytes_tx,bytes_rx,hour\r\n");
    EXPECT_EQ(answer(store, query_route::flows, "hour=5&group_by=hour", answer_format::ndjson),
              "{\"bytes_tx\":1,\"bytes_rx\":2,\"hour\":5}\n");
    EXPECT_EQ(answer(store, query_route::flows, "hour=6", answer_format::ndjson), "");
}

TEST(QueryExecuteTest, ScanAndGroupLimitsAreQueryTooLarge) {
    flow_store store;
    load(store, seed_records());
    query_limits limits;
    limits.max_query_scan_rows = 3;
    auto plan = parse_query_plan(query_route::flows, "from=0&to=24");
    ASSERT_TRUE(plan);

    auto scan = execute_query(store, *plan, answer_format::json, limits);
    ASSERT_FALSE(scan);
    EXPECT_EQ(scan.error().type, problem_type::query_too_large);
    EXPECT_NE(scan.error().detail.find("max_query_scan_rows (3)"), std::string::npos);

    limits = {};
    limits.max_query_groups = 2;
    auto grouped = parse_query_plan(query_route::flows, "from=0&to=24&order_by=bytes");
    ASSERT_TRUE(grouped);
    auto groups = execute_query(store, *grouped, answer_format::json, limits);
    ASSERT_FALSE(groups);
    EXPECT_NE(groups.error().detail.find("max_query_groups (2)"), std::string::npos);
    // The default grouping without an order is not bounded by groups.
    EXPECT_TRUE(execute_query(store, *plan, answer_format::json, limits));
}

TEST(QueryExecuteTest, EtagIsStableAndMovesWithTheData) {
    flow_store store;
    load(store, seed_records());
    auto plan = parse_query_plan(query_route::flows, "from=0&to=3");
    auto other_hours = parse_query_plan(query_route::flows, "from=0&to=2");
    ASSERT_TRUE(plan && other_hours);
    auto etag = [&](query_plan const& p, answer_format f = answer_format::json, bool gz = false,
                    std::uint64_t seed = 0) {
        return answer_etag(p, f, gz, store.hour_stats(p.from, p.to), 0, seed);
    };
    std::string const first = etag(*plan);

    EXPECT_EQ(first, etag(*plan));
    EXPECT_EQ(first.front(), '"');
    EXPECT_EQ(first.size(), 34U);
    EXPECT_NE(first, etag(*plan, answer_format::csv));
    EXPECT_NE(first, etag(*plan, answer_format::json, true));
    EXPECT_NE(first, etag(*plan, answer_format::json, false, 7));
    std::string const hours01 = etag(*other_hours);
    load(store, {{"new", "x", "v", 2, 0, 0}});  // a new key in hour 2
    EXPECT_NE(first, etag(*plan));
    EXPECT_EQ(hours01, etag(*other_hours));  // hour 2 is outside 0..1
    std::string const second = etag(*plan);
    load(store, {{"new", "x", "v", 2, 1, 0}});  // more bytes on a known key
    EXPECT_NE(second, etag(*plan));
    EXPECT_TRUE(etag_matches(first, first));
    EXPECT_TRUE(etag_matches("W/" + first, first));
    EXPECT_TRUE(etag_matches("\"x\", " + first, first));
    EXPECT_TRUE(etag_matches("*", first));
    EXPECT_FALSE(etag_matches("\"x\"", first));
}

// ---- Model-based property test: random data, random queries, a brute force to compare.

struct model_row {
    std::string src, dest, vpc;
    std::uint32_t hour;
    uint128 tx, rx;
};

std::string csv_cell(std::string const& s) {
    std::string c = s;
    if (!c.empty() && std::string("=+-@\t\r").find(c[0]) != std::string::npos) {
        c = "'" + c;
    }
    if (c.find_first_of(",\"\r\n") == std::string::npos) {
        return c;
    }
    std::string q = "\"";
    for (char ch : c) {
        q += ch;
        if (ch == '"') {
            q += '"';
        }
    }
    return q + "\"";
}

std::string json_str(std::string const& s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

TEST(QueryExecuteTest, RandomQueriesMatchABruteForce) {
    std::uint64_t const seed = std::random_device{}();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    std::vector<std::string> const names{"a",   "ab", "b", "web-1", "web-2",
                                         "x,y", "=f", "Z", "q\"t"};
    auto pick = [&](std::vector<std::string> const& v) { return v[rng() % v.size()]; };
    for (int round = 0; round < 40; ++round) {
        flow_store store;
        std::map<std::tuple<std::string, std::string, std::string, std::uint32_t>,
                 std::pair<uint128, uint128>>
            stored;
        std::vector<rec> records;
        std::size_t const n = 1 + rng() % 60;
        for (std::size_t i = 0; i < n; ++i) {
            rec r{pick(names),
                  pick(names),
                  pick({"v0", "v1", "v-2"}),
                  static_cast<std::uint32_t>(rng() % 12),
                  rng() % 1000,
                  rng() % 4 == 0 ? 9223372036854775807ULL / 8 : rng() % 1000};
            records.push_back(r);
            auto& s = stored[{r.src, r.dest, r.vpc, r.hour}];
            s.first += r.tx;
            s.second += r.rx;
        }
        load(store, records);
        for (int qn = 0; qn < 50; ++qn) {
            bool const summary = rng() % 3 == 0;
            std::uint32_t const from = static_cast<std::uint32_t>(rng() % 12);
            std::uint32_t const to = from + 1 + static_cast<std::uint32_t>(rng() % 6);
            std::string q = "from=" + std::to_string(from) + "&to=" + std::to_string(to);
            std::array<dimension_filter, 3> filters;
            std::array<std::string, 3> const dims{"src_app", "dest_app", "vpc_id"};
            for (std::size_t d = 0; d < 3; ++d) {
                if (rng() % 3 == 0) {
                    std::string const v = d == 2 ? pick({"v0", "v1"}) : pick(names);
                    std::string const kind =
                        std::vector<std::string>{"", "_prefix", "_exclude"}[rng() % 3];
                    std::string enc;
                    for (char c : v) {
                        char buf[4];
                        std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(c));
                        enc += buf;
                    }
                    q += "&" + dims[d] + kind + "=" + enc;
                    (kind.empty()        ? filters[d].equals
                     : kind == "_prefix" ? filters[d].prefixes
                                         : filters[d].excludes)
                        .push_back(v);
                }
            }
            std::vector<group_field> all{group_field::src_app, group_field::dest_app,
                                         group_field::vpc_id};
            if (!summary) {
                all.push_back(group_field::hour);
            }
            std::vector<group_field> group_by = all;
            bool const given = rng() % 2 == 0;
            if (given) {
                std::shuffle(group_by.begin(), group_by.end(), rng);
                group_by.resize(1 + rng() % group_by.size());
                std::string g;
                for (group_field f : group_by) {
                    g += (g.empty() ? "" : ",") + std::string(field_name(f));
                }
                q += "&group_by=" + g;
            }
            order_key order = summary ? order_key::bytes : order_key::none;
            if (rng() % 2 == 0) {
                order = static_cast<order_key>(1 + rng() % 3);
                q += "&order_by=" + std::string(order_name(order));
            }
            std::size_t limit = 1000000;
            if (!summary && rng() % 2 == 0) {
                limit = 1 + rng() % 5;
                q += "&limit=" + std::to_string(limit);
            }
            std::size_t top = 10;
            if (summary && rng() % 2 == 0) {
                top = 1 + rng() % 4;
                q += "&top=" + std::to_string(top);
            }
            bool const series = summary && rng() % 2 == 0;
            if (series) {
                q += "&series=hour";
            }
            SCOPED_TRACE(q);

            // Brute force.
            std::map<std::vector<std::string>, std::pair<uint128, uint128>> groups;
            // Per group, per hour of the range: tx then rx (series=hour).
            std::map<std::vector<std::string>, std::vector<uint128>> hourly;
            std::size_t const hours = to - from;
            for (auto const& [k, sums] : stored) {
                auto const& [src, dest, vpc, hour] = k;
                if (hour < from || hour >= to || !filters[0].passes(src) ||
                    !filters[1].passes(dest) || !filters[2].passes(vpc)) {
                    continue;
                }
                std::vector<std::string> key;
                for (group_field f : group_by) {
                    key.push_back(f == group_field::src_app    ? src
                                  : f == group_field::dest_app ? dest
                                  : f == group_field::vpc_id   ? vpc
                                                               : std::to_string(hour));
                }
                groups[key].first += sums.first;
                groups[key].second += sums.second;
                std::vector<uint128>& h = hourly[key];
                h.resize(2 * hours);
                h[hour - from] += sums.first;
                h[hours + hour - from] += sums.second;
            }
            struct grow {
                std::vector<std::string> key;
                uint128 tx, rx;
            };
            std::vector<grow> rows;
            for (auto const& [k, s] : groups) {
                rows.push_back({k, s.first, s.second});
            }
            auto metric = [&](grow const& r) {
                return order == order_key::bytes_tx   ? r.tx
                       : order == order_key::bytes_rx ? r.rx
                                                      : r.tx + r.rx;
            };
            std::stable_sort(rows.begin(), rows.end(), [&](grow const& a, grow const& b) {
                if (order != order_key::none && metric(a) != metric(b)) {
                    return metric(a) > metric(b);
                }
                for (std::size_t i = 0; i < group_by.size(); ++i) {
                    if (a.key[i] == b.key[i]) {
                        continue;
                    }
                    if (group_by[i] == group_field::hour) {
                        return std::stoul(a.key[i]) < std::stoul(b.key[i]);
                    }
                    return a.key[i] < b.key[i];
                }
                return false;
            });
            // Fields written in record order.
            auto value_of = [&](grow const& r, group_field f) -> std::string const* {
                for (std::size_t i = 0; i < group_by.size(); ++i) {
                    if (group_by[i] == f) {
                        return &r.key[i];
                    }
                }
                return nullptr;
            };
            auto json_row = [&](grow const& r) {
                std::string s = "{";
                for (group_field f :
                     {group_field::src_app, group_field::dest_app, group_field::vpc_id}) {
                    if (auto const* v = value_of(r, f)) {
                        s += "\"" + std::string(field_name(f)) + "\":" + json_str(*v) + ",";
                    }
                }
                s += "\"bytes_tx\":" + to_decimal(r.tx) + ",\"bytes_rx\":" + to_decimal(r.rx);
                if (auto const* v = value_of(r, group_field::hour)) {
                    s += ",\"hour\":" + *v;
                }
                return s + "}";
            };
            if (!summary) {
                if (rows.size() > limit) {
                    rows.resize(limit);
                }
                std::string json = "[";
                std::string ndjson;
                std::string csv;
                for (group_field f :
                     {group_field::src_app, group_field::dest_app, group_field::vpc_id}) {
                    if (std::find(group_by.begin(), group_by.end(), f) != group_by.end()) {
                        csv += std::string(field_name(f)) + ",";
                    }
                }
                csv += "bytes_tx,bytes_rx";
                bool const by_hour = std::find(group_by.begin(), group_by.end(),
                                               group_field::hour) != group_by.end();
                csv += by_hour ? ",hour\r\n" : "\r\n";
                for (std::size_t i = 0; i < rows.size(); ++i) {
                    json += (i == 0 ? "" : ",") + json_row(rows[i]);
                    ndjson += json_row(rows[i]) + "\n";
                    for (group_field f :
                         {group_field::src_app, group_field::dest_app, group_field::vpc_id}) {
                        if (auto const* v = value_of(rows[i], f)) {
                            csv += csv_cell(*v) + ",";
                        }
                    }
                    csv += to_decimal(rows[i].tx) + "," + to_decimal(rows[i].rx);
                    if (by_hour) {
                        csv += "," + *value_of(rows[i], group_field::hour);
                    }
                    csv += "\r\n";
                }
                json += "]";
                ASSERT_EQ(answer(store, query_route::flows, q, answer_format::json), json);
                ASSERT_EQ(answer(store, query_route::flows, q, answer_format::ndjson), ndjson);
                ASSERT_EQ(answer(store, query_route::flows, q, answer_format::csv), csv);
                continue;
            }
            uint128 ttx = 0;
            uint128 trx = 0;
            for (grow const& r : rows) {
                ttx += r.tx;
                trx += r.rx;
            }
            std::size_t const top_n = std::min(top, rows.size());
            uint128 otx = ttx;
            uint128 orx = trx;
            std::string json = "{\"from\":" + std::to_string(from) +
                               ",\"to\":" + std::to_string(to) + ",\"group_by\":[";
            for (std::size_t i = 0; i < group_by.size(); ++i) {
                json += (i == 0 ? "\"" : ",\"") + std::string(field_name(group_by[i])) + "\"";
            }
            json += "],\"order_by\":\"" + std::string(order_name(order)) + "\"";
            std::vector<uint128> total_h(2 * hours, 0);
            for (auto const& [k, h] : hourly) {
                for (std::size_t i = 0; i < 2 * hours; ++i) {
                    total_h[i] += h[i];
                }
            }
            std::vector<uint128> other_h = total_h;
            auto series_of = [&](std::vector<uint128> const& h) {
                std::string out;
                if (!series) {
                    return out;
                }
                for (std::size_t part = 0; part < 2; ++part) {
                    out += part == 0 ? ",\"bytes_tx_by_hour\":[" : ",\"bytes_rx_by_hour\":[";
                    for (std::size_t i = 0; i < hours; ++i) {
                        out += (i == 0 ? "" : ",") + to_decimal(h[part * hours + i]);
                    }
                    out += "]";
                }
                return out;
            };
            if (series) {
                json += ",\"hours\":[";
                for (std::size_t i = 0; i < hours; ++i) {
                    json += (i == 0 ? "" : ",") + std::to_string(from + i);
                }
                json += "]";
            }
            json += ",\"top\":[";
            std::string csv = "rank";
            for (group_field f :
                 {group_field::src_app, group_field::dest_app, group_field::vpc_id}) {
                if (std::find(group_by.begin(), group_by.end(), f) != group_by.end()) {
                    csv += "," + std::string(field_name(f));
                }
            }
            csv += ",bytes_tx,bytes_rx\r\n";
            std::string const blanks(group_by.size() + 1, ',');
            for (std::size_t i = 0; i < top_n; ++i) {
                std::string row = json_row(rows[i]);
                row.pop_back();
                json += (i == 0 ? "" : ",") + row + series_of(hourly[rows[i].key]) + "}";
                otx -= rows[i].tx;
                orx -= rows[i].rx;
                for (std::size_t j = 0; j < 2 * hours; ++j) {
                    other_h[j] -= hourly[rows[i].key][j];
                }
                csv += std::to_string(i + 1);
                for (group_field f :
                     {group_field::src_app, group_field::dest_app, group_field::vpc_id}) {
                    if (auto const* v = value_of(rows[i], f)) {
                        csv += "," + csv_cell(*v);
                    }
                }
                csv += "," + to_decimal(rows[i].tx) + "," + to_decimal(rows[i].rx) + "\r\n";
            }
            json += "],\"other\":{\"groups\":" + std::to_string(rows.size() - top_n) +
                    ",\"bytes_tx\":" + to_decimal(otx) + ",\"bytes_rx\":" + to_decimal(orx) +
                    series_of(other_h) + "},\"total\":{\"groups\":" + std::to_string(rows.size()) +
                    ",\"bytes_tx\":" + to_decimal(ttx) + ",\"bytes_rx\":" + to_decimal(trx) +
                    series_of(total_h) + "}}";
            csv += "other" + blanks + to_decimal(otx) + "," + to_decimal(orx) + "\r\n";
            csv += "total" + blanks + to_decimal(ttx) + "," + to_decimal(trx) + "\r\n";
            ASSERT_EQ(answer(store, query_route::summary, q, answer_format::json), json);
            ASSERT_EQ(answer(store, query_route::summary, q, answer_format::csv), csv);
        }
    }
}

}  // namespace
}  // namespace flowd
