#include "flowd/http/http_session.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "flowd/http/request_id.hpp"

namespace flowd {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

namespace {

constexpr std::size_t first_read_bytes = 4096;
constexpr std::chrono::seconds linger_time{2};

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
           ec == beast::error::timeout;
}

}  // namespace

http_session::http_session(net::ip::tcp::socket&& socket, session_services const& services,
                           std::uint64_t id)
    : stream_(std::move(socket)), services_(services), id_(id) {
    // Answers are written whole or in chunks, never byte by byte: Nagle's algorithm would
    // only hold a streamed answer's last segment back for the client's delayed ACK.
    beast::error_code ec;
    stream_.socket().set_option(net::ip::tcp::no_delay(true), ec);
    services_.metrics.connections_open.Increment();
}

http_session::~http_session() {
    finish_request();
    services_.drain.remove_session(this);
    services_.metrics.connections_open.Decrement();
}

void http_session::run() {
    services_.drain.add_session(this, weak_from_this());
    // Start on the strand: every member is touched only there.
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&http_session::do_wait, shared_from_this()));
}

void http_session::close_if_idle() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
        if (self->waiting_idle_ && self->buffer_.size() == 0) {
            self->do_close();
        }
    });
}

void http_session::do_wait() {
    if (buffer_.size() != 0) {
        return start_request();
    }
    if (services_.drain.draining()) {
        return do_close();
    }
    waiting_idle_ = true;
    stream_.expires_after(services_.limits.idle_timeout);
    stream_.async_read_some(
        buffer_.prepare(first_read_bytes),
        beast::bind_front_handler(&http_session::on_first_bytes, shared_from_this()));
}

void http_session::on_first_bytes(beast::error_code ec, std::size_t n) {
    waiting_idle_ = false;
    if (ec) {
        if (!benign(ec)) {
            services_.log->debug("[C{}] read: {}", id_, ec.message());
        }
        return do_close();
    }
    buffer_.commit(n);
    start_request();
}

void http_session::start_request() {
    // A request is in flight from its first byte (SPEC Shutdown).
    arrived_ = std::chrono::steady_clock::now();
    draining_at_arrival_ = services_.drain.draining();
    if (!in_flight_) {
        in_flight_ = true;
        services_.drain.request_started();
    }
    body_too_large_ = false;
    parser_.emplace();
    parser_->body_limit(services_.limits.max_body_bytes);
    parser_->header_limit(services_.limits.max_header_bytes);
    stream_.expires_after(services_.limits.header_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&http_session::on_header, shared_from_this()));
}

void http_session::on_header(beast::error_code ec, std::size_t) {
    if (ec == http::error::header_limit) {
        services_.metrics.count_limit_rejection("max_header_bytes");
        return send_early(problem_type::header_too_large,
                          "the request line and headers exceed " +
                              std::to_string(services_.limits.max_header_bytes) + " bytes");
    }
    if (ec == http::error::body_limit) {
        // Beast rejects a Content-Length over body_limit once every field is parsed: answer 413,
        // not silence.
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
    if (length) {
        // simdjson reads a little past the end: room for it now saves a copy later.
        parser_->get().body().reserve(static_cast<std::size_t>(*length) + 64);
    }
    auto const expect = parser_->get().find(http::field::expect);
    if (expect != parser_->get().end() && beast::iequals(expect->value(), "100-continue") &&
        !parser_->is_done()) {
        static constexpr std::string_view interim = "HTTP/1.1 100 Continue\r\n\r\n";
        stream_.expires_after(services_.limits.idle_timeout);
        return net::async_write(
            stream_, net::buffer(interim.data(), interim.size()),
            beast::bind_front_handler(&http_session::on_continue, shared_from_this()));
    }
    do_read_body();
}

void http_session::on_continue(beast::error_code ec, std::size_t) {
    if (ec) {
        return do_close();
    }
    do_read_body();
}

void http_session::do_read_body() {
    if (parser_->is_done()) {
        return dispatch_request();
    }
    // A fresh deadline before each read: the body timeout counts time without progress.
    stream_.expires_after(services_.limits.body_timeout);
    http::async_read_some(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&http_session::on_body, shared_from_this()));
}

void http_session::on_body(beast::error_code ec, std::size_t) {
    if (ec == http::error::body_limit) {
        body_too_large_ = true;
        return dispatch_request();
    }
    if (ec && malformed(ec)) {
        return send_early(problem_type::bad_request,
                          "the request body framing is not valid HTTP/1.1: " + ec.message());
    }
    if (ec) {
        if (!benign(ec)) {
            services_.log->debug("[C{}] read body: {}", id_, ec.message());
        }
        return do_close();
    }
    do_read_body();
}

void http_session::dispatch_request() {
    stream_.expires_never();
    request& req = parser_->get();
    if (body_too_large_ || draining_at_arrival_) {
        unread_input_ = true;
    }
    if (body_too_large_) {
        req.body().clear();
        req.body().shrink_to_fit();
    }
    request_meta const meta{id_, body_too_large_, draining_at_arrival_, arrived_};
    auto now = services_.mw.handle(req, meta, [self = shared_from_this()](response r) {
        net::post(self->stream_.get_executor(),
                  [self, r = std::move(r)]() mutable { self->send(std::move(r)); });
    });
    if (now) {
        send(std::move(*now));
    }
}

void http_session::send_early(problem_type type, std::string detail) {
    // The request could not be parsed, so there is nothing to route: answer it with the
    // same request id and metrics as the middleware would, then close, since the stream
    // cannot be trusted past this point.
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

void http_session::send(response r) {
    pending_ = std::move(r);
    bool const keep_alive = std::visit([](auto const& m) { return m.keep_alive(); }, *pending_);
    stream_.expires_after(services_.limits.idle_timeout);
    std::visit(
        [this, keep_alive](auto& m) {
            http::async_write(
                stream_, m,
                beast::bind_front_handler(&http_session::on_write, shared_from_this(), keep_alive));
        },
        *pending_);
}

void http_session::on_write(bool keep_alive, beast::error_code ec, std::size_t) {
    pending_.reset();
    if (!ec && keep_alive && buffer_.size() != 0) {
        // A pipelined request is already here: it stays in flight without a gap, so a
        // drain cannot finish (and stop the server) between this answer and its own.
        return start_request();
    }
    finish_request();
    if (ec) {
        if (!benign(ec)) {
            services_.log->debug("[C{}] write: {}", id_, ec.message());
        }
        return do_close();
    }
    if (!keep_alive) {
        return do_close();
    }
    do_wait();
}

void http_session::do_close() {
    if (closed_) {
        return;
    }
    closed_ = true;
    finish_request();
    beast::error_code ec;
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
    if (!unread_input_) {
        stream_.close();
        return;
    }
    // The client may still be sending what we did not read (a body over the limit, the
    // rest of an oversized header). Closing now would answer its bytes with a reset that
    // can destroy our 413/431/400 before the client reads it: drain for a short while
    // first, as nginx's lingering close does.
    stream_.expires_after(linger_time);
    do_linger();
}

void http_session::do_linger() {
    stream_.async_read_some(net::buffer(linger_buffer_.data(), linger_buffer_.size()),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                if (ec) {
                                    return self->stream_.close();
                                }
                                self->do_linger();
                            });
}

void http_session::finish_request() {
    if (in_flight_) {
        in_flight_ = false;
        services_.drain.request_finished();
    }
}

}  // namespace flowd
