#pragma once

// One connection's header, body, idle and write deadlines, for http_session.cpp's session
// (src/http only; included through basic_http_session.hpp).

#include <chrono>
#include <cstdint>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

namespace flowd {
namespace {

// When the deadline passes, the socket's operation is cancelled (a read is answered 408;
// beast's own stream timeout would close the socket before an answer could go). Arming
// moves a time point; the timer is rescheduled only when no wait is pending or the new
// deadline is earlier than it, and woken early it waits again for the current deadline: a
// busy connection does not schedule and cancel a timer per request. The wait holds the
// session weakly: a connection that ends is not kept (with its connection slot) until the
// deadline. Touched only on the session's strand.
class session_deadline {
public:
    // `socket` is the session's, which lives as long as the session that owns this.
    session_deadline(boost::asio::any_io_executor const& executor,
                     boost::asio::ip::tcp::socket& socket)
        : timer_(executor), socket_(socket) {}

    // A deadline `d` from now, in place of the one armed; `session` is the owner.
    template <class Session, class Duration>
    void arm(Session& session, Duration d) {
        timed_out_ = false;
        at_ = std::chrono::steady_clock::now() + d;
        if (!waiting_ || at_ < timer_.expiry()) {
            wait(session.weak_from_this());
        }
    }

    void disarm() { at_ = none; }

    // The deadline last armed passed (and cancelled the socket's operation).
    [[nodiscard]] bool timed_out() const { return timed_out_; }

private:
    static constexpr auto none = std::chrono::steady_clock::time_point::max();

    template <class Session>
    void wait(std::weak_ptr<Session> session) {
        waiting_ = true;
        std::uint64_t const current = ++wait_;
        timer_.expires_at(at_);  // cancels the wait pending, if any
        timer_.async_wait(
            [this, session = std::move(session), current](boost::system::error_code ec) mutable {
                // Locked first: while the session lives, so does this (its member).
                auto const owner = session.lock();
                if (!owner || current != wait_) {
                    return;
                }
                waiting_ = false;
                if (ec || at_ == none) {
                    return;
                }
                if (std::chrono::steady_clock::now() < at_) {
                    return wait(std::move(session));
                }
                at_ = none;
                timed_out_ = true;
                boost::system::error_code ignored;
                socket_.cancel(ignored);
            });
    }

    boost::asio::steady_timer timer_;
    boost::asio::ip::tcp::socket& socket_;
    std::chrono::steady_clock::time_point at_ = none;
    std::uint64_t wait_ = 0;  // which wait is current: a replaced one is ignored
    bool waiting_ = false;
    bool timed_out_ = false;
};

}  // namespace
}  // namespace flowd
