#include "flowd/auth/tokens.hpp"

#include <fstream>
#include <sstream>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include "flowd/domain/text.hpp"

namespace flowd {
namespace {

constexpr std::string_view hash_prefix = "sha256:";
constexpr std::size_t max_name_length = 64;

bool parse_hex_digest(std::string_view hex, sha256_digest& out) noexcept {
    if (hex.size() != out.size() * 2) {
        return false;
    }
    for (std::size_t i = 0; i < out.size(); ++i) {
        int const hi = hex_value(hex[2 * i]);
        int const lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = static_cast<unsigned char>(hi * 16 + lo);
    }
    return true;
}

bool blank(char c) noexcept {
    return c == ' ' || c == '\t';
}

// Splits a line on runs of blanks.
std::vector<std::string_view> fields_of(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && blank(line[i])) {
            ++i;
        }
        std::size_t const start = i;
        while (i < line.size() && !blank(line[i])) {
            ++i;
        }
        if (i > start) {
            out.push_back(line.substr(start, i - start));
        }
    }
    return out;
}

// RFC 6750 token68: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", then "=" padding.
bool valid_token68(std::string_view t) noexcept {
    std::size_t end = t.size();
    while (end > 0 && t[end - 1] == '=') {
        --end;
    }
    if (end == 0) {
        return false;
    }
    for (std::size_t i = 0; i < end; ++i) {
        char const c = t[i];
        bool const ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~' ||
                        c == '+' || c == '/';
        if (!ok) {
            return false;
        }
    }
    return true;
}

std::string base64url(unsigned char const* data, std::size_t n) {
    static constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((n * 4 + 2) / 3);
    std::size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        std::uint32_t const v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) |
                                std::uint32_t{data[i + 2]};
        out.push_back(alphabet[(v >> 18) & 63]);
        out.push_back(alphabet[(v >> 12) & 63]);
        out.push_back(alphabet[(v >> 6) & 63]);
        out.push_back(alphabet[v & 63]);
    }
    if (n - i == 1) {
        std::uint32_t const v = std::uint32_t{data[i]} << 16;
        out.push_back(alphabet[(v >> 18) & 63]);
        out.push_back(alphabet[(v >> 12) & 63]);
    } else if (n - i == 2) {
        std::uint32_t const v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8);
        out.push_back(alphabet[(v >> 18) & 63]);
        out.push_back(alphabet[(v >> 12) & 63]);
        out.push_back(alphabet[(v >> 6) & 63]);
    }
    return out;
}

}  // namespace

sha256_digest sha256(std::string_view data) {
    sha256_digest d{};
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr) != 1 ||
        len != d.size()) {
        throw std::runtime_error("OpenSSL SHA-256 failed");
    }
    return d;
}

std::string to_hex(sha256_digest const& d) {
    static constexpr std::string_view digits = "0123456789abcdef";
    std::string out;
    out.reserve(d.size() * 2);
    for (unsigned char const b : d) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 15]);
    }
    return out;
}

bool valid_token_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > max_name_length) {
        return false;
    }
    for (char const c : name) {
        bool const ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '@' ||
                        c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

unsigned parse_scopes(std::string_view text) noexcept {
    unsigned scopes = 0;
    std::size_t pos = 0;
    while (true) {
        std::size_t const comma = text.find(',', pos);
        std::string_view const item = text.substr(
            pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
        unsigned bit = 0;
        if (item == "read") {
            bit = static_cast<unsigned>(token_scope::read);
        } else if (item == "write") {
            bit = static_cast<unsigned>(token_scope::write);
        }
        if (bit == 0 || (scopes & bit) != 0) {
            return 0;
        }
        scopes |= bit;
        if (comma == std::string_view::npos) {
            return scopes;
        }
        pos = comma + 1;
    }
}

std::string scopes_text(unsigned scopes) {
    std::string out;
    if ((scopes & static_cast<unsigned>(token_scope::read)) != 0) {
        out = "read";
    }
    if ((scopes & static_cast<unsigned>(token_scope::write)) != 0) {
        out += out.empty() ? "write" : ",write";
    }
    return out;
}

token_set token_set::parse(std::string_view text, std::string const& source) {
    std::vector<token_entry> entries;
    std::size_t line_no = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t const nl = text.find('\n', pos);
        std::string_view line =
            text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++line_no;
        // Files written on Windows end their lines with CR LF.
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        std::vector<std::string_view> const f = fields_of(line);
        if (f.empty() || f.front().front() == '#') {
            continue;
        }
        auto fail = [&](std::string const& why) {
            return token_file_error(source + ":" + std::to_string(line_no) + ": " + why);
        };
        if (f.size() != 3) {
            throw fail("expected '<name> <scopes> sha256:<hex>', got " + std::to_string(f.size()) +
                       " field" + (f.size() == 1 ? "" : "s"));
        }
        token_entry e;
        if (!valid_token_name(f[0])) {
            throw fail("name must be 1..64 characters of A-Z a-z 0-9 . _ : @ -");
        }
        e.name = std::string(f[0]);
        e.scopes = parse_scopes(f[1]);
        if (e.scopes == 0) {
            throw fail("scopes must be read, write or read,write");
        }
        std::string_view const hash = f[2];
        if (hash.substr(0, hash_prefix.size()) != hash_prefix ||
            !parse_hex_digest(hash.substr(hash_prefix.size()), e.digest)) {
            throw fail(
                "the third field must be sha256: and 64 hex digits (the file holds hashes, "
                "never tokens; see flowd token create)");
        }
        for (token_entry const& other : entries) {
            if (other.digest == e.digest) {
                throw fail("the same token hash as '" + other.name + "'");
            }
        }
        entries.push_back(std::move(e));
    }
    return token_set{std::move(entries)};
}

token_set token_set::load(std::string const& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw token_file_error("tokens file " + path + ": cannot be read");
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        throw token_file_error("tokens file " + path + ": read error");
    }
    return parse(text.str(), path);
}

std::vector<std::string> token_file_warnings(std::string const& path, token_set const& set) {
    std::vector<std::string> out;
    if (set.size() == 0) {
        out.push_back("tokens file " + path +
                      " holds no tokens: authentication is on, so every request to /flows gets "
                      "401; add a line from 'flowd token create' and send SIGHUP");
    }
    // The file holds hashes, not tokens; still, others who can read it learn every client
    // name and scope, and others who can write it can grant themselves a token.
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 &&
        (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) != 0) {
        unsigned const m = st.st_mode & 0777U;
        std::string const mode{'0', static_cast<char>('0' + ((m >> 6U) & 7U)),
                               static_cast<char>('0' + ((m >> 3U) & 7U)),
                               static_cast<char>('0' + (m & 7U))};
        out.push_back("tokens file " + path + " has mode " + mode +
                      ": its group or other users can read or change it; chmod 600 it");
    }
    return out;
}

token_entry const* token_set::find(std::string_view token) const {
    sha256_digest const d = sha256(token);
    token_entry const* found = nullptr;
    for (token_entry const& e : entries_) {
        // Compare every entry, even after a match: the time must not depend on the position.
        if (CRYPTO_memcmp(e.digest.data(), d.data(), d.size()) == 0) {
            found = &e;
        }
    }
    return found;
}

bearer_credentials parse_bearer(std::string_view v) noexcept {
    constexpr std::string_view scheme = "bearer";
    while (!v.empty() && blank(v.front())) {
        v.remove_prefix(1);
    }
    while (!v.empty() && blank(v.back())) {
        v.remove_suffix(1);
    }
    if (v.size() <= scheme.size() || !blank(v[scheme.size()])) {
        return {bearer_credentials::kind::malformed, {}};
    }
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        char const c = v[i];
        char const lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        if (lower != scheme[i]) {
            return {bearer_credentials::kind::malformed, {}};
        }
    }
    std::string_view token = v.substr(scheme.size());
    while (!token.empty() && token.front() == ' ') {
        token.remove_prefix(1);
    }
    if (!valid_token68(token)) {
        return {bearer_credentials::kind::malformed, {}};
    }
    return {bearer_credentials::kind::token, token};
}

std::string generate_token() {
    std::array<unsigned char, 32> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
        throw std::runtime_error("OpenSSL could not produce random bytes (RAND_bytes)");
    }
    std::string token = "flowd_" + base64url(bytes.data(), bytes.size());
    OPENSSL_cleanse(bytes.data(), bytes.size());
    return token;
}

std::string token_file_line(std::string_view name, unsigned scopes, std::string_view token) {
    return std::string(name) + " " + scopes_text(scopes) + " " + std::string(hash_prefix) +
           to_hex(sha256(token));
}

}  // namespace flowd
