#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

#include "flowd/store/flow_store.hpp"

namespace flowd {

// The rows committed batches changed, numbered by batch (a sequence starting at 1), kept for
// live streams as each (hour, key)'s newest totals and the sequence that last changed it: a
// stream reads what changed after the sequence it last sent. Per hour the rows are kept in
// the order they last changed, so a read walks back only over what changed since its
// cursor, and a key changed by every batch is held once, not once per batch. Recorded only
// while someone subscribes (the store is told to watch then, and for `linger` after the
// last one leaves, so that a stream reconnecting with Last-Event-ID can resume), so an
// unwatched store pays one atomic load per batch. Bounded memory: past `capacity` rows the
// oldest quarter is dropped (and reads from before them fail).
// The class is thread-safe. No concurrent call to any API of this type causes a data race.
class change_journal final : public change_sink {
public:
    change_journal(flow_store& store, std::size_t capacity, std::chrono::milliseconds linger);
    ~change_journal() override;
    change_journal(change_journal const&) = delete;
    change_journal& operator=(change_journal const&) = delete;

    // A stream begins or ends watching. subscribe() returns the current sequence: every
    // change after it will be readable (until dropped for capacity).
    std::uint64_t subscribe();
    void unsubscribe();

    // The latest batch sequence recorded.
    [[nodiscard]] std::uint64_t sequence() const;

    // Whether every change after `since` is still held (nothing after it was dropped or
    // happened while nobody watched).
    [[nodiscard]] bool holds_since(std::uint64_t since) const;

    // The rows of hours [from, to) changed after `since` for which keep(row) is true (an
    // empty keep: all), one per (hour, key) with its newest totals, by hour, then in the
    // order they last changed; `upto` receives the sequence read up to. False (and nothing
    // read) when !holds_since(since).
    bool read_since(std::uint64_t since, std::uint32_t from, std::uint32_t to,
                    std::function<bool(changed_row const&)> const& keep,
                    std::vector<changed_row>& out, std::uint64_t& upto) const;
    // read_since() of the changes up to sequence `until` at most: a key changed again after
    // it is left for a later read (which gets its newest totals); `upto` receives
    // max(since, min(until, sequence())).
    bool read_between(std::uint64_t since, std::uint64_t until, std::uint32_t from,
                      std::uint32_t to, std::function<bool(changed_row const&)> const& keep,
                      std::vector<changed_row>& out, std::uint64_t& upto) const;

    void rows_changed(std::vector<changed_row> const& rows) override;

private:
    struct row_entry {
        app_key key;
        bool dead = false;  // a newer entry of the same key follows
        std::uint64_t seq = 0;
        flow_counters counters;
    };
    // One hour's rows in the order they last changed, and where each live key's entry is.
    struct hour_rows {
        std::vector<row_entry> rows;
        // Open addressing (linear probing): a live entry's position + 1; 0 is empty.
        std::vector<std::uint32_t> index;
        std::size_t live = 0;

        // Appends key's newest totals (the older entry turns dead); true when the key is new.
        // `hash` = hash_app_key(key).
        bool put(app_key const& key, std::uint64_t hash, std::uint64_t seq,
                 flow_counters const& counters);
        // Starts loading the entry a put of this hash will compare first (the index is
        // small and mostly cached; the entries are not).
        void prefetch(std::uint64_t hash) const noexcept {
            if (!index.empty()) {
                std::uint32_t const at = index[hash & (index.size() - 1)];
                if (at != 0 && at <= rows.size()) {
                    __builtin_prefetch(&rows[at - 1], 1);
                }
            }
        }
        // Drops the dead entries and every entry of sequence <= cut, then reindexes.
        void compact(std::uint64_t cut);
    };

    // Past capacity: the oldest quarter of the live rows goes; reads from before fail.
    void drop_oldest_locked();

    flow_store& store_;
    std::size_t capacity_;
    std::chrono::milliseconds linger_;
    mutable std::mutex mutex_;
    std::map<std::uint32_t, hour_rows> hours_;  // guarded by mutex_
    std::size_t live_ = 0;                      // guarded by mutex_: rows held, every hour
    std::uint64_t seq_ = 0;                     // guarded by mutex_
    std::uint64_t lost_upto_ = 0;  // guarded by mutex_: changes up to this are not all held
    std::size_t subscribers_ = 0;  // guarded by mutex_
    bool recording_ = false;       // guarded by mutex_
    std::chrono::steady_clock::time_point idle_since_{};  // guarded by mutex_
};

}  // namespace flowd
