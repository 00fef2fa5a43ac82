#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flowd/domain/flow_record.hpp"

namespace flowd {

// One aggregated key of a batch as views: the names are owned by the batch (see
// flow_batch::names()) and live as long as it does, moves included.
struct flow_record_view {
    std::string_view src_app;
    std::string_view dest_app;
    std::string_view vpc_id;
    std::uint32_t hour = 0;
    flow_counters counters;

    [[nodiscard]] flow_record to_record() const {
        return flow_record{std::string(src_app), std::string(dest_app), std::string(vpc_id), hour,
                           counters};
    }
    friend bool operator==(flow_record_view const&, flow_record_view const&) = default;
    friend bool operator==(flow_record_view const& a, flow_record const& b) noexcept {
        return a.src_app == b.src_app && a.dest_app == b.dest_app && a.vpc_id == b.vpc_id &&
               a.hour == b.hour && a.counters == b.counters;
    }
};

// One distinct key of a batch with the sums of all its records. `first_record` is the
// 0-based index of the first record that carried the key, so errors found at apply
// time (overflow against the store) can still name a record. `names` are the indices of
// src_app, dest_app and vpc_id in flow_batch::names().
struct batch_entry {
    flow_record_view record;
    std::size_t first_record = 0;
    std::array<std::uint32_t, 3> names{};
};

// A validated, pre-aggregated batch: each key appears once with the sum of its records.
// Built by one thread, then read-only; safe to share once built.
//
// The POST hot path runs add() once per record, so nothing there allocates per key: each
// distinct name of the batch is copied once into the batch's own storage and numbered
// (a batch of 1,000 records over 1,000 keys has some 40 distinct names), and a key is the
// three name numbers plus the hour. Both indexes are open addressing; names are hashed with
// a per-process seed (string_hash.hpp), so crafted names cannot flood them.
class flow_batch {
public:
    enum class add_status { ok, overflow_tx, overflow_rx };

    flow_batch() = default;
    // A moved-from batch is empty and usable (its storage pointers go with the move).
    flow_batch(flow_batch&& other) noexcept;
    flow_batch& operator=(flow_batch&& other) noexcept;
    // A copy owns its own names (the views of the original would dangle with it).
    flow_batch(flow_batch const& other);
    flow_batch& operator=(flow_batch const& other);
    ~flow_batch() = default;

    // Adds one validated record; each name is copied the first time the batch sees it.
    // On overflow the batch is left as it was before the call.
    add_status add(std::string_view src_app, std::string_view dest_app, std::string_view vpc_id,
                   std::uint32_t hour, flow_counters counters, std::size_t record_index);

    // Room for about `keys` distinct keys, so the index does not rehash as it fills.
    void reserve(std::size_t keys);

    // For a batch read back from the log: the records it was aggregated from, which may be
    // more than its entries.
    void set_record_count(std::size_t n) noexcept { records_ = n; }

    [[nodiscard]] std::vector<batch_entry> const& entries() const noexcept { return entries_; }
    // The distinct names of the batch, each once; batch_entry::names index it.
    [[nodiscard]] std::vector<std::string_view> const& names() const noexcept { return names_; }
    [[nodiscard]] std::size_t record_count() const noexcept { return records_; }
    [[nodiscard]] bool empty() const noexcept { return records_ == 0; }

private:
    std::uint32_t name_id(std::string_view name);
    std::string_view store_name(std::string_view name);
    void grow_keys(std::size_t capacity);
    void grow_names(std::size_t capacity);

    std::vector<batch_entry> entries_;
    // 0: empty, else the high half of the key's hash << 32 | its index in entries_ plus
    // one (the low half is where probing starts; a rehash computes the hash again).
    std::vector<std::uint64_t> slots_;

    std::vector<std::string_view> names_;  // views into blocks_
    // name_info_[i]: the hash of names_[i] and, when it has at most 16 bytes (exporters'
    // names nearly always do), the name as two little-endian words, zero past its end:
    // such names are hashed and compared as two integers, with no loop and no branch on
    // the length. One vector, so a batch costs one allocation for both.
    struct name_info {
        std::uint64_t hash = 0;
        std::array<std::uint64_t, 2> words{};
    };
    std::vector<name_info> name_info_;
    // 0: empty, else the high half of the name's hash << 32 | its index in names_ plus one:
    // a probe rejects another name without reading names_ or name_info_.
    std::vector<std::uint64_t> name_slots_;
    std::vector<std::unique_ptr<char[]>> blocks_;  // never move once allocated
    char* block_next_ = nullptr;
    std::size_t block_left_ = 0;
    std::size_t block_size_ = 0;

    std::size_t records_ = 0;
};

}  // namespace flowd
