#include "flowd/http/responses.hpp"

namespace flowd {

namespace http = boost::beast::http;

string_response json_response(unsigned status, std::string body) {
    return text_response(status, "application/json", std::move(body));
}

string_response text_response(unsigned status, std::string_view content_type, std::string body) {
    string_response r{static_cast<http::status>(status), 11};
    r.set(http::field::content_type, content_type);
    r.body() = std::move(body);
    return r;
}

string_response problem_response(problem const& p, std::string_view request_id) {
    return text_response(status_of(p.type), "application/problem+json", to_json(p, request_id));
}

string_response internal_error_response(std::string_view request_id) {
    return problem_response(problem{problem_type::internal_error,
                                    "an unexpected error occurred; see the server log",
                                    {},
                                    {}},
                            request_id);
}

unsigned status_of(response const& r) noexcept {
    return std::visit([](auto const& m) { return m.result_int(); }, r);
}

http::response_header<>& header_of(response& r) noexcept {
    return std::visit([](auto& m) -> http::response_header<>& { return m.base(); }, r);
}

}  // namespace flowd
