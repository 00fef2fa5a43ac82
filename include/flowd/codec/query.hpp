#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

#include "flowd/codec/problem.hpp"

namespace flowd {

// GET /flows parameters after validation.
struct flows_query {
    std::uint32_t hour = 0;
    std::optional<std::string> src_app;
    std::optional<std::string> dest_app;
    std::optional<std::string> vpc_id;
    // Cluster mode only: answer once this node applied this stream sequence.
    std::optional<std::uint64_t> min_seq;
};

// Percent-decodes one query component per RFC 3986 ('+' stays a plus); nullopt when a
// '%' is not followed by two hex digits.
[[nodiscard]] std::optional<std::string> percent_decode(std::string_view s);

// Parses the query string of GET /flows (the part after '?', possibly empty): `hour`
// required, a base-10 integer 0..2^31-1; `src_app`, `dest_app`, `vpc_id` optional; any
// other, repeated or empty parameter is invalid-query. `min_seq` (a base-10 integer) is
// known only when allow_min_seq (cluster mode).
[[nodiscard]] boost::system::result<flows_query, problem> parse_flows_query(
    std::string_view query, bool allow_min_seq = false);

}  // namespace flowd
