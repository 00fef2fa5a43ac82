#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include <boost/asio/ssl/context.hpp>

namespace flowd {

// The files of the main listener's optional TLS (config keys tls_cert_file, tls_key_file,
// tls_client_ca_file). All empty: plain HTTP.
struct tls_files {
    std::string cert_file;       // PEM certificate chain, the server's first
    std::string key_file;        // PEM private key of that certificate
    std::string client_ca_file;  // PEM CA(s): mutual TLS, a verified client certificate required
};

// A missing or unreadable file, a bad certificate or key, or a key that does not match.
// what() is one line naming the key and the file.
class tls_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A server context: TLS 1.2 and 1.3 only, the certificate chain and key loaded and checked
// against each other; with a client CA, peers must present a certificate it signed.
// Throws tls_error.
[[nodiscard]] std::shared_ptr<boost::asio::ssl::context> make_tls_context(tls_files const& files);

}  // namespace flowd
