#include "flowd/http/drain_state.hpp"

#include <vector>

#include "flowd/http/http_session.hpp"

namespace flowd {

void drain_state::begin_drain() {
    ready_.store(false, std::memory_order_release);
    draining_.store(true, std::memory_order_release);
    std::vector<std::shared_ptr<http_session>> live;
    {
        std::scoped_lock lock{mutex_};
        live.reserve(sessions_.size());
        for (auto const& [raw, weak] : sessions_) {
            if (auto s = weak.lock()) {
                live.push_back(std::move(s));
            }
        }
    }
    // Act outside the lock (Beast's chat-multi pattern): each session decides on its strand.
    for (auto const& s : live) {
        s->close_if_idle();
    }
    notify_if_idle();
}

void drain_state::request_finished() {
    if (in_flight_.fetch_sub(1, std::memory_order_acq_rel) == 1 && draining()) {
        notify_if_idle();
    }
}

void drain_state::on_idle(std::function<void()> f) {
    {
        std::scoped_lock lock{mutex_};
        on_idle_ = std::move(f);
    }
    notify_if_idle();
}

void drain_state::notify_if_idle() {
    if (!draining() || in_flight() != 0) {
        return;
    }
    std::function<void()> f;
    {
        std::scoped_lock lock{mutex_};
        f = std::move(on_idle_);
        on_idle_ = nullptr;
    }
    if (f) {
        f();
    }
}

void drain_state::add_session(http_session* s, std::weak_ptr<http_session> w) {
    std::scoped_lock lock{mutex_};
    sessions_.emplace(s, std::move(w));
}

void drain_state::remove_session(http_session* s) {
    std::scoped_lock lock{mutex_};
    sessions_.erase(s);
}

}  // namespace flowd
