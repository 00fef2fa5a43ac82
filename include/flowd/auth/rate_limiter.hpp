#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace flowd {

// One token bucket's settings: `rate` tokens per second, holding at most `burst`.
// rate 0 turns the bucket off (everything passes).
struct bucket_limits {
    double rate = 0;
    double burst = 0;

    [[nodiscard]] bool enabled() const noexcept { return rate > 0; }
};

struct rate_limit_options {
    bucket_limits requests;             // one token per request
    bucket_limits records;              // one token per record of a POST batch
    std::size_t max_clients = 100'000;  // most clients tracked at once (bounds memory)
};

// Per-client token buckets for requests/s and records/s. A client is any string (a token
// name, an address); its two buckets start full. A bucket that has refilled to its burst
// is the same as a new one, so idle clients are forgotten when the table needs room,
// and the least recently seen client is evicted when none is idle: memory stays under
// max_clients entries. N shards, each with its own mutex; nothing but arithmetic under it.
// The class is thread-safe. No concurrent call to any API of this type causes a data race.
class rate_limiter {
public:
    using clock = std::chrono::steady_clock;
    using now_fn = std::function<clock::time_point()>;

    struct decision {
        bool allowed = true;
        std::chrono::seconds retry_after{0};  // when refused: whole seconds, at least 1
    };

    explicit rate_limiter(rate_limit_options options, now_fn now = clock::now);

    [[nodiscard]] bool enabled() const noexcept {
        return options_.requests.enabled() || options_.records.enabled();
    }
    [[nodiscard]] bool requests_enabled() const noexcept { return options_.requests.enabled(); }
    [[nodiscard]] bool records_enabled() const noexcept { return options_.records.enabled(); }

    // Takes one request token from `client`'s bucket, or says when to retry.
    [[nodiscard]] decision admit_request(std::string_view client);

    // Charges `records` to `client`'s records bucket. A batch passes when the bucket holds
    // min(records, burst) tokens and is then charged in full, so the bucket may go below
    // zero: a batch larger than the burst waits for a full bucket rather than never
    // passing, and the long-run rate still holds. A refused batch is not charged.
    [[nodiscard]] decision admit_records(std::string_view client, std::uint64_t records);

    // Clients tracked now (for tests and the memory bound).
    [[nodiscard]] std::size_t client_count() const;

private:
    struct bucket {
        double tokens = 0;
    };
    struct client_state {
        bucket requests;
        bucket records;
        clock::time_point last{};  // when both buckets were last brought up to date
    };
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    static constexpr std::size_t shard_count = 16;
    struct alignas(64) shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string, client_state, string_hash, std::equal_to<>>
            clients;  // guarded by mutex
    };

    // Finds or makes the client's entry (buckets full) and refills it up to `now`.
    client_state& state_of(shard& s, std::string_view client, clock::time_point now);
    void make_room(shard& s, clock::time_point now);
    void refill(client_state& c, clock::time_point now) const noexcept;
    // True when the client's buckets would be full by `now`: forgetting it changes nothing.
    [[nodiscard]] bool refilled(client_state const& c, clock::time_point now) const noexcept;
    static decision take(bucket& b, bucket_limits const& limits, double need, double charge);

    rate_limit_options options_;
    now_fn now_;
    std::size_t per_shard_cap_;
    std::array<shard, shard_count> shards_;
};

}  // namespace flowd
