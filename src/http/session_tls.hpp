#pragma once

// The TLS start of http_session.cpp's session (src/http only): plain HTTP sent to the TLS
// listener answered 400 tls-required, the handshake, the client certificate's CN. Included
// by http_session.cpp alone (see basic_http_session.hpp).

#include <cctype>
#include <sstream>
#include <string>

#include <boost/asio/write.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "basic_http_session.hpp"
#include "flowd/http/request_id.hpp"

namespace flowd {
namespace {

// The first byte of every TLS connection: a handshake record (RFC 8446 §5.1).
constexpr unsigned char tls_handshake_record = 0x16;

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
inline void basic_http_session<Stream>::on_peek(beast::error_code ec, std::size_t n) {
    deadline_.disarm();
    if (ec || n == 0) {
        if (deadline_.timed_out() && !refuse_) {
            services_.metrics.count_limit_rejection("header_timeout");
        }
        closed_ = true;  // no TLS session to shut down
        return tcp().close();
    }
    if (first_byte_ != tls_handshake_record && std::isupper(first_byte_) != 0) {
        return refuse_plain_http();
    }
    stream_.async_handshake(ssl::stream_base::server,
                            beast::bind_front_handler(&basic_http_session::on_handshake, self()));
}

// 400 tls-required, written unencrypted on the raw socket, then close.
template <class Stream>
inline void basic_http_session<Stream>::refuse_plain_http() {
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
    deadline_.arm(*this, refusal_time);
    net::async_write(tcp().socket(), net::buffer(raw_answer_),
                     [self = self()](beast::error_code ec, std::size_t) {
                         self->deadline_.disarm();
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

template <class Stream>
inline void basic_http_session<Stream>::on_handshake(beast::error_code ec) {
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

}  // namespace
}  // namespace flowd
