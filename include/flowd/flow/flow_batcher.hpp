#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "flowd/domain/flow_batch.hpp"
#include "flowd/domain/flow_counters.hpp"

namespace flowd {

// Why a decoded flow record did not reach the store (SPEC:
// flowd_flow_records_dropped_total{reason}).
enum class drop_reason { retention, sealed, overflow, unmatched, store_full };
inline constexpr std::size_t drop_reason_count = 5;
[[nodiscard]] std::string_view drop_reason_label(drop_reason r) noexcept;

// A micro-batch of flow records summed per key (src_app, dest_app, vpc_id, hour), with how
// many records each key took, so a key the store refuses can be taken out alone. Names are
// copied once per batch. Not thread-safe: one owner fills it, then takes the batch.
class flow_batcher {
public:
    // Adds one record; false when its key's sums would pass 2^63-1 (the record is not
    // added: drop it as overflow).
    bool add(std::string_view src_app, std::string_view dest_app, std::string_view vpc_id,
             std::uint32_t hour, flow_counters counters);

    [[nodiscard]] std::size_t records() const noexcept { return records_; }
    [[nodiscard]] std::size_t keys() const noexcept { return entries_.size(); }
    [[nodiscard]] bool empty() const noexcept { return records_ == 0; }

    // The batch to submit: entry i of the result has first_record i, so an ingest problem
    // naming record i names key i.
    [[nodiscard]] flow_batch build() const;
    // Takes key `i` out (the store refused it); returns how many records it held.
    std::size_t remove_key(std::size_t i);
    void clear();

private:
    struct key {
        std::uint32_t src = 0;
        std::uint32_t dst = 0;
        std::uint32_t vpc = 0;
        std::uint32_t hour = 0;
        friend bool operator==(key const&, key const&) = default;
    };
    struct key_hash {
        std::size_t operator()(key const& k) const noexcept {
            std::uint64_t h = (std::uint64_t{k.src} << 32 | k.dst) * 0x9e3779b97f4a7c15ULL;
            h ^= (std::uint64_t{k.vpc} << 32 | k.hour) + 0x7f4a7c159e3779b9ULL + (h << 6);
            return static_cast<std::size_t>(h ^ (h >> 31));
        }
    };
    struct entry {
        key k;
        flow_counters counters;
        std::size_t records = 0;
    };
    std::uint32_t name_id(std::string_view name);

    // Transparent, so a lookup by string_view allocates nothing (three per record).
    struct name_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    std::unordered_map<std::string, std::uint32_t, name_hash, std::equal_to<>> name_ids_;
    // Names mostly come from the apps table, the same few strings at the same addresses:
    // a direct-mapped cache by address skips the hash. A hit is confirmed by comparing the
    // bytes, so a string freed and another allocated at its address (a reload) is no hit.
    struct cached_name {
        char const* data = nullptr;
        std::size_t size = 0;
        std::uint32_t id = 0;
    };
    std::array<cached_name, 64> name_cache_{};
    std::vector<std::string> names_;
    std::unordered_map<key, std::size_t, key_hash> index_;
    std::vector<entry> entries_;
    std::size_t records_ = 0;
};

}  // namespace flowd
