#include "flowd/http/console_handler.hpp"

#include <algorithm>

#include "flowd/query/execute.hpp"

namespace flowd {

namespace http = boost::beast::http;

namespace {

constexpr std::string_view console_path = "/ui/";
constexpr std::string_view csp = "default-src 'self'";

// Headers of every console answer, 200 and 304 alike (RFC 9110: a 304 repeats ETag and
// Cache-Control).
void set_console_headers(string_response& r, console_file const& f) {
    r.set(http::field::etag, f.etag);
    // Revalidated on every load: a new flowd binary brings new files under the same names.
    r.set(http::field::cache_control, "no-cache");
    r.set("Content-Security-Policy", csp);
    r.set("X-Content-Type-Options", "nosniff");
    r.set("Referrer-Policy", "no-referrer");
}

}  // namespace

handler_result console_redirect(request_context&) {
    string_response r{http::status::found, 11};
    r.set(http::field::location, console_path);
    r.set(http::field::content_type, "text/plain; charset=utf-8");
    r.body() = "the console is at /ui/\n";
    return response{std::move(r)};
}

handler_result console_file_response(request_context& ctx) {
    std::string_view name = ctx.path.substr(std::min(ctx.path.size(), console_path.size()));
    if (name.empty()) {
        name = "index.html";
    }
    auto const files = console_files();
    auto const it = std::find_if(files.begin(), files.end(),
                                 [name](console_file const& f) { return f.name == name; });
    if (it == files.end()) {
        return response{problem_response(
            problem{problem_type::not_found,
                    "the console has no file " + quote_value(ctx.path) + "; it starts at /ui/",
                    {},
                    {}},
            ctx.request_id)};
    }
    if (auto const inm = ctx.req.find(http::field::if_none_match);
        inm != ctx.req.end() && etag_matches(inm->value(), it->etag)) {
        string_response r{http::status::not_modified, 11};
        set_console_headers(r, *it);
        return response{std::move(r)};
    }
    string_response r = text_response(200, it->content_type, std::string(it->body));
    set_console_headers(r, *it);
    return response{std::move(r)};
}

}  // namespace flowd
