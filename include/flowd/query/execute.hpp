#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "flowd/codec/problem.hpp"
#include "flowd/domain/uint128.hpp"
#include "flowd/query/plan.hpp"
#include "flowd/store/flow_store.hpp"

namespace flowd {

// One row of an answer: the grouped fields (interned name ids, or the hour; indexed by
// group_field, the others zero) and exact sums.
struct answer_row {
    std::array<std::uint32_t, 4> field{};
    uint128 bytes_tx = 0;
    uint128 bytes_rx = 0;
};

// A computed answer, ready to write: owns everything it needs except the names, which the
// store's interner keeps for the life of the process. Immutable once built.
struct query_answer {
    query_plan plan;
    answer_format format = answer_format::json;
    string_interner const* names = nullptr;
    // The hours of the range that hold data, with their totals (also the ETag's input).
    std::vector<hour_stat> stats;
    std::uint64_t rows_scanned = 0;
    // Hours before this one are sealed (seal_after); 0: none. Set by the caller.
    std::uint32_t sealed_before = 0;
    // /flows: the answer's rows, ordered and cut. /flows/summary: the top rows.
    std::vector<answer_row> rows;
    // /flows/summary only.
    answer_row other;
    answer_row total;
    std::uint64_t other_groups = 0;
    std::uint64_t total_groups = 0;
    // series=hour: per line (each top row, then other, then total) the sums of each hour
    // of the range, `to - from` entries a line.
    std::vector<uint128> series_tx;
    std::vector<uint128> series_rx;
};

// Runs a plan against the store: copies the range's matching rows out (atomically with
// respect to batches; the gate is not held while grouping or ordering), groups by name ids,
// orders, cuts. 422 query-too-large over max_query_scan_rows or max_query_groups; the
// problem's detail names the limit (its `field` carries the limit's config key, for the
// rejections counter).
[[nodiscard]] boost::system::result<query_answer, problem> execute_query(
    flow_store const& store, query_plan plan, answer_format format, query_limits const& limits);

// Writes an answer in pieces: each call appends to `out` until it holds at least `bytes`
// bytes or the answer ends (the last piece may pass the mark by a row); true once the whole
// answer is written. Lets a large answer be streamed without being held whole.
class answer_writer {
public:
    explicit answer_writer(query_answer answer) : answer_(std::move(answer)) {}
    bool write(std::string& out, std::size_t bytes);

private:
    void write_row(std::string& out, answer_row const& r) const;
    void write_summary(std::string& out) const;
    void write_hours(std::string& out) const;

    query_answer answer_;
    std::size_t next_ = 0;
    bool started_ = false;
};

[[nodiscard]] std::string_view content_type_of(answer_format f) noexcept;

// Appends a CSV cell per RFC 4180, with SPEC's guard against spreadsheet formulas: a cell
// starting with = + - @ tab or CR gets a leading '; a cell holding , " CR or LF is quoted.
void append_csv_cell(std::string& out, std::string_view cell);

// The strong ETag (quoted) of an answer: the route, the canonical query, the format, the
// content coding, the totals of the hours in range (they move with every batch that
// changes an hour and vanish with retention), which of them are sealed (hours before
// `sealed_before`) and `seed` (0 with a data directory or a cluster; random per process in
// memory-only mode, where history does not survive).
[[nodiscard]] std::string answer_etag(query_plan const& plan, answer_format format, bool gzip,
                                      std::vector<hour_stat> const& stats,
                                      std::uint32_t sealed_before, std::uint64_t seed);

// True when an If-None-Match value names `etag` (or is "*").
[[nodiscard]] bool etag_matches(std::string_view if_none_match, std::string_view etag) noexcept;

}  // namespace flowd
