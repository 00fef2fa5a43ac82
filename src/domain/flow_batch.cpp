#include "flowd/domain/flow_batch.hpp"

#include <random>

#include "flowd/domain/string_hash.hpp"

namespace flowd {

std::uint64_t const string_hash_seed = [] {
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) | rd();
}();

namespace {

std::uint64_t key_hash(std::string_view src, std::string_view dest, std::string_view vpc,
                       std::uint32_t hour) noexcept {
    std::uint64_t h = hash_bytes(string_hash_seed ^ hour, src);
    h = hash_bytes(h, dest);
    return hash_bytes(h, vpc);
}

}  // namespace

void flow_batch::reserve(std::size_t keys) {
    entries_.reserve(keys);
    hashes_.reserve(keys);
    std::size_t capacity = 16;
    // Load factor at most 1/2: probes stay short.
    while (capacity < keys * 2) {
        capacity *= 2;
    }
    if (capacity > slots_.size()) {
        grow(capacity);
    }
}

void flow_batch::grow(std::size_t capacity) {
    slots_.assign(capacity, 0);
    std::size_t const mask = capacity - 1;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        std::size_t j = hashes_[i] & mask;
        while (slots_[j] != 0) {
            j = (j + 1) & mask;
        }
        slots_[j] = static_cast<std::uint32_t>(i + 1);
    }
}

flow_batch::add_status flow_batch::add(std::string_view src_app, std::string_view dest_app,
                                       std::string_view vpc_id, std::uint32_t hour,
                                       flow_counters counters, std::size_t record_index) {
    if ((entries_.size() + 1) * 2 > slots_.size()) {
        grow(slots_.empty() ? 16 : slots_.size() * 2);
    }
    std::uint64_t const h = key_hash(src_app, dest_app, vpc_id, hour);
    std::size_t const mask = slots_.size() - 1;
    std::size_t j = h & mask;
    for (; slots_[j] != 0; j = (j + 1) & mask) {
        std::size_t const i = slots_[j] - 1;
        if (hashes_[i] != h) {
            continue;
        }
        flow_record& r = entries_[i].record;
        if (r.hour != hour || r.src_app != src_app || r.dest_app != dest_app ||
            r.vpc_id != vpc_id) {
            continue;
        }
        if (counters.bytes_tx > max_counter - r.counters.bytes_tx) {
            return add_status::overflow_tx;
        }
        if (counters.bytes_rx > max_counter - r.counters.bytes_rx) {
            return add_status::overflow_rx;
        }
        r.counters.add(counters);
        ++records_;
        return add_status::ok;
    }
    entries_.push_back(batch_entry{flow_record{std::string(src_app), std::string(dest_app),
                                               std::string(vpc_id), hour, counters},
                                   record_index});
    hashes_.push_back(h);
    slots_[j] = static_cast<std::uint32_t>(entries_.size());
    ++records_;
    return add_status::ok;
}

}  // namespace flowd
