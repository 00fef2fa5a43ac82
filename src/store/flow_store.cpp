#include "flowd/store/flow_store.hpp"

#include <algorithm>
#include <array>
#include <shared_mutex>
#include <stdexcept>
#include <unordered_set>
#include <utility>

namespace flowd {
namespace {

// Adds `delta` to `c`, each sum stopping at max_counter; true when one had to.
bool add_saturating(flow_counters& c, flow_counters const& delta) noexcept {
    if (c.can_add(delta)) {
        c.add(delta);
        return false;
    }
    c.bytes_tx = std::min(max_counter, c.bytes_tx + std::min(delta.bytes_tx, max_counter));
    c.bytes_rx = std::min(max_counter, c.bytes_rx + std::min(delta.bytes_rx, max_counter));
    return true;
}

// The refusal of adding `delta`, first carried by `record`, to `current`, if it overflows.
std::optional<store_rejection> overflow_of(flow_counters const& current, flow_counters const& delta,
                                           std::size_t record) {
    if (delta.bytes_tx > max_counter - current.bytes_tx) {
        return store_rejection{store_rejection::reason::counter_overflow, record, "bytes_tx"};
    }
    if (delta.bytes_rx > max_counter - current.bytes_rx) {
        return store_rejection{store_rejection::reason::counter_overflow, record, "bytes_rx"};
    }
    return std::nullopt;
}

}  // namespace

prepared_batch::prepared_batch(prepared_batch&& other) noexcept
    : store_(std::exchange(other.store_, nullptr)),
      items_(std::move(other.items_)),
      bounds_(std::move(other.bounds_)),
      largest_(other.largest_),
      reserved_keys_(std::exchange(other.reserved_keys_, 0)),
      unchecked_(std::exchange(other.unchecked_, false)),
      records_(other.records_),
      notify_(other.notify_) {}

prepared_batch::~prepared_batch() {
    if (store_ != nullptr && reserved_keys_ != 0) {
        store_->release_keys(reserved_keys_, unchecked_);
    }
}

flow_store::flow_store(store_options options)
    : options_(options), shard_shift_(0), shards_(nullptr) {
    if (options_.shard_count == 0 || !std::has_single_bit(options_.shard_count)) {
        throw std::invalid_argument("flow_store: shard_count must be a power of two");
    }
    shard_shift_ = 64U - static_cast<unsigned>(std::countr_zero(options_.shard_count));
    shards_ = std::make_unique<shard[]>(options_.shard_count);
}

std::size_t flow_store::shard_of(std::uint64_t hash, std::uint32_t hour) const noexcept {
    if (options_.shard_count == 1) {
        return 0;
    }
    // The tables index with the low bits of `hash`; shards take the high bits of a
    // hash that also mixes in the hour, so one hour spreads over every shard.
    std::uint64_t h = hash ^ (std::uint64_t{hour} * 0x9e3779b97f4a7c15ULL);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return static_cast<std::size_t>(h >> shard_shift_);
}

prepared_batch flow_store::group(flow_batch const& batch) {
    // The working vectors, kept per thread between batches so that a small batch allocates
    // only what it returns; what a large batch grew them to is given back after it.
    struct group_scratch {
        std::vector<prepared_batch::item> items;
        std::vector<std::uint32_t> shard_of_item;
        std::vector<std::uint32_t> counts;
        std::vector<std::uint32_t> ids;

        void release_if_large() {
            std::size_t const kept_items = 4096;
            if (items.capacity() > kept_items || ids.capacity() > 3 * kept_items) {
                *this = group_scratch{};
            }
        }
    };
    thread_local group_scratch scratch;
    prepared_batch prepared;
    prepared.records_ = batch.record_count();
    std::size_t const n = batch.entries().size();
    std::vector<prepared_batch::item>& items = scratch.items;
    items.clear();
    items.reserve(n);
    std::vector<std::uint32_t>& shard_of_item = scratch.shard_of_item;
    shard_of_item.resize(n);
    std::vector<std::uint32_t>& counts = scratch.counts;
    counts.assign(options_.shard_count + 1, 0);
    // The batch numbered its distinct names already: ask the shared interner (a mutex each
    // time) once per distinct name, not three times per key, and hash no string here.
    std::vector<std::uint32_t>& ids = scratch.ids;
    ids.clear();
    ids.reserve(batch.names().size());
    for (std::string_view const name : batch.names()) {
        ids.push_back(names_.intern(name));
    }
    std::uint64_t largest = 0;
    for (std::size_t i = 0; i < n; ++i) {
        batch_entry const& e = batch.entries()[i];
        app_key const key{ids[e.names[0]], ids[e.names[1]], ids[e.names[2]]};
        std::uint64_t const hash = hash_app_key(key);
        auto const s = static_cast<std::uint32_t>(shard_of(hash, e.record.hour));
        items.push_back(
            {key, e.record.hour, hash, e.record.counters, static_cast<std::uint32_t>(i)});
        largest = std::max({largest, e.record.counters.bytes_tx, e.record.counters.bytes_rx});
        shard_of_item[i] = s;
        ++counts[s + 1];
    }
    // Counting sort by shard, so commit() visits each touched shard once.
    for (std::size_t s = 1; s <= options_.shard_count; ++s) {
        counts[s] += counts[s - 1];
    }
    prepared.bounds_ = counts;
    prepared.items_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t const pos = counts[shard_of_item[i]]++;
        prepared.items_[pos] = items[i];
    }
    prepared.largest_ = largest;
    scratch.release_if_large();
    return prepared;
}

bool flow_store::reserve_unchecked(std::uint64_t n) noexcept {
    // Half of max_keys bounds what such reservations can hold back from batches that count
    // their new keys exactly: a batch that keeps the store at most half full is never
    // refused because another one reserved keys it did not insert.
    std::uint64_t const limit = options_.max_keys / 2;
    std::uint64_t current = keys_.load(std::memory_order_relaxed);
    do {
        if (n > limit || current > limit - n) {
            return false;
        }
    } while (!keys_.compare_exchange_weak(current, current + n, std::memory_order_relaxed));
    unchecked_keys_.fetch_add(n, std::memory_order_release);
    return true;
}

bool flow_store::over_store_bytes(std::uint64_t new_keys) const {
    return over_store_bytes_by(new_keys * bytes_per_new_key);
}

bool flow_store::over_store_bytes_by(std::uint64_t growth) const {
    std::uint64_t const bound = options_.max_store_bytes;
    if (bound == 0) {
        return false;
    }
    std::uint64_t const estimate = names_.memory_bytes() +
                                   keys_.load(std::memory_order_relaxed) * bytes_per_new_key +
                                   sizeof(*this) + sizeof(shard) * options_.shard_count + growth;
    if (estimate <= bound - bound / 10) {
        return false;
    }
    return memory_bytes() + growth > bound;
}

std::variant<prepared_batch, store_rejection> flow_store::prepare(flow_batch const& batch) {
    // Names are interned before anything else is checked, and stay: near max_store_bytes,
    // a batch whose new names alone would pass it is refused before interning them, so
    // refused batches cannot grow the store past the bound.
    if (options_.max_store_bytes != 0 &&
        over_store_bytes_by(names_.growth_of(batch.names(), false)) &&
        over_store_bytes_by(names_.growth_of(batch.names(), true))) {
        return store_rejection{store_rejection::reason::store_bytes_full, 0, {}};
    }
    prepared_batch prepared = group(batch);
    // Far from max_keys and max_store_bytes, reserve a key per item rather than probe for
    // the new ones; the probes below are then only for overflow. Near either bound the new
    // keys are counted exactly. Dropping `prepared` on a refusal releases it.
    bool const counted =
        over_store_bytes(prepared.items_.size()) || !reserve_unchecked(prepared.items_.size());
    if (!counted) {
        prepared.store_ = this;
        prepared.reserved_keys_ = prepared.items_.size();
        prepared.unchecked_ = true;
    }

    // Check every shard under its own lock; nothing changes yet. A shard whose peak leaves
    // room for the batch's largest counter cannot overflow: skip it when the keys need no
    // counting either.
    std::uint64_t new_keys = 0;
    for (std::size_t s = 0; s < options_.shard_count; ++s) {
        std::uint32_t const begin = prepared.bounds_[s];
        std::uint32_t const end = prepared.bounds_[s + 1];
        if (begin == end) {
            continue;
        }
        shard& sh = shards_[s];
        if (!counted && prepared.largest_ <= max_counter &&
            sh.peak.load(std::memory_order_relaxed) <= max_counter - prepared.largest_) {
            continue;
        }
        std::scoped_lock lock{sh.mutex};
        for (std::uint32_t i = begin; i < end; ++i) {
            prepared_batch::item const& it = prepared.items_[i];
            auto table = sh.hours.find(it.hour);
            flow_counters const* current =
                table == sh.hours.end() ? nullptr : table->second.find(it.key, it.hash);
            if (current == nullptr) {
                ++new_keys;
                continue;
            }
            if (auto rejection =
                    overflow_of(*current, it.counters, batch.entries()[it.entry].first_record)) {
                return *rejection;
            }
        }
    }
    if (!counted) {
        return prepared;
    }
    if (new_keys != 0 && over_store_bytes(new_keys)) {
        return store_rejection{store_rejection::reason::store_bytes_full, 0, {}};
    }

    // Reserve only what fits, so key_count() (flowd_store_keys) never shows more than
    // max_keys, not even for the moment a refused batch would need to give it back.
    std::uint64_t current = keys_.load(std::memory_order_relaxed);
    do {
        if (new_keys > options_.max_keys || current > options_.max_keys - new_keys) {
            return store_rejection{store_rejection::reason::store_full, 0, {}};
        }
    } while (!keys_.compare_exchange_weak(current, current + new_keys, std::memory_order_relaxed));
    prepared.store_ = this;
    prepared.reserved_keys_ = new_keys;
    return prepared;
}

void flow_store::commit(prepared_batch&& batch) {
    std::uint64_t inserted = 0;
    std::uint64_t saturated = 0;
    // Only while someone watches: reserved before the locks, so nothing allocates under
    // them, in a vector each thread keeps, so that a batch allocates nothing either.
    bool const tell = batch.notify_ && sink_ != nullptr;
    thread_local std::vector<changed_row> changes;
    changes.clear();
    if (tell && watched_.load(std::memory_order_acquire)) {
        changes.reserve(batch.items_.size());
    }
    // Look the tables of a run of items up first and prefetch their slots, then upsert:
    // the lookups are independent, so their cache misses overlap rather than each waiting
    // behind the previous item's upsert.
    constexpr std::uint32_t run = 16;
    std::array<hour_table*, run> tables{};
    // What this batch changed in shards that a range copy in progress has copied already
    // (empty, and never allocated, while no copy runs).
    std::vector<exported_key> changed;
    {
        std::shared_lock gate{gate_};
        // The hours watched are read under the gate: watch_changes() swaps them with it
        // held exclusive, so a batch either reports the new hours or applied before the swap.
        hour_ranges const* watched = tell && !watched_hours_.empty() ? &watched_hours_ : nullptr;
        if (watched != nullptr && changes.capacity() < batch.items_.size()) {
            changes.reserve(batch.items_.size());  // watching began after the check above
        }
        for (std::size_t s = 0; s < options_.shard_count; ++s) {
            std::uint32_t const begin = batch.bounds_[s];
            std::uint32_t const end = batch.bounds_[s + 1];
            if (begin == end) {
                continue;
            }
            shard& sh = shards_[s];
            std::scoped_lock lock{sh.mutex};
            bool const copied = !recorders_.empty() && watched_by_copy(s);
            changed.clear();
            std::uint64_t peak = sh.peak.load(std::memory_order_relaxed);
            for (std::uint32_t first = begin; first < end; first += run) {
                std::uint32_t const last = std::min(end, first + run);
                for (std::uint32_t i = first; i < last; ++i) {
                    hour_table& table = sh.hours[batch.items_[i].hour];
                    table.prefetch(batch.items_[i].hash);
                    tables.at(i - first) = &table;
                }
                for (std::uint32_t i = first; i < last; ++i) {
                    prepared_batch::item const& it = batch.items_[i];
                    hour_table& table = *tables.at(i - first);
                    std::size_t const size_before = table.size();
                    flow_counters& c = table.upsert(it.key, it.hash);
                    inserted += table.size() - size_before;
                    flow_counters const before = c;
                    if (add_saturating(c, it.counters)) {
                        ++saturated;
                    }
                    table.add_totals(c.bytes_tx - before.bytes_tx, c.bytes_rx - before.bytes_rx);
                    peak = std::max({peak, c.bytes_tx, c.bytes_rx});
                    if (copied) {
                        changed.push_back(
                            {it.key,
                             it.hour,
                             {c.bytes_tx - before.bytes_tx, c.bytes_rx - before.bytes_rx}});
                    }
                    if (watched != nullptr && hours_hold(*watched, it.hour)) {
                        changes.push_back({it.hour, it.key, c});
                    }
                }
            }
            sh.peak.store(peak, std::memory_order_relaxed);
            if (copied) {
                note_range_changes(s, changed);
            }
        }
    }
    settle_reservation(batch, inserted);
    if (saturated != 0) {
        saturated_.fetch_add(saturated, std::memory_order_relaxed);
    }
    if (!changes.empty()) {
        sink_->rows_changed(changes);
        changes.clear();
    }
    if (changes.capacity() > 4096) {
        changes = {};  // a large batch's vector is not kept
    }
}

void flow_store::watch_changes(hour_ranges hours) {
    std::scoped_lock gate{gate_};
    watched_hours_.swap(hours);
    watched_.store(!watched_hours_.empty(), std::memory_order_release);
}

void flow_store::settle_reservation(prepared_batch& batch, std::uint64_t inserted) noexcept {
    // Give back what a concurrent batch inserted first (or, unchecked, what was there
    // already), take what appeared since prepare().
    if (batch.unchecked_) {
        unchecked_keys_.fetch_sub(batch.reserved_keys_, std::memory_order_release);
        batch.unchecked_ = false;
    }
    if (inserted < batch.reserved_keys_) {
        keys_.fetch_sub(batch.reserved_keys_ - inserted, std::memory_order_relaxed);
    } else if (inserted > batch.reserved_keys_) {
        keys_.fetch_add(inserted - batch.reserved_keys_, std::memory_order_relaxed);
    }
    batch.reserved_keys_ = 0;
    batch.store_ = nullptr;
}

void flow_store::replay(flow_batch const& batch, bool notify) {
    prepared_batch p = group(batch);
    p.store_ = this;
    p.notify_ = notify;
    commit(std::move(p));
}

std::vector<flow_store::exported_key> flow_store::export_all() const {
    std::vector<exported_key> out;
    out.reserve(key_count());
    std::unique_lock gate{gate_};
    for (std::size_t s = 0; s < options_.shard_count; ++s) {
        shard const& sh = shards_[s];
        std::scoped_lock lock{sh.mutex};
        for (auto const& [hour, table] : sh.hours) {
            table.for_each([&out, h = hour](app_key const& k, flow_counters const& c) {
                out.push_back({k, h, c});
            });
        }
    }
    return out;
}

std::size_t flow_store::drop_hours_before(std::uint32_t first_kept) {
    std::unordered_set<std::uint32_t> dropped;
    std::uint64_t keys = 0;
    {
        std::shared_lock gate{gate_};
        for (std::size_t s = 0; s < options_.shard_count; ++s) {
            shard& sh = shards_[s];
            std::scoped_lock lock{sh.mutex};
            // A range copy that has this shard already must forget what leaves it now.
            for (range_copy* r : recorders_) {
                if (r->copied[s] == 0) {
                    continue;
                }
                r->dropped_before[s] = std::max(r->dropped_before[s], first_kept);
                std::scoped_lock changes{r->mutex};
                std::erase_if(r->changes, [s, first_kept](range_change const& c) {
                    return c.shard == s && c.row.hour < first_kept;
                });
            }
            for (auto it = sh.hours.begin(); it != sh.hours.end();) {
                if (it->first < first_kept) {
                    keys += it->second.size();
                    if (it->second.size() != 0) {
                        dropped.insert(it->first);
                    }
                    it = sh.hours.erase(it);
                } else {
                    ++it;
                }
            }
        }
    }
    keys_.fetch_sub(keys, std::memory_order_relaxed);
    return dropped.size();
}

std::size_t flow_store::hour_count() const {
    std::unordered_set<std::uint32_t> hours;
    for (std::size_t s = 0; s < options_.shard_count; ++s) {
        std::scoped_lock lock{shards_[s].mutex};
        for (auto const& [hour, table] : shards_[s].hours) {
            if (table.size() != 0) {
                hours.insert(hour);
            }
        }
    }
    return hours.size();
}

std::size_t flow_store::memory_bytes() const {
    std::size_t bytes =
        sizeof(*this) + sizeof(shard) * options_.shard_count + names_.memory_bytes();
    for (std::size_t s = 0; s < options_.shard_count; ++s) {
        std::scoped_lock lock{shards_[s].mutex};
        // An unordered_map node per hour: the table object, the key, the next pointer, the bucket.
        bytes += shards_[s].hours.size() * (sizeof(hour_table) + 32);
        for (auto const& [hour, table] : shards_[s].hours) {
            bytes += table.memory_bytes();
        }
    }
    return bytes;
}

}  // namespace flowd
