#include <algorithm>
#include <array>
#include <bit>
#include <map>
#include <unordered_map>
#include <utility>

#include "flowd/store/flow_store.hpp"

// flow_store's read side: hour totals, range copies (and the changes folded into them),
// sorted snapshots of one hour. The write side is flow_store.cpp.
namespace flowd {
namespace {

// Marks a copied row for removal in fold_range_changes(): no stored hour reaches it.
constexpr std::uint32_t to_remove = 0xffffffffU;

struct app_key_hasher {
    std::size_t operator()(app_key const& k) const noexcept { return hash_app_key(k); }
};

// Sorts `v` by its low `bits` bits (the others are zero): least significant byte first,
// one counting pass per byte.
void radix_sort(std::vector<std::uint64_t>& v, int bits) {
    std::vector<std::uint64_t> tmp(v.size());
    for (int shift = 0; shift < bits; shift += 8) {
        std::array<std::uint32_t, 257> count{};
        for (std::uint64_t const x : v) {
            ++count[((x >> shift) & 0xff) + 1];
        }
        for (std::size_t b = 1; b < count.size(); ++b) {
            count[b] += count[b - 1];
        }
        for (std::uint64_t const x : v) {
            tmp[count[(x >> shift) & 0xff]++] = x;
        }
        v.swap(tmp);
    }
}

// Sorts an hour's entries by (src_app, dest_app, vpc_id) bytes through integer ranks: the
// few distinct names of each field are sorted once, then each entry becomes one 64-bit key
// of its three ranks and its index, and only those integers are sorted. Comparing names
// through the interner at every step of the sort (a memcmp call each) was most of a GET's
// CPU; sorting the 32-byte entries themselves, keyed, was most of what was left. False,
// leaving `entries` alone, when the interner's ids are too sparse for rank tables sized by
// them or the ranks do not fit 64 bits: then the caller sorts by names.
bool sort_by_ranks(std::vector<hour_snapshot::entry>& entries, string_interner const& names) {
    std::size_t const n = entries.size();
    if (n < 2) {
        return true;
    }
    std::uint32_t max_id = 0;
    for (hour_snapshot::entry const& e : entries) {
        max_id = std::max({max_id, e.key.src, e.key.dest, e.key.vpc});
    }
    std::size_t const ids = std::size_t{max_id} + 1;
    if (ids > n * 4 + 4096) {
        return false;
    }
    // rank[f * ids + id]: the rank of name `id` among the names of field f in this hour.
    constexpr std::uint32_t absent = 0xffffffffU;
    std::vector<std::uint32_t> rank(3 * ids, absent);
    std::array<std::vector<std::uint32_t>, 3> distinct;
    for (hour_snapshot::entry const& e : entries) {
        std::array<std::uint32_t, 3> const fields{e.key.src, e.key.dest, e.key.vpc};
        for (std::size_t f = 0; f < 3; ++f) {
            std::uint32_t& r = rank[f * ids + fields[f]];
            if (r == absent) {
                r = 0;
                distinct[f].push_back(fields[f]);
            }
        }
    }
    std::array<int, 3> bits{};
    for (std::size_t f = 0; f < 3; ++f) {
        std::vector<std::uint32_t>& d = distinct[f];
        std::sort(d.begin(), d.end(), [&names](std::uint32_t a, std::uint32_t b) {
            return names.view(a) < names.view(b);
        });
        for (std::size_t i = 0; i < d.size(); ++i) {
            rank[f * ids + d[i]] = static_cast<std::uint32_t>(i);
        }
        bits[f] = static_cast<int>(std::bit_width(d.size() - 1));
    }
    int const index_bits = static_cast<int>(std::bit_width(n - 1));
    if (bits[0] + bits[1] + bits[2] + index_bits > 64) {
        return false;
    }
    std::vector<std::uint64_t> order;
    order.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        hour_snapshot::entry const& e = entries[i];
        std::uint64_t key = rank[e.key.src];
        key = (key << bits[1]) | rank[ids + e.key.dest];
        key = (key << bits[2]) | rank[2 * ids + e.key.vpc];
        order.push_back((key << index_bits) | i);
    }
    if (n < 4096) {  // measured (flowd-micro bm_snapshot): below this std::sort is faster
        std::sort(order.begin(), order.end());
    } else {
        radix_sort(order, bits[0] + bits[1] + bits[2] + index_bits);
    }
    std::uint64_t const index_mask = (std::uint64_t{1} << index_bits) - 1;
    std::vector<hour_snapshot::entry> sorted;
    sorted.reserve(n);
    for (std::uint64_t const o : order) {
        sorted.push_back(entries[o & index_mask]);
    }
    entries.swap(sorted);
    return true;
}

}  // namespace

std::vector<hour_stat> flow_store::stats_locked(std::uint32_t from, std::uint32_t to) const {
    std::map<std::uint32_t, hour_stat> by_hour;
    for (std::size_t s = 0; s < options_.shard_count; ++s) {
        shard const& sh = shards_[s];
        std::scoped_lock lock{sh.mutex};
        for_hours_in(sh, from, to, [&by_hour](std::uint32_t hour, hour_table const& table) {
            hour_stat& st = by_hour[hour];
            st.hour = hour;
            st.keys += table.size();
            st.bytes_tx += table.sum_tx();
            st.bytes_rx += table.sum_rx();
        });
    }
    std::vector<hour_stat> out;
    out.reserve(by_hour.size());
    for (auto const& [hour, st] : by_hour) {
        out.push_back(st);
    }
    return out;
}

void flow_store::begin_range_copy(range_copy& rc) const {
    std::unique_lock gate{gate_};
    recorders_.push_back(&rc);
    rc.stats = stats_locked(rc.from, rc.to);
}

bool flow_store::end_range_copy(range_copy& rc) const {
    std::unique_lock gate{gate_};
    std::erase(recorders_, &rc);
    rc.stats = stats_locked(rc.from, rc.to);
    std::scoped_lock changes{rc.mutex};
    return !rc.overflowed;
}

void flow_store::note_range_changes(std::size_t s, std::vector<exported_key> const& changed) const {
    for (range_copy* r : recorders_) {
        if (r->copied[s] == 0) {
            continue;
        }
        std::scoped_lock changes{r->mutex};
        for (exported_key const& c : changed) {
            if (c.hour < r->from || c.hour >= r->to) {
                continue;
            }
            if (r->changes.size() >= r->max_changes) {
                r->overflowed = true;
                break;
            }
            r->changes.push_back({c, static_cast<std::uint32_t>(s)});
        }
    }
}

void flow_store::fold_range_changes(range_copy& rc, std::vector<exported_key>& out) {
    // Rows of tables that retention dropped after their copy are gone.
    bool dropped = false;
    for (range_copy::segment const& seg : rc.segments) {
        if (seg.hour < rc.dropped_before[seg.shard]) {
            for (std::size_t i = seg.begin; i < seg.end; ++i) {
                out[i].hour = to_remove;
            }
            dropped = true;
        }
    }
    if (!rc.changes.empty()) {
        // Changes by (shard, hour), then each group added to its table's copied rows: a map
        // over that segment only, so the cost is the rows of the tables that changed.
        std::sort(rc.changes.begin(), rc.changes.end(),
                  [](range_change const& a, range_change const& b) {
                      return std::pair{a.shard, a.row.hour} < std::pair{b.shard, b.row.hour};
                  });
        std::sort(rc.segments.begin(), rc.segments.end(),
                  [](range_copy::segment const& a, range_copy::segment const& b) {
                      return std::pair{a.shard, a.hour} < std::pair{b.shard, b.hour};
                  });
        std::unordered_map<app_key, std::size_t, app_key_hasher> at;
        for (std::size_t i = 0; i < rc.changes.size();) {
            std::uint32_t const s = rc.changes[i].shard;
            std::uint32_t const hour = rc.changes[i].row.hour;
            at.clear();
            auto const seg = std::lower_bound(
                rc.segments.begin(), rc.segments.end(), std::pair{s, hour},
                [](range_copy::segment const& g, std::pair<std::uint32_t, std::uint32_t> k) {
                    return std::pair{g.shard, g.hour} < k;
                });
            if (seg != rc.segments.end() && seg->shard == s && seg->hour == hour &&
                hour >= rc.dropped_before[s]) {
                for (std::size_t r = seg->begin; r < seg->end; ++r) {
                    at.emplace(out[r].key, r);
                }
            }
            for (; i < rc.changes.size() && rc.changes[i].shard == s &&
                   rc.changes[i].row.hour == hour;
                 ++i) {
                exported_key const& c = rc.changes[i].row;
                auto [it, fresh] = at.emplace(c.key, out.size());
                if (fresh) {
                    out.push_back(c);
                } else {
                    // Saturated as commit() saturates: the changes are what it added.
                    out[it->second].counters.bytes_tx += c.counters.bytes_tx;
                    out[it->second].counters.bytes_rx += c.counters.bytes_rx;
                }
            }
        }
    }
    if (dropped) {
        std::erase_if(out, [](exported_key const& r) { return r.hour == to_remove; });
    }
}

std::vector<hour_stat> flow_store::hour_stats(std::uint32_t from, std::uint32_t to) const {
    std::unique_lock gate{gate_};
    return stats_locked(from, to);
}

hour_snapshot flow_store::snapshot(std::uint32_t hour, flow_filter const& filter,
                                   hour_stat* stats) const {
    hour_snapshot snap;
    snap.hour_ = hour;
    snap.names_ = &names_;
    // A filter on a name never interned matches nothing.
    auto resolve =
        [this](std::optional<std::string_view> const& f) -> std::optional<std::uint32_t> {
        if (!f) {
            return std::nullopt;
        }
        return names_.find(*f);
    };
    if (stats != nullptr) {
        *stats = hour_stat{hour, 0, 0, 0};
    }
    std::optional<std::uint32_t> const src = resolve(filter.src_app);
    std::optional<std::uint32_t> const dest = resolve(filter.dest_app);
    std::optional<std::uint32_t> const vpc = resolve(filter.vpc_id);
    if ((src && *src == string_interner::npos) || (dest && *dest == string_interner::npos) ||
        (vpc && *vpc == string_interner::npos)) {
        if (stats != nullptr) {
            std::vector<hour_stat> const st = hour_stats(hour, hour + 1);
            if (!st.empty()) {
                *stats = st.front();
            }
        }
        return snap;
    }
    bool const filtered = src || dest || vpc;
    {
        std::unique_lock gate{gate_};
        if (stats != nullptr) {
            std::vector<hour_stat> const st = stats_locked(hour, hour + 1);
            if (!st.empty()) {
                *stats = st.front();
            }
        }
        for (std::size_t s = 0; s < options_.shard_count; ++s) {
            shard const& sh = shards_[s];
            std::scoped_lock lock{sh.mutex};
            auto table = sh.hours.find(hour);
            if (table == sh.hours.end()) {
                continue;
            }
            // Keys spread evenly over the shards: the first table predicts the hour's size.
            // (Reserving each table's size exactly copied the entries once per shard.)
            if (!filtered && snap.entries_.capacity() == 0) {
                snap.entries_.reserve(table->second.size() * options_.shard_count * 5 / 4 + 16);
            }
            table->second.for_each([&](app_key const& k, flow_counters const& c) {
                if ((src && k.src != *src) || (dest && k.dest != *dest) || (vpc && k.vpc != *vpc)) {
                    return;
                }
                snap.entries_.push_back({k, c});
            });
        }
    }
    // Sort outside every lock.
    if (sort_by_ranks(snap.entries_, names_)) {
        return snap;
    }
    // Compare names through the interner; equal ids are equal names.
    auto cmp = [this](hour_snapshot::entry const& a, hour_snapshot::entry const& b) {
        if (a.key.src != b.key.src) {
            return names_.view(a.key.src) < names_.view(b.key.src);
        }
        if (a.key.dest != b.key.dest) {
            return names_.view(a.key.dest) < names_.view(b.key.dest);
        }
        return a.key.vpc != b.key.vpc && names_.view(a.key.vpc) < names_.view(b.key.vpc);
    };
    std::sort(snap.entries_.begin(), snap.entries_.end(), cmp);
    return snap;
}

}  // namespace flowd
