#include "flowd/codec/query.hpp"

#include <charconv>

#include "flowd/domain/flow_record.hpp"

namespace flowd {
namespace {

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

problem bad_query(std::string detail) {
    return problem{problem_type::invalid_query, std::move(detail), {}, {}};
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out.push_back(s[i]);
            continue;
        }
        if (i + 2 >= s.size()) {
            return std::nullopt;
        }
        int const hi = hex_value(s[i + 1]);
        int const lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

boost::system::result<flows_query, problem> parse_flows_query(std::string_view query,
                                                              bool allow_min_seq) {
    flows_query q;
    bool have_hour = false;
    std::size_t pos = 0;
    while (!query.empty() && pos <= query.size()) {
        std::size_t amp = query.find('&', pos);
        if (amp == std::string_view::npos) {
            amp = query.size();
        }
        std::string_view const part = query.substr(pos, amp - pos);
        pos = amp + 1;
        std::size_t const eq = part.find('=');
        auto name = percent_decode(part.substr(0, eq));
        auto value = eq == std::string_view::npos ? std::optional<std::string>{""}
                                                  : percent_decode(part.substr(eq + 1));
        if (!name || !value) {
            return bad_query("malformed percent-encoding in " + quote_value(part));
        }
        if (name->empty()) {
            return bad_query("empty parameter name in " + quote_value(part) +
                             "; use GET /flows?hour=N[&src_app=..][&dest_app=..][&vpc_id=..]");
        }
        if (value->empty()) {
            return bad_query("parameter " + quote_value(*name) + " is empty");
        }
        std::optional<std::string>* filter = nullptr;
        if (*name == "hour") {
            if (have_hour) {
                return bad_query("parameter 'hour' is repeated");
            }
            have_hour = true;
            std::uint64_t h = 0;
            auto const* const first = value->data();
            auto const* const last = value->data() + value->size();
            auto const r = std::from_chars(first, last, h);
            bool const digits_only = value->find_first_not_of("0123456789") == std::string::npos;
            if (!digits_only || r.ec != std::errc{} || r.ptr != last || h > max_hour) {
                return bad_query("'hour' must be a base-10 integer 0..2147483647, got " +
                                 quote_value(*value));
            }
            q.hour = static_cast<std::uint32_t>(h);
            continue;
        }
        if (*name == "min_seq" && allow_min_seq) {
            if (q.min_seq) {
                return bad_query("parameter 'min_seq' is repeated");
            }
            std::uint64_t n = 0;
            auto const* const last = value->data() + value->size();
            auto const r = std::from_chars(value->data(), last, n);
            if (value->find_first_not_of("0123456789") != std::string::npos ||
                r.ec != std::errc{} || r.ptr != last) {
                return bad_query("'min_seq' must be a base-10 stream sequence, got " +
                                 quote_value(*value));
            }
            q.min_seq = n;
            continue;
        }
        if (*name == "src_app") {
            filter = &q.src_app;
        } else if (*name == "dest_app") {
            filter = &q.dest_app;
        } else if (*name == "vpc_id") {
            filter = &q.vpc_id;
        } else {
            return bad_query("unknown parameter " + quote_value(*name) +
                             "; known: hour (required), src_app, dest_app, vpc_id");
        }
        if (filter->has_value()) {
            return bad_query("parameter " + quote_value(*name) + " is repeated");
        }
        *filter = std::move(*value);
    }
    if (!have_hour) {
        return bad_query("missing required parameter 'hour': use GET /flows?hour=N");
    }
    return q;
}

}  // namespace flowd
