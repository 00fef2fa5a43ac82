#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "flowd/codec/problem.hpp"

namespace flowd {

// The three GET routes that read the store through a plan.
enum class query_route { flows, summary, hours };

// A field a query may group by, in the record's field order (SPEC: a row holds its grouped
// fields in this order, so `hour`, when grouped, comes last).
enum class group_field : std::uint8_t { src_app = 0, dest_app = 1, vpc_id = 2, hour = 3 };
[[nodiscard]] std::string_view field_name(group_field f) noexcept;

enum class order_key : std::uint8_t { none, bytes, bytes_tx, bytes_rx };
[[nodiscard]] std::string_view order_name(order_key k) noexcept;

enum class answer_format : std::uint8_t { json, ndjson, csv };

// The filters of one dimension (src_app, dest_app or vpc_id). A row passes when (no
// equals/prefix is given, or it equals one of `equals`, or starts with one of `prefixes`)
// and it equals none of `excludes`.
struct dimension_filter {
    std::vector<std::string> equals;
    std::vector<std::string> prefixes;
    std::vector<std::string> excludes;

    [[nodiscard]] bool active() const noexcept {
        return !equals.empty() || !prefixes.empty() || !excludes.empty();
    }
    [[nodiscard]] bool passes(std::string_view name) const noexcept;
};

// Limits the parser enforces (the range) and the executor enforces (rows, groups).
struct query_limits {
    std::uint32_t max_query_hours = 744;
    std::uint64_t max_query_scan_rows = 50'000'000;
    std::uint64_t max_query_groups = 5'000'000;
};

// A validated query: what to read, how to cut and group it, how to write it. Plain value.
struct query_plan {
    query_route route = query_route::flows;
    // The hours from <= h < to. For /hours without a range: 0 .. 2^31 (every hour).
    std::uint32_t from = 0;
    std::uint32_t to = 0;
    // Indexed by group_field src_app, dest_app, vpc_id.
    std::array<dimension_filter, 3> filters;
    // Distinct fields, in the order given (the order of the answer's sort).
    std::vector<group_field> group_by;
    bool group_by_given = false;
    order_key order = order_key::none;
    std::optional<std::uint64_t> limit;   // /flows
    std::uint32_t top = 10;               // /flows/summary
    bool series_hour = false;             // /flows/summary
    std::optional<answer_format> format;  // nullopt: negotiate with Accept
    // Cluster mode only: answer once this node applied this stream sequence.
    std::optional<std::uint64_t> min_seq;
    // The query in one canonical spelling (parameters sorted, values percent-encoded), so
    // that equal queries written differently share an ETag.
    std::string normalised;

    [[nodiscard]] bool has_filters() const noexcept {
        return filters[0].active() || filters[1].active() || filters[2].active();
    }
    // GET /flows?hour=N with no other parameter (but maybe format or min_seq): the stored
    // rows of one hour, the answer SPEC's seed example pins byte for byte.
    [[nodiscard]] bool plain_hour() const noexcept;
    // Whether group_by is the route's default (every stored row its own group on /flows).
    [[nodiscard]] bool default_grouping() const noexcept { return !group_by_given; }
    // SPEC: the queries counted against max_concurrent_queries.
    [[nodiscard]] bool heavy() const noexcept {
        return to - from > 1 || group_by_given || order != order_key::none ||
               route == query_route::summary;
    }
};

// Parses the query string of one of the query routes (the part after '?', possibly empty)
// into a plan. 400 invalid-query for any rule of SPEC's GET /flows section (an unknown,
// empty or repeated non-filter parameter, a bad bound, hour with from/to, ...); 422
// query-too-large for a range over max_query_hours. `+` decodes to a space; empty
// segments are skipped. `min_seq` is known only when allow_min_seq (cluster mode).
[[nodiscard]] boost::system::result<query_plan, problem> parse_query_plan(
    query_route route, std::string_view query, query_limits const& limits = {},
    bool allow_min_seq = false);

// The format Accept asks for (SPEC: the supported type with the highest q wins, ties
// JSON, NDJSON, CSV; anything else JSON). `ndjson_ok` is false on /flows/summary.
[[nodiscard]] answer_format negotiate_format(std::string_view accept, bool ndjson_ok = true);

}  // namespace flowd
