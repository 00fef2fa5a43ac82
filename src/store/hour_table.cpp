#include "flowd/store/hour_table.hpp"

#include <utility>

namespace flowd {

flow_counters* hour_table::find(app_key const& key, std::uint64_t hash) noexcept {
    if (capacity_ == 0) {
        return nullptr;
    }
    std::size_t const mask = capacity_ - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
        slot& s = slots_[i];
        if (s.used == 0) {
            return nullptr;
        }
        if (s.key == key) {
            return &s.counters;
        }
    }
}

flow_counters& hour_table::upsert(app_key const& key, std::uint64_t hash) {
    // Keep the load factor at or below 7/8 so probe sequences stay short.
    if ((size_ + 1) * 8 > capacity_ * 7) {
        grow();
    }
    std::size_t const mask = capacity_ - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
        slot& s = slots_[i];
        if (s.used == 0) {
            s.key = key;
            s.used = 1;
            s.counters = {};
            ++size_;
            return s.counters;
        }
        if (s.key == key) {
            return s.counters;
        }
    }
}

void hour_table::grow() {
    std::size_t const new_capacity = capacity_ == 0 ? 8 : capacity_ * 2;
    auto fresh = std::make_unique<slot[]>(new_capacity);
    std::size_t const mask = new_capacity - 1;
    for (std::size_t j = 0; j < capacity_; ++j) {
        slot const& s = slots_[j];
        if (s.used == 0) {
            continue;
        }
        std::size_t i = hash_app_key(s.key) & mask;
        while (fresh[i].used != 0) {
            i = (i + 1) & mask;
        }
        fresh[i] = s;
    }
    slots_ = std::move(fresh);
    capacity_ = new_capacity;
}

}  // namespace flowd
