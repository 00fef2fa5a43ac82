// Durability against the real binary: acknowledged batches survive SIGKILL, SIGTERM and
// restarts; batches are all-or-nothing across a crash; the log's failure modes.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include <signal.h>
#include <sys/resource.h>

#include "server_fixture.hpp"

namespace flowd::test {
namespace {

namespace fs = std::filesystem;
namespace http = boost::beast::http;
using nlohmann::json;

// Per key "src|dest|vpc" of one hour: (bytes_tx, bytes_rx).
using hour_totals = std::map<std::string, std::pair<std::uint64_t, std::uint64_t>>;

hour_totals get_hour(http_client& c, std::uint32_t hour) {
    auto const r = c.get("/flows?hour=" + std::to_string(hour));
    EXPECT_EQ(r.result_int(), 200U) << r.body();
    hour_totals out;
    for (auto const& rec : json::parse(r.body())) {
        out[rec["src_app"].get<std::string>() + "|" + rec["dest_app"].get<std::string>() + "|" +
            rec["vpc_id"].get<std::string>()] = {rec["bytes_tx"].get<std::uint64_t>(),
                                                 rec["bytes_rx"].get<std::uint64_t>()};
    }
    return out;
}

std::vector<std::string> with_dir(std::string const& dir, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"--data-dir", dir};
    args.insert(args.end(), more.begin(), more.end());
    return args;
}

TEST(DurabilityTest, SigkillRightAfterTheLastAnswerLosesNothing) {
    temp_dir data;
    std::map<std::uint32_t, hour_totals> expected;
    for (std::string fsync : {"interval", "always"}) {
        flowd_process flowd{with_dir(data.path()), {{"FLOWD_FSYNC", fsync}}};
        http_client c{flowd.port()};
        for (int i = 0; i < 20; ++i) {
            std::string body = "[";
            for (int k = 0; k < 5; ++k) {
                auto const hour = static_cast<std::uint32_t>(i % 3);
                std::string const src = "app-" + std::to_string(k);
                auto const tx = static_cast<std::uint64_t>(i * 7 + k);
                auto const rx = static_cast<std::uint64_t>(i + 3 * k);
                body += (k == 0 ? "" : ",") + flow_json(src, "db", "vpc-" + fsync, tx, rx, hour);
                auto& e = expected[hour][src + "|db|vpc-" + fsync];
                e.first += tx;
                e.second += rx;
            }
            body += "]";
            ASSERT_EQ(c.post("/flows", body).result_int(), 200U);
        }
        flowd.signal(SIGKILL);
        EXPECT_EQ(flowd.wait_exit(), 128 + SIGKILL);
    }
    flowd_process restarted{with_dir(data.path())};
    http_client c{restarted.port()};
    for (auto const& [hour, totals] : expected) {
        EXPECT_EQ(get_hour(c, hour), totals) << "hour " << hour;
    }
    EXPECT_TRUE(restarted.wait_log("log records replayed")) << restarted.log();
}

// Four writers, each batch three records of keys no other batch has; a SIGKILL at a random
// moment. Every acknowledged batch must be there whole; every batch is whole or absent.
TEST(DurabilityTest, RandomSigkillUnderConcurrentWritersKeepsBatchesWhole) {
    temp_dir data;
    std::mt19937 rng{20261128};
    struct sent {
        std::string src;
        bool acknowledged = false;
    };
    std::vector<sent> all;
    std::mutex all_mutex;
    for (int round = 0; round < 5; ++round) {
        flowd_process flowd{with_dir(data.path())};
        std::atomic<bool> stop{false};
        std::vector<std::thread> writers;
        for (int t = 0; t < 4; ++t) {
            writers.emplace_back([&, t] {
                try {
                    http_client c{flowd.port()};
                    for (int n = 0; n < 100'000 && !stop.load(); ++n) {
                        std::string const src = "r" + std::to_string(round) + "-t" +
                                                std::to_string(t) + "-b" + std::to_string(n);
                        std::size_t index = 0;
                        {
                            std::scoped_lock lock{all_mutex};
                            index = all.size();
                            all.push_back({src, false});
                        }
                        std::string const body = "[" + flow_json(src, "d0", "v", 1, 2, 7) + "," +
                                                 flow_json(src, "d1", "v", 3, 4, 7) + "," +
                                                 flow_json(src, "d2", "v", 5, 6, 7) + "]";
                        auto const r = c.post("/flows", body);
                        if (r.result_int() == 200U) {
                            std::scoped_lock lock{all_mutex};
                            all[index].acknowledged = true;
                        }
                    }
                } catch (std::exception const&) {
                    // The server died under us: expected.
                }
            });
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 400));
        flowd.signal(SIGKILL);
        (void)flowd.wait_exit();
        stop = true;
        for (auto& w : writers) {
            w.join();
        }
    }
    flowd_process restarted{with_dir(data.path())};
    http_client c{restarted.port()};
    hour_totals const stored = get_hour(c, 7);
    std::size_t acknowledged = 0;
    for (sent const& s : all) {
        int present = 0;
        for (int d = 0; d < 3; ++d) {
            auto it = stored.find(s.src + "|d" + std::to_string(d) + "|v");
            if (it != stored.end()) {
                ++present;
                auto const tx = static_cast<std::uint64_t>(2 * d + 1);
                EXPECT_EQ(it->second, (std::pair<std::uint64_t, std::uint64_t>{tx, tx + 1}))
                    << s.src;
            }
        }
        EXPECT_TRUE(present == 0 || present == 3) << s.src << ": " << present << " of 3 keys";
        if (s.acknowledged) {
            ++acknowledged;
            EXPECT_EQ(present, 3) << s.src << " was acknowledged";
        }
    }
    EXPECT_GT(acknowledged, 20U) << "the writers got batches in before each kill";
    std::printf("[ info ] %zu batches sent, %zu acknowledged, %zu keys stored\n", all.size(),
                acknowledged, stored.size());
}

TEST(DurabilityTest, SigtermUnderLoadExitsZeroAndKeepsEveryAcknowledgedBatch) {
    temp_dir data;
    std::atomic<std::uint64_t> acked_tx{0};
    std::atomic<bool> stop{false};
    {
        flowd_process flowd{with_dir(data.path())};
        std::vector<std::thread> writers;
        for (int t = 0; t < 4; ++t) {
            writers.emplace_back([&, t] {
                try {
                    http_client c{flowd.port()};
                    while (!stop.load()) {
                        auto const r = c.post(
                            "/flows",
                            "[" + flow_json("w" + std::to_string(t), "sink", "v", 10, 1, 3) + "]");
                        if (r.result_int() == 200U) {
                            acked_tx += 10;
                        }
                    }
                } catch (std::exception const&) {
                }
            });
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        flowd.signal(SIGTERM);
        EXPECT_EQ(flowd.wait_exit(), 0) << flowd.log();
        stop = true;
        for (auto& w : writers) {
            w.join();
        }
        EXPECT_NE(flowd.log().find("checkpoint"), std::string::npos) << flowd.log();
    }
    flowd_process restarted{with_dir(data.path())};
    http_client c{restarted.port()};
    std::uint64_t stored = 0;
    for (auto const& [key, v] : get_hour(c, 3)) {
        stored += v.first;
    }
    EXPECT_GT(acked_tx.load(), 0U);
    // A batch whose answer was lost in the shutdown may be stored without being counted here.
    EXPECT_GE(stored, acked_tx.load());
    EXPECT_LE(stored, acked_tx.load() + 4 * 10);
}

TEST(DurabilityTest, RestartAfterACheckpointPlusMoreLogIsExact) {
    temp_dir data;
    {
        flowd_process flowd{with_dir(data.path())};
        http_client c{flowd.port()};
        ASSERT_EQ(c.post("/flows", seed_batch()).result_int(), 200U);
        flowd.signal(SIGTERM);
        ASSERT_EQ(flowd.wait_exit(), 0);
    }
    {
        flowd_process flowd{with_dir(data.path())};
        EXPECT_TRUE(flowd.wait_log("snapshot-")) << flowd.log();
        http_client c{flowd.port()};
        ASSERT_EQ(c.post("/flows", seed_batch()).result_int(), 200U);
        flowd.signal(SIGKILL);
        (void)flowd.wait_exit();
    }
    flowd_process flowd{with_dir(data.path())};
    http_client c{flowd.port()};
    EXPECT_EQ(get_hour(c, 1),
              (hour_totals{{"baz|qux|vpc-0", {200, 1000}}, {"foo|bar|vpc-0", {600, 1800}}}));
    EXPECT_EQ(get_hour(c, 2),
              (hour_totals{{"baz|qux|vpc-0", {200, 1000}}, {"baz|qux|vpc-1", {200, 1000}}}));
    EXPECT_NE(flowd.log().find("1 log records replayed"), std::string::npos) << flowd.log();
    auto const m = parse_metrics(c.get("/metrics").body());
    EXPECT_EQ(metric_value(m, "flowd_flows_applied_total", {{"source", "replay"}}), 5.0);
    EXPECT_GT(metric_value(m, "flowd_recovery_duration_seconds").value_or(-1), 0.0);
}

TEST(DurabilityTest, PeriodicCheckpointWhileServingThenCrash) {
    temp_dir data;
    {
        flowd_process flowd{with_dir(data.path()), {{"FLOWD_CHECKPOINT_INTERVAL", "1s"}}};
        http_client c{flowd.port()};
        ASSERT_EQ(c.post("/flows", seed_batch()).result_int(), 200U);
        EXPECT_TRUE(flowd.wait_log("checkpoint snapshot-")) << flowd.log();
        auto const m = parse_metrics(c.get("/metrics").body());
        EXPECT_GT(metric_value(m, "flowd_checkpoint_last_success_timestamp_seconds").value_or(0),
                  1.7e9);
        EXPECT_EQ(metric_value(m, "flowd_checkpoint_duration_seconds_count"), 1.0);
        ASSERT_EQ(c.post("/flows", seed_batch()).result_int(), 200U);
        flowd.signal(SIGKILL);
        (void)flowd.wait_exit();
    }
    flowd_process flowd{with_dir(data.path())};
    http_client c{flowd.port()};
    EXPECT_NE(flowd.log().find("snapshot " + data.path() + "/snapshot-"), std::string::npos)
        << flowd.log();
    EXPECT_EQ(get_hour(c, 1),
              (hour_totals{{"baz|qux|vpc-0", {200, 1000}}, {"foo|bar|vpc-0", {600, 1800}}}));
}

TEST(DurabilityTest, OneFlowdPerDataDirectory) {
    temp_dir data;
    flowd_process first{with_dir(data.path())};
    auto const second = run_flowd(
        {"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir", data.path()});
    EXPECT_EQ(second.exit_code, 1);
    EXPECT_NE(second.err.find("in use by another flowd"), std::string::npos) << second.err;
    auto const file = run_flowd({"--data-dir", data.write("plain-file", "x")});
    EXPECT_EQ(file.exit_code, 2);
    EXPECT_NE(file.err.find("not a directory"), std::string::npos) << file.err;
}

TEST(DurabilityTest, CorruptLogBeforeTheSyncedOffsetStopsStartUpUntilTold) {
    temp_dir data;
    {
        // fsync always: the marker then says both records were synced.
        flowd_process flowd{with_dir(data.path()), {{"FLOWD_FSYNC", "always"}}};
        http_client c{flowd.port()};
        ASSERT_EQ(c.post("/flows", "[" + flow_json("a", "b", "c", 1, 1, 1) + "]").result_int(),
                  200U);
        ASSERT_EQ(c.post("/flows", "[" + flow_json("a", "b", "c", 2, 2, 1) + "]").result_int(),
                  200U);
        flowd.signal(SIGKILL);
        (void)flowd.wait_exit();
    }
    // The first record's payload; the marker says the whole segment was synced. The byte is
    // flipped, not set: it is part of the batch's acceptance time, any value on some runs.
    std::string const seg = data.path() + "/wal-0000000000000001.log";
    {
        std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(32 + 16 + 3);
        char const was = static_cast<char>(f.get());
        f.seekp(32 + 16 + 3);
        f.put(static_cast<char>(~was));
    }
    auto const refused = run_flowd(
        {"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir", data.path()});
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_NE(refused.err.find(seg + " at offset 32"), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find("--truncate-corrupt-log"), std::string::npos) << refused.err;
    // A start that fails never said it was listening.
    EXPECT_EQ(refused.err.find("http listening on"), std::string::npos) << refused.err;
    auto const cut = fs::file_size(seg) - 32;
    flowd_process flowd{with_dir(data.path(), {"--truncate-corrupt-log"})};
    http_client c{flowd.port()};
    EXPECT_EQ(get_hour(c, 1), hour_totals{}) << "nothing before the corrupt record survives";
    // The second record was valid: what was cut is kept, and the log says how much.
    EXPECT_EQ(fs::file_size(seg + ".discarded"), cut);
    EXPECT_NE(flowd.log().find("2 records (" + std::to_string(cut) + " bytes)"), std::string::npos)
        << flowd.log();
}

// A real write error: the file size limit (RLIMIT_FSIZE) makes the log's write fail with
// EFBIG, as a full disk would with ENOSPC.
TEST(DurabilityTest, LogWriteFailureAnswers503AndRecoversWhenWritableAgain) {
    temp_dir data;
    flowd_process flowd{with_dir(data.path()), {{"FLOWD_FSYNC", "always"}}};
    http_client c{flowd.port()};
    ASSERT_EQ(c.post("/flows", "[" + flow_json("a", "b", "c", 1, 1, 1) + "]").result_int(), 200U);
    // The soft limit only: lowering the hard one could not be undone without privileges.
    rlimit small{8192, RLIM_INFINITY};
    ASSERT_EQ(::prlimit(flowd.pid(), RLIMIT_FSIZE, &small, nullptr), 0);
    // Well over the limit in the log, whose records hold each name once: 400 rows of 32 bytes.
    std::string big = "[";
    for (int i = 0; i < 400; ++i) {
        big += (i == 0 ? "" : ",") + flow_json("src-" + std::to_string(i), "dest-padding-padding",
                                               "vpc-padding", 5, 5, 1);
    }
    big += "]";
    EXPECT_TRUE(is_problem(c.post("/flows", big), 503, "log-unavailable"));
    EXPECT_TRUE(is_problem(c.get("/readyz"), 503, "log-unavailable"));
    EXPECT_EQ(get_hour(c, 1), (hour_totals{{"a|b|c", {1, 1}}})) << "GET serves, nothing applied";
    rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
    ASSERT_EQ(::prlimit(flowd.pid(), RLIMIT_FSIZE, &unlimited, nullptr), 0);
    EXPECT_TRUE(eventually([&] { return c.get("/readyz").result_int() == 200U; }));
    ASSERT_EQ(c.post("/flows", big).result_int(), 200U);
    flowd.signal(SIGKILL);
    (void)flowd.wait_exit();
    EXPECT_NE(flowd.log().find("writable again"), std::string::npos) << flowd.log();

    flowd_process restarted{with_dir(data.path())};
    http_client c2{restarted.port()};
    auto const totals = get_hour(c2, 1);
    EXPECT_EQ(totals.size(), 401U);
    EXPECT_EQ(totals.at("a|b|c"), (std::pair<std::uint64_t, std::uint64_t>{1, 1}));
    EXPECT_EQ(totals.at("src-7|dest-padding-padding|vpc-padding"),
              (std::pair<std::uint64_t, std::uint64_t>{5, 5}))
        << "the refused batch was not applied, the retried one once";
}

TEST(DurabilityTest, IdempotencyKeyHoldsAcrossACrash) {
    temp_dir data;
    std::string const body = "[" + flow_json("a", "b", "c", 10, 20, 5) + "]";
    std::map<std::string, std::string> const key{{"Idempotency-Key", "batch-0001"}};
    {
        flowd_process flowd{with_dir(data.path())};
        http_client c{flowd.port()};
        auto const first = c.post("/flows", body, "application/json", key);
        ASSERT_EQ(first.result_int(), 200U);
        EXPECT_EQ(first.body(), "{\"accepted\":1}");
        EXPECT_EQ(c.post("/flows", body, "application/json", key).body(), "{\"accepted\":1}");
        EXPECT_TRUE(is_problem(c.post("/flows", "[" + flow_json("a", "b", "c", 1, 1, 5) + "]",
                                      "application/json", key),
                               422, "idempotency-key-reused"));
        auto const m = parse_metrics(c.get("/metrics").body());
        EXPECT_EQ(metric_value(m, "flowd_batches_total", {{"result", "duplicate"}}), 1.0);
        EXPECT_EQ(metric_value(m, "flowd_flows_ingested_total"), 1.0);
        flowd.signal(SIGKILL);
        (void)flowd.wait_exit();
    }
    flowd_process flowd{with_dir(data.path())};
    http_client c{flowd.port()};
    EXPECT_EQ(c.post("/flows", body, "application/json", key).body(), "{\"accepted\":1}");
    EXPECT_EQ(get_hour(c, 5), (hour_totals{{"a|b|c", {10, 20}}})) << "applied once";
    EXPECT_EQ(c.post("/flows", body, "application/json", {{"Idempotency-Key", "a b"}}).result_int(),
              400U);
}

std::uint32_t current_unix_hour() {
    return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::hours>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

TEST(DurabilityTest, RetentionRejectsOldHoursAndDropsThemAtRestart) {
    temp_dir data;
    std::uint32_t const now = current_unix_hour();
    {
        flowd_process flowd{with_dir(data.path())};
        http_client c{flowd.port()};
        ASSERT_EQ(c.post("/flows", "[" + flow_json("old", "b", "c", 1, 1, 1) + "," +
                                       flow_json("new", "b", "c", 2, 2, now) + "]")
                      .result_int(),
                  200U);
        flowd.signal(SIGTERM);
        ASSERT_EQ(flowd.wait_exit(), 0);
    }
    flowd_process flowd{with_dir(data.path()), {{"FLOWD_RETENTION_HOURS", "24"}}};
    http_client c{flowd.port()};
    EXPECT_EQ(get_hour(c, 1), hour_totals{});
    EXPECT_EQ(get_hour(c, now), (hour_totals{{"new|b|c", {2, 2}}}));
    auto const m = parse_metrics(c.get("/metrics").body());
    EXPECT_EQ(metric_value(m, "flowd_retention_dropped_hour_buckets_total"), 1.0);

    auto const late = c.post("/flows", "[" + flow_json("x", "b", "c", 1, 1, now) + "," +
                                           flow_json("x", "b", "c", 1, 1, now - 24) + "]");
    EXPECT_TRUE(is_problem(late, 422, "hour-out-of-retention"));
    auto const p = json::parse(late.body());
    EXPECT_EQ(p["record"], 1);
    EXPECT_EQ(p["field"], "hour");
    EXPECT_TRUE(is_problem(c.post("/flows", "[" + flow_json("x", "b", "c", 1, 1, now + 2) + "]"),
                           422, "hour-out-of-retention"));
    EXPECT_EQ(c.post("/flows", "[" + flow_json("x", "b", "c", 1, 1, now - 23) + "," +
                                   flow_json("x", "b", "c", 1, 1, now + 1) + "]")
                  .result_int(),
              200U);
    EXPECT_EQ(get_hour(c, now), (hour_totals{{"new|b|c", {2, 2}}})) << "the 422 changed nothing";
}

// SPEC "Caching: ETag, 304, sealed hours": with seal_after, an hour is sealed once the
// clock passes its end plus seal_after. A batch touching one is 422 hour-sealed; an
// answer whose whole range is sealed is immutable; /hours says which are sealed; sealing
// changes the ETag.
TEST(DurabilityTest, SealedHoursRefuseBatchesAndAnswerImmutable) {
    temp_dir data;
    std::uint32_t const now = current_unix_hour();
    std::uint32_t const old = now - 5;
    std::string etag_before;
    {
        flowd_process flowd{with_dir(data.path())};
        http_client c{flowd.port()};
        ASSERT_EQ(c.post("/flows", "[" + flow_json("a", "b", "c", 1, 2, old) + "," +
                                       flow_json("a", "b", "c", 3, 4, now) + "]")
                      .result_int(),
                  200U);
        auto const r =
            c.get("/flows?from=" + std::to_string(old) + "&to=" + std::to_string(old + 1));
        EXPECT_EQ(r[http::field::cache_control], "no-cache");
        etag_before = std::string(r[http::field::etag]);
        flowd.signal(SIGTERM);
        ASSERT_EQ(flowd.wait_exit(), 0);
    }
    flowd_process flowd{with_dir(data.path()), {{"FLOWD_SEAL_AFTER", "1h"}}};
    http_client c{flowd.port()};
    std::string const old_range = "from=" + std::to_string(old) + "&to=" + std::to_string(old + 1);

    auto const sealed = c.get("/flows?" + old_range);
    EXPECT_EQ(sealed.body(), "[" + flow_json("a", "b", "c", 1, 2, old) + "]");
    EXPECT_EQ(sealed[http::field::cache_control], "public, max-age=31536000, immutable");
    EXPECT_NE(std::string(sealed[http::field::etag]), etag_before) << "sealing changes the ETag";
    auto const open =
        c.get("/flows?from=" + std::to_string(old) + "&to=" + std::to_string(now + 1));
    EXPECT_EQ(open[http::field::cache_control], "no-cache");
    auto const hours = json::parse(c.get("/hours").body());
    ASSERT_EQ(hours.size(), 2U);
    EXPECT_EQ(hours[0]["hour"], old);
    EXPECT_EQ(hours[0]["sealed"], true);
    EXPECT_EQ(hours[1]["hour"], now);
    EXPECT_EQ(hours[1]["sealed"], false);

    auto const late = c.post("/flows", "[" + flow_json("x", "b", "c", 1, 1, now) + "," +
                                           flow_json("x", "b", "c", 1, 1, old) + "]");
    EXPECT_TRUE(is_problem(late, 422, "hour-sealed"));
    EXPECT_EQ(json::parse(late.body())["record"], 1);
    EXPECT_EQ(json::parse(late.body())["field"], "hour");
    EXPECT_EQ(c.get("/flows?" + old_range).body(), sealed.body()) << "the 422 changed nothing";
    EXPECT_EQ(c.post("/flows", "[" + flow_json("x", "b", "c", 1, 1, now) + "]").result_int(), 200U);

    // With retention on, max-age stops when the range's first hour leaves the window.
    flowd.signal(SIGTERM);
    ASSERT_EQ(flowd.wait_exit(), 0);
    flowd_process kept{with_dir(data.path()),
                       {{"FLOWD_SEAL_AFTER", "1h"}, {"FLOWD_RETENTION_HOURS", "24"}}};
    http_client k{kept.port()};
    std::string const cc(k.get("/flows?" + old_range)[http::field::cache_control]);
    ASSERT_EQ(cc.rfind("public, max-age=", 0), 0U) << cc;
    long const max_age = std::stol(cc.substr(16));
    // Hour `old` = now - 5 leaves the window at the start of hour now + 19: 18 to 19 hours
    // from a moment inside hour `now`.
    EXPECT_GE(max_age, 18 * 3600 - 60);
    EXPECT_LE(max_age, 19 * 3600 + 60);
}

}  // namespace
}  // namespace flowd::test
