#pragma once

#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <prometheus/registry.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "flowd/durable/data_files.hpp"
#include "flowd/durable/durable_ingest.hpp"
#include "flowd/metrics/service_metrics.hpp"
#include "flowd/store/flow_store.hpp"
#include "flowd/store/idempotency_table.hpp"

namespace flowd::testing {

// A fresh directory under the system temp dir, removed at the end.
class scratch_dir {
public:
    scratch_dir() {
        std::random_device rd;
        path_ = std::filesystem::temp_directory_path() /
                ("flowd-durable-" + std::to_string(rd()) + std::to_string(rd()));
        std::filesystem::create_directories(path_);
    }
    scratch_dir(scratch_dir const&) = delete;
    scratch_dir& operator=(scratch_dir const&) = delete;
    ~scratch_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    [[nodiscard]] std::filesystem::path const& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

using key_totals =
    std::map<std::tuple<std::string, std::string, std::string, std::uint32_t>, flow_counters>;

inline key_totals totals_of(flow_store const& store) {
    key_totals out;
    for (auto const& k : store.export_all()) {
        out[{std::string(store.name(k.key.src)), std::string(store.name(k.key.dest)),
             std::string(store.name(k.key.vpc)), k.hour}] = k.counters;
    }
    return out;
}

inline void add_to(key_totals& t, flow_batch const& b) {
    for (auto const& e : b.entries()) {
        auto& c = t[{std::string(e.record.src_app), std::string(e.record.dest_app),
                     std::string(e.record.vpc_id), e.record.hour}];
        c.add(e.record.counters);
    }
}

inline flow_batch make_batch(int seed, int keys) {
    flow_batch b;
    for (int i = 0; i < keys; ++i) {
        (void)b.add("src-" + std::to_string((seed + i) % 7), "dst-" + std::to_string(i % 5),
                    "vpc-" + std::to_string(seed % 3), static_cast<std::uint32_t>(seed % 4),
                    flow_counters{static_cast<std::uint64_t>(seed * 10 + i),
                                  static_cast<std::uint64_t>(seed + i)},
                    static_cast<std::size_t>(i));
    }
    return b;
}

inline std::shared_ptr<spdlog::logger> quiet_logger() {
    return std::make_shared<spdlog::logger>("test",
                                            std::make_shared<spdlog::sinks::null_sink_mt>());
}

// A store, its idempotency keys and a durable_ingest over one directory: one "run" of flowd.
struct durable_run {
    explicit durable_run(std::filesystem::path const& dir, durable_options o = {})
        : metrics(registry, "test", "test"),
          store(store_options{8, 1'000'000}),
          idempotency(std::chrono::minutes(10), 1000),
          ingest(store, idempotency, metrics, with_dir(std::move(o), dir), quiet_logger()) {}

    static durable_options with_dir(durable_options o, std::filesystem::path const& dir) {
        o.dir = dir;
        return o;
    }

    ingest_outcome post(flow_batch batch, std::optional<idempotency_claim> claim = {}) {
        std::promise<ingest_outcome> p;
        auto f = p.get_future();
        ingest_request info{"req", std::move(claim), wall_clock_ms(), ingest_source::post, {}};
        auto c = info.idempotency;
        ingest.submit(std::move(batch), std::move(info), [&p, this, c](ingest_outcome o) {
            if (c && !o.error) {
                idempotency.complete(*c, o.accepted, wall_clock_ms());
            }
            p.set_value(std::move(o));
        });
        return f.get();
    }

    prometheus::Registry registry;
    service_metrics metrics;
    flow_store store;
    idempotency_table idempotency;
    durable_ingest ingest;
};

}  // namespace flowd::testing
