#include "flowd/query/change_journal.hpp"

#include <algorithm>
#include <array>
#include <limits>

namespace flowd {

namespace {

// An index twice the live keys (at least 16 slots): short probes.
std::size_t index_slots(std::size_t live) {
    std::size_t n = 16;
    while (n < live * 2) {
        n <<= 1;
    }
    return n;
}

}  // namespace

bool change_journal::hour_rows::put(app_key const& key, std::uint64_t hash, std::uint64_t seq,
                                    flow_counters const& counters) {
    // An update appends, so a hot key leaves a dead entry behind per batch: mostly dead
    // entries (or a full index) are compacted away, paid once per as many appends.
    if (rows.size() >= 2 * live + 16 || (live + 1) * 2 > index.size()) {
        compact(0);
    }
    std::size_t const mask = index.size() - 1;
    std::size_t at = hash & mask;
    while (index[at] != 0 && rows[index[at] - 1].key != key) {
        at = (at + 1) & mask;
    }
    bool const added = index[at] == 0;
    if (added) {
        ++live;
    } else {
        rows[index[at] - 1].dead = true;
    }
    rows.push_back({key, false, seq, counters});
    index[at] = static_cast<std::uint32_t>(rows.size());
    return added;
}

void change_journal::hour_rows::compact(std::uint64_t cut) {
    std::erase_if(rows, [cut](row_entry const& e) { return e.dead || e.seq <= cut; });
    live = rows.size();
    // Room for twice the live keys before the next rebuild.
    index.assign(index_slots(live * 2), 0);
    std::size_t const mask = index.size() - 1;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        std::size_t at = hash_app_key(rows[i].key) & mask;
        while (index[at] != 0) {
            at = (at + 1) & mask;
        }
        index[at] = static_cast<std::uint32_t>(i + 1);
    }
}

change_journal::change_journal(flow_store& store, std::size_t capacity,
                               std::chrono::milliseconds linger)
    : store_(store), capacity_(std::max<std::size_t>(capacity, 1)), linger_(linger) {
    store_.set_change_sink(this);
}

change_journal::~change_journal() {
    store_.watch_changes(false);
    store_.set_change_sink(nullptr);
}

std::uint64_t change_journal::subscribe() {
    std::scoped_lock lock{mutex_};
    ++subscribers_;
    if (!recording_) {
        // Batches committed while nobody watched were not recorded.
        lost_upto_ = seq_;
        recording_ = true;
        store_.watch_changes(true);
    }
    return seq_;
}

void change_journal::unsubscribe() {
    std::scoped_lock lock{mutex_};
    if (subscribers_ != 0 && --subscribers_ == 0) {
        idle_since_ = std::chrono::steady_clock::now();
    }
}

std::uint64_t change_journal::sequence() const {
    std::scoped_lock lock{mutex_};
    return seq_;
}

bool change_journal::holds_since(std::uint64_t since) const {
    std::scoped_lock lock{mutex_};
    return recording_ && since >= lost_upto_ && since <= seq_;
}

void change_journal::rows_changed(std::vector<changed_row> const& rows) {
    std::scoped_lock lock{mutex_};
    if (!recording_) {
        return;  // recording stopped between the store's check and this call
    }
    if (subscribers_ == 0 && std::chrono::steady_clock::now() - idle_since_ > linger_) {
        // Nobody reconnected within the resume window: stop paying for the record.
        recording_ = false;
        store_.watch_changes(false);
        hours_.clear();
        live_ = 0;
        return;
    }
    ++seq_;
    // Each row's entry is loaded `ahead` rows before its put, so that the cache misses of a
    // batch's rows overlap (the entries of 24 busy hours are larger than the caches). A
    // batch's rows come grouped by shard, not hour: the hours looked up are remembered (by
    // hour modulo 64) for the batch.
    constexpr std::size_t ahead = 8;
    std::array<std::uint64_t, ahead> hashes{};
    std::array<std::pair<std::uint32_t, hour_rows*>, 64> seen{};
    auto const rows_of = [&](std::uint32_t hour) {
        auto& s = seen.at(hour % seen.size());
        if (s.second == nullptr || s.first != hour) {
            s = {hour, &hours_[hour]};
        }
        return s.second;
    };
    for (std::size_t i = 0; i < rows.size() + ahead; ++i) {
        // Row i - ahead is put before row i takes its hash's place in the ring.
        if (i >= ahead) {
            changed_row const& r = rows[i - ahead];
            if (rows_of(r.hour)->put(r.key, hashes.at(i % ahead), seq_, r.counters) &&
                ++live_ > capacity_) {
                drop_oldest_locked();
                seen = {};
            }
        }
        if (i < rows.size()) {
            hashes.at(i % ahead) = hash_app_key(rows[i].key);
            rows_of(rows[i].hour)->prefetch(hashes.at(i % ahead));
        }
    }
}

void change_journal::drop_oldest_locked() {
    std::vector<std::uint64_t> seqs;
    seqs.reserve(live_);
    for (auto const& [hour, h] : hours_) {
        for (row_entry const& e : h.rows) {
            if (!e.dead) {
                seqs.push_back(e.seq);
            }
        }
    }
    // A quarter at a time: the scan is paid once per capacity / 4 new rows.
    auto const quarter = seqs.begin() + static_cast<std::ptrdiff_t>(seqs.size() / 4);
    std::nth_element(seqs.begin(), quarter, seqs.end());
    std::uint64_t const cut = *quarter;
    lost_upto_ = std::max(lost_upto_, cut);
    live_ = 0;
    for (auto it = hours_.begin(); it != hours_.end();) {
        it->second.compact(cut);
        live_ += it->second.live;
        it = it->second.live == 0 ? hours_.erase(it) : std::next(it);
    }
}

bool change_journal::read_since(std::uint64_t since, std::uint32_t from, std::uint32_t to,
                                std::function<bool(changed_row const&)> const& keep,
                                std::vector<changed_row>& out, std::uint64_t& upto) const {
    return read_between(since, std::numeric_limits<std::uint64_t>::max(), from, to, keep, out,
                        upto);
}

bool change_journal::read_between(std::uint64_t since, std::uint64_t until, std::uint32_t from,
                                  std::uint32_t to,
                                  std::function<bool(changed_row const&)> const& keep,
                                  std::vector<changed_row>& out, std::uint64_t& upto) const {
    std::scoped_lock lock{mutex_};
    if (!recording_ || since < lost_upto_ || since > seq_) {
        return false;
    }
    // A bound before `since` reads nothing and leaves the cursor where it was.
    upto = std::max(since, std::min(until, seq_));
    for (auto it = hours_.lower_bound(from); it != hours_.end() && it->first < to; ++it) {
        std::vector<row_entry> const& rows = it->second.rows;
        // Entries are in sequence order: the ones after `since` are at the end.
        std::size_t first = rows.size();
        while (first != 0 && rows[first - 1].seq > since) {
            --first;
        }
        for (std::size_t i = first; i < rows.size() && rows[i].seq <= upto; ++i) {
            if (rows[i].dead) {
                continue;
            }
            changed_row const r{it->first, rows[i].key, rows[i].counters};
            if (!keep || keep(r)) {
                out.push_back(r);
            }
        }
    }
    return true;
}

}  // namespace flowd
