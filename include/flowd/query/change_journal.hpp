#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "flowd/store/flow_store.hpp"

namespace flowd {

// The rows committed batches changed, numbered by batch (a sequence starting at 1), kept in
// a ring of `capacity` rows for live streams: a stream reads what changed after the
// sequence it last sent. Recorded only while someone subscribes (the store is told to
// watch then, and for `linger` after the last one leaves, so that a stream reconnecting
// with Last-Event-ID can resume), so an unwatched store pays one atomic load per batch.
// Bounded memory: the ring is allocated at the first subscription and never grows.
// The class is thread-safe. No concurrent call to any API of this type causes a data race.
class change_journal final : public change_sink {
public:
    change_journal(flow_store& store, std::size_t capacity, std::chrono::milliseconds linger);
    ~change_journal() override;
    change_journal(change_journal const&) = delete;
    change_journal& operator=(change_journal const&) = delete;

    // A stream begins or ends watching. subscribe() returns the current sequence: every
    // change after it will be readable (until the ring overwrites it).
    std::uint64_t subscribe();
    void unsubscribe();

    // The latest batch sequence recorded.
    [[nodiscard]] std::uint64_t sequence() const;

    // Whether every change after `since` is still held (nothing after it was overwritten
    // or happened while nobody watched).
    [[nodiscard]] bool holds_since(std::uint64_t since) const;

    // The rows changed after `since` for which keep(row) is true, one per (hour, key) with
    // its newest totals, sorted by hour then key; `upto` receives the sequence read up to.
    // False (and nothing read) when !holds_since(since).
    bool read_since(std::uint64_t since, std::function<bool(changed_row const&)> const& keep,
                    std::vector<changed_row>& out, std::uint64_t& upto) const;

    void rows_changed(std::vector<changed_row> const& rows) override;

private:
    struct entry {
        std::uint64_t seq;
        changed_row row;
    };

    flow_store& store_;
    std::size_t capacity_;
    std::chrono::milliseconds linger_;
    mutable std::mutex mutex_;
    std::vector<entry> ring_;      // guarded by mutex_; capacity_ once allocated
    std::size_t next_ = 0;         // guarded by mutex_: where the next row goes
    std::size_t size_ = 0;         // guarded by mutex_
    std::uint64_t seq_ = 0;        // guarded by mutex_
    std::uint64_t lost_upto_ = 0;  // guarded by mutex_: changes up to this are not all held
    std::size_t subscribers_ = 0;  // guarded by mutex_
    bool recording_ = false;       // guarded by mutex_
    std::chrono::steady_clock::time_point idle_since_{};  // guarded by mutex_
};

}  // namespace flowd
