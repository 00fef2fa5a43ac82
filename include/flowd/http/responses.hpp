#pragma once

#include <string>
#include <string_view>
#include <variant>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "flowd/codec/problem.hpp"
#include "flowd/http/event_stream.hpp"
#include "flowd/http/flows_body.hpp"

namespace flowd {

using string_response = boost::beast::http::response<boost::beast::http::string_body>;
using stream_response = boost::beast::http::response<flows_body>;
// GET /flows/stream: a head, then pieces pulled from its event_source as the socket drains.
using event_stream_response = boost::beast::http::response<event_stream_body>;

// Every answer is one of these: a whole body, a GET /flows body streamed in chunks, or a
// live stream.
using response = std::variant<string_response, stream_response, event_stream_response>;

[[nodiscard]] string_response json_response(unsigned status, std::string body);
[[nodiscard]] string_response text_response(unsigned status, std::string_view content_type,
                                            std::string body);

// application/problem+json; `request_id` becomes `instance`.
[[nodiscard]] string_response problem_response(problem const& p, std::string_view request_id);
// 500 internal-error, naming nothing of the failure (the server log has it).
[[nodiscard]] string_response internal_error_response(std::string_view request_id);

[[nodiscard]] unsigned status_of(response const& r) noexcept;
[[nodiscard]] boost::beast::http::response_header<>& header_of(response& r) noexcept;

}  // namespace flowd
