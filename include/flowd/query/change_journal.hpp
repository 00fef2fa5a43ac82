#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "flowd/store/flow_store.hpp"

namespace flowd {

// The rows committed batches changed in the hours live streams watch, numbered by batch (a
// sequence starting at 1; a batch that changed none of those hours takes no number), kept
// as each (hour, key)'s newest totals and the sequence that last changed it: a stream reads
// what changed after the sequence it last sent. Each (hour, key) is one entry updated in
// place, so a key changed by every batch is held once and its update touches one entry. To
// read what changed lately without visiting every entry of a large hour, each hour keeps
// the entries changed in its current and previous generations (a generation ends once it
// listed half the hour's keys); a cursor older than both reads the whole hour.
// Recorded only for the hours some stream watches (the store is told which; each stream's
// hours stay watched for `linger` after it leaves, so that it can resume with
// Last-Event-ID), so an unwatched store pays one atomic load per batch and a watched one a
// range check per row outside those hours. Bounded memory: past `capacity` rows the oldest
// quarter is dropped (and reads from before them fail).
class change_journal final : public change_sink {
public:
    change_journal(flow_store& store, std::size_t capacity, std::chrono::milliseconds linger);
    ~change_journal() override;
    change_journal(change_journal const&) = delete;
    change_journal& operator=(change_journal const&) = delete;

    // What subscribe() gives: the watcher's id (for unsubscribe()) and the sequence its
    // changes are read after: `resume_from` when resumed, else the current sequence (every
    // change of its hours after it will be readable, until dropped for capacity).
    struct watch {
        std::uint64_t id = 0;
        std::uint64_t seq = 0;
        bool resumed = false;
    };
    // A stream begins watching hours [from, to). With `resume_from`: resumed when every
    // change of those hours after it is held (holds_since()).
    watch subscribe(std::uint32_t from, std::uint32_t to,
                    std::optional<std::uint64_t> resume_from = std::nullopt);
    // The stream ends; its hours stay watched for `linger`.
    void unsubscribe(std::uint64_t id);

    // The latest batch sequence recorded.
    [[nodiscard]] std::uint64_t sequence() const;

    // Whether every change of hours [from, to) after `since` is held: a watcher (open, or
    // left within `linger`) has watched each of those hours since `since` or before, and
    // nothing after `since` was dropped.
    [[nodiscard]] bool holds_since(std::uint64_t since, std::uint32_t from, std::uint32_t to) const;

    // The rows of hours [from, to) changed after `since` for which keep(row) is true (an
    // empty keep: all), one per (hour, key) with its newest totals, by hour, then in the
    // order they last changed; `upto` receives the sequence read up to. False (and nothing
    // read) when recording stopped or a change after `since` was dropped. A stream reads
    // its own hours, watched since it subscribed.
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
        std::uint64_t seq = 0;  // the batch that last changed it; 0: an empty slot
        flow_counters counters;
    };
    // The entries changed in one generation of an hour: each once, at its first change in
    // the generation (slots of hour_rows::slots).
    struct generation {
        std::uint64_t start = 0;  // every entry changed at or after this sequence is listed
        std::vector<std::uint32_t> changed;
    };
    // One hour's entries, in an open-addressing table (linear probing, at most half full):
    // a put finds and updates its entry with one cache miss, which the batch's loop
    // prefetches; and the hour's last two generations.
    struct hour_rows {
        std::vector<row_entry> slots;
        std::size_t size = 0;
        generation current;
        generation previous;         // changed in [previous.start, current.start)
        std::uint64_t last_seq = 0;  // the newest sequence put here

        // Sets key's newest totals; true when the key is new. `hash` = hash_app_key(key).
        bool put(app_key const& key, std::uint64_t hash, std::uint64_t seq,
                 flow_counters const& counters);
        // Starts loading the slot a put of this hash looks at first.
        void prefetch(std::uint64_t hash) const noexcept {
            if (!slots.empty()) {
                __builtin_prefetch(&slots[hash & (slots.size() - 1)], 1);
            }
        }
        // Appends the entries changed in (since, upto] to `out`, oldest change first.
        void read(std::uint64_t since, std::uint64_t upto,
                  std::vector<row_entry const*>& out) const;
        // Keeps the entries changed after `cut` in a table of `capacity` slots; the
        // generations start again at `seq`, the batch being recorded.
        void rebuild(std::size_t capacity, std::uint64_t cut, std::uint64_t seq);
    };

    // One stream's hours: watched since `since`; `left` set once it unsubscribed.
    struct watcher {
        std::uint32_t from = 0;
        std::uint32_t to = 0;
        std::uint64_t since = 0;
        std::optional<std::chrono::steady_clock::time_point> left;
    };

    // Past capacity: the oldest quarter of the live rows goes; reads from before fail.
    void drop_oldest_locked();
    // Forgets the watchers that left more than `linger` ago; with none left, recording
    // stops. The hours no watcher holds any more are dropped.
    void expire_locked(std::chrono::steady_clock::time_point now);
    // Tells the store the union of the watchers' hours, when it changed.
    void publish_locked();
    [[nodiscard]] bool holds_since_locked(std::uint64_t since, std::uint32_t from, std::uint32_t to,
                                          std::chrono::steady_clock::time_point now) const;

    flow_store& store_;
    std::size_t capacity_;
    std::chrono::milliseconds linger_;
    mutable std::mutex mutex_;
    std::map<std::uint32_t, hour_rows> hours_;  // guarded by mutex_
    std::size_t live_ = 0;                      // guarded by mutex_: rows held, every hour
    std::uint64_t seq_ = 0;                     // guarded by mutex_
    std::uint64_t lost_upto_ = 0;  // guarded by mutex_: changes up to this are not all held
    // guarded by mutex_: by id; recording while not empty
    std::map<std::uint64_t, watcher> watchers_;
    // guarded by mutex_: the watchers that left, oldest first, with when; checked at each
    // batch (the front only), so a thousand streams lingering cost the write path nothing.
    std::deque<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>> leaving_;
    // guarded by mutex_: how many watchers hold each range; what the store is told is their
    // union, and a thousand streams of one query are one range.
    std::map<std::pair<std::uint32_t, std::uint32_t>, std::size_t> ranges_;
    std::uint64_t next_watcher_ = 1;  // guarded by mutex_
    hour_ranges watched_;             // guarded by mutex_: what the store was last told
};

}  // namespace flowd
