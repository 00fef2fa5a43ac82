// Microbenchmarks of the stages a POST and a GET go through, on the workload of
// bench/workload.hpp (K=1000 keys over 24 hours), each in records/s and bytes/s:
//   decode+validate (simdjson On-Demand, includes pre-aggregation into a flow_batch),
//   pre-aggregate alone, store apply (prepare + commit; also with the change journal
//   recording for a live stream), GET serialisation of one hour.

#include <chrono>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "flowd/codec/flow_json.hpp"
#include "flowd/http/flows_body.hpp"
#include "flowd/query/change_journal.hpp"
#include "flowd/store/flow_store.hpp"
#include "workload.hpp"

namespace {

std::vector<flowd::bench::body> bodies(std::size_t batch, std::size_t count = 16) {
    flowd::bench::workload_options o;
    o.batch = batch;
    o.keys = 1000;
    o.bodies = count;
    return flowd::bench::make_bodies(o, false);
}

flowd::flow_batch decode(std::string& body) {
    auto r = flowd::decode_flows(body, flowd::body_format::json_array, {});
    if (!r) {
        throw std::runtime_error("bench body rejected: " + r.error().detail);
    }
    return std::move(*r);
}

void bm_decode_validate(benchmark::State& state) {
    auto const batch = static_cast<std::size_t>(state.range(0));
    auto b = bodies(batch);
    std::vector<std::string> texts;
    std::size_t bytes = 0;
    for (auto& x : b) {
        texts.push_back(x.text);
        bytes += x.text.size();
    }
    std::size_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(decode(texts[i++ % texts.size()]));
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>((bytes / texts.size())));
}

void bm_pre_aggregate(benchmark::State& state) {
    auto const batch = static_cast<std::size_t>(state.range(0));
    auto b = bodies(batch);
    // The records of one body, already parsed: what the decoder hands to flow_batch::add.
    flowd::flow_batch const parsed = decode(b[0].text);
    std::vector<flowd::flow_record> records;
    for (auto const& e : parsed.entries()) {
        records.push_back(e.record.to_record());
    }
    while (records.size() < batch) {
        records.push_back(records[records.size() % parsed.entries().size()]);
    }
    for (auto _ : state) {
        flowd::flow_batch out;
        out.reserve(batch);
        for (std::size_t r = 0; r < records.size(); ++r) {
            auto const& x = records[r];
            benchmark::DoNotOptimize(
                out.add(x.src_app, x.dest_app, x.vpc_id, x.hour, x.counters, r));
        }
        benchmark::DoNotOptimize(out);
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

void bm_store_apply(benchmark::State& state) {
    auto const batch = static_cast<std::size_t>(state.range(0));
    auto b = bodies(batch);
    std::vector<flowd::flow_batch> batches;
    for (auto& x : b) {
        batches.push_back(decode(x.text));
    }
    flowd::flow_store store;
    std::size_t i = 0;
    for (auto _ : state) {
        auto prepared = store.prepare(batches[i++ % batches.size()]);
        store.commit(std::get<flowd::prepared_batch>(std::move(prepared)));
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

// Store apply with a live stream watching every hour the bodies hold (second argument 1:
// the change journal records every committed row), watching one hour of the 24 (2: the
// journal records a 24th of them, the rest is checked and passed over) and with no stream
// (0): what 1,000 streams on busy hours add to POST. 256 bodies, so that the rows applied
// cover most of the 24,000 (hour, key) rows and the journal's entries are as cold as under
// load.
void bm_store_apply_watched(benchmark::State& state) {
    auto const batch = static_cast<std::size_t>(state.range(0));
    auto b = bodies(batch, 256);
    std::vector<flowd::flow_batch> batches;
    for (auto& x : b) {
        batches.push_back(decode(x.text));
    }
    flowd::flow_store store;
    flowd::change_journal journal(store, std::size_t{1} << 18, std::chrono::seconds(60));
    std::uint64_t watcher = 0;
    if (state.range(1) != 0) {
        watcher = journal.subscribe(0, state.range(1) == 1 ? 24 : 1).id;
    }
    std::size_t i = 0;
    for (auto _ : state) {
        auto prepared = store.prepare(batches[i++ % batches.size()]);
        store.commit(std::get<flowd::prepared_batch>(std::move(prepared)));
    }
    if (watcher != 0) {
        journal.unsubscribe(watcher);
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

// Puts `keys` keys into hour 7 of `store`.
void fill_hour(flowd::flow_store& store, std::size_t keys) {
    flowd::flow_batch batch;
    for (std::size_t k = 0; k < keys; ++k) {
        batch.add(flowd::bench::name("app", k % 37), flowd::bench::name("svc", k / 37), "vpc-0000",
                  7, {k, k + 1}, k);
    }
    store.commit(std::get<flowd::prepared_batch>(store.prepare(batch)));
}

void bm_get_serialize(benchmark::State& state) {
    // One hour holding about state.range(0) keys, serialised as GET /flows writes it.
    auto const keys = static_cast<std::size_t>(state.range(0));
    flowd::flow_store store;
    fill_hour(store, keys);
    flowd::hour_snapshot const snap = store.snapshot(7);
    std::size_t bytes = 0;
    for (auto _ : state) {
        flowd::flows_serializer s(snap, false);
        std::string chunk;
        bytes = 0;
        while (s.next(chunk)) {
            bytes += chunk.size();
        }
        bytes += chunk.size();
        benchmark::DoNotOptimize(chunk);
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(snap.size()));
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
}

void bm_snapshot(benchmark::State& state) {
    // Copying one hour out of the store and sorting it, the other half of a GET.
    auto const keys = static_cast<std::size_t>(state.range(0));
    flowd::flow_store store;
    fill_hour(store, keys);
    for (auto _ : state) {
        benchmark::DoNotOptimize(store.snapshot(7));
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(keys));
}

}  // namespace

BENCHMARK(bm_decode_validate)->Arg(1)->Arg(100)->Arg(1000);
BENCHMARK(bm_pre_aggregate)->Arg(100)->Arg(1000);
BENCHMARK(bm_store_apply)->Arg(100)->Arg(1000);
BENCHMARK(bm_store_apply_watched)->Args({100, 0})->Args({100, 1})->Args({100, 2});
BENCHMARK(bm_snapshot)->Arg(1000)->Arg(34000);
BENCHMARK(bm_get_serialize)->Arg(1000)->Arg(34000);

BENCHMARK_MAIN();
