#include "flowd/store/idempotency_table.hpp"

namespace flowd {

std::string idempotency_table::map_key(idempotency_claim const& c) {
    std::string k;
    k.reserve(c.scope.size() + 1 + c.key.size());
    k += c.scope;
    k.push_back('\0');  // neither a token name nor a key holds NUL
    k += c.key;
    return k;
}

void idempotency_table::evict(std::uint64_t now) {
    while (!order_.empty()) {
        auto const& [time, k] = order_.front();
        auto it = keys_.find(k);
        bool const stale =
            it == keys_.end() || !it->second.done || it->second.accepted_unix_ms != time;
        if (!stale && !expired(it->second, now) && keys_.size() < max_keys_) {
            break;
        }
        if (!stale) {
            keys_.erase(it);
        }
        order_.pop_front();
    }
}

idempotency_table::begin_result idempotency_table::begin(idempotency_claim const& claim,
                                                         std::uint64_t now_unix_ms) {
    std::string const k = map_key(claim);
    std::scoped_lock lock{mutex_};
    evict(now_unix_ms);
    auto it = keys_.find(k);
    if (it != keys_.end() && !expired(it->second, now_unix_ms)) {
        state const& s = it->second;
        if (!s.done) {
            return {begin_result::kind::in_flight, 0};
        }
        if (s.fingerprint != claim.fingerprint) {
            return {begin_result::kind::reused, 0};
        }
        return {begin_result::kind::duplicate, s.accepted};
    }
    keys_[k] = state{claim.fingerprint, 0, 0, false};
    return {begin_result::kind::fresh, 0};
}

void idempotency_table::remember(std::string const& k, state s) {
    keys_[k] = s;
    order_.emplace_back(s.accepted_unix_ms, k);
}

void idempotency_table::complete(idempotency_claim const& claim, std::uint64_t accepted,
                                 std::uint64_t accepted_unix_ms) {
    std::scoped_lock lock{mutex_};
    remember(map_key(claim), state{claim.fingerprint, accepted, accepted_unix_ms, true});
}

void idempotency_table::abort(idempotency_claim const& claim) {
    std::scoped_lock lock{mutex_};
    auto it = keys_.find(map_key(claim));
    if (it != keys_.end() && !it->second.done) {
        keys_.erase(it);
    }
}

std::optional<std::uint64_t> idempotency_table::fingerprint_of(idempotency_claim const& claim,
                                                               std::uint64_t now_unix_ms) const {
    std::scoped_lock lock{mutex_};
    auto it = keys_.find(map_key(claim));
    if (it == keys_.end() || !it->second.done || expired(it->second, now_unix_ms)) {
        return std::nullopt;
    }
    return it->second.fingerprint;
}

void idempotency_table::restore(entry const& e, std::uint64_t now_unix_ms) {
    state const s{e.claim.fingerprint, e.accepted, e.accepted_unix_ms, true};
    if (expired(s, now_unix_ms)) {
        return;
    }
    std::scoped_lock lock{mutex_};
    remember(map_key(e.claim), s);
    evict(now_unix_ms);
}

std::vector<idempotency_table::entry> idempotency_table::completed(
    std::uint64_t now_unix_ms) const {
    std::vector<entry> out;
    std::scoped_lock lock{mutex_};
    out.reserve(keys_.size());
    for (auto const& [k, s] : keys_) {
        if (!s.done || expired(s, now_unix_ms)) {
            continue;
        }
        std::size_t const nul = k.find('\0');
        out.push_back(entry{idempotency_claim{k.substr(0, nul), k.substr(nul + 1), s.fingerprint},
                            s.accepted, s.accepted_unix_ms});
    }
    return out;
}

std::size_t idempotency_table::size() const {
    std::scoped_lock lock{mutex_};
    return keys_.size();
}

}  // namespace flowd
