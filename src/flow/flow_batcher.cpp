#include "flowd/flow/flow_batcher.hpp"

namespace flowd {

std::string_view drop_reason_label(drop_reason r) noexcept {
    switch (r) {
        case drop_reason::retention:
            return "retention";
        case drop_reason::sealed:
            return "sealed";
        case drop_reason::overflow:
            return "overflow";
        case drop_reason::unmatched:
            return "unmatched";
        case drop_reason::store_full:
            return "store_full";
    }
    return "overflow";
}

std::uint32_t flow_batcher::name_id(std::string_view name) {
    auto const slot = (reinterpret_cast<std::uintptr_t>(name.data()) >> 3) % name_cache_.size();
    cached_name& c = name_cache_[slot];
    if (c.data == name.data() && c.size == name.size() && names_[c.id] == name) {
        return c.id;
    }
    std::uint32_t id = 0;
    if (auto it = name_ids_.find(name); it != name_ids_.end()) {
        id = it->second;
    } else {
        id = static_cast<std::uint32_t>(names_.size());
        names_.emplace_back(name);
        name_ids_.emplace(names_.back(), id);
    }
    c = cached_name{name.data(), name.size(), id};
    return id;
}

bool flow_batcher::add(std::string_view src_app, std::string_view dest_app, std::string_view vpc_id,
                       std::uint32_t hour, flow_counters counters) {
    if (counters.bytes_tx > max_counter || counters.bytes_rx > max_counter) {
        return false;
    }
    key const k{name_id(src_app), name_id(dest_app), name_id(vpc_id), hour};
    auto [it, fresh] = index_.try_emplace(k, entries_.size());
    if (fresh) {
        entries_.push_back(entry{k, counters, 1});
    } else {
        entry& e = entries_[it->second];
        if (!e.counters.can_add(counters)) {
            return false;
        }
        e.counters.add(counters);
        ++e.records;
    }
    ++records_;
    return true;
}

flow_batch flow_batcher::build() const {
    flow_batch b;
    b.reserve(entries_.size());
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        entry const& e = entries_[i];
        (void)b.add(names_[e.k.src], names_[e.k.dst], names_[e.k.vpc], e.k.hour, e.counters, i);
    }
    b.set_record_count(records_);
    return b;
}

std::size_t flow_batcher::remove_key(std::size_t i) {
    if (i >= entries_.size()) {
        return 0;
    }
    std::size_t const n = entries_[i].records;
    index_.erase(entries_[i].k);
    if (i + 1 != entries_.size()) {
        entries_[i] = entries_.back();
        index_[entries_[i].k] = i;
    }
    entries_.pop_back();
    records_ -= n;
    return n;
}

void flow_batcher::clear() {
    name_cache_ = {};
    name_ids_.clear();
    names_.clear();
    index_.clear();
    entries_.clear();
    records_ = 0;
}

}  // namespace flowd
