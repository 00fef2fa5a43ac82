#include "flowd/store/string_interner.hpp"

#include <functional>
#include <stdexcept>

namespace flowd {

string_interner::string_interner() = default;

string_interner::~string_interner() {
    for (auto& c : chunks_) {
        delete[] c.load(std::memory_order_relaxed);
    }
}

std::string_view* string_interner::chunk_for(std::uint32_t id) {
    auto& slot = chunks_[id >> chunk_bits];
    std::string_view* chunk = slot.load(std::memory_order_acquire);
    if (chunk != nullptr) {
        return chunk;
    }
    std::scoped_lock lock{chunk_alloc_mutex_};
    chunk = slot.load(std::memory_order_acquire);
    if (chunk == nullptr) {
        chunk = new std::string_view[chunk_size];
        bytes_.fetch_add(sizeof(std::string_view) * chunk_size, std::memory_order_relaxed);
        slot.store(chunk, std::memory_order_release);
    }
    return chunk;
}

std::uint32_t string_interner::intern(std::string_view s) {
    std::size_t const h = std::hash<std::string_view>{}(s);
    shard& sh = shards_[(h >> 7) % shard_count];
    std::scoped_lock lock{sh.mutex};
    if (auto found = sh.ids.find(s); found != sh.ids.end()) {
        return found->second;
    }
    std::uint32_t const id = next_id_.fetch_add(1, std::memory_order_relaxed);
    if (id == npos) {
        throw std::length_error("string_interner: more than 2^32-1 distinct strings");
    }
    std::string const& stored = sh.strings.emplace_back(s);
    // Publish the view before the id can be seen: readers learn ids only through this
    // shard's mutex or through a store shard mutex taken after this call returns.
    chunk_for(id)[id & chunk_mask] = stored;
    sh.ids.emplace(stored, id);
    bytes_.fetch_add(cost_of(s.size()), std::memory_order_relaxed);
    return id;
}

std::size_t string_interner::growth_of(std::vector<std::string_view> const& names,
                                       bool exact) const {
    std::size_t bytes = 0;
    std::size_t fresh = 0;
    for (std::string_view const s : names) {
        if (!exact || find(s) == npos) {
            bytes += cost_of(s.size());
            ++fresh;
        }
    }
    // Each id chunk the new ids would start.
    std::size_t const first = next_id_.load(std::memory_order_relaxed);
    std::size_t const chunks =
        ((first + fresh + chunk_mask) >> chunk_bits) - ((first + chunk_mask) >> chunk_bits);
    return bytes + chunks * sizeof(std::string_view) * chunk_size;
}

std::uint32_t string_interner::find(std::string_view s) const {
    std::size_t const h = std::hash<std::string_view>{}(s);
    shard const& sh = shards_[(h >> 7) % shard_count];
    std::scoped_lock lock{sh.mutex};
    auto found = sh.ids.find(s);
    return found == sh.ids.end() ? npos : found->second;
}

}  // namespace flowd
