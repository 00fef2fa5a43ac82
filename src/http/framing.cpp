#include "flowd/http/framing.hpp"

#include <algorithm>
#include <cctype>

#include <boost/beast/core/string.hpp>

#include "flowd/domain/text.hpp"

namespace flowd {
namespace {

using boost::beast::iequals;

// RFC 9110 §5.6.2 tchar.
bool is_tchar(char c) noexcept {
    if (std::isalnum(static_cast<unsigned char>(c)) != 0) {
        return true;
    }
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

problem bad(std::string detail) {
    return problem{problem_type::bad_request, std::move(detail), {}, {}};
}

// Transfer-Encoding's codings (every field joined as one list): one `chunked` and nothing
// else is accepted.
std::optional<problem> check_codings(std::string_view codings) {
    int chunked = 0;
    std::string_view unknown;
    std::string_view rest = codings;
    while (true) {
        std::size_t const comma = rest.find(',');
        std::string_view const element = trim_ows(rest.substr(0, comma));
        if (!is_token(element)) {
            return bad("Transfer-Encoding " + quote_value(codings) +
                       " is not a list of codings; only a single 'chunked' is accepted");
        }
        if (iequals(element, "chunked")) {
            ++chunked;
        } else if (unknown.empty()) {
            unknown = element;
        }
        if (comma == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(comma + 1);
    }
    if (!unknown.empty()) {
        return problem{problem_type::not_implemented,
                       "transfer coding " + quote_value(unknown) +
                           " is not implemented; only a single 'chunked' is accepted",
                       {},
                       {}};
    }
    if (chunked != 1) {
        return bad("Transfer-Encoding " + quote_value(codings) +
                   " names 'chunked' more than once; only a single 'chunked' is accepted");
    }
    return std::nullopt;
}

}  // namespace

head_end find_head_end(std::string_view bytes, std::size_t max_header_bytes) noexcept {
    std::size_t const window = std::min(bytes.size(), max_header_bytes);
    std::size_t const at = bytes.substr(0, window).find("\r\n\r\n");
    if (at != std::string_view::npos && at + 4 <= max_header_bytes) {
        return {head_end::state::complete, at + 4};
    }
    // Bytes that cannot be part of a valid head (a bare LF, a control character, a method
    // that is not a token) go to the parser now, which says why, rather than wait for a
    // blank line that may never come.
    bool in_method = true;
    for (std::size_t i = 0; i < window; ++i) {
        auto const c = static_cast<unsigned char>(bytes[i]);
        if (in_method) {
            if (c == ' ' && i > 0) {
                in_method = false;
                continue;
            }
            if (!is_tchar(static_cast<char>(c))) {
                return {head_end::state::malformed, 0};
            }
            continue;
        }
        if (c == '\n' && bytes[i - 1] != '\r') {
            return {head_end::state::malformed, 0};
        }
        if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f) {
            return {head_end::state::malformed, 0};
        }
    }
    if (bytes.size() >= max_header_bytes) {
        return {head_end::state::too_large, 0};
    }
    return {head_end::state::need_more, 0};
}

std::optional<problem> audit_framing(std::string_view head) {
    std::size_t const first_eol = head.find("\r\n");
    if (first_eol == std::string_view::npos) {
        return std::nullopt;  // not a head: the parser answers it
    }
    std::string_view const request_line = head.substr(0, first_eol);
    std::size_t const last_space = request_line.rfind(' ');
    std::string_view const version = last_space == std::string_view::npos
                                         ? std::string_view{}
                                         : request_line.substr(last_space + 1);
    bool const http10 = version == "HTTP/1.0";
    bool const http11 = version == "HTTP/1.1";

    int hosts = 0;
    int content_lengths = 0;
    bool transfer_encoding = false;
    std::string codings;  // every Transfer-Encoding field, joined as one list
    std::string_view bad_length;

    std::size_t pos = first_eol + 2;
    while (pos < head.size()) {
        std::size_t const eol = head.find("\r\n", pos);
        if (eol == std::string_view::npos || eol == pos) {
            break;  // the blank line
        }
        std::string_view const line = head.substr(pos, eol - pos);
        pos = eol + 2;
        if (line.front() == ' ' || line.front() == '\t') {
            return bad("a header line starts with whitespace (obs-fold, RFC 9112 §5.2)");
        }
        std::size_t const colon = line.find(':');
        if (colon == std::string_view::npos) {
            continue;  // the parser rejects it
        }
        std::string_view const name = line.substr(0, colon);
        std::string_view const value = trim_ows(line.substr(colon + 1));
        if (iequals(name, "host")) {
            ++hosts;
        } else if (iequals(name, "content-length")) {
            ++content_lengths;
            bool const list = value.find(',') != std::string_view::npos;
            bool const digits =
                !value.empty() && std::all_of(value.begin(), value.end(),
                                              [](char c) { return c >= '0' && c <= '9'; });
            if (!list && !digits && bad_length.empty()) {
                bad_length = value.empty() ? std::string_view{"(empty)"} : value;
            }
        } else if (iequals(name, "transfer-encoding")) {
            if (transfer_encoding) {
                codings += ',';
            }
            transfer_encoding = true;
            codings.append(value);
        }
    }

    if (http11 && hosts != 1) {
        return bad("an HTTP/1.1 request needs exactly one Host header; this one has " +
                   std::to_string(hosts) + " (RFC 9112 §3.2)");
    }
    if (transfer_encoding) {
        if (http10) {
            return bad("Transfer-Encoding is not allowed in an HTTP/1.0 request");
        }
        if (content_lengths != 0) {
            return bad("a request must not carry both Transfer-Encoding and Content-Length");
        }
        if (auto p = check_codings(codings)) {
            return p;
        }
    }
    if (!bad_length.empty()) {
        return bad("Content-Length " + quote_value(bad_length) +
                   " is not a decimal number of bytes");
    }
    return std::nullopt;
}

}  // namespace flowd
