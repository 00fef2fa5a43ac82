#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "flowd/codec/problem.hpp"

namespace flowd {

// Where the head of a request ends in the bytes read so far.
struct head_end {
    enum class state {
        complete,   // `size` bytes, request line through the blank line's CRLF
        need_more,  // no blank line yet, and within the limit
        too_large,  // the head cannot end within max_header_bytes
        malformed,  // a bare LF: not HTTP/1.1 framing; let the parser say why
    };
    state what = state::need_more;
    std::size_t size = 0;
};

// SPEC Others: max_header_bytes counts every byte from the request line through the blank
// line that ends the head, however they are split into lines. Exactly the limit passes.
[[nodiscard]] head_end find_head_end(std::string_view bytes, std::size_t max_header_bytes) noexcept;

// Every framing decision flowd makes on a request head, in one place (SPEC Others, RFC 9112
// §3.2, §5.2, §6.1, §6.3). `head` is the request line through the blank line. Returns the
// problem to answer (then close the connection) or nothing when the framing is
// unambiguous. Rules, in the order checked:
//   - obs-fold (a field line starting with SP or HTAB): 400;
//   - HTTP/1.1 without exactly one Host field: 400 (HTTP/1.0 may omit it);
//   - Transfer-Encoding in an HTTP/1.0 request, or beside Content-Length: 400;
//   - Transfer-Encoding whose fields, joined as one list, are not a single `chunked` token
//     (any case): an empty list or element or a non-token element 400, an unknown coding
//     501 not-implemented, `chunked` twice 400;
//   - Content-Length that is not 1*DIGIT (a sign, inner spaces): 400. Leading zeros are
//     valid; duplicates and lists are left to the parser, which allows only equal values.
// Anything else that is not valid HTTP (bad request line, field names) is the parser's.
[[nodiscard]] std::optional<problem> audit_framing(std::string_view head);

}  // namespace flowd
