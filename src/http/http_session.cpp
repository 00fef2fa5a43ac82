#include "flowd/http/http_session.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <optional>
#include <sstream>
#include <type_traits>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include "flowd/http/framing.hpp"
#include "flowd/http/request_id.hpp"

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
// The first byte of every TLS connection: a handshake record (RFC 8446 §5.1).
constexpr unsigned char tls_handshake_record = 0x16;

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

// The subject CN of the peer's verified certificate, or empty.
std::string peer_common_name(SSL* ssl) {
    std::string out;
    X509* cert = SSL_get1_peer_certificate(ssl);
    if (cert == nullptr) {
        return out;
    }
    X509_NAME* subject = X509_get_subject_name(cert);
    int const index =
        subject == nullptr ? -1 : X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index >= 0) {
        ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
        unsigned char* utf8 = nullptr;
        int const n = ASN1_STRING_to_UTF8(&utf8, data);
        if (n > 0) {
            out.assign(reinterpret_cast<char const*>(utf8), static_cast<std::size_t>(n));
        }
        OPENSSL_free(utf8);
    }
    X509_free(cert);
    return out;
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
          deadline_(stream_.get_executor()) {
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

    void on_start() {
        if constexpr (is_tls) {
            // The handshake is part of the first request's header deadline: a client that
            // opens a connection and stalls is closed as a slow header would be.
            tcp().expires_after(refuse_ ? std::chrono::milliseconds(refusal_time)
                                        : services_.limits.header_timeout);
            // Look at the first byte before the handshake: plain HTTP sent here gets a
            // readable 400, as nginx answers it, instead of a silent close. A raw socket
            // operation: the stream's own expiry does not cover it, the deadline does.
            arm_deadline(refuse_ ? std::chrono::milliseconds(refusal_time)
                                 : std::chrono::milliseconds(services_.limits.header_timeout));
            tcp().socket().async_receive(
                net::buffer(&first_byte_, 1), net::socket_base::message_peek,
                beast::bind_front_handler(&basic_http_session::on_peek, self()));
        } else {
            after_handshake();
        }
    }

    void on_peek(beast::error_code ec, std::size_t n) {
        disarm_deadline();
        if (ec || n == 0) {
            if (timed_out_ && !refuse_) {
                services_.metrics.count_limit_rejection("header_timeout");
            }
            closed_ = true;  // no TLS session to shut down
            return tcp().close();
        }
        if (first_byte_ != tls_handshake_record && std::isupper(first_byte_) != 0) {
            return refuse_plain_http();
        }
        stream_.async_handshake(
            ssl::stream_base::server,
            beast::bind_front_handler(&basic_http_session::on_handshake, self()));
    }

    // 400 tls-required, written unencrypted on the raw socket, then close.
    void refuse_plain_http() {
        arrived_ = std::chrono::steady_clock::now();
        std::string const id = new_request_id();
        string_response r = problem_response(
            problem{problem_type::tls_required,
                    "this listener speaks HTTPS only; plain HTTP was sent: use https://",
                    {},
                    {}},
            id);
        r.keep_alive(false);
        r.set("X-Request-Id", id);
        r.prepare_payload();
        services_.metrics.observe_request(route_id::other, "other", r.result_int(), 0.0);
        std::ostringstream os;
        os << r;
        raw_answer_ = os.str();
        closed_ = true;  // no TLS session: close as raw TCP below
        arm_deadline(refusal_time);
        net::async_write(tcp().socket(), net::buffer(raw_answer_),
                         [self = self()](beast::error_code ec, std::size_t) {
                             self->disarm_deadline();
                             if (ec) {
                                 return self->tcp().close();
                             }
                             beast::error_code ignored;
                             self->tcp().socket().shutdown(net::ip::tcp::socket::shutdown_send,
                                                           ignored);
                             self->tcp().expires_after(linger_time);
                             self->do_linger();
                         });
    }

    void on_handshake(beast::error_code ec) {
        if (ec) {
            if (ec == beast::error::timeout && !refuse_) {
                services_.metrics.count_limit_rejection("header_timeout");
            }
            if (!benign(ec)) {
                services_.log->debug("[C{}] TLS handshake: {}", id_, ec.message());
            }
            closed_ = true;  // no TLS session to shut down
            return tcp().close();
        }
        if constexpr (is_tls) {
            client_cn_ = peer_common_name(stream_.native_handle());
            if (!client_cn_.empty()) {
                services_.log->debug("[C{}] TLS client certificate CN '{}'", id_, client_cn_);
            }
        }
        after_handshake();
    }

    void after_handshake() {
        if (refuse_) {
            return refuse();
        }
        do_wait();
    }

    // Over max_connections: 503 `overloaded` now, Connection: close, without reading the
    // request (a short write deadline, then a bounded linger so the answer is not reset).
    void refuse() {
        services_.metrics.count_limit_rejection("max_connections");
        unread_input_ = true;
        std::string const id = new_request_id();
        string_response r = problem_response(
            problem{problem_type::overloaded,
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

    void do_wait() {
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
        arm_deadline(services_.limits.idle_timeout);
        stream_.async_read_some(
            buffer_.prepare(first_read_bytes),
            beast::bind_front_handler(&basic_http_session::on_first_bytes, self()));
    }

    void on_first_bytes(beast::error_code ec, std::size_t n) {
        waiting_idle_ = false;
        if (ec) {
            if (timed_out_) {
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

    void start_request() {
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
        arm_deadline(services_.limits.header_timeout);
        read_head();
    }

    // Reads until the whole head is buffered, so that every framing decision is made on
    // the raw bytes (audit_framing) before the parser sees them.
    void read_head() {
        std::string_view const bytes{static_cast<char const*>(buffer_.data().data()),
                                     buffer_.size()};
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
        stream_.async_read_some(
            buffer_.prepare(std::min<std::size_t>(room, 64 * 1024)),
            beast::bind_front_handler(&basic_http_session::on_head_bytes, self()));
    }

    // The whole head is buffered: the parser reads it here, as async_read_header would from
    // the buffer, without a round through the scheduler. Should the parser want more than
    // find_head_end found, the asynchronous read takes over where it stopped.
    void parse_buffered_head() {
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

    void on_head_bytes(beast::error_code ec, std::size_t n) {
        if (ec) {
            if (timed_out_) {
                services_.metrics.count_limit_rejection("header_timeout");
                return send_early(problem_type::request_timeout,
                                  "the request head did not arrive within header_timeout (" +
                                      std::to_string(services_.limits.header_timeout.count()) +
                                      " ms)");
            }
            if (!benign(ec)) {
                services_.log->debug("[C{}] read header: {}", id_, ec.message());
            }
            return do_close();
        }
        buffer_.commit(n);
        read_head();
    }

    // The deadlines (header, body, idle, write): when one passes, the socket's operation is
    // cancelled (a read is answered 408; beast's own stream timeout would close the socket
    // before an answer could go). Arming moves a time point; the timer is rescheduled only
    // when no wait is pending or the new deadline is earlier than it, and woken early it
    // waits again for the current deadline: a busy connection does not schedule and cancel
    // a timer per request. The wait holds the session weakly: a connection that ends is not
    // kept (with its connection slot) until the deadline.
    template <class Duration>
    void arm_deadline(Duration d) {
        timed_out_ = false;
        deadline_at_ = std::chrono::steady_clock::now() + d;
        if (!deadline_waiting_ || deadline_at_ < deadline_.expiry()) {
            wait_for_deadline();
        }
    }

    void wait_for_deadline() {
        deadline_waiting_ = true;
        std::uint64_t const wait = ++deadline_wait_;
        deadline_.expires_at(deadline_at_);  // cancels the wait pending, if any
        deadline_.async_wait([weak = this->weak_from_this(), wait](beast::error_code ec) {
            auto const self = weak.lock();
            if (!self || wait != self->deadline_wait_) {
                return;
            }
            self->deadline_waiting_ = false;
            if (ec || self->deadline_at_ == no_deadline) {
                return;
            }
            if (std::chrono::steady_clock::now() < self->deadline_at_) {
                return self->wait_for_deadline();
            }
            self->deadline_at_ = no_deadline;
            self->timed_out_ = true;
            beast::error_code ignored;
            self->tcp().socket().cancel(ignored);
        });
    }

    void disarm_deadline() { deadline_at_ = no_deadline; }

    // A deadline passed on an idle read or a write: the socket goes at once, as the stream's
    // own expiry would close it (no TLS close_notify to a peer that stopped reading).
    void close_socket() {
        beast::error_code ignored;
        tcp().socket().close(ignored);
    }

    void on_header(beast::error_code ec, std::size_t) {
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
                disarm_deadline();
                unread_input_ = true;
                head_request_ = false;
                return send(std::move(*refused));
            }
            static constexpr std::string_view interim = "HTTP/1.1 100 Continue\r\n\r\n";
            disarm_deadline();
            tcp().expires_after(services_.limits.idle_timeout);
            return net::async_write(
                stream_, net::buffer(interim.data(), interim.size()),
                beast::bind_front_handler(&basic_http_session::on_continue, self()));
        }
        do_read_body();
    }

    void on_continue(beast::error_code ec, std::size_t) {
        if (ec) {
            if (ec == beast::error::timeout) {
                services_.metrics.count_limit_rejection("write_timeout");
            }
            return do_close();
        }
        do_read_body();
    }

    void do_read_body() {
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
        arm_deadline(services_.limits.body_timeout);
        http::async_read_some(stream_, buffer_, *parser_,
                              beast::bind_front_handler(&basic_http_session::on_body, self()));
    }

    void on_body(beast::error_code ec, std::size_t) {
        if (ec == http::error::body_limit) {
            body_too_large_ = true;
            return dispatch_request();
        }
        if (ec && malformed(ec)) {
            return send_early(problem_type::bad_request,
                              "the request body framing is not valid HTTP/1.1: " + ec.message());
        }
        if (ec) {
            if (timed_out_) {
                services_.metrics.count_limit_rejection("body_timeout");
                return send_early(problem_type::request_timeout,
                                  "the request body made no progress within body_timeout (" +
                                      std::to_string(services_.limits.body_timeout.count()) +
                                      " ms)");
            }
            if (!benign(ec)) {
                services_.log->debug("[C{}] read body: {}", id_, ec.message());
            }
            return do_close();
        }
        do_read_body();
    }

    void dispatch_request() {
        disarm_deadline();
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

    void send_early(problem_type type, std::string detail) {
        // The request could not be parsed, so there is nothing to route: answer it with the
        // same request id and metrics as the middleware would, then close, since the stream
        // cannot be trusted past this point.
        disarm_deadline();
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

    void send(response r) {
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
        arm_deadline(services_.limits.idle_timeout);
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

    void on_write(bool keep_alive, beast::error_code ec, std::size_t) {
        disarm_deadline();
        pending_.reset();
        if (!ec && keep_alive && buffer_.size() != 0) {
            // A pipelined request is already here: it stays in flight without a gap, so a
            // drain cannot finish (and stop the server) between this answer and its own.
            return start_request();
        }
        finish_request();
        if (ec) {
            // refuse() writes under the stream's own expiry, send() under the deadline.
            bool const timed_out = ec == beast::error::timeout || timed_out_;
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

    // GET /flows/stream: the head, then each piece the source gives as one chunk, as the
    // socket drains. The request stops counting as in flight once the head is written: a
    // stream never holds the drain (SPEC Shutdown); the source ends it at shutdown.
    void start_events() {
        std::ostringstream os;
        os << header_of(*pending_);
        raw_answer_ = os.str();
        net::async_write(stream_, net::buffer(raw_answer_),
                         beast::bind_front_handler(&basic_http_session::on_events_write, self()));
    }

    void on_events_write(beast::error_code ec, std::size_t) {
        finish_request();
        if (ec || closed_) {
            return do_close();
        }
        if (pending_) {
            watch_events_peer();
        }
        pending_.reset();
        raw_answer_.clear();
        // The pending pull is what keeps the session alive while the stream has nothing to
        // send (stop() drops it; a keep-alive comment's failed write notices a gone client).
        events_->pull([self = self()](std::string piece, bool end) {
            if (end) {
                // The stream's last chunk counts as in flight until written, so that a
                // shutdown (which ends streams before it drains) lets it reach the client.
                self->services_.drain.request_started();
            }
            net::post(self->stream_.get_executor(),
                      [self, piece = std::move(piece), end]() mutable {
                          self->on_event_piece(std::move(piece), end);
                      });
        });
    }

    // A stream client sends nothing more: the socket turning readable means it closed (or
    // broke the protocol). Noticed now, not at the next write, so its stream (and the
    // journal's recording) end with it.
    void watch_events_peer() {
        tcp().socket().async_wait(net::socket_base::wait_read,
                                  [self = self()](beast::error_code ec) {
                                      if (ec != net::error::operation_aborted) {
                                          self->do_close();
                                      }
                                  });
    }

    void on_event_piece(std::string piece, bool end) {
        if (closed_ || !events_) {
            if (end) {
                services_.drain.request_finished();
            }
            return;
        }
        char size[20];
        auto const r = std::to_chars(std::begin(size), std::end(size), piece.size(), 16);
        raw_answer_.assign(std::begin(size), r.ptr);
        raw_answer_ += "\r\n";
        raw_answer_ += piece;
        raw_answer_ += "\r\n";
        if (end) {
            raw_answer_ = "0\r\n\r\n";
            unread_input_ = false;
            events_->stop();
            events_.reset();
        }
        // A reader that stops reading blocks this write: past idle_timeout it is closed.
        tcp().expires_after(services_.limits.idle_timeout);
        net::async_write(stream_, net::buffer(raw_answer_),
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

    void do_close() {
        if (events_) {
            events_->stop();
            events_.reset();
        }
        if (closed_) {
            return;
        }
        closed_ = true;
        disarm_deadline();
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
    // The header, body, idle and write deadlines (arm_deadline).
    static constexpr auto no_deadline = std::chrono::steady_clock::time_point::max();
    net::steady_timer deadline_;
    std::chrono::steady_clock::time_point deadline_at_ = no_deadline;
    std::uint64_t deadline_wait_ = 0;  // which wait is current: a replaced one is ignored
    bool deadline_waiting_ = false;
    bool timed_out_ = false;
    bool head_request_ = false;  // answer with the headers only
    unsigned char first_byte_ = 0;
    std::string raw_answer_;  // a head or a plain-text answer being written
};

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
