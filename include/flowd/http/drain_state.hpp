#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace flowd {

class http_session;

// What the transport must know about the server's life: ready or not (/readyz), draining
// or not, the requests in flight, and the open sessions so that shutdown can wake the
// idle ones. The class is thread-safe. No concurrent call to any API of this type causes a
// data race.
class drain_state {
public:
    [[nodiscard]] bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }
    void set_ready(bool r) noexcept { ready_.store(r, std::memory_order_release); }

    [[nodiscard]] bool draining() const noexcept {
        return draining_.load(std::memory_order_acquire);
    }

    // Begins the drain: not ready, new requests refused, idle sessions closed.
    void begin_drain();

    void request_started() noexcept { in_flight_.fetch_add(1, std::memory_order_acq_rel); }
    void request_finished();
    [[nodiscard]] std::size_t in_flight() const noexcept {
        return in_flight_.load(std::memory_order_acquire);
    }

    // Called (from any thread) when the drain has begun and nothing is in flight.
    void on_idle(std::function<void()> f);

    void add_session(http_session* s, std::weak_ptr<http_session> w);
    void remove_session(http_session* s);

private:
    void notify_if_idle();

    std::atomic<bool> ready_{false};
    std::atomic<bool> draining_{false};
    std::atomic<std::size_t> in_flight_{0};
    std::mutex mutex_;
    std::unordered_map<http_session*, std::weak_ptr<http_session>> sessions_;  // guarded by mutex_
    std::function<void()> on_idle_;                                            // guarded by mutex_
};

}  // namespace flowd
