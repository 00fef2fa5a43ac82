#pragma once

// The session class of http_session.cpp (src/http only): one HTTP/1.1 connection, a template
// on its stream. Its members are defined by job: the request cycle in http_session.cpp, the
// TLS start in session_tls.hpp, a live stream's writer in session_events.hpp. Only
// http_session.cpp includes these headers, so the session stays one translation unit and
// its members inline where they did; each out-of-class definition is `inline`, the weight a
// definition inside the class has.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "flowd/http/http_session.hpp"
#include "session_deadline.hpp"

namespace flowd {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;

namespace {

constexpr std::size_t first_read_bytes = 4096;
// Beast reads at most the read buffer's free capacity per call: a body is read with this
// much room (a 105 KB batch in 2 reads, not 27 of 4 KiB: each read a syscall, a parser
// pass and a timer reset), and the buffer goes back to nothing when the connection idles.
constexpr std::size_t body_read_bytes = 64 * 1024;
constexpr std::chrono::seconds linger_time{2};
// An over-cap connection gets its 503 within this, and is drained for at most this long.
constexpr std::chrono::seconds refusal_time{1};

using plain_stream = beast::tcp_stream;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

// The session whose dispatch_request() is running on this thread, if any.
thread_local void const* answering_inline = nullptr;

struct inline_answers {
    explicit inline_answers(void const* session) { answering_inline = session; }
    ~inline_answers() { answering_inline = nullptr; }
    inline_answers(inline_answers const&) = delete;
    inline_answers& operator=(inline_answers const&) = delete;
};

// A malformed request (Beast's parse errors), as opposed to a connection that went away.
bool malformed(beast::error_code const& ec) {
    return ec.category() == beast::error_code(http::error::bad_target).category() &&
           ec != http::error::end_of_stream && ec != http::error::partial_message &&
           ec != http::error::need_more && ec != http::error::header_limit &&
           ec != http::error::body_limit;
}

bool benign(beast::error_code const& ec) {
    return ec == net::error::operation_aborted || ec == http::error::end_of_stream ||
           ec == net::error::eof || ec == net::error::connection_reset ||
           ec == beast::error::timeout || ec == ssl::error::stream_truncated;
}

template <class Stream>
class basic_http_session final : public http_session,
                                 public std::enable_shared_from_this<basic_http_session<Stream>> {
public:
    static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

    template <class... StreamArgs>
    basic_http_session(session_services const& services, session_start start, StreamArgs&&... args)
        : stream_(std::forward<StreamArgs>(args)...),
          services_(services),
          id_(start.id),
          slot_(std::move(start.slot)),
          refuse_(start.refuse),
          max_connections_(start.max_connections),
          deadline_(stream_.get_executor(), beast::get_lowest_layer(stream_).socket()) {
        // Answers are written whole or in chunks, never byte by byte: Nagle's algorithm would
        // only hold a streamed answer's last segment back for the client's delayed ACK.
        beast::error_code ec;
        tcp().socket().set_option(net::ip::tcp::no_delay(true), ec);
        remote_ip_ = peer_address(tcp().socket());
        if (services_.count_connections) {
            services_.metrics.connections_open.Increment();
        }
    }

    ~basic_http_session() override {
        if (events_) {
            events_->stop();
        }
        finish_request();
        services_.drain.remove_session(this);
        if (services_.count_connections) {
            services_.metrics.connections_open.Decrement();
        }
    }

    basic_http_session(basic_http_session const&) = delete;
    basic_http_session& operator=(basic_http_session const&) = delete;

    void run() {
        services_.drain.add_session(this, this->weak_from_this());
        // Start on the strand: every member is touched only there.
        net::dispatch(stream_.get_executor(),
                      beast::bind_front_handler(&basic_http_session::on_start, self()));
    }

    void close_if_idle() override {
        net::post(stream_.get_executor(), [self = self()] {
            if (self->waiting_idle_ && self->buffer_.size() == 0) {
                self->do_close();
            }
        });
    }

private:
    std::shared_ptr<basic_http_session> self() { return this->shared_from_this(); }
    beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream_); }

    // The request cycle (http_session.cpp): wait for a request, read its head and body,
    // dispatch it, write the answer.
    void on_start();
    void after_handshake();
    void refuse();
    void do_wait();
    void on_first_bytes(beast::error_code ec, std::size_t n);
    void start_request();
    void read_head();
    void parse_buffered_head();
    void on_head_bytes(beast::error_code ec, std::size_t n);
    void on_header(beast::error_code ec, std::size_t);
    void on_continue(beast::error_code ec, std::size_t);
    void do_read_body();
    void on_body(beast::error_code ec, std::size_t);
    void dispatch_request();
    void send_early(problem_type type, std::string detail);
    void send(response r);
    void on_write(bool keep_alive, beast::error_code ec, std::size_t);

    // The TLS start (session_tls.hpp): plain HTTP refused, the handshake, the client CN.
    void on_peek(beast::error_code ec, std::size_t n);
    void refuse_plain_http();
    void on_handshake(beast::error_code ec);

    // A live stream's writer (session_events.hpp).
    void start_events();
    void on_events_write(beast::error_code ec, std::size_t);
    void watch_events_peer();
    void on_event_piece(event_source::piece_type piece, bool end);

    // How a connection ends, whichever part ends it.

    // A deadline passed on an idle read or a write: the socket goes at once, as the stream's
    // own expiry would close it (no TLS close_notify to a peer that stopped reading).
    void close_socket() {
        beast::error_code ignored;
        tcp().socket().close(ignored);
    }

    void do_close() {
        if (events_) {
            events_->stop();
            events_.reset();
        }
        if (closed_) {
            return;
        }
        closed_ = true;
        deadline_.disarm();
        finish_request();
        beast::error_code ec;
        if constexpr (is_tls) {
            if (!unread_input_ && tcp().socket().is_open()) {
                // close_notify, then wait (bounded) for the peer's before closing.
                tcp().expires_after(linger_time);
                return stream_.async_shutdown([self = self()](beast::error_code) {
                    beast::error_code ignored;
                    self->tcp().socket().close(ignored);
                });
            }
        }
        tcp().socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
        if (!unread_input_) {
            tcp().close();
            return;
        }
        // The client may still be sending what we did not read (a body over the limit, the
        // rest of an oversized header). Closing now would answer its bytes with a reset that
        // can destroy our 413/431/400 before the client reads it: drain for a short while
        // first, as nginx's lingering close does. Raw bytes, under TLS too: nothing read here
        // is ever looked at.
        tcp().expires_after(refuse_ ? std::chrono::seconds(refusal_time) : linger_time);
        do_linger();
    }

    void do_linger() {
        tcp().async_read_some(net::buffer(linger_buffer_.data(), linger_buffer_.size()),
                              [self = self()](beast::error_code ec, std::size_t) {
                                  if (ec) {
                                      return self->tcp().close();
                                  }
                                  self->do_linger();
                              });
    }

    void finish_request() {
        if (in_flight_) {
            in_flight_ = false;
            services_.drain.request_finished();
        }
    }

    Stream stream_;
    beast::flat_buffer buffer_;
    session_services const& services_;
    std::uint64_t id_;
    connection_slot slot_;
    bool refuse_ = false;
    std::size_t max_connections_ = 0;
    std::string client_cn_;  // mTLS: the client certificate's subject CN
    std::string remote_ip_;  // the peer's address (rate-limit identity without a token)
    std::optional<http::request_parser<request_body>> parser_;
    std::optional<response> pending_;        // the answer being written
    std::optional<response> inline_answer_;  // given while dispatch_request() ran
    std::shared_ptr<event_source> events_;   // a live stream's source, while it is written
    std::chrono::steady_clock::time_point arrived_{};
    bool waiting_idle_ = false;
    bool in_flight_ = false;
    bool draining_at_arrival_ = false;
    bool body_too_large_ = false;
    bool closed_ = false;
    bool unread_input_ = false;  // the peer may still be sending bytes we will not read
    std::array<char, 4096> linger_buffer_{};
    session_deadline deadline_;  // the header, body, idle and write deadlines
    bool head_request_ = false;  // answer with the headers only
    unsigned char first_byte_ = 0;
    std::string raw_answer_;  // a head or a plain-text answer being written
    // A live stream's piece being written (its strings are shared with other streams), and
    // the chunk written: raw_answer_ (the size line), the piece's strings, the CRLF.
    event_source::piece_type event_piece_;
    std::vector<net::const_buffer> event_buffers_;
};

}  // namespace
}  // namespace flowd
