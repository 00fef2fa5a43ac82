// The JSON ceiling of `make bench`: what simdjson On-Demand alone parses and sums of the
// same bodies flowd-loadgen sends, on one core, no HTTP, no validation, no store.
//   flowd-parse-ceiling BATCH KEYS SECONDS  ->  "RESULT records_per_s=... bytes_per_s=..."

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <simdjson.h>

#include "workload.hpp"

int main(int argc, char** argv) {
    flowd::bench::workload_options o;
    o.batch = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000;
    o.keys = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1000;
    double const seconds = argc > 3 ? std::strtod(argv[3], nullptr) : 2.0;
    auto const bodies = flowd::bench::make_bodies(o);
    std::vector<simdjson::padded_string> padded;
    for (auto const& b : bodies) {
        padded.emplace_back(b.text);
    }
    simdjson::ondemand::parser parser;
    std::uint64_t records = 0;
    std::uint64_t bytes = 0;
    std::uint64_t checksum = 0;
    auto const start = std::chrono::steady_clock::now();
    auto const end = start + std::chrono::duration<double>(seconds);
    std::size_t i = 0;
    while (std::chrono::steady_clock::now() < end) {
        for (int rep = 0; rep < 16; ++rep, ++i) {
            auto& doc_text = padded[i % padded.size()];
            auto doc = parser.iterate(doc_text);
            for (auto rec : doc.get_array()) {
                auto obj = rec.get_object();
                std::string_view src = obj["src_app"];
                std::string_view dest = obj["dest_app"];
                std::string_view vpc = obj["vpc_id"];
                std::uint64_t tx = obj["bytes_tx"];
                std::uint64_t rx = obj["bytes_rx"];
                std::uint64_t hour = obj["hour"];
                checksum += src.size() + dest.size() + vpc.size() + tx + rx + hour;
                ++records;
            }
            bytes += doc_text.size();
        }
    }
    double const took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("RESULT records_per_s=%.0f bytes_per_s=%.0f checksum=%llu implementation=%s\n",
                static_cast<double>(records) / took, static_cast<double>(bytes) / took,
                static_cast<unsigned long long>(checksum),
                SIMDJSON_STRINGIFY(SIMDJSON_BUILTIN_IMPLEMENTATION));
    return 0;
}
