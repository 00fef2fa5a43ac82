#pragma once

// The executor's grouping (src/query only, included by execute.cpp): the group key of a row,
// the two hash tables (group key -> row index, group key -> sums in the slot) and the
// grouper that sums a range's rows into their groups.

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <vector>

#include "flowd/query/execute.hpp"
#include "grouped_fields.hpp"

namespace flowd::detail {

using field_key = std::array<std::uint32_t, 4>;

// A table's first size: a power of two, at least twice the groups expected (short probes).
inline std::size_t slots_for(std::size_t expected) {
    return std::bit_ceil(std::max<std::size_t>(16, expected * 2));
}

// Per field, all ones when it is grouped, else zero.
using field_mask = std::array<std::uint32_t, 4>;

inline field_mask field_mask_of(unsigned grouped) noexcept {
    field_mask m{};
    for (unsigned f = 0; f < 4; ++f) {
        m.at(f) = (grouped & (1U << f)) != 0 ? 0xffffffffU : 0U;
    }
    return m;
}

// Four ANDs: zeroing the ungrouped fields one store at a time made the key's later 16-byte
// load wait on those stores, a quarter of the grouping's time.
inline field_key key_of(app_key const& k, std::uint32_t hour, field_mask const& m) noexcept {
    return {k.src & m[0], k.dest & m[1], k.vpc & m[2], hour & m[3]};
}

// Two 64-bit compares: std::array's operator== becomes a memcmp call, which was a sixth of
// a 2.4-million-row summary.
inline bool same_key(field_key const& a, field_key const& b) noexcept {
    return ((std::uint64_t{a[0]} << 32 | a[1]) == (std::uint64_t{b[0]} << 32 | b[1])) &
           ((std::uint64_t{a[2]} << 32 | a[3]) == (std::uint64_t{b[2]} << 32 | b[3]));
}

inline std::uint64_t hash_key(field_key const& k) noexcept {
    std::uint64_t h = (std::uint64_t{k[0]} << 32 | k[1]) * 0x9e3779b97f4a7c15ULL;
    h ^= (std::uint64_t{k[2]} << 32 | k[3]) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

// Group key -> index of the group's row (the top rows of a series, the groups of a carry).
// Open addressing with linear probing over 20-byte slots: no allocation per group, and the
// top rows stay in cache while millions of rows stream past. Integers only: names are
// compared once, when the answer is ordered, never while rows are summed.
class group_index {
public:
    explicit group_index(std::size_t expected) { slots_.assign(slots_for(expected), slot{}); }

    // The row index of `k`, or `fresh` (then stored) when absent.
    std::uint32_t find_or_add(field_key const& k, std::uint32_t fresh) {
        if ((size_ + 1) * 2 > slots_.size()) {
            grow();
        }
        std::size_t const mask = slots_.size() - 1;
        for (std::size_t i = hash_key(k) & mask;; i = (i + 1) & mask) {
            slot& s = slots_[i];
            if (s.row == empty) {
                s.key = k;
                s.row = fresh;
                ++size_;
                return fresh;
            }
            if (same_key(s.key, k)) {
                return s.row;
            }
        }
    }

    [[nodiscard]] std::uint32_t find(field_key const& k) const noexcept {
        std::size_t const mask = slots_.size() - 1;
        for (std::size_t i = hash_key(k) & mask;; i = (i + 1) & mask) {
            slot const& s = slots_[i];
            if (s.row == empty || same_key(s.key, k)) {
                return s.row;
            }
        }
    }

    static constexpr std::uint32_t empty = 0xffffffffU;

private:
    struct slot {
        field_key key{};
        std::uint32_t row = empty;
    };

    void grow() {
        std::vector<slot> old;
        old.swap(slots_);
        slots_.assign(old.size() * 2, slot{});
        size_ = 0;
        for (slot const& s : old) {
            if (s.row != empty) {
                find_or_add(s.key, s.row);
            }
        }
    }

    std::vector<slot> slots_;
    std::size_t size_ = 0;
};

// Group key -> the group's sums, in the slot itself: one 32-byte slot (never across two
// cache lines) is all a row touches, where an index into a separate row array cost a second
// cache miss per row. Sums are 64-bit in the slot; the rare carry past 2^64 is kept aside
// and added back in move_rows(), so the sums stay exact. A key of four all-ones words marks an
// empty slot: the grouper's keys always hold a zeroed (ungrouped) field.
class group_sums {
public:
    explicit group_sums(std::size_t expected) { slots_.assign(slots_for(expected), slot{}); }

    // Starts loading the slot where a key of this hash is looked for first.
    void prefetch(std::uint64_t hash) const noexcept {
        __builtin_prefetch(&slots_[hash & (slots_.size() - 1)], 1);
    }

    // Adds `c` to the sums of `k` (hash = hash_key(k)), adding the group when absent.
    void add(field_key const& k, std::uint64_t hash, flow_counters const& c) {
        slot& s = find_or_add(k, hash);
        if (__builtin_add_overflow(s.tx, c.bytes_tx, &s.tx)) {
            carries_.push_back({k, false});
        }
        if (__builtin_add_overflow(s.rx, c.bytes_rx, &s.rx)) {
            carries_.push_back({k, true});
        }
    }

    // Appends every group to `out`, in slot order.
    void move_rows(std::vector<answer_row>& out) {
        std::size_t const first = out.size();
        out.reserve(first + size_);
        for (slot const& s : slots_) {
            if (!is_empty(s.key)) {
                out.push_back({s.key, s.tx, s.rx});
            }
        }
        if (!carries_.empty()) {
            group_index at(out.size() - first);
            for (std::size_t i = first; i < out.size(); ++i) {
                at.find_or_add(out[i].field, static_cast<std::uint32_t>(i - first));
            }
            for (carry const& c : carries_) {
                answer_row& r = out[first + at.find(c.key)];
                (c.rx ? r.bytes_rx : r.bytes_tx) += uint128{1} << 64;
            }
        }
    }

private:
    static constexpr std::uint32_t none = 0xffffffffU;
    struct alignas(32) slot {
        field_key key{none, none, none, none};
        std::uint64_t tx = 0;
        std::uint64_t rx = 0;
    };
    static_assert(sizeof(slot) == 32);
    struct carry {
        field_key key;
        bool rx;
    };

    static bool is_empty(field_key const& k) noexcept {
        return (k[0] & k[1] & k[2] & k[3]) == none;
    }

    slot& find_or_add(field_key const& k, std::uint64_t hash) {
        if ((size_ + 1) * 2 > slots_.size()) {
            grow();
        }
        std::size_t const mask = slots_.size() - 1;
        for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
            slot& s = slots_[i];
            if (same_key(s.key, k)) {
                return s;
            }
            if (is_empty(s.key)) {
                s.key = k;
                ++size_;
                return s;
            }
        }
    }

    void grow() {
        std::vector<slot> old;
        old.swap(slots_);
        slots_.assign(old.size() * 2, slot{});
        std::size_t const mask = slots_.size() - 1;
        for (slot const& s : old) {
            if (is_empty(s.key)) {
                continue;
            }
            std::size_t i = hash_key(s.key) & mask;
            while (!is_empty(slots_[i].key)) {
                i = (i + 1) & mask;
            }
            slots_[i] = s;
        }
    }

    std::vector<slot> slots_;
    std::vector<carry> carries_;
    std::size_t size_ = 0;
};

// Sums rows into their groups (`groups`, one row each). Grouped by one field alone, its
// value (a dense name id, or the hour) indexes an array, with no hashing; that was half of
// a per-application summary's time. Else a group_sums, sized by expect() before the first
// row, and rows go through a short queue: each row's slot is prefetched when it arrives
// and summed `lookahead` rows later, so that the lookups of 100,000 groups (a table larger
// than the caches) overlap instead of each waiting for memory. flush() sums what is queued
// and writes those groups out.
class grouper {
public:
    grouper(query_plan const& plan, std::size_t name_count, std::vector<answer_row>& groups)
        : from_(plan.from),
          mask_(grouped_mask(plan)),
          fields_(field_mask_of(mask_)),
          groups_(groups) {
        single_ = std::popcount(mask_) == 1 ? std::countr_zero(mask_) : -1;
        if (single_ >= 0) {
            dense_.assign(single_ == 3 ? std::size_t{plan.to - plan.from} : name_count,
                          group_index::empty);
        }
    }

    [[nodiscard]] bool single() const noexcept { return single_ >= 0; }
    void expect(std::size_t groups) { index_.emplace(groups); }
    // Forgets every group summed so far (and the rows queued).
    void clear() {
        groups_.clear();
        std::fill(dense_.begin(), dense_.end(), group_index::empty);
        index_.reset();
        queued_ = 0;
        next_ = 0;
    }

    // Sums the rows still queued and writes the hashed groups out: call it after the last
    // row, before groups are read.
    void flush() {
        std::size_t at = (next_ + lookahead - queued_) % lookahead;
        for (; queued_ != 0; --queued_, at = (at + 1) % lookahead) {
            index_->add(queue_[at].key, queue_[at].hash, queue_[at].counters);
        }
        next_ = 0;
        if (index_) {
            index_->move_rows(groups_);
            index_.reset();
        }
    }

    void operator()(app_key const& key, std::uint32_t hour, flow_counters const& c) {
        field_key const k = key_of(key, hour, fields_);
        auto const fresh = static_cast<std::uint32_t>(groups_.size());
        std::uint32_t at = 0;
        if (single_ >= 0) {
            std::uint32_t const v =
                single_ == 3 ? hour - from_ : k.at(static_cast<std::size_t>(single_));
            if (v >= dense_.size()) {
                dense_.resize(std::max<std::size_t>(v + 1, dense_.size() * 2), group_index::empty);
            }
            at = dense_[v];
            if (at == group_index::empty) {
                dense_[v] = at = fresh;
            }
        } else {
            std::uint64_t const hash = hash_key(k);
            index_->prefetch(hash);
            if (queued_ == lookahead) {
                index_->add(queue_[next_].key, queue_[next_].hash, queue_[next_].counters);
            } else {
                ++queued_;
            }
            queue_[next_] = {k, hash, c};
            next_ = (next_ + 1) % lookahead;
            return;
        }
        if (at == fresh) {
            groups_.push_back({k, 0, 0});
        }
        groups_[at].bytes_tx += c.bytes_tx;
        groups_[at].bytes_rx += c.bytes_rx;
    }

private:
    static constexpr std::size_t lookahead = 16;
    struct queued_row {
        field_key key;
        std::uint64_t hash;
        flow_counters counters;
    };

    std::uint32_t from_;
    unsigned mask_;
    field_mask fields_;
    int single_;
    std::vector<answer_row>& groups_;
    std::vector<std::uint32_t> dense_;
    std::optional<group_sums> index_;
    std::array<queued_row, lookahead> queue_{};
    std::size_t queued_ = 0;  // rows in queue_, the oldest `queued_` before next_
    std::size_t next_ = 0;    // where the next row goes
};

}  // namespace flowd::detail
