#pragma once

#include <span>
#include <string_view>

#include "flowd/http/router.hpp"

namespace flowd {

// One file of the web console, compiled into the binary from ui/ (cmake/embed_ui.cmake).
struct console_file {
    std::string_view name;  // relative to /ui/, e.g. "app.js"
    std::string_view content_type;
    std::string_view etag;  // strong, quoted
    std::string_view body;
};

// Every console file; static storage, generated at build time.
[[nodiscard]] std::span<console_file const> console_files() noexcept;

// GET / (302 to /ui/), GET /ui/ (index.html) and GET /ui/<file>: the console's files with
// their ETag (304 on a matching If-None-Match) and Content-Security-Policy: default-src
// 'self', so the page can load nothing from elsewhere and runs no inline script. Needs no
// token (SPEC Console). Stateless; thread-safe.
[[nodiscard]] handler_result console_redirect(request_context& ctx);
[[nodiscard]] handler_result console_file_response(request_context& ctx);

}  // namespace flowd
