#pragma once

// A live stream's writer in http_session.cpp's session (src/http only): the head, then each
// piece the event source gives as one chunk. Included by http_session.cpp alone (see
// basic_http_session.hpp).

#include <charconv>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/write.hpp>

#include "basic_http_session.hpp"

namespace flowd {
namespace {

// GET /flows/stream: the head, then each piece the source gives as one chunk, as the
// socket drains. The request stops counting as in flight once the head is written: a
// stream never holds the drain (SPEC Shutdown); the source ends it at shutdown.
template <class Stream>
inline void basic_http_session<Stream>::start_events() {
    std::ostringstream os;
    os << header_of(*pending_);
    raw_answer_ = os.str();
    net::async_write(stream_, net::buffer(raw_answer_),
                     beast::bind_front_handler(&basic_http_session::on_events_write, self()));
}

template <class Stream>
inline void basic_http_session<Stream>::on_events_write(beast::error_code ec, std::size_t) {
    finish_request();
    if (ec || closed_) {
        return do_close();
    }
    if (pending_) {
        watch_events_peer();
    }
    pending_.reset();
    raw_answer_.clear();
    event_piece_.clear();  // another stream's event is not kept alive by this one
    event_buffers_.clear();
    // The pending pull is what keeps the session alive while the stream has nothing to
    // send (stop() drops it; a keep-alive comment's failed write notices a gone client).
    events_->pull([self = self()](event_source::piece_type piece, bool end) {
        if (end) {
            // The stream's last chunk counts as in flight until written, so that a
            // shutdown (which ends streams before it drains) lets it reach the client.
            self->services_.drain.request_started();
        }
        net::post(self->stream_.get_executor(), [self, piece = std::move(piece), end]() mutable {
            self->on_event_piece(std::move(piece), end);
        });
    });
}

// A stream client sends nothing more: the socket turning readable means it closed (or
// broke the protocol). Noticed now, not at the next write, so its stream (and the
// journal's recording) end with it.
template <class Stream>
inline void basic_http_session<Stream>::watch_events_peer() {
    tcp().socket().async_wait(net::socket_base::wait_read, [self = self()](beast::error_code ec) {
        if (ec != net::error::operation_aborted) {
            self->do_close();
        }
    });
}

template <class Stream>
inline void basic_http_session<Stream>::on_event_piece(event_source::piece_type piece, bool end) {
    if (closed_ || !events_) {
        if (end) {
            services_.drain.request_finished();
        }
        return;
    }
    // One chunk of the piece's strings, written from where they are: a size line, the
    // strings, CRLF (a gathering write; the strings are not copied into a buffer first).
    static constexpr std::string_view crlf = "\r\n";
    std::size_t bytes = 0;
    for (auto const& text : piece) {
        bytes += text->size();
    }
    char size[20];
    auto const r = std::to_chars(std::begin(size), std::end(size), bytes, 16);
    raw_answer_.assign(std::begin(size), r.ptr);
    raw_answer_ += crlf;
    event_piece_ = std::move(piece);
    event_buffers_.clear();
    event_buffers_.push_back(net::buffer(raw_answer_));
    for (auto const& text : event_piece_) {
        event_buffers_.push_back(net::buffer(*text));
    }
    event_buffers_.push_back(net::buffer(crlf.data(), crlf.size()));
    if (end) {
        raw_answer_ = "0\r\n\r\n";
        event_piece_.clear();
        event_buffers_.assign(1, net::buffer(raw_answer_));
        unread_input_ = false;
        events_->stop();
        events_.reset();
    }
    // A reader that stops reading blocks this write: past idle_timeout it is closed.
    tcp().expires_after(services_.limits.idle_timeout);
    net::async_write(stream_, event_buffers_,
                     [self = self(), end](beast::error_code ec, std::size_t n) {
                         if (end) {
                             self->do_close();
                             self->services_.drain.request_finished();
                             return;
                         }
                         if (ec) {
                             return self->do_close();
                         }
                         self->on_events_write(ec, n);
                     });
}

}  // namespace
}  // namespace flowd
