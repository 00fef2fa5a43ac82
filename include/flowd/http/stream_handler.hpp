#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>

#include "flowd/http/event_stream.hpp"
#include "flowd/http/router.hpp"

namespace flowd {

// The `interval` parameter of GET /flows/stream: <int>ms|s|m within 100ms .. 60s.
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_stream_interval(
    std::string_view value);

// GET /flows/stream (SPEC "live updates"): the range and filters of /flows plus `interval`;
// any other /flows parameter is 400. 200 text/event-stream whose body the hub's stream
// writes as the socket drains; 503 overloaded past max_streams; HEAD answers the head
// only. Stateless itself; thread-safe.
[[nodiscard]] handler_result stream_flows(request_context& ctx, stream_hub& hub,
                                          boost::asio::any_io_executor const& executor);

}  // namespace flowd
