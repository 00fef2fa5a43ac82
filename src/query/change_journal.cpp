#include "flowd/query/change_journal.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <limits>

namespace flowd {

namespace {

// A table twice the keys (at least 16 slots): short probes.
std::size_t index_slots(std::size_t keys) {
    return std::bit_ceil(std::max<std::size_t>(16, keys * 2));
}

}  // namespace

bool change_journal::hour_rows::put(app_key const& key, std::uint64_t hash, std::uint64_t seq,
                                    flow_counters const& counters) {
    if (seq != last_seq) {
        // A generation ends at a batch's first put here, so that one batch's entries are all
        // in one generation. Half the hour's keys listed: a read from before this
        // generation visits about as many entries as a read of the whole hour would.
        if (current.changed.size() >= size / 2 + 16) {
            std::swap(previous, current);
            current.changed.clear();
            current.start = seq;
        }
        last_seq = seq;
    }
    if ((size + 1) * 2 > slots.size()) {
        rebuild(index_slots(size * 2 + 1), 0, seq);
    }
    std::size_t const mask = slots.size() - 1;
    std::size_t at = hash & mask;
    while (slots[at].seq != 0 && slots[at].key != key) {
        at = (at + 1) & mask;
    }
    row_entry& e = slots[at];
    bool const added = e.seq == 0;
    if (added || e.seq < current.start) {
        current.changed.push_back(static_cast<std::uint32_t>(at));
    }
    size += added ? 1 : 0;
    e = {key, seq, counters};
    return added;
}

void change_journal::hour_rows::rebuild(std::size_t capacity, std::uint64_t cut,
                                        std::uint64_t seq) {
    std::vector<row_entry> old(capacity);
    old.swap(slots);
    size = 0;
    std::size_t const mask = slots.size() - 1;
    // The slots moved: the generations start again at `seq`, listing what batch `seq`
    // changed so far (a read from before it visits the whole hour).
    previous = {seq, {}};
    current.start = seq;
    current.changed.clear();
    for (row_entry const& e : old) {
        if (e.seq <= cut) {
            continue;  // empty, or dropped
        }
        std::size_t at = hash_app_key(e.key) & mask;
        while (slots[at].seq != 0) {
            at = (at + 1) & mask;
        }
        slots[at] = e;
        ++size;
        if (e.seq >= seq) {
            current.changed.push_back(static_cast<std::uint32_t>(at));
        }
    }
    last_seq = seq;
}

void change_journal::hour_rows::read(std::uint64_t since, std::uint64_t upto,
                                     std::vector<row_entry const*>& out) const {
    std::size_t const first = out.size();
    auto const take = [&](row_entry const& e, std::uint64_t before) {
        if (e.seq > since && e.seq <= upto && e.seq < before) {
            out.push_back(&e);
        }
    };
    constexpr std::uint64_t none = std::numeric_limits<std::uint64_t>::max();
    if (since + 1 >= current.start) {
        for (std::uint32_t i : current.changed) {
            take(slots[i], none);
        }
    } else if (since + 1 >= previous.start) {
        // An entry changed in both generations is taken from the current one.
        for (std::uint32_t i : previous.changed) {
            take(slots[i], current.start);
        }
        for (std::uint32_t i : current.changed) {
            take(slots[i], none);
        }
    } else {
        for (row_entry const& e : slots) {
            take(e, none);  // an empty slot's sequence 0 is never after `since`
        }
    }
    std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
                     [](row_entry const* a, row_entry const* b) { return a->seq < b->seq; });
}

change_journal::change_journal(flow_store& store, std::size_t capacity,
                               std::chrono::milliseconds linger)
    : store_(store), capacity_(std::max<std::size_t>(capacity, 1)), linger_(linger) {
    store_.set_change_sink(this);
}

change_journal::~change_journal() {
    store_.watch_changes({});
    store_.set_change_sink(nullptr);
}

change_journal::watch change_journal::subscribe(std::uint32_t from, std::uint32_t to,
                                                std::optional<std::uint64_t> resume_from) {
    std::scoped_lock lock{mutex_};
    auto const now = std::chrono::steady_clock::now();
    expire_locked(now);
    bool const resumed = resume_from && holds_since_locked(*resume_from, from, to, now);
    if (watchers_.empty()) {
        // Batches committed while nobody watched were not recorded.
        lost_upto_ = seq_;
    }
    // A batch that changed no watched hour took no number: a new number here puts what
    // such batches changed in these hours before every cursor the watcher holds for.
    ++seq_;
    watch const w{next_watcher_++, resumed ? *resume_from : seq_, resumed};
    watchers_.emplace(w.id, watcher{from, to, seq_, std::nullopt});
    // Batches applying with the store's old hours are done when this returns; those that
    // take their numbers after seq_ still may lack these hours' rows, but they were in the
    // store before this stream copies its hours (a resumed stream's hours were watched).
    if (from < to && ranges_[{from, to}]++ == 0) {
        publish_locked();
    }
    return w;
}

void change_journal::unsubscribe(std::uint64_t id) {
    std::scoped_lock lock{mutex_};
    auto const now = std::chrono::steady_clock::now();
    auto const it = watchers_.find(id);
    if (it != watchers_.end() && !it->second.left) {
        it->second.left = now;
        leaving_.emplace_back(now, id);
    }
    expire_locked(now);
}

void change_journal::expire_locked(std::chrono::steady_clock::time_point now) {
    bool changed = false;
    while (!leaving_.empty() && now - leaving_.front().first > linger_) {
        auto const it = watchers_.find(leaving_.front().second);
        leaving_.pop_front();
        watcher const& w = it->second;
        if (w.from < w.to) {
            auto const r = ranges_.find({w.from, w.to});
            if (--r->second == 0) {
                ranges_.erase(r);
                changed = true;
            }
        }
        watchers_.erase(it);
    }
    if (watchers_.empty()) {
        // Nobody reconnected within the resume window: stop paying for the record.
        hours_.clear();
        live_ = 0;
    }
    if (!changed) {
        return;
    }
    publish_locked();
    for (auto it = hours_.begin(); it != hours_.end();) {
        if (hours_hold(watched_, it->first)) {
            ++it;
        } else {
            live_ -= it->second.size;
            it = hours_.erase(it);
        }
    }
}

void change_journal::publish_locked() {
    hour_ranges merged;
    for (auto const& [r, n] : ranges_) {  // by `from`
        if (!merged.empty() && r.first <= merged.back().second) {
            merged.back().second = std::max(merged.back().second, r.second);
        } else {
            merged.push_back(r);
        }
    }
    if (merged != watched_) {
        watched_ = merged;
        store_.watch_changes(std::move(merged));
    }
}

std::uint64_t change_journal::sequence() const {
    std::scoped_lock lock{mutex_};
    return seq_;
}

bool change_journal::holds_since(std::uint64_t since, std::uint32_t from, std::uint32_t to) const {
    std::scoped_lock lock{mutex_};
    return holds_since_locked(since, from, to, std::chrono::steady_clock::now());
}

bool change_journal::holds_since_locked(std::uint64_t since, std::uint32_t from, std::uint32_t to,
                                        std::chrono::steady_clock::time_point now) const {
    if (watchers_.empty() || since < lost_upto_ || since > seq_) {
        return false;
    }
    // The hours of the watchers watching since `since` or before, still within the
    // resume window, must cover [from, to).
    hour_ranges held;
    for (auto const& [id, w] : watchers_) {
        if (w.since <= since && !(w.left && now - *w.left > linger_)) {
            held.emplace_back(w.from, w.to);
        }
    }
    std::sort(held.begin(), held.end());
    std::uint32_t covered = from;
    for (auto const& [f, t] : held) {
        if (covered >= to || f > covered) {
            break;
        }
        covered = std::max(covered, t);
    }
    return covered >= to;
}

void change_journal::rows_changed(std::vector<changed_row> const& rows) {
    std::scoped_lock lock{mutex_};
    if (!leaving_.empty()) {
        expire_locked(std::chrono::steady_clock::now());
    }
    if (watchers_.empty()) {
        return;  // recording stopped between the store's check and this call
    }
    ++seq_;
    // Each row's entry is loaded `ahead` rows before its put, so that the cache misses of a
    // batch's rows overlap. A batch's rows come grouped by shard, not hour: the hours looked
    // up are remembered (by hour modulo 64) for the batch, with none for an hour no longer
    // watched (a batch that saw the store's previous hours).
    constexpr std::size_t ahead = 8;
    std::array<std::uint64_t, ahead> hashes{};
    struct seen_hour {
        std::uint32_t hour = 0;
        bool known = false;
        hour_rows* rows = nullptr;
    };
    std::array<seen_hour, 64> seen{};
    auto const rows_of = [&](std::uint32_t hour) {
        seen_hour& s = seen.at(hour % seen.size());
        if (!s.known || s.hour != hour) {
            s = {hour, true, hours_hold(watched_, hour) ? &hours_[hour] : nullptr};
        }
        return s.rows;
    };
    for (std::size_t i = 0; i < rows.size() + ahead; ++i) {
        // Row i - ahead is put before row i takes its hash's place in the ring.
        if (i >= ahead) {
            changed_row const& r = rows[i - ahead];
            hour_rows* h = rows_of(r.hour);
            if (h != nullptr && h->put(r.key, hashes.at(i % ahead), seq_, r.counters) &&
                ++live_ > capacity_) {
                drop_oldest_locked();
                seen = {};
            }
        }
        if (i < rows.size()) {
            hashes.at(i % ahead) = hash_app_key(rows[i].key);
            if (hour_rows const* h = rows_of(rows[i].hour)) {
                h->prefetch(hashes.at(i % ahead));
            }
        }
    }
}

void change_journal::drop_oldest_locked() {
    std::vector<std::uint64_t> seqs;
    seqs.reserve(live_);
    for (auto const& [hour, h] : hours_) {
        for (row_entry const& e : h.slots) {
            if (e.seq != 0) {
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
        hour_rows& h = it->second;
        h.rebuild(h.slots.size(), cut, seq_);
        live_ += h.size;
        it = h.size == 0 ? hours_.erase(it) : std::next(it);
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
    if (watchers_.empty() || since < lost_upto_ || since > seq_) {
        return false;
    }
    // A bound before `since` reads nothing and leaves the cursor where it was.
    upto = std::max(since, std::min(until, seq_));
    std::vector<row_entry const*> changed;
    for (auto it = hours_.lower_bound(from); it != hours_.end() && it->first < to; ++it) {
        changed.clear();
        it->second.read(since, upto, changed);
        for (row_entry const* e : changed) {
            changed_row const r{it->first, e->key, e->counters};
            if (!keep || keep(r)) {
                out.push_back(r);
            }
        }
    }
    return true;
}

}  // namespace flowd
