#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "flowd/domain/flow_batch.hpp"
#include "flowd/store/batch_gate.hpp"
#include "flowd/store/hour_table.hpp"
#include "flowd/store/string_interner.hpp"

namespace flowd {

struct store_options {
    std::size_t shard_count = 64;  // a power of two
    std::uint64_t max_keys = 50'000'000;
    // The store's own bytes as memory_bytes() counts them; 0: no bound but max_keys.
    std::uint64_t max_store_bytes = 0;
};

// Why prepare() refused a batch. `record` is the index of the first record of the key at
// fault; `field` names bytes_tx or bytes_rx for an overflow.
struct store_rejection {
    // store_full: max_keys; store_bytes_full: max_store_bytes.
    enum class reason { counter_overflow, store_full, store_bytes_full };
    reason why;
    std::size_t record = 0;
    std::string_view field;
};

class flow_store;

// A batch checked against the store and holding its reservation of new keys. Commit it
// once (the log-then-apply seam: prepare, write the log, commit); dropping it uncommitted
// releases the reservation. Owned by one thread at a time.
class prepared_batch {
public:
    prepared_batch(prepared_batch&& other) noexcept;
    prepared_batch& operator=(prepared_batch&&) = delete;
    prepared_batch(prepared_batch const&) = delete;
    ~prepared_batch();

    [[nodiscard]] std::size_t record_count() const noexcept { return records_; }

private:
    friend class flow_store;
    struct item {
        app_key key;
        std::uint32_t hour;
        std::uint64_t hash;
        flow_counters counters;
        std::uint32_t entry;  // index in flow_batch::entries(), to name a record when refused
    };
    prepared_batch() = default;

    flow_store* store_ = nullptr;
    std::vector<item> items_;            // sorted by shard
    std::vector<std::uint32_t> bounds_;  // items_ of shard s: [bounds_[s], bounds_[s+1])
    std::uint64_t largest_ = 0;          // the largest bytes_tx or bytes_rx of items_
    std::uint64_t reserved_keys_ = 0;
    // The reservation is one key per item, made without looking which are new (prepare()
    // far from max_keys): key_count() leaves it out.
    bool unchecked_ = false;
    std::size_t records_ = 0;
    bool notify_ = true;  // tell the change sink (replay at start does not)
};

// One stored row a committed batch changed, with its new totals.
struct changed_row {
    std::uint32_t hour = 0;
    app_key key;
    flow_counters counters;
};

// Told, after each committed batch, which rows of the watched hours it changed (see
// flow_store::watch_changes; a batch that changed none of them is not told). Called on the
// committing thread with no store lock held; must be thread-safe.
class change_sink {
public:
    change_sink() = default;
    virtual ~change_sink() = default;
    change_sink(change_sink const&) = delete;
    change_sink& operator=(change_sink const&) = delete;
    virtual void rows_changed(std::vector<changed_row> const& rows) = 0;
};

// Hours as [from, to) ranges, sorted and disjoint.
using hour_ranges = std::vector<std::pair<std::uint32_t, std::uint32_t>>;

[[nodiscard]] inline bool hours_hold(hour_ranges const& ranges, std::uint32_t hour) noexcept {
    // Few ranges in practice (streams watch one query's range each): a linear walk.
    return std::any_of(ranges.begin(), ranges.end(),
                       [hour](auto const& r) { return hour >= r.first && hour < r.second; });
}

// One hour copied out of the store, sorted by (src_app, dest_app, vpc_id) in byte order.
// About 32 bytes a key; the strings stay in the interner. Immutable once built.
class hour_snapshot {
public:
    struct entry {
        app_key key;
        flow_counters counters;
    };

    [[nodiscard]] std::uint32_t hour() const noexcept { return hour_; }
    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
    [[nodiscard]] entry const& operator[](std::size_t i) const noexcept { return entries_[i]; }
    [[nodiscard]] std::string_view name(std::uint32_t id) const noexcept {
        return names_->view(id);
    }

private:
    friend class flow_store;
    std::uint32_t hour_ = 0;
    std::vector<entry> entries_;
    string_interner const* names_ = nullptr;
};

// Exact-match filters of GET /flows; an empty optional matches everything.
struct flow_filter {
    std::optional<std::string_view> src_app;
    std::optional<std::string_view> dest_app;
    std::optional<std::string_view> vpc_id;
};

// The totals of one hour, kept as batches apply (not by scanning): stored rows, and the
// sums of their bytes_tx and bytes_rx.
struct hour_stat {
    std::uint32_t hour = 0;
    std::uint64_t keys = 0;
    uint128 bytes_tx = 0;
    uint128 bytes_rx = 0;
    friend bool operator==(hour_stat const&, hour_stat const&) = default;
};

// The aggregated flows: a fixed array of cache-line-aligned shards, each a mutex and, per
// hour, an open-addressing table of interned keys. A batch is applied shard by shard
// (each touched shard locked once) while holding a batch_gate shared; a snapshot holds
// the gate exclusive while copying, so it never observes part of a batch.
// The class is thread-safe. No concurrent call to any API of this type causes a data race.
class flow_store {
public:
    explicit flow_store(store_options options = {});

    // Checks a batch against the store: no sum may pass 2^63-1 and the new keys must fit
    // under max_keys (reserved now). Interns the batch's strings. Applies nothing.
    // While the store stays at most half full it reserves a key per distinct key of the
    // batch instead of looking for the new ones, and it looks keys up for overflow only in
    // shards holding a sum near the limit. One batch at a time, the answers are the same.
    [[nodiscard]] std::variant<prepared_batch, store_rejection> prepare(flow_batch const& batch);

    // Applies a prepared batch atomically. Cannot fail. Should a concurrent batch have
    // raced it past 2^63-1 on one key since prepare(), that sum saturates and
    // saturated_adds() counts it.
    void commit(prepared_batch&& batch);

    // Applies a batch read back from the log or a snapshot, without checks: it was accepted
    // once. max_keys is not enforced (the data exists); a sum past 2^63-1 saturates.
    // `notify`: tell the change sink (a cluster stream's batches do; recovery does not).
    void replay(flow_batch const& batch, bool notify = false);

    // The change sink (set once, before the first batch; it must outlive the store's use)
    // and the hours it is told of: none (empty), a commit records nothing and allocates
    // nothing more. Returns once no batch that saw the previous hours is still applying, so
    // every batch applied after it reports every row it changed in `hours`.
    void set_change_sink(change_sink* sink) noexcept { sink_ = sink; }
    void watch_changes(hour_ranges hours);

    // Every key of every hour, copied out atomically with respect to batches (for a
    // checkpoint). About 32 bytes a key; names() resolves the ids.
    struct exported_key {
        app_key key;
        std::uint32_t hour;
        flow_counters counters;
    };
    [[nodiscard]] std::vector<exported_key> export_all() const;
    [[nodiscard]] std::string_view name(std::uint32_t id) const noexcept { return names_.view(id); }

    // Drops every hour before `first_kept` (retention); returns how many distinct hours
    // left the store. Interned names stay.
    std::size_t drop_hours_before(std::uint32_t first_kept);

    // Copies one hour out, filtered, and sorts it. Cost: the keys of that hour.
    // `stats`, when given, receives the hour's totals read in the same atomic section.
    [[nodiscard]] hour_snapshot snapshot(std::uint32_t hour, flow_filter const& filter = {},
                                         hour_stat* stats = nullptr) const;

    // The totals of the hours from <= h < to that hold keys, ascending, read atomically with
    // respect to batches. Cost: the hours held (or the range, when shorter) per shard.
    [[nodiscard]] std::vector<hour_stat> hour_stats(std::uint32_t from, std::uint32_t to) const;

    // Copies the rows of the hours from <= h < to for which keep(app_key) is true into `out`
    // (in no particular order), and returns the hours' totals. The copy equals the store at
    // one instant between two batches, as snapshot() does, but without stopping writers for
    // the whole scan: shards are copied one at a time under their own mutex, and what
    // batches and retention change in a shard after its copy is recorded and folded in at
    // the end, when the gate is taken exclusive once, briefly, to close the copy. Writers
    // wait for at most one shard's copy. When the range holds more than `max_rows` stored
    // rows it copies nothing (the caller refuses the query by the totals). `keep` runs under
    // a shard's mutex: it must be cheap and must not call into the store (it may read
    // names()).
    template <class Keep>
    std::vector<hour_stat> copy_range(std::uint32_t from, std::uint32_t to, std::uint64_t max_rows,
                                      Keep&& keep, std::vector<exported_key>& out) const {
        range_copy rc{from, to, options_.shard_count};
        auto const rows = open_range_copy(rc, max_rows);
        if (!rows) {
            return std::move(rc.stats);
        }
        std::size_t const first = out.size();
        out.reserve(first + *rows);
        auto const copy_table = [&](std::uint32_t hour, hour_table const& table) {
            for_each_kept(table, keep, [&](app_key const& k, flow_counters const& c) {
                out.push_back({k, hour, c});
            });
        };
        for_tables_in(
            &rc, from, to, [&](std::size_t s, std::uint32_t hour, hour_table const& table) {
                std::size_t const begin = out.size();
                copy_table(hour, table);
                rc.segments.push_back({static_cast<std::uint32_t>(s), hour, begin, out.size()});
            });
        if (!end_range_copy(rc)) {
            out.resize(first);
            std::unique_lock gate{gate_};
            rc.stats = stats_locked(from, to);
            for_tables_in(nullptr, from, to,
                          [&](std::size_t, std::uint32_t hour, hour_table const& table) {
                              copy_table(hour, table);
                          });
            return std::move(rc.stats);
        }
        std::erase_if(rc.changes, [&keep](range_change const& c) { return !keep(c.row.key); });
        fold_range_changes(rc, out);
        return std::move(rc.stats);
    }
    // copy_range() for a caller that only sums: each kept row goes to
    // visit(key, hour, counters) under its shard's mutex instead of into a vector; once the
    // range is closed, what batches added since to shards already visited goes to visit()
    // too (counters only add, so the sums come out as at one instant between batches).
    // Returns the hours' totals; when the range holds more than `max_rows` rows it visits
    // nothing. Returns nothing when retention dropped a visited table meanwhile, or too
    // many changes came: the caller drops what it summed and copies instead.
    template <class Keep, class Visit>
    std::optional<std::vector<hour_stat>> visit_range(std::uint32_t from, std::uint32_t to,
                                                      std::uint64_t max_rows, Keep&& keep,
                                                      Visit&& visit) const {
        range_copy rc{from, to, options_.shard_count};
        if (!open_range_copy(rc, max_rows)) {
            return std::move(rc.stats);
        }
        for_tables_in(&rc, from, to, [&](std::size_t, std::uint32_t hour, hour_table const& table) {
            for_each_kept(table, keep,
                          [&](app_key const& k, flow_counters const& c) { visit(k, hour, c); });
        });
        if (!end_range_copy(rc) || std::any_of(rc.dropped_before.begin(), rc.dropped_before.end(),
                                               [from](std::uint32_t d) { return d > from; })) {
            return std::nullopt;
        }
        for (range_change const& c : rc.changes) {
            if (keep(c.row.key)) {
                visit(c.row.key, c.row.hour, c.row.counters);
            }
        }
        return std::move(rc.stats);
    }
    [[nodiscard]] string_interner const& names() const noexcept { return names_; }

    // Keys present plus the new keys of prepared batches that counted them (near
    // max_keys); never more than max_keys. The per-item reservations prepare() makes far
    // from max_keys are left out, so that flowd_store_keys does not run ahead of the store
    // by the batches in flight.
    [[nodiscard]] std::uint64_t key_count() const noexcept {
        // unchecked_keys_ is added after keys_ and taken away before it; read it first.
        std::uint64_t const unchecked = unchecked_keys_.load(std::memory_order_acquire);
        std::uint64_t const keys = keys_.load(std::memory_order_acquire);
        return keys > unchecked ? keys - unchecked : 0;
    }
    [[nodiscard]] std::uint64_t max_keys() const noexcept { return options_.max_keys; }
    [[nodiscard]] std::uint64_t max_store_bytes() const noexcept {
        return options_.max_store_bytes;
    }
    // The most bytes a new key can add to memory_bytes(): a 32-byte slot in a table that
    // may have just doubled (load 7/16) is ~73 bytes; names are counted as interned.
    static constexpr std::uint64_t bytes_per_new_key = 74;
    [[nodiscard]] std::size_t hour_count() const;
    [[nodiscard]] std::size_t memory_bytes() const;
    [[nodiscard]] std::uint64_t saturated_adds() const noexcept {
        return saturated_.load(std::memory_order_relaxed);
    }

private:
    friend class prepared_batch;

    struct alignas(64) shard {
        mutable std::mutex mutex;
        std::unordered_map<std::uint32_t, hour_table> hours;  // guarded by mutex
        // At least every bytes_tx and bytes_rx in `hours`: raised by commit() under `mutex`,
        // never lowered, read by prepare() without the lock to skip overflow probes.
        std::atomic<std::uint64_t> peak{0};
    };

    // Calls f(hour, table) for each table of `sh` with from <= hour < to; the shard's mutex
    // must be held. Walks the range or the shard's hours, whichever is shorter.
    template <class F>
    static void for_hours_in(shard const& sh, std::uint32_t from, std::uint32_t to, F&& f) {
        if (to - from <= sh.hours.size()) {
            for (std::uint32_t h = from; h < to; ++h) {
                if (auto it = sh.hours.find(h); it != sh.hours.end() && it->second.size() != 0) {
                    f(h, it->second);
                }
            }
            return;
        }
        for (auto const& [hour, table] : sh.hours) {
            if (hour >= from && hour < to && table.size() != 0) {
                f(hour, table);
            }
        }
    }
    // A change to a row that a copy_range() in progress has copied already: the counters a
    // batch added (or the row it created), tagged with its shard.
    struct range_change {
        exported_key row;
        std::uint32_t shard;
    };
    // One copy_range() in progress, registered in recorders_ while it runs.
    struct range_copy {
        range_copy(std::uint32_t f, std::uint32_t t, std::size_t shards)
            : from(f), to(t), copied(shards, 0), dropped_before(shards, 0) {}
        std::uint32_t from;
        std::uint32_t to;
        // Per shard, guarded by that shard's mutex: copied yet; the first hour retention
        // kept when it ran on the shard after its copy (0: it did not).
        std::vector<std::uint8_t> copied;
        std::vector<std::uint32_t> dropped_before;
        // Copier only: where each copied (shard, hour) table's kept rows lie in `out`.
        struct segment {
            std::uint32_t shard;
            std::uint32_t hour;
            std::size_t begin;
            std::size_t end;
        };
        std::vector<segment> segments;
        std::size_t max_changes = 0;
        std::mutex mutex;
        std::vector<range_change> changes;  // guarded by mutex
        bool overflowed = false;            // guarded by mutex
        std::vector<hour_stat> stats;       // at the start, then at the end
    };
    // Opens `rc` (begin_range_copy) and counts the range's stored rows. Past `max_rows` it
    // closes `rc` again and returns nothing: the caller answers with rc.stats alone.
    std::optional<std::uint64_t> open_range_copy(range_copy& rc, std::uint64_t max_rows) const {
        begin_range_copy(rc);
        std::uint64_t rows = 0;
        for (hour_stat const& h : rc.stats) {
            rows += h.keys;
        }
        if (rows > max_rows) {
            end_range_copy(rc);
            return std::nullopt;
        }
        // A quarter of the rows (at least 64 Ki) of changes is plenty for a scan that takes
        // milliseconds; past it the copy is redone with writers held.
        rc.max_changes = std::max<std::size_t>(std::size_t{1} << 16, rows / 4);
        return rows;
    }
    // Calls f(shard, hour, table) for each table with from <= hour < to, one shard at a
    // time under its mutex. With `rc`, each shard counts as copied for it from then on.
    template <class F>
    void for_tables_in(range_copy* rc, std::uint32_t from, std::uint32_t to, F&& f) const {
        for (std::size_t s = 0; s < options_.shard_count; ++s) {
            shard const& sh = shards_[s];
            std::scoped_lock lock{sh.mutex};
            if (rc != nullptr) {
                rc->copied[s] = 1;
            }
            for_hours_in(sh, from, to,
                         [&](std::uint32_t hour, hour_table const& table) { f(s, hour, table); });
        }
    }
    // Calls f(key, counters) for each row of `table` that keep(key) passes.
    template <class Keep, class F>
    static void for_each_kept(hour_table const& table, Keep& keep, F&& f) {
        table.for_each([&](app_key const& k, flow_counters const& c) {
            if (keep(k)) {
                f(k, c);
            }
        });
    }
    // Registers `rc` and reads the range's totals, with the gate held exclusive.
    void begin_range_copy(range_copy& rc) const;
    // Unregisters `rc` and reads the totals at this instant, with the gate held exclusive;
    // false when more changes came than rc.max_changes (the copy must be redone).
    bool end_range_copy(range_copy& rc) const;
    // Brings out[first..] (the copied rows) to the instant end_range_copy() closed.
    static void fold_range_changes(range_copy& rc, std::vector<exported_key>& out);
    // Records, for every copy that has copied shard `s` already, what a commit changed there.
    // The shard's mutex and the gate (shared) must be held.
    void note_range_changes(std::size_t s, std::vector<exported_key> const& changed) const;
    // True when a copy in progress has copied shard `s`; its mutex and the gate must be held.
    [[nodiscard]] bool watched_by_copy(std::size_t s) const noexcept {
        return std::any_of(recorders_.begin(), recorders_.end(),
                           [s](range_copy const* r) { return r->copied[s] != 0; });
    }

    // hour_stats() with the gate held.
    [[nodiscard]] std::vector<hour_stat> stats_locked(std::uint32_t from, std::uint32_t to) const;

    // Interns the batch's names and groups its keys by shard; checks nothing.
    [[nodiscard]] prepared_batch group(flow_batch const& batch);
    [[nodiscard]] std::size_t shard_of(std::uint64_t hash, std::uint32_t hour) const noexcept;
    // Reserves `n` keys, without knowing which are new, when that leaves the store at most
    // half full; returns false (reserving nothing) otherwise.
    [[nodiscard]] bool reserve_unchecked(std::uint64_t n) noexcept;
    // True when `new_keys` more keys could take memory_bytes() past max_store_bytes. A
    // cheap estimate first (names plus keys at bytes_per_new_key each); only within 10% of
    // the bound the tables are walked for the exact figure.
    [[nodiscard]] bool over_store_bytes(std::uint64_t new_keys) const;
    [[nodiscard]] bool over_store_bytes_by(std::uint64_t growth) const;
    // After commit() applied `batch`: its key reservation becomes the real count, the
    // `inserted` keys it added.
    void settle_reservation(prepared_batch& batch, std::uint64_t inserted) noexcept;
    void release_keys(std::uint64_t n, bool unchecked) noexcept {
        if (unchecked) {
            unchecked_keys_.fetch_sub(n, std::memory_order_release);
        }
        keys_.fetch_sub(n, std::memory_order_release);
    }

    store_options options_;
    unsigned shard_shift_;
    std::unique_ptr<shard[]> shards_;
    string_interner names_;
    mutable batch_gate gate_;
    // The copy_range() calls in progress. Changed only with the gate held exclusive, read
    // with it held shared (by commit() and drop_hours_before()).
    mutable std::vector<range_copy*> recorders_;
    // Keys present plus keys reserved by prepared batches.
    std::atomic<std::uint64_t> keys_{0};
    // The part of keys_ reserved by prepared batches without counting (prepared_batch::
    // unchecked_); key_count() subtracts it.
    std::atomic<std::uint64_t> unchecked_keys_{0};
    std::atomic<std::uint64_t> saturated_{0};
    change_sink* sink_ = nullptr;
    hour_ranges watched_hours_;  // written with the gate held exclusive, read with it shared
    // Whether watched_hours_ is not empty, read before the gate to size what a batch
    // reports without allocating under it.
    std::atomic<bool> watched_{false};
};

}  // namespace flowd
