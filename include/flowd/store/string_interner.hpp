#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flowd {

// Dictionary of the app and VPC names the store has seen: each distinct string gets a
// dense 32-bit id once and keeps it for the life of the process, so a stored key is a
// few integers. Strings are never freed (their number is bounded by 3 * max_keys).
// The class is thread-safe. No concurrent call to any API of this type causes a data race;
// view() takes no lock.
class string_interner {
public:
    static constexpr std::uint32_t npos = 0xffffffffU;

    string_interner();
    ~string_interner();
    string_interner(string_interner const&) = delete;
    string_interner& operator=(string_interner const&) = delete;

    // Returns the id of `s`, adding it when new.
    std::uint32_t intern(std::string_view s);

    // Returns the id of `s`, or npos when it was never interned.
    [[nodiscard]] std::uint32_t find(std::string_view s) const;

    // The string for an id returned by intern() or find(), or read from the store.
    [[nodiscard]] std::string_view view(std::uint32_t id) const noexcept {
        return chunks_[id >> chunk_bits].load(std::memory_order_acquire)[id & chunk_mask];
    }

    [[nodiscard]] std::size_t size() const noexcept {
        return next_id_.load(std::memory_order_relaxed);
    }

    // What interning one new string of `size` bytes adds to memory_bytes(): the map node,
    // the deque slot and, past the small-string buffer, the characters' heap block as
    // glibc malloc sizes it (8 bytes of header, 16-byte steps).
    [[nodiscard]] static constexpr std::size_t cost_of(std::size_t size) noexcept {
        std::size_t const heap = size > 15 ? ((size + 1 + 8 + 15) & ~std::size_t{15}) : 0;
        return sizeof(std::string) + 48 + heap;
    }

    // What interning `names` (distinct strings) would add to memory_bytes(), id chunks
    // included. exact: strings already interned add nothing (takes each name's shard
    // lock); else every name counts as new, an upper bound that takes no lock.
    [[nodiscard]] std::size_t growth_of(std::vector<std::string_view> const& names,
                                        bool exact) const;

    // An estimate of the heap this interner holds, for flowd_store_memory_bytes.
    [[nodiscard]] std::size_t memory_bytes() const noexcept {
        return bytes_.load(std::memory_order_relaxed);
    }

private:
    static constexpr std::uint32_t chunk_bits = 16;
    static constexpr std::uint32_t chunk_size = 1U << chunk_bits;
    static constexpr std::uint32_t chunk_mask = chunk_size - 1;
    static constexpr std::size_t shard_count = 16;

    struct alignas(64) shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string_view, std::uint32_t> ids;  // guarded by mutex
        std::deque<std::string> strings;  // guarded by mutex; elements never move
    };

    std::string_view* chunk_for(std::uint32_t id);

    std::array<shard, shard_count> shards_;
    // id -> view, in chunks allocated once and never moved, so readers need no lock.
    std::array<std::atomic<std::string_view*>, (std::size_t{1} << (32 - chunk_bits))> chunks_{};
    std::mutex chunk_alloc_mutex_;
    std::atomic<std::uint32_t> next_id_{0};
    std::atomic<std::size_t> bytes_{0};
};

}  // namespace flowd
