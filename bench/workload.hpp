#pragma once

// The one workload definition every figure of `make bench` uses: records drawn uniformly at
// random (seeded) from K keys of ~10-byte names over H hours, serialised as JSON arrays (or
// NDJSON) of B records. Shared by flowd-loadgen and flowd-parse-ceiling.

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace flowd::bench {

struct workload_options {
    std::size_t batch = 100;
    std::size_t keys = 1000;
    std::uint32_t hours = 24;
    std::uint32_t first_hour = 0;
    std::size_t bodies = 64;  // distinct bodies, reused round robin (loading a store needs many)
    bool ndjson = false;
    std::uint64_t seed = 42;
};

using key_tuple = std::tuple<std::string, std::string, std::string, std::uint32_t>;
struct sums {
    std::uint64_t tx = 0;
    std::uint64_t rx = 0;
};

struct body {
    std::string text;
    std::map<key_tuple, sums> totals;  // what this body adds
    std::size_t records = 0;
};

inline std::string name(char const* prefix, std::size_t i) {
    std::string s = prefix;
    s += std::to_string(i);
    while (s.size() < 10) {
        s.insert(s.begin() + static_cast<std::ptrdiff_t>(std::string(prefix).size()), '0');
    }
    return s;
}

// `totals`: also record what each body adds (for verification; costly for many bodies).
inline std::vector<body> make_bodies(workload_options const& o, bool totals = true) {
    std::mt19937_64 rng(o.seed);
    // A key is (src, dest, vpc): spread K keys over ~sqrt(K) apps and 4 VPCs.
    std::size_t apps = 1;
    while (apps * apps * 4 < o.keys) {
        ++apps;
    }
    std::uniform_int_distribution<std::size_t> pick_key(0, o.keys - 1);
    std::uniform_int_distribution<std::uint32_t> pick_hour(0, o.hours - 1);
    std::uniform_int_distribution<std::uint64_t> pick_bytes(1, 100000);
    std::vector<body> out(o.bodies);
    for (body& b : out) {
        b.text.reserve(o.batch * 110);
        b.text = o.ndjson ? "" : "[";
        for (std::size_t i = 0; i < o.batch; ++i) {
            std::size_t const k = pick_key(rng);
            std::string const src = name("app", k % apps);
            std::string const dest = name("svc", (k / apps) % apps);
            std::string const vpc = name("vpc-", k / (apps * apps));
            std::uint32_t const hour = o.first_hour + pick_hour(rng);
            std::uint64_t const tx = pick_bytes(rng);
            std::uint64_t const rx = pick_bytes(rng);
            if (!o.ndjson && i != 0) {
                b.text += ',';
            }
            b.text += R"({"src_app":")" + src + R"(","dest_app":")" + dest + R"(","vpc_id":")" +
                      vpc + R"(","bytes_tx":)" + std::to_string(tx) + R"(,"bytes_rx":)" +
                      std::to_string(rx) + R"(,"hour":)" + std::to_string(hour) + "}";
            if (o.ndjson) {
                b.text += '\n';
            }
            if (totals) {
                sums& s = b.totals[{src, dest, vpc, hour}];
                s.tx += tx;
                s.rx += rx;
            }
        }
        if (!o.ndjson) {
            b.text += ']';
        }
        b.records = o.batch;
    }
    return out;
}

}  // namespace flowd::bench
