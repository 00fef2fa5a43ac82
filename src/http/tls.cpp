#include "flowd/http/tls.hpp"

#include <fstream>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace flowd {

namespace ssl = boost::asio::ssl;

namespace {

// OpenSSL's reason for the last failure, without its queue-position prefix.
std::string openssl_reason(boost::system::error_code const& ec) {
    std::string out = ec.message();
    ERR_clear_error();
    return out;
}

void require_readable(std::string const& key, std::string const& path) {
    std::ifstream in(path);
    if (!in) {
        throw tls_error(key + ": cannot read '" + path + "'");
    }
}

}  // namespace

std::shared_ptr<ssl::context> make_tls_context(tls_files const& files) {
    if (files.cert_file.empty() != files.key_file.empty()) {
        throw tls_error(files.cert_file.empty()
                            ? "tls_key_file is set without tls_cert_file: set both for TLS"
                            : "tls_cert_file is set without tls_key_file: set both for TLS");
    }
    if (files.cert_file.empty()) {
        throw tls_error("tls_client_ca_file is set without tls_cert_file and tls_key_file");
    }
    require_readable("tls_cert_file", files.cert_file);
    require_readable("tls_key_file", files.key_file);
    if (!files.client_ca_file.empty()) {
        require_readable("tls_client_ca_file", files.client_ca_file);
    }
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                     ssl::context::single_dh_use);
    boost::system::error_code ec;
    ctx->use_certificate_chain_file(files.cert_file, ec);
    if (ec) {
        throw tls_error("tls_cert_file: '" + files.cert_file +
                        "' is not a PEM certificate: " + openssl_reason(ec));
    }
    ctx->use_private_key_file(files.key_file, ssl::context::pem, ec);
    if (ec) {
        throw tls_error("tls_key_file: '" + files.key_file +
                        "' is not a PEM private key: " + openssl_reason(ec));
    }
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
        ERR_clear_error();
        throw tls_error("tls_key_file: '" + files.key_file +
                        "' does not match the certificate in '" + files.cert_file + "'");
    }
    if (!files.client_ca_file.empty()) {
        ctx->load_verify_file(files.client_ca_file, ec);
        if (ec) {
            throw tls_error("tls_client_ca_file: '" + files.client_ca_file +
                            "' is not a PEM CA certificate: " + openssl_reason(ec));
        }
        ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
        // The CAs' names go into the CertificateRequest, so clients pick the right certificate.
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.client_ca_file.c_str());
        if (names != nullptr) {
            SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
        }
        ERR_clear_error();
    }
    return ctx;
}

}  // namespace flowd
