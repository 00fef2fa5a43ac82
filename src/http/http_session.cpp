#include "flowd/http/http_session.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <sstream>
#include <string>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "basic_http_session.hpp"
#include "flowd/http/framing.hpp"
#include "flowd/http/request_id.hpp"
#include "session_events.hpp"
#include "session_tls.hpp"

namespace flowd {
namespace {

template <class Stream>
inline void basic_http_session<Stream>::on_start() {
    if constexpr (is_tls) {
        // The handshake is part of the first request's header deadline: a client that
        // opens a connection and stalls is closed as a slow header would be.
        tcp().expires_after(refuse_ ? std::chrono::milliseconds(refusal_time)
                                    : services_.limits.header_timeout);
        // Look at the first byte before the handshake: plain HTTP sent here gets a
        // readable 400, as nginx answers it, instead of a silent close. A raw socket
        // operation: the stream's own expiry does not cover it, the deadline does.
        deadline_.arm(*this, refuse_ ? std::chrono::milliseconds(refusal_time)
                                     : std::chrono::milliseconds(services_.limits.header_timeout));
        tcp().socket().async_receive(
            net::buffer(&first_byte_, 1), net::socket_base::message_peek,
            beast::bind_front_handler(&basic_http_session::on_peek, self()));
    } else {
        after_handshake();
    }
}

template <class Stream>
inline void basic_http_session<Stream>::after_handshake() {
    if (refuse_) {
        return refuse();
    }
    do_wait();
}

// Over max_connections: 503 `overloaded` now, Connection: close, without reading the
// request (a short write deadline, then a bounded linger so the answer is not reset).
template <class Stream>
inline void basic_http_session<Stream>::refuse() {
    services_.metrics.count_limit_rejection("max_connections");
    unread_input_ = true;
    std::string const id = new_request_id();
    string_response r =
        problem_response(problem{problem_type::overloaded,
                                 "flowd has max_connections (" + std::to_string(max_connections_) +
                                     ") connections open; retry later",
                                 {},
                                 {}},
                         id);
    r.keep_alive(false);
    r.set("X-Request-Id", id);
    r.set(http::field::retry_after, "1");
    r.prepare_payload();
    pending_ = response{std::move(r)};
    tcp().expires_after(refusal_time);
    std::visit(
        [this](auto& m) {
            http::async_write(
                stream_, m,
                beast::bind_front_handler(&basic_http_session::on_write, self(), false));
        },
        *pending_);
}

template <class Stream>
inline void basic_http_session<Stream>::do_wait() {
    if (buffer_.size() != 0) {
        return start_request();
    }
    if (buffer_.capacity() > first_read_bytes) {
        buffer_.shrink_to_fit();  // idle connections hold no body-sized buffer
    }
    if (services_.drain.draining()) {
        return do_close();
    }
    waiting_idle_ = true;
    deadline_.arm(*this, services_.limits.idle_timeout);
    stream_.async_read_some(buffer_.prepare(first_read_bytes),
                            beast::bind_front_handler(&basic_http_session::on_first_bytes, self()));
}

template <class Stream>
inline void basic_http_session<Stream>::on_first_bytes(beast::error_code ec, std::size_t n) {
    waiting_idle_ = false;
    if (ec) {
        if (deadline_.timed_out()) {
            services_.metrics.count_limit_rejection("idle_timeout");
            close_socket();
        } else if (!benign(ec)) {
            services_.log->debug("[C{}] read: {}", id_, ec.message());
        }
        return do_close();
    }
    buffer_.commit(n);
    start_request();
}

template <class Stream>
inline void basic_http_session<Stream>::start_request() {
    // A request is in flight from its first byte (SPEC Shutdown).
    arrived_ = std::chrono::steady_clock::now();
    draining_at_arrival_ = services_.drain.draining();
    if (!in_flight_) {
        in_flight_ = true;
        services_.drain.request_started();
    }
    body_too_large_ = false;
    head_request_ = false;
    parser_.emplace();
    parser_->body_limit(services_.limits.max_body_bytes);
    // The exact limit is find_head_end's; the parser's only backs it up.
    parser_->header_limit(services_.limits.max_header_bytes + 4);
    // A total deadline from the first byte to the end of the head (SPEC Security).
    tcp().expires_never();
    deadline_.arm(*this, services_.limits.header_timeout);
    read_head();
}

// Reads until the whole head is buffered, so that every framing decision is made on
// the raw bytes (audit_framing) before the parser sees them.
template <class Stream>
inline void basic_http_session<Stream>::read_head() {
    std::string_view const bytes{static_cast<char const*>(buffer_.data().data()), buffer_.size()};
    head_end const end = find_head_end(bytes, services_.limits.max_header_bytes);
    switch (end.what) {
        case head_end::state::too_large:
            services_.metrics.count_limit_rejection("max_header_bytes");
            return send_early(problem_type::header_too_large,
                              "the request line and headers exceed " +
                                  std::to_string(services_.limits.max_header_bytes) + " bytes");
        case head_end::state::complete:
            if (auto p = audit_framing(bytes.substr(0, end.size))) {
                return send_early(p->type, std::move(p->detail));
            }
            return parse_buffered_head();
        case head_end::state::malformed:
            // The head is buffered: the parser reads nothing from the socket.
            return http::async_read_header(
                stream_, buffer_, *parser_,
                beast::bind_front_handler(&basic_http_session::on_header, self()));
        case head_end::state::need_more:
            break;
    }
    std::size_t const room = std::max<std::size_t>(
        first_read_bytes, services_.limits.max_header_bytes + 4 - buffer_.size());
    stream_.async_read_some(buffer_.prepare(std::min<std::size_t>(room, 64 * 1024)),
                            beast::bind_front_handler(&basic_http_session::on_head_bytes, self()));
}

// The whole head is buffered: the parser reads it here, as async_read_header would from
// the buffer, without a round through the scheduler. Should the parser want more than
// find_head_end found, the asynchronous read takes over where it stopped.
template <class Stream>
inline void basic_http_session<Stream>::parse_buffered_head() {
    beast::error_code ec;
    while (!parser_->is_header_done() && !ec) {
        buffer_.consume(parser_->put(buffer_.data(), ec));
    }
    if (ec == http::error::need_more) {
        return http::async_read_header(
            stream_, buffer_, *parser_,
            beast::bind_front_handler(&basic_http_session::on_header, self()));
    }
    on_header(ec, 0);
}

template <class Stream>
inline void basic_http_session<Stream>::on_head_bytes(beast::error_code ec, std::size_t n) {
    // The deadline can pass with no read to cancel: bytes read on one I/O thread while it
    // fires on another, this handler not yet run. Then the read succeeded, and the head is
    // late all the same: a read issued now would have no deadline left.
    if (ec || deadline_.timed_out()) {
        if (deadline_.timed_out()) {
            services_.metrics.count_limit_rejection("header_timeout");
            return send_early(problem_type::request_timeout,
                              "the request head did not arrive within header_timeout (" +
                                  std::to_string(services_.limits.header_timeout.count()) + " ms)");
        }
        if (!benign(ec)) {
            services_.log->debug("[C{}] read header: {}", id_, ec.message());
        }
        return do_close();
    }
    buffer_.commit(n);
    read_head();
}

template <class Stream>
inline void basic_http_session<Stream>::on_header(beast::error_code ec, std::size_t) {
    if (ec == http::error::header_limit) {
        services_.metrics.count_limit_rejection("max_header_bytes");
        return send_early(problem_type::header_too_large,
                          "the request line and headers exceed " +
                              std::to_string(services_.limits.max_header_bytes) + " bytes");
    }
    if (ec == http::error::body_limit) {
        // Beast rejects a Content-Length over body_limit once every field is parsed:
        // answer 413, not silence.
        body_too_large_ = true;
        return dispatch_request();
    }
    if (ec && malformed(ec)) {
        return send_early(problem_type::bad_request,
                          "the request is not valid HTTP/1.1: " + ec.message());
    }
    if (ec) {
        if (!benign(ec)) {
            services_.log->debug("[C{}] read header: {}", id_, ec.message());
        }
        return do_close();
    }
    if (draining_at_arrival_) {
        return dispatch_request();
    }
    auto const length = parser_->content_length();
    if (length && *length > services_.limits.max_body_bytes) {
        body_too_large_ = true;
        return dispatch_request();
    }
    auto const expect = parser_->get().find(http::field::expect);
    if (expect != parser_->get().end() && beast::iequals(expect->value(), "100-continue") &&
        !parser_->is_done()) {
        // 100 only to a request that will be read: what refuses it from its head alone
        // (404/405, 401/403, 415) answers now, and the body is never sent.
        request_meta meta{id_, false, false, arrived_};
        meta.tls_client_cn = client_cn_;
        meta.remote_ip = remote_ip_;
        if (auto refused = services_.mw.precheck(parser_->get(), meta)) {
            deadline_.disarm();
            unread_input_ = true;
            head_request_ = false;
            return send(std::move(*refused));
        }
        static constexpr std::string_view interim = "HTTP/1.1 100 Continue\r\n\r\n";
        deadline_.disarm();
        tcp().expires_after(services_.limits.idle_timeout);
        return net::async_write(
            stream_, net::buffer(interim.data(), interim.size()),
            beast::bind_front_handler(&basic_http_session::on_continue, self()));
    }
    do_read_body();
}

template <class Stream>
inline void basic_http_session<Stream>::on_continue(beast::error_code ec, std::size_t) {
    if (ec) {
        if (ec == beast::error::timeout) {
            services_.metrics.count_limit_rejection("write_timeout");
        }
        return do_close();
    }
    do_read_body();
}

template <class Stream>
inline void basic_http_session<Stream>::do_read_body() {
    // What is buffered is parsed here (a small body comes with its head); only what is
    // missing is read from the socket.
    while (!parser_->is_done() && buffer_.size() != 0) {
        beast::error_code ec;
        std::size_t const used = parser_->put(buffer_.data(), ec);
        buffer_.consume(used);
        if (ec == http::error::need_more || (!ec && used == 0)) {
            break;
        }
        if (ec) {
            return on_body(ec, used);
        }
    }
    if (parser_->is_done()) {
        return dispatch_request();
    }
    // Room only when this read goes to the socket: a small body that came with the
    // header is parsed from the buffer as it is.
    auto const remaining = parser_->content_length_remaining();  // none when chunked
    bool const reads_socket = remaining ? *remaining > buffer_.size() : buffer_.size() == 0;
    if (reads_socket && buffer_.capacity() - buffer_.size() < body_read_bytes) {
        buffer_.reserve(buffer_.size() + body_read_bytes);
    }
    // A fresh deadline before each read: the body timeout counts time without progress.
    tcp().expires_never();
    deadline_.arm(*this, services_.limits.body_timeout);
    http::async_read_some(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&basic_http_session::on_body, self()));
}

template <class Stream>
inline void basic_http_session<Stream>::on_body(beast::error_code ec, std::size_t) {
    if (ec == http::error::body_limit) {
        body_too_large_ = true;
        return dispatch_request();
    }
    if (ec && malformed(ec)) {
        return send_early(problem_type::bad_request,
                          "the request body framing is not valid HTTP/1.1: " + ec.message());
    }
    if (ec) {
        if (deadline_.timed_out()) {
            services_.metrics.count_limit_rejection("body_timeout");
            return send_early(problem_type::request_timeout,
                              "the request body made no progress within body_timeout (" +
                                  std::to_string(services_.limits.body_timeout.count()) + " ms)");
        }
        if (!benign(ec)) {
            services_.log->debug("[C{}] read body: {}", id_, ec.message());
        }
        return do_close();
    }
    do_read_body();
}

template <class Stream>
inline void basic_http_session<Stream>::dispatch_request() {
    deadline_.disarm();
    tcp().expires_never();
    request& req = parser_->get();
    head_request_ = req.method() == http::verb::head;
    if (body_too_large_ || draining_at_arrival_) {
        unread_input_ = true;
    }
    if (body_too_large_) {
        req.body().clear();
        req.body().shrink_to_fit();
    }
    request_meta meta{id_, body_too_large_, draining_at_arrival_, arrived_};
    meta.tls_client_cn = client_cn_;
    meta.remote_ip = remote_ip_;
    // An answer given while handle() runs (an ingest that applies in place) is sent when
    // it returns; one given later, from another thread, comes back through the strand.
    std::optional<response> now;
    {
        inline_answers const scope{this};
        now = services_.mw.handle(req, meta, [self = self()](response r) {
            if (answering_inline == self.get()) {
                self->inline_answer_ = std::move(r);
                return;
            }
            net::post(self->stream_.get_executor(),
                      [self, r = std::move(r)]() mutable { self->send(std::move(r)); });
        });
    }
    if (now) {
        send(std::move(*now));
    } else if (inline_answer_) {
        response r = std::move(*inline_answer_);
        inline_answer_.reset();
        send(std::move(r));
    }
}

template <class Stream>
inline void basic_http_session<Stream>::send_early(problem_type type, std::string detail) {
    // The request could not be parsed, so there is nothing to route: answer it with the
    // same request id and metrics as the middleware would, then close, since the stream
    // cannot be trusted past this point.
    deadline_.disarm();
    unread_input_ = true;
    std::string const id = new_request_id();
    string_response r = problem_response(problem{type, std::move(detail), {}, {}}, id);
    r.keep_alive(false);
    r.set("X-Request-Id", id);
    r.prepare_payload();
    services_.metrics.observe_request(
        route_id::other, "other", r.result_int(),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - arrived_).count());
    send(response{std::move(r)});
}

template <class Stream>
inline void basic_http_session<Stream>::send(response r) {
    pending_ = std::move(r);
    bool const keep_alive = std::visit([](auto const& m) { return m.keep_alive(); }, *pending_);
    if (auto* live = std::get_if<event_stream_response>(&*pending_)) {
        events_ = std::move(live->body());
        if (head_request_ && events_) {
            events_->stop();
            events_.reset();
        }
        if (events_) {
            tcp().expires_after(services_.limits.idle_timeout);
            return start_events();
        }
    }
    // A client that stops reading the answer is closed past idle_timeout.
    deadline_.arm(*this, services_.limits.idle_timeout);
    if (head_request_) {
        // HEAD: the GET answer's status and headers (Content-Length or chunked
        // included), no body.
        std::ostringstream os;
        os << header_of(*pending_);
        raw_answer_ = os.str();
        return net::async_write(
            stream_, net::buffer(raw_answer_),
            beast::bind_front_handler(&basic_http_session::on_write, self(), keep_alive));
    }
    std::visit(
        [this, keep_alive](auto& m) {
            http::async_write(
                stream_, m,
                beast::bind_front_handler(&basic_http_session::on_write, self(), keep_alive));
        },
        *pending_);
}

template <class Stream>
inline void basic_http_session<Stream>::on_write(bool keep_alive, beast::error_code ec,
                                                 std::size_t) {
    deadline_.disarm();
    pending_.reset();
    if (!ec && keep_alive && buffer_.size() != 0) {
        // A pipelined request is already here: it stays in flight without a gap, so a
        // drain cannot finish (and stop the server) between this answer and its own.
        return start_request();
    }
    finish_request();
    if (ec) {
        // refuse() writes under the stream's own expiry, send() under the deadline.
        bool const timed_out = ec == beast::error::timeout || deadline_.timed_out();
        if (timed_out && !refuse_) {
            services_.metrics.count_limit_rejection("write_timeout");
        } else if (!benign(ec)) {
            services_.log->debug("[C{}] write: {}", id_, ec.message());
        }
        if (timed_out) {
            close_socket();
            closed_ = true;
        }
        return do_close();
    }
    if (!keep_alive) {
        return do_close();
    }
    do_wait();
}

}  // namespace

void start_plain_session(net::ip::tcp::socket&& socket, session_services const& services,
                         session_start start) {
    std::make_shared<basic_http_session<plain_stream>>(services, std::move(start),
                                                       std::move(socket))
        ->run();
}

void start_tls_session(net::ip::tcp::socket&& socket, session_services const& services,
                       ssl::context& tls, session_start start) {
    std::make_shared<basic_http_session<tls_stream>>(services, std::move(start), std::move(socket),
                                                     tls)
        ->run();
}

}  // namespace flowd
