#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "flowd/domain/flow_counters.hpp"
#include "flowd/domain/int_hash.hpp"
#include "flowd/domain/uint128.hpp"

namespace flowd {

// The interned (src_app, dest_app, vpc_id) of a key; the hour is the table's.
struct app_key {
    std::uint32_t src = 0;
    std::uint32_t dest = 0;
    std::uint32_t vpc = 0;
    friend bool operator==(app_key const&, app_key const&) = default;
};

// 64-bit hash of exactly the fields operator== compares.
[[nodiscard]] inline std::uint64_t hash_app_key(app_key const& k) noexcept {
    std::uint64_t h = (std::uint64_t{k.src} << 32 | k.dest) * 0x9e3779b97f4a7c15ULL;
    h ^= (std::uint64_t{k.vpc} + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL;
    return fmix64(h);
}

// Open-addressing (linear probing) map app_key -> flow_counters for one hour of one
// store shard: 32 bytes a slot, no per-entry allocation. Not thread-safe: its shard's
// mutex guards it.
class hour_table {
public:
    struct slot {
        app_key key;
        std::uint32_t used = 0;
        flow_counters counters;
    };
    static_assert(sizeof(slot) == 32);

    // Returns the counters of `key`, or nullptr.
    [[nodiscard]] flow_counters* find(app_key const& key, std::uint64_t hash) noexcept;

    // Returns the counters of `key`, inserting zeroed counters when absent.
    flow_counters& upsert(app_key const& key, std::uint64_t hash);

    // Starts loading the slot where a probe for `hash` begins, so that the cache misses of
    // several upserts can overlap. Only a hint: changes nothing.
    void prefetch(std::uint64_t hash) const noexcept {
        if (capacity_ != 0) {
            __builtin_prefetch(&slots_[hash & (capacity_ - 1)], 1);
        }
    }

    template <class F>
    void for_each(F&& f) const {
        for (std::size_t i = 0; i < capacity_; ++i) {
            if (slots_[i].used != 0) {
                f(slots_[i].key, slots_[i].counters);
            }
        }
    }

    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    // The sums of every key's bytes_tx and bytes_rx, kept as batches apply (the caller
    // adds what it applied) so GET /hours and ETags read an hour's totals without a scan.
    void add_totals(std::uint64_t tx, std::uint64_t rx) noexcept {
        sum_tx_ += tx;
        sum_rx_ += rx;
    }
    [[nodiscard]] uint128 sum_tx() const noexcept { return sum_tx_; }
    [[nodiscard]] uint128 sum_rx() const noexcept { return sum_rx_; }
    [[nodiscard]] std::size_t memory_bytes() const noexcept { return capacity_ * sizeof(slot); }

private:
    void grow();

    std::unique_ptr<slot[]> slots_;
    std::size_t capacity_ = 0;  // zero or a power of two
    std::size_t size_ = 0;
    uint128 sum_tx_ = 0;
    uint128 sum_rx_ = 0;
};

}  // namespace flowd
