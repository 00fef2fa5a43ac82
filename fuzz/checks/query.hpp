#pragma once

// Query strings against a reference written from SPEC (see fuzz/checks/common.hpp for what a check
// returns).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "flowd/codec/common_shape.hpp"
#include "flowd/codec/flow_json.hpp"
#include "flowd/codec/gzip.hpp"
#include "flowd/codec/problem.hpp"
#include "flowd/codec/query.hpp"
#include "flowd/domain/flow_record.hpp"
#include "flowd/query/plan.hpp"

namespace flowd::fuzz {

namespace detail {

inline std::optional<std::string> reference_percent_decode(std::string_view s) {
    std::string out;
    auto hex = [](char c) -> int {
        std::string_view const digits = "0123456789abcdef";
        char const lower = (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c;
        std::size_t const i = digits.find(lower);
        return i == std::string_view::npos ? -1 : static_cast<int>(i);
    };
    for (std::size_t i = 0; i < s.size();) {
        if (s[i] != '%') {
            out += s[i++];
            continue;
        }
        if (s.size() - i < 3 || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0) {
            return std::nullopt;
        }
        out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
        i += 3;
    }
    return out;
}

// SPEC's GET /flows query rules, written independently of src/query/plan.cpp. What the
// reference reads of a query it accepts.
struct reference_plan {
    std::uint64_t from = 0;
    std::uint64_t to = 0;
    std::array<std::array<std::vector<std::string>, 3>, 3> filters;  // [dim][equals/prefix/exclude]
    std::vector<std::string> group_by;
    std::string order_by;
    std::uint64_t limit = 0;  // 0: none
    std::string format;
};

// nullopt: 400; a plan with to - from > 744: the parser must answer 422.
inline std::optional<reference_plan> reference_query(std::string_view q) {
    auto decode = [](std::string_view s) -> std::optional<std::string> {
        std::string plus(s);
        std::replace(plus.begin(), plus.end(), '+', ' ');
        return reference_percent_decode(plus);
    };
    auto number = [](std::string const& v, std::uint64_t max) -> std::optional<std::uint64_t> {
        if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos) {
            return std::nullopt;
        }
        std::uint64_t n = 0;
        for (char c : v) {
            auto const d = static_cast<std::uint64_t>(c - '0');
            if (n > (max - d) / 10) {
                return std::nullopt;
            }
            n = n * 10 + d;
        }
        return n;
    };
    std::vector<std::pair<std::string, std::string>> params;
    for (std::size_t start = 0; start <= q.size();) {
        std::size_t amp = q.find('&', start);
        if (amp == std::string_view::npos) {
            amp = q.size();
        }
        std::string_view const part = q.substr(start, amp - start);
        start = amp + 1;
        if (part.empty()) {
            continue;
        }
        std::size_t const eq = part.find('=');
        if (eq == std::string_view::npos) {
            return std::nullopt;  // no value: empty
        }
        auto const name = decode(part.substr(0, eq));
        auto const value = decode(part.substr(eq + 1));
        if (!name || !value || name->empty() || value->empty()) {
            return std::nullopt;
        }
        params.emplace_back(*name, *value);
    }
    std::array<std::string, 3> const dims{"src_app", "dest_app", "vpc_id"};
    std::array<std::string, 3> const kinds{"", "_prefix", "_exclude"};
    std::map<std::string, std::string> single;
    reference_plan out;
    for (auto const& [name, value] : params) {
        bool filter = false;
        for (std::size_t d = 0; d < 3; ++d) {
            for (std::size_t k = 0; k < 3; ++k) {
                if (name == dims[d] + kinds[k]) {
                    out.filters[d][k].push_back(value);
                    filter = true;
                }
            }
        }
        if (filter) {
            continue;
        }
        static std::set<std::string> const known{"hour",     "from",  "to",    "group_by",
                                                 "order_by", "limit", "format"};
        if (known.count(name) == 0 || single.count(name) != 0) {
            return std::nullopt;
        }
        single[name] = value;
    }
    auto has = [&single](char const* n) { return single.count(n) != 0; };
    if (has("hour")) {
        if (has("from") || has("to")) {
            return std::nullopt;
        }
        auto const h = number(single["hour"], 2147483647U);
        if (!h) {
            return std::nullopt;
        }
        out.from = *h;
        out.to = *h + 1;
    } else {
        if (!has("from") || !has("to")) {
            return std::nullopt;
        }
        auto const a = number(single["from"], 2147483647U);
        auto const b = number(single["to"], 2147483648U);
        if (!a || !b || *b <= *a) {
            return std::nullopt;
        }
        out.from = *a;
        out.to = *b;
    }
    out.group_by = {"src_app", "dest_app", "vpc_id", "hour"};
    if (has("group_by")) {
        out.group_by.clear();
        std::string const& g = single["group_by"];
        std::size_t start = 0;
        for (;;) {
            std::size_t const comma = g.find(',', start);
            std::string const item =
                g.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            if ((item != "src_app" && item != "dest_app" && item != "vpc_id" && item != "hour") ||
                std::find(out.group_by.begin(), out.group_by.end(), item) != out.group_by.end()) {
                return std::nullopt;
            }
            out.group_by.push_back(item);
            if (comma == std::string::npos) {
                break;
            }
            start = comma + 1;
        }
    }
    if (has("order_by")) {
        out.order_by = single["order_by"];
        if (out.order_by != "bytes" && out.order_by != "bytes_tx" && out.order_by != "bytes_rx") {
            return std::nullopt;
        }
    }
    if (has("limit")) {
        auto const n = number(single["limit"], ~std::uint64_t{0});
        if (!n || *n == 0) {
            return std::nullopt;
        }
        out.limit = *n;
    }
    if (has("format")) {
        out.format = single["format"];
        if (out.format != "json" && out.format != "ndjson" && out.format != "csv") {
            return std::nullopt;
        }
    }
    return out;
}

inline std::string percent_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (char ch : s) {
        auto const c = static_cast<unsigned char>(ch);
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 0xfU];
    }
    return out;
}

inline bool same_query(reference_plan const& a, query_plan const& b) {
    if (a.from != b.from || a.to != b.to) {
        return false;
    }
    for (std::size_t d = 0; d < 3; ++d) {
        if (a.filters[d][0] != b.filters.at(d).equals ||
            a.filters[d][1] != b.filters.at(d).prefixes ||
            a.filters[d][2] != b.filters.at(d).excludes) {
            return false;
        }
    }
    if (a.group_by.size() != b.group_by.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.group_by.size(); ++i) {
        if (a.group_by[i] != field_name(b.group_by[i])) {
            return false;
        }
    }
    std::string const format = !b.format                            ? ""
                               : *b.format == answer_format::json   ? "json"
                               : *b.format == answer_format::ndjson ? "ndjson"
                                                                    : "csv";
    return a.order_by == order_name(b.order) && a.limit == b.limit.value_or(0) &&
           a.format == format;
}

}  // namespace detail

// Parses `input` as a GET /flows query string and checks the answer.
inline std::string check_query(std::string_view input) {
    auto const decoded = percent_decode(input);
    std::string plus(input);
    std::replace(plus.begin(), plus.end(), '+', ' ');
    if (decoded != detail::reference_percent_decode(plus)) {
        return "percent_decode disagrees with the reference on " + detail::escaped(input);
    }
    auto const got = parse_query_plan(query_route::flows, input);
    auto const want = detail::reference_query(input);
    bool const too_large = want && want->to - want->from > 744;
    if (!got) {
        if (std::string e = detail::check_problem(got.error(), "query"); !e.empty()) {
            return e;
        }
        problem_type const expected =
            too_large ? problem_type::query_too_large : problem_type::invalid_query;
        if (got.error().type != expected) {
            return "query: answered " + std::string(slug_of(got.error().type)) + " to " +
                   detail::escaped(input);
        }
        if (want && !too_large) {
            return "query: the reference accepts " + detail::escaped(input) +
                   " but flowd answers " + got.error().detail;
        }
        return {};
    }
    query_plan const& q = *got;
    if (q.from > max_hour || q.to <= q.from || q.to - q.from > 744) {
        return "query: accepted the range " + std::to_string(q.from) + ".." + std::to_string(q.to);
    }
    if (!want || too_large || !detail::same_query(*want, q)) {
        return "query: flowd accepts " + detail::escaped(input) +
               (want ? ", the reference reads other values" : ", the reference rejects it");
    }
    // Written back out with every byte percent-encoded, the same query parses the same.
    std::string round = "from=" + std::to_string(q.from) + "&to=" + std::to_string(q.to);
    std::array<std::string, 3> const dims{"src_app", "dest_app", "vpc_id"};
    for (std::size_t d = 0; d < 3; ++d) {
        for (auto const& [kind, values] : {std::pair{"", &q.filters.at(d).equals},
                                           std::pair{"_prefix", &q.filters.at(d).prefixes},
                                           std::pair{"_exclude", &q.filters.at(d).excludes}}) {
            for (std::string const& v : *values) {
                round += "&" + detail::percent_encode(dims.at(d) + kind) + "=" +
                         detail::percent_encode(v);
            }
        }
    }
    if (q.group_by_given) {
        std::string g;
        for (group_field const f : q.group_by) {
            g += (g.empty() ? "" : ",") + std::string(field_name(f));
        }
        round += "&group_by=" + detail::percent_encode(g);
    }
    if (q.order != order_key::none) {
        round += "&order_by=" + std::string(order_name(q.order));
    }
    if (q.limit) {
        round += "&limit=" + std::to_string(*q.limit);
    }
    if (q.format) {
        round += std::string("&format=") + (*q.format == answer_format::json     ? "json"
                                            : *q.format == answer_format::ndjson ? "ndjson"
                                                                                 : "csv");
    }
    auto const again = parse_query_plan(query_route::flows, round);
    if (!again || !detail::same_query(*want, *again) || again->normalised != q.normalised) {
        return "query: the re-encoded query " + detail::escaped(round) + " parses differently";
    }
    return {};
}

}  // namespace flowd::fuzz
