#include "flowd/auth/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace flowd {

rate_limiter::rate_limiter(rate_limit_options options, now_fn now)
    : options_(options),
      now_(std::move(now)),
      per_shard_cap_(
          std::max<std::size_t>(1, (options.max_clients + shard_count - 1) / shard_count)) {}

bool rate_limiter::refilled(client_state const& c, clock::time_point now) const noexcept {
    double const elapsed = std::chrono::duration<double>(now - c.last).count();
    auto full = [elapsed](bucket const& b, bucket_limits const& l) {
        return !l.enabled() || b.tokens + elapsed * l.rate >= l.burst;
    };
    return full(c.requests, options_.requests) && full(c.records, options_.records);
}

void rate_limiter::refill(client_state& c, clock::time_point now) const noexcept {
    if (now <= c.last) {
        return;
    }
    double const elapsed = std::chrono::duration<double>(now - c.last).count();
    c.last = now;
    auto add = [elapsed](bucket& b, bucket_limits const& l) {
        if (l.enabled()) {
            b.tokens = std::min(l.burst, b.tokens + elapsed * l.rate);
        }
    };
    add(c.requests, options_.requests);
    add(c.records, options_.records);
}

void rate_limiter::make_room(shard& s, clock::time_point now) {
    // Clients whose buckets have refilled are indistinguishable from new ones: drop them.
    std::erase_if(s.clients, [&](auto const& kv) { return refilled(kv.second, now); });
    if (s.clients.size() < per_shard_cap_) {
        return;
    }
    // Every entry is active: forget the one seen longest ago.
    auto oldest = s.clients.begin();
    for (auto it = s.clients.begin(); it != s.clients.end(); ++it) {
        if (it->second.last < oldest->second.last) {
            oldest = it;
        }
    }
    s.clients.erase(oldest);
}

rate_limiter::client_state& rate_limiter::state_of(shard& s, std::string_view client,
                                                   clock::time_point now) {
    if (auto it = s.clients.find(client); it != s.clients.end()) {
        refill(it->second, now);
        return it->second;
    }
    if (s.clients.size() >= per_shard_cap_) {
        make_room(s, now);
    }
    client_state fresh;
    fresh.requests.tokens = options_.requests.burst;
    fresh.records.tokens = options_.records.burst;
    fresh.last = now;
    return s.clients.emplace(std::string(client), fresh).first->second;
}

rate_limiter::decision rate_limiter::take(bucket& b, bucket_limits const& limits, double need,
                                          double charge) {
    if (b.tokens >= need) {
        b.tokens -= charge;
        return {};
    }
    double const wait = std::ceil((need - b.tokens) / limits.rate);
    auto const seconds = static_cast<std::int64_t>(std::clamp(wait, 1.0, 86'400.0));
    return {false, std::chrono::seconds(seconds)};
}

rate_limiter::decision rate_limiter::admit_request(std::string_view client) {
    if (!options_.requests.enabled()) {
        return {};
    }
    clock::time_point const now = now_();
    shard& s = shards_[string_hash{}(client) % shard_count];
    std::scoped_lock lock{s.mutex};
    client_state& c = state_of(s, client, now);
    return take(c.requests, options_.requests, 1.0, 1.0);
}

rate_limiter::decision rate_limiter::admit_records(std::string_view client, std::uint64_t records) {
    if (!options_.records.enabled() || records == 0) {
        return {};
    }
    clock::time_point const now = now_();
    auto const charge = static_cast<double>(records);
    shard& s = shards_[string_hash{}(client) % shard_count];
    std::scoped_lock lock{s.mutex};
    client_state& c = state_of(s, client, now);
    return take(c.records, options_.records, std::min(charge, options_.records.burst), charge);
}

std::size_t rate_limiter::client_count() const {
    std::size_t n = 0;
    for (shard const& s : shards_) {
        std::scoped_lock lock{s.mutex};
        n += s.clients.size();
    }
    return n;
}

}  // namespace flowd
