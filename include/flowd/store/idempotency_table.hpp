#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace flowd {

// What a POST with an Idempotency-Key claims: the key, its scope (the token name when
// auth is on, else empty) and a fingerprint of the body, so a reuse with another body
// is told apart from a retry.
struct idempotency_claim {
    std::string scope;
    std::string key;
    std::uint64_t fingerprint = 0;
};

// The Idempotency-Key memory (SPEC "Idempotent retries"): a key is in flight from begin()
// until complete() (its batch was applied: remembered for `window` from then) or abort()
// (rejected: forgotten). Bounded: at most `max_keys` remembered keys; past that the
// oldest completed key is forgotten first. Times are Unix milliseconds, passed in so tests
// control the clock. The class is thread-safe. No concurrent call to any API of this type
// causes a data race.
class idempotency_table {
public:
    struct begin_result {
        enum class kind { fresh, duplicate, in_flight, reused };
        kind what = kind::fresh;
        std::uint64_t accepted = 0;  // for a duplicate: what the original 200 said
    };
    struct entry {
        idempotency_claim claim;
        std::uint64_t accepted = 0;
        std::uint64_t accepted_unix_ms = 0;
    };

    idempotency_table(std::chrono::milliseconds window, std::size_t max_keys)
        : window_ms_(static_cast<std::uint64_t>(window.count())), max_keys_(max_keys) {}

    // fresh: the caller now owns the key and must complete() or abort() it.
    [[nodiscard]] begin_result begin(idempotency_claim const& claim, std::uint64_t now_unix_ms);
    void complete(idempotency_claim const& claim, std::uint64_t accepted,
                  std::uint64_t accepted_unix_ms);
    void abort(idempotency_claim const& claim);
    // The body fingerprint of a completed key still inside the window, if any.
    [[nodiscard]] std::optional<std::uint64_t> fingerprint_of(idempotency_claim const& claim,
                                                              std::uint64_t now_unix_ms) const;

    // A completed key read back from the log or a snapshot; ignored once outside the window.
    void restore(entry const& e, std::uint64_t now_unix_ms);

    // The completed keys still inside the window, for a checkpoint.
    [[nodiscard]] std::vector<entry> completed(std::uint64_t now_unix_ms) const;

    [[nodiscard]] std::size_t size() const;
    [[nodiscard]] std::uint64_t window_ms() const noexcept { return window_ms_; }

private:
    struct state {
        std::uint64_t fingerprint = 0;
        std::uint64_t accepted = 0;
        std::uint64_t accepted_unix_ms = 0;
        bool done = false;
    };

    static std::string map_key(idempotency_claim const& c);
    [[nodiscard]] bool expired(state const& s, std::uint64_t now) const noexcept {
        return s.done && s.accepted_unix_ms + window_ms_ <= now;
    }
    void remember(std::string const& k, state s);  // guarded by mutex_
    void evict(std::uint64_t now);                 // guarded by mutex_

    std::uint64_t const window_ms_;
    std::size_t const max_keys_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, state> keys_;  // guarded by mutex_
    // Completed keys in completion order (ties by time), for expiry and eviction. An item
    // whose time no longer matches its key's state is stale and skipped.
    std::deque<std::pair<std::uint64_t, std::string>> order_;  // guarded by mutex_
};

}  // namespace flowd
