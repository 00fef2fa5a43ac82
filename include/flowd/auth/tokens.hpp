#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace flowd {

// The scopes a bearer token may carry (SPEC: a comma-separated subset of read,write).
enum class token_scope : unsigned { read = 1U, write = 2U };

using sha256_digest = std::array<unsigned char, 32>;

// SHA-256 of `data` (OpenSSL).
[[nodiscard]] sha256_digest sha256(std::string_view data);

// Lower-case hex of a digest, 64 characters.
[[nodiscard]] std::string to_hex(sha256_digest const& d);

// One line of a tokens file: a name, its scopes and the SHA-256 of the token itself.
struct token_entry {
    std::string name;
    unsigned scopes = 0;  // token_scope bits
    sha256_digest digest{};

    [[nodiscard]] bool allows(token_scope s) const noexcept {
        return (scopes & static_cast<unsigned>(s)) != 0;
    }
};

// A tokens file that cannot be used; what() names the file and line and says why.
class token_file_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// True for a usable token name: 1..64 characters of [A-Za-z0-9._:@-].
[[nodiscard]] bool valid_token_name(std::string_view name) noexcept;

// Parses "read", "write", "read,write" (any order, no blanks) into token_scope bits;
// 0 when the text is not such a list.
[[nodiscard]] unsigned parse_scopes(std::string_view text) noexcept;

// "read", "write" or "read,write".
[[nodiscard]] std::string scopes_text(unsigned scopes);

// The tokens of one file, immutable once built. Thread-safe (read-only).
class token_set {
public:
    token_set() = default;
    explicit token_set(std::vector<token_entry> entries) : entries_(std::move(entries)) {}

    // Parses a tokens file's text: lines `<name> <scopes> sha256:<64 hex>`, fields split
    // by blanks; blank lines and lines starting with '#' are skipped. Two lines with the
    // same hash are an error; two with the same name are not (rotation: an old and a new
    // token of one client share its rate budget). `source` names the file in errors.
    // Throws token_file_error "SOURCE:LINE: why".
    [[nodiscard]] static token_set parse(std::string_view text, std::string const& source);

    // Reads and parses a file; throws token_file_error when it cannot be read or parsed.
    [[nodiscard]] static token_set load(std::string const& path);

    // The entry whose hash matches the SHA-256 of `token`, or nullptr. Every entry is
    // compared in constant time (CRYPTO_memcmp), and all of them always are, so the
    // time taken says nothing about which digest bytes matched.
    [[nodiscard]] token_entry const* find(std::string_view token) const;

    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

private:
    std::vector<token_entry> entries_;
};

// What an operator should hear about a tokens file just loaded from `path`: that it holds
// no tokens (every /flows request is then 401), or that users other than its owner may
// read or write it. Empty when neither holds.
[[nodiscard]] std::vector<std::string> token_file_warnings(std::string const& path,
                                                           token_set const& set);

// The current token set, swapped whole on reload: readers take a reference-counted
// snapshot that stays valid while they hold it, however many reloads happen meanwhile.
// The class is thread-safe. No concurrent call to any API of this type causes a data race.
class token_store {
public:
    token_store() = default;
    explicit token_store(token_set initial)
        : current_(std::make_shared<token_set const>(std::move(initial))) {}

    // Null when authentication is off (no tokens file).
    [[nodiscard]] std::shared_ptr<token_set const> snapshot() const noexcept {
        return current_.load(std::memory_order_acquire);
    }

    void replace(token_set next) {
        current_.store(std::make_shared<token_set const>(std::move(next)),
                       std::memory_order_release);
    }

private:
    std::atomic<std::shared_ptr<token_set const>> current_;
};

// What an Authorization header says, before any token is looked up.
struct bearer_credentials {
    enum class kind { missing, malformed, token };
    kind what = kind::missing;
    std::string_view token;  // when what == token
};

// Parses an Authorization header value: `Bearer <token68>`, the scheme name
// case-insensitive, one or more spaces between. Anything else is malformed.
[[nodiscard]] bearer_credentials parse_bearer(std::string_view header_value) noexcept;

// A fresh token from RAND_bytes: "flowd_" + 43 characters of base64url (32 random bytes).
// The prefix lets secret scanners recognise a leaked token. Throws std::runtime_error
// when OpenSSL cannot produce random bytes.
[[nodiscard]] std::string generate_token();

// The tokens-file line for a token: `<name> <scopes> sha256:<hex>`.
[[nodiscard]] std::string token_file_line(std::string_view name, unsigned scopes,
                                          std::string_view token);

}  // namespace flowd
