#include "flowd/domain/flow_batch.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <random>
#include <utility>

#include "flowd/domain/string_hash.hpp"

namespace flowd {

std::uint64_t const string_hash_seed = [] {
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) | rd();
}();

namespace {

constexpr std::size_t block_bytes = 4096;

// A key is three batch-local name numbers and the hour: two multiplies, seeded.
std::uint64_t key_hash(std::array<std::uint32_t, 3> const& names, std::uint32_t hour) noexcept {
    std::uint64_t const a = (std::uint64_t{names[0]} << 32) | names[1];
    std::uint64_t const b = (std::uint64_t{names[2]} << 32) | hour;
    return hash_mix(a ^ string_hash_seed,
                    hash_mix(b ^ 0xe7037ed1a0b428dbULL, 0xa0761d6478bd642fULL));
}

static_assert(std::endian::native == std::endian::little,
              "short_name_words() builds little-endian words");

constexpr std::size_t short_name_bytes = 16;

// `s` (at most 16 bytes) as two little-endian words, zero past its end. Overlapping
// fixed-size loads inside `s` only, shifted into place.
std::array<std::uint64_t, 2> short_name_words(std::string_view s) noexcept {
    std::size_t const n = s.size();
    char const* const p = s.data();
    auto const load8 = [](char const* at) {
        std::uint64_t w = 0;
        std::memcpy(&w, at, 8);
        return w;
    };
    if (n >= 8) {
        // Bytes 8..n-1 are the last n-8 bytes of the word ending at the end of `s`.
        return {load8(p), n == 8 ? 0 : load8(p + n - 8) >> (8 * (16 - n))};
    }
    if (n >= 4) {
        std::uint32_t lo = 0;
        std::uint32_t hi = 0;
        std::memcpy(&lo, p, 4);
        std::memcpy(&hi, p + n - 4, 4);
        return {lo | ((std::uint64_t{hi} >> (8 * (8 - n))) << 32), 0};
    }
    std::uint64_t w = 0;
    for (std::size_t i = 0; i < n; ++i) {
        w |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
    }
    return {w, 0};
}

std::uint64_t short_name_hash(std::array<std::uint64_t, 2> const& w, std::size_t n) noexcept {
    return hash_mix(w[0] ^ string_hash_seed, w[1] ^ (0xe7037ed1a0b428dbULL + n));
}

// a == b word by word: std::array's operator== on integers compiles to a call to memcmp
// (g++ 12), which was 15 % of decode + pre-aggregate under perf.
template <class T, std::size_t N>
bool same_words(std::array<T, N> const& a, std::array<T, N> const& b) noexcept {
    bool same = true;
    for (std::size_t i = 0; i < N; ++i) {
        same &= a[i] == b[i];
    }
    return same;
}

std::size_t table_size(std::size_t n) noexcept {
    std::size_t capacity = 16;
    // Load factor at most 1/2: probes stay short.
    while (capacity < n * 2) {
        capacity *= 2;
    }
    return capacity;
}

}  // namespace

flow_batch::flow_batch(flow_batch&& other) noexcept
    : entries_(std::exchange(other.entries_, {})),
      slots_(std::exchange(other.slots_, {})),
      names_(std::exchange(other.names_, {})),
      name_info_(std::exchange(other.name_info_, {})),
      name_slots_(std::exchange(other.name_slots_, {})),
      blocks_(std::exchange(other.blocks_, {})),
      block_next_(std::exchange(other.block_next_, nullptr)),
      block_left_(std::exchange(other.block_left_, 0)),
      block_size_(std::exchange(other.block_size_, 0)),
      records_(std::exchange(other.records_, 0)) {}

flow_batch& flow_batch::operator=(flow_batch&& other) noexcept {
    if (this != &other) {
        entries_ = std::exchange(other.entries_, {});
        slots_ = std::exchange(other.slots_, {});
        names_ = std::exchange(other.names_, {});
        name_info_ = std::exchange(other.name_info_, {});
        name_slots_ = std::exchange(other.name_slots_, {});
        blocks_ = std::exchange(other.blocks_, {});
        block_next_ = std::exchange(other.block_next_, nullptr);
        block_left_ = std::exchange(other.block_left_, 0);
        block_size_ = std::exchange(other.block_size_, 0);
        records_ = std::exchange(other.records_, 0);
    }
    return *this;
}

flow_batch::flow_batch(flow_batch const& other) {
    reserve(other.entries_.size());
    for (batch_entry const& e : other.entries_) {
        flow_record_view const& r = e.record;
        add(r.src_app, r.dest_app, r.vpc_id, r.hour, r.counters, e.first_record);
    }
    records_ = other.records_;
}

flow_batch& flow_batch::operator=(flow_batch const& other) {
    if (this != &other) {
        flow_batch copy(other);
        *this = std::move(copy);
    }
    return *this;
}

void flow_batch::reserve(std::size_t keys) {
    entries_.reserve(keys);
    if (std::size_t const capacity = table_size(keys); capacity > slots_.size()) {
        grow_keys(capacity);
    }
}

void flow_batch::grow_keys(std::size_t capacity) {
    slots_.assign(capacity, 0);
    std::size_t const mask = capacity - 1;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        std::uint64_t const h = key_hash(entries_[i].names, entries_[i].record.hour);
        std::size_t j = h & mask;
        while (slots_[j] != 0) {
            j = (j + 1) & mask;
        }
        slots_[j] = (h >> 32 << 32) | (i + 1);
    }
}

void flow_batch::grow_names(std::size_t capacity) {
    names_.reserve(capacity / 2);
    name_info_.reserve(capacity / 2);
    name_slots_.assign(capacity, 0);
    std::size_t const mask = capacity - 1;
    for (std::size_t i = 0; i < names_.size(); ++i) {
        std::uint64_t const h = name_info_[i].hash;
        std::size_t j = h & mask;
        while (name_slots_[j] != 0) {
            j = (j + 1) & mask;
        }
        name_slots_[j] = (h >> 32 << 32) | (i + 1);
    }
}

std::string_view flow_batch::store_name(std::string_view name) {
    if (name.size() > block_left_) {
        // Blocks double from 256 bytes to 4 KiB: a one-record batch stays cheap.
        std::size_t const next = blocks_.empty() ? 256 : std::min(block_bytes, block_size_ * 2);
        block_size_ = next;
        std::size_t const size = std::max(next, name.size());
        blocks_.push_back(std::make_unique<char[]>(size));
        block_next_ = blocks_.back().get();
        block_left_ = size;
    }
    if (!name.empty()) {
        std::memcpy(block_next_, name.data(), name.size());
    }
    std::string_view const stored(block_next_, name.size());
    block_next_ += name.size();
    block_left_ -= name.size();
    return stored;
}

std::uint32_t flow_batch::name_id(std::string_view name) {
    if ((names_.size() + 1) * 2 > name_slots_.size()) {
        grow_names(name_slots_.empty() ? 16 : name_slots_.size() * 2);
    }
    bool const is_short = name.size() <= short_name_bytes;
    std::array<std::uint64_t, 2> const words =
        is_short ? short_name_words(name) : std::array<std::uint64_t, 2>{};
    std::uint64_t const h =
        is_short ? short_name_hash(words, name.size()) : hash_bytes(string_hash_seed, name);
    std::uint64_t const tag = h >> 32 << 32;
    std::size_t const mask = name_slots_.size() - 1;
    std::size_t j = h & mask;
    for (std::uint64_t slot = 0; (slot = name_slots_[j]) != 0; j = (j + 1) & mask) {
        if ((slot & ~std::uint64_t{0xffffffff}) != tag) {
            continue;
        }
        auto const i = static_cast<std::uint32_t>(slot) - 1;
        if (names_[i].size() == name.size() &&
            (is_short ? same_words(name_info_[i].words, words) : same_bytes(names_[i], name))) {
            return i;
        }
    }
    auto const id = static_cast<std::uint32_t>(names_.size());
    names_.push_back(store_name(name));
    name_info_.push_back({h, words});
    name_slots_[j] = tag | (id + 1);
    return id;
}

flow_batch::add_status flow_batch::add(std::string_view src_app, std::string_view dest_app,
                                       std::string_view vpc_id, std::uint32_t hour,
                                       flow_counters counters, std::size_t record_index) {
    if ((entries_.size() + 1) * 2 > slots_.size()) {
        grow_keys(slots_.empty() ? 16 : slots_.size() * 2);
    }
    // A key already in the batch has its names numbered already, so on overflow below
    // nothing was added.
    std::array<std::uint32_t, 3> const names{name_id(src_app), name_id(dest_app), name_id(vpc_id)};
    std::uint64_t const h = key_hash(names, hour);
    std::size_t const mask = slots_.size() - 1;
    std::size_t j = h & mask;
    std::uint64_t const tag = h >> 32 << 32;
    for (std::uint64_t slot = 0; (slot = slots_[j]) != 0; j = (j + 1) & mask) {
        if ((slot & ~std::uint64_t{0xffffffff}) != tag) {
            continue;
        }
        batch_entry& e = entries_[static_cast<std::uint32_t>(slot) - 1];
        if (!same_words(e.names, names) || e.record.hour != hour) {
            continue;
        }
        flow_record_view& r = e.record;
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
    entries_.push_back(batch_entry{
        flow_record_view{names_[names[0]], names_[names[1]], names_[names[2]], hour, counters},
        record_index, names});
    slots_[j] = tag | entries_.size();
    ++records_;
    return add_status::ok;
}

}  // namespace flowd
