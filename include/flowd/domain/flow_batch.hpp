#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "flowd/domain/flow_record.hpp"

namespace flowd {

// One distinct key of a batch with the sums of all its records. `first_record` is the
// 0-based index of the first record that carried the key, so errors found at apply
// time (overflow against the store) can still name a record.
struct batch_entry {
    flow_record record;
    std::size_t first_record = 0;
};

// A validated, pre-aggregated batch: each key appears once with the sum of its records.
// Built by one thread, then read-only; safe to share once built. The index is open
// addressing over entry numbers (no allocation per key, one hash per record): the
// pre-aggregation runs once per record on the POST hot path.
class flow_batch {
public:
    enum class add_status { ok, overflow_tx, overflow_rx };

    // Adds one validated record; the strings are copied the first time a key is seen.
    // On overflow the batch is left as it was before the call.
    add_status add(std::string_view src_app, std::string_view dest_app, std::string_view vpc_id,
                   std::uint32_t hour, flow_counters counters, std::size_t record_index);

    // Room for about `keys` distinct keys, so the index does not rehash as it fills.
    void reserve(std::size_t keys);

    // For a batch read back from the log: the records it was aggregated from, which may be
    // more than its entries.
    void set_record_count(std::size_t n) noexcept { records_ = n; }

    [[nodiscard]] std::vector<batch_entry> const& entries() const noexcept { return entries_; }
    [[nodiscard]] std::size_t record_count() const noexcept { return records_; }
    [[nodiscard]] bool empty() const noexcept { return records_ == 0; }

private:
    void grow(std::size_t capacity);

    std::vector<batch_entry> entries_;
    std::vector<std::uint64_t> hashes_;  // hashes_[i] is the hash of entries_[i]
    std::vector<std::uint32_t> slots_;   // 0: empty, else an index into entries_ plus one
    std::size_t records_ = 0;
};

}  // namespace flowd
