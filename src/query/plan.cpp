#include "flowd/query/plan.hpp"

#include <algorithm>
#include <charconv>
#include <map>

#include "flowd/codec/query.hpp"
#include "flowd/domain/flow_record.hpp"

namespace flowd {
namespace {

constexpr std::uint64_t hour_end = std::uint64_t{max_hour} + 1;  // 2^31: `to` may equal it

problem bad_query(std::string detail) {
    return problem{problem_type::invalid_query, std::move(detail), {}, {}};
}

std::optional<std::uint64_t> parse_uint(std::string_view v) {
    if (v.empty() || v.find_first_not_of("0123456789") != std::string_view::npos) {
        return std::nullopt;
    }
    std::uint64_t n = 0;
    auto const r = std::from_chars(v.data(), v.data() + v.size(), n);
    if (r.ec != std::errc{} || r.ptr != v.data() + v.size()) {
        return std::nullopt;
    }
    return n;
}

std::string_view usage(query_route route) noexcept {
    switch (route) {
        case query_route::flows:
            return "known: hour or from&to, src_app, dest_app, vpc_id (and their _prefix, "
                   "_exclude), group_by, order_by, limit, format";
        case query_route::summary:
            return "known: hour or from&to, src_app, dest_app, vpc_id (and their _prefix, "
                   "_exclude), group_by, order_by, top, series, format";
        case query_route::hours:
            return "known: hour or from&to";
    }
    return {};
}

std::optional<group_field> field_of(std::string_view name) noexcept {
    for (group_field const f :
         {group_field::src_app, group_field::dest_app, group_field::vpc_id, group_field::hour}) {
        if (name == field_name(f)) {
            return f;
        }
    }
    return std::nullopt;
}

// Writes every byte outside [A-Za-z0-9_.-] as %XX, so a value's canonical spelling is one.
void append_encoded(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    for (char const ch : s) {
        auto const c = static_cast<unsigned char>(ch);
        bool const plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        if (plain) {
            out.push_back(ch);
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xfU]);
        }
    }
}

}  // namespace

std::string_view field_name(group_field f) noexcept {
    switch (f) {
        case group_field::src_app:
            return "src_app";
        case group_field::dest_app:
            return "dest_app";
        case group_field::vpc_id:
            return "vpc_id";
        case group_field::hour:
            return "hour";
    }
    return {};
}

std::string_view order_name(order_key k) noexcept {
    switch (k) {
        case order_key::none:
            return "";
        case order_key::bytes:
            return "bytes";
        case order_key::bytes_tx:
            return "bytes_tx";
        case order_key::bytes_rx:
            return "bytes_rx";
    }
    return {};
}

bool dimension_filter::passes(std::string_view name) const noexcept {
    if (std::find(excludes.begin(), excludes.end(), name) != excludes.end()) {
        return false;
    }
    if (equals.empty() && prefixes.empty()) {
        return true;
    }
    if (std::find(equals.begin(), equals.end(), name) != equals.end()) {
        return true;
    }
    return std::any_of(prefixes.begin(), prefixes.end(),
                       [name](std::string const& p) { return name.starts_with(p); });
}

bool query_plan::plain_hour() const noexcept {
    return route == query_route::flows && to - from == 1 && !has_filters() && !group_by_given &&
           order == order_key::none && !limit;
}

namespace {

using param_map = std::map<std::string, std::vector<std::string>>;

bool is_filter(std::string_view n, query_route route) {
    if (route == query_route::hours) {
        return false;
    }
    for (std::string_view const d : {"src_app", "dest_app", "vpc_id"}) {
        if (n == d || (n.starts_with(d) &&
                       (n.substr(d.size()) == "_prefix" || n.substr(d.size()) == "_exclude"))) {
            return true;
        }
    }
    return false;
}

bool is_known(std::string_view n, query_route route, bool allow_min_seq) {
    if (n == "hour" || n == "from" || n == "to" || is_filter(n, route)) {
        return true;
    }
    if (n == "min_seq") {
        return allow_min_seq;
    }
    switch (route) {
        case query_route::flows:
            return n == "group_by" || n == "order_by" || n == "limit" || n == "format";
        case query_route::summary:
            return n == "group_by" || n == "order_by" || n == "top" || n == "series" ||
                   n == "format";
        case query_route::hours:
            return false;
    }
    return false;
}

// The value of a parameter that may be given once, or nullptr.
std::string const* single(param_map const& params, std::string const& n) {
    auto const it = params.find(n);
    return it == params.end() ? nullptr : &it->second.front();
}

// The query string into `params`: name -> decoded values in the order given (the map keeps
// `normalised` sorted). Every name must be known, and only filters repeated.
std::optional<problem> read_params(query_route route, std::string_view query, bool allow_min_seq,
                                   param_map& params) {
    std::size_t pos = 0;
    while (pos < query.size()) {
        std::size_t amp = query.find('&', pos);
        if (amp == std::string_view::npos) {
            amp = query.size();
        }
        std::string_view const part = query.substr(pos, amp - pos);
        pos = amp + 1;
        if (part.empty()) {
            continue;  // SPEC: "&&" and a trailing '&' are ignored
        }
        std::size_t const eq = part.find('=');
        auto name = percent_decode(part.substr(0, eq));
        auto value = eq == std::string_view::npos ? std::optional<std::string>{""}
                                                  : percent_decode(part.substr(eq + 1));
        if (!name || !value) {
            return bad_query("malformed percent-encoding in " + quote_value(part));
        }
        if (name->empty()) {
            return bad_query("empty parameter name in " + quote_value(part) + "; " +
                             std::string(usage(route)));
        }
        if (value->empty()) {
            return bad_query("parameter " + quote_value(*name) + " is empty");
        }
        params[*name].push_back(std::move(*value));
    }
    for (auto const& [name, values] : params) {
        if (!is_known(name, route, allow_min_seq)) {
            return bad_query("unknown parameter " + quote_value(name) + "; " +
                             std::string(usage(route)));
        }
        if (values.size() > 1 && !is_filter(name, route)) {
            return bad_query("parameter " + quote_value(name) +
                             " is repeated (only the filters may be)");
        }
    }
    return std::nullopt;
}

// The range: hour=N, or from=A&to=B.
std::optional<problem> read_range(param_map const& params, query_plan& plan) {
    query_route const route = plan.route;
    std::string const* hour = single(params, "hour");
    std::string const* from = single(params, "from");
    std::string const* to = single(params, "to");
    if (hour != nullptr && (from != nullptr || to != nullptr)) {
        return bad_query("give either 'hour' or 'from' and 'to', not both");
    }
    if (hour != nullptr) {
        auto const h = parse_uint(*hour);
        if (!h || *h > max_hour) {
            return bad_query("'hour' must be a base-10 integer 0..2147483647, got " +
                             quote_value(*hour));
        }
        plan.from = static_cast<std::uint32_t>(*h);
        plan.to = plan.from + 1;
    } else if (from != nullptr || to != nullptr) {
        if (from == nullptr || to == nullptr) {
            return bad_query(std::string("missing '") + (from == nullptr ? "from" : "to") +
                             "': a range is from=A&to=B, the hours A <= h < B");
        }
        auto const a = parse_uint(*from);
        auto const b = parse_uint(*to);
        if (!a || *a > max_hour) {
            return bad_query("'from' must be a base-10 integer 0..2147483647, got " +
                             quote_value(*from));
        }
        if (!b || *b > hour_end) {
            return bad_query("'to' must be a base-10 integer 1..2147483648, got " +
                             quote_value(*to));
        }
        if (*b <= *a) {
            return bad_query("'to' (" + *to + ") must be greater than 'from' (" + *from +
                             "): the range is from <= hour < to");
        }
        plan.from = static_cast<std::uint32_t>(*a);
        plan.to = static_cast<std::uint32_t>(*b);
    } else if (route == query_route::hours) {
        plan.from = 0;
        plan.to = static_cast<std::uint32_t>(hour_end);
    } else {
        return bad_query("missing the range: give hour=N, or from=A&to=B (the hours A <= h < B)");
    }
    return std::nullopt;
}

// Filters: D, D_prefix, D_exclude, each repeatable.
void read_filters(param_map const& params, query_plan& plan) {
    if (plan.route == query_route::hours) {
        return;
    }
    for (std::size_t d = 0; d < 3; ++d) {
        std::string const base(field_name(static_cast<group_field>(d)));
        dimension_filter& f = plan.filters.at(d);
        if (auto it = params.find(base); it != params.end()) {
            f.equals = it->second;
        }
        if (auto it = params.find(base + "_prefix"); it != params.end()) {
            f.prefixes = it->second;
        }
        if (auto it = params.find(base + "_exclude"); it != params.end()) {
            f.excludes = it->second;
        }
    }
}

// group_by, echoed as given (distinct fields).
std::optional<problem> read_group_by(param_map const& params, query_plan& plan) {
    query_route const route = plan.route;
    if (route == query_route::summary) {
        plan.group_by = {group_field::src_app, group_field::dest_app, group_field::vpc_id};
        plan.order = order_key::bytes;
    } else {
        plan.group_by = {group_field::src_app, group_field::dest_app, group_field::vpc_id,
                         group_field::hour};
    }
    if (std::string const* g = single(params, "group_by")) {
        std::vector<group_field> fields;
        std::string_view rest = *g;
        for (;;) {
            std::size_t const comma = rest.find(',');
            std::string_view const item = rest.substr(0, comma);
            auto const f = field_of(item);
            if (!f || (route == query_route::summary && *f == group_field::hour)) {
                return bad_query(
                    "'group_by' is a comma list of distinct fields out of " +
                    std::string(route == query_route::summary ? "src_app, dest_app, vpc_id"
                                                              : "src_app, dest_app, vpc_id, hour") +
                    "; got " + quote_value(*g) +
                    (route == query_route::summary && f ? " (use series=hour for hours)" : ""));
            }
            if (std::find(fields.begin(), fields.end(), *f) != fields.end()) {
                return bad_query("'group_by' names " + quote_value(item) + " twice");
            }
            fields.push_back(*f);
            if (comma == std::string_view::npos) {
                break;
            }
            rest.remove_prefix(comma + 1);
        }
        plan.group_by = std::move(fields);
        plan.group_by_given = true;
    }
    return std::nullopt;
}

// order_by, limit, top, series, format, min_seq.
std::optional<problem> read_options(param_map const& params, query_plan& plan) {
    query_route const route = plan.route;
    if (std::string const* o = single(params, "order_by")) {
        if (*o == "bytes") {
            plan.order = order_key::bytes;
        } else if (*o == "bytes_tx") {
            plan.order = order_key::bytes_tx;
        } else if (*o == "bytes_rx") {
            plan.order = order_key::bytes_rx;
        } else {
            return bad_query("'order_by' must be bytes, bytes_tx or bytes_rx, got " +
                             quote_value(*o));
        }
    }
    if (std::string const* l = single(params, "limit")) {
        auto const n = parse_uint(*l);
        if (!n || *n == 0) {
            return bad_query("'limit' must be a base-10 integer >= 1, got " + quote_value(*l));
        }
        plan.limit = *n;
    }
    if (std::string const* t = single(params, "top")) {
        auto const n = parse_uint(*t);
        if (!n || *n == 0 || *n > 1000) {
            return bad_query("'top' must be a base-10 integer 1..1000, got " + quote_value(*t));
        }
        plan.top = static_cast<std::uint32_t>(*n);
    }
    if (std::string const* s = single(params, "series")) {
        if (*s != "hour") {
            return bad_query("'series' must be hour, got " + quote_value(*s));
        }
        plan.series_hour = true;
    }
    if (std::string const* f = single(params, "format")) {
        if (*f == "json") {
            plan.format = answer_format::json;
        } else if (*f == "csv") {
            plan.format = answer_format::csv;
        } else if (*f == "ndjson" && route == query_route::flows) {
            plan.format = answer_format::ndjson;
        } else {
            return bad_query(std::string("'format' must be ") +
                             (route == query_route::flows ? "json, ndjson or csv" : "json or csv") +
                             ", got " + quote_value(*f));
        }
    }
    if (std::string const* m = single(params, "min_seq")) {
        auto const n = parse_uint(*m);
        if (!n) {
            return bad_query("'min_seq' must be a base-10 stream sequence, got " + quote_value(*m));
        }
        plan.min_seq = *n;
    }
    return std::nullopt;
}

// Canonical spelling: the range as from/to, then the other parameters sorted by name,
// numbers by their value, filter values sorted (an IN-list's order does not change the answer);
// min_seq left out (it says when to answer, not what).
void normalise(param_map const& params, query_plan& plan) {
    plan.normalised = "from=" + std::to_string(plan.from) + "&to=" + std::to_string(plan.to);
    for (auto const& [name, values] : params) {
        if (name == "hour" || name == "from" || name == "to" || name == "min_seq") {
            continue;
        }
        std::vector<std::string> sorted = values;
        if (is_filter(name, plan.route)) {
            std::sort(sorted.begin(), sorted.end());
        }
        for (std::string const& v : sorted) {
            plan.normalised += '&';
            plan.normalised += name;
            plan.normalised += '=';
            if (name == "limit" || name == "top") {
                // A number by its value, as read_options() read it: limit=0311 asks what
                // limit=311 asks.
                plan.normalised +=
                    std::to_string(name == "top" ? plan.top : plan.limit.value_or(0));
            } else {
                append_encoded(plan.normalised, v);
            }
        }
    }
}

}  // namespace

boost::system::result<query_plan, problem> parse_query_plan(query_route route,
                                                            std::string_view query,
                                                            query_limits const& limits,
                                                            bool allow_min_seq) {
    query_plan plan;
    plan.route = route;
    param_map params;
    if (auto p = read_params(route, query, allow_min_seq, params)) {
        return *p;
    }
    if (auto p = read_range(params, plan)) {
        return *p;
    }
    read_filters(params, plan);
    if (auto p = read_group_by(params, plan)) {
        return *p;
    }
    if (auto p = read_options(params, plan)) {
        return *p;
    }
    // The cost bound the parser can decide alone (SPEC: 422 naming limit, value, request).
    if (route != query_route::hours && plan.to - plan.from > limits.max_query_hours) {
        return problem{problem_type::query_too_large,
                       "the range " + std::to_string(plan.from) + " <= hour < " +
                           std::to_string(plan.to) + " spans " +
                           std::to_string(plan.to - plan.from) +
                           " hours, more than max_query_hours (" +
                           std::to_string(limits.max_query_hours) + "); split it",
                       {},
                       {}};
    }
    normalise(params, plan);
    return plan;
}

}  // namespace flowd
