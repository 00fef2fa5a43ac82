#include "flowd/flow/apps_table.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace flowd {
namespace {

constexpr std::size_t max_name_bytes = 255;

struct prefix {
    uint128 first = 0;
    uint128 last = 0;
    unsigned length = 0;  // in the 128-bit space (IPv4 lengths plus 96)
    std::uint32_t app = 0;
    int line = 0;
};

[[noreturn]] void fail(std::string const& origin, int line, std::string const& why) {
    throw apps_file_error("apps file " + origin + ": line " + std::to_string(line) + ": " + why);
}

int line_of(YAML::Node const& n) {
    return n.Mark().line + 1;
}

std::string scalar(YAML::Node const& n, std::string const& origin, std::string const& what) {
    if (!n.IsScalar()) {
        fail(origin, line_of(n), what + " must be a single value");
    }
    return n.as<std::string>();
}

void check_name(std::string const& name, std::string const& origin, int line,
                std::string const& what) {
    if (name.empty() || name.size() > max_name_bytes) {
        fail(origin, line, what + " '" + name + "' is not 1..255 bytes");
    }
}

prefix parse_prefix(std::string const& text, std::string const& origin, int line) {
    std::string why;
    auto const r = parse_cidr(text, why);
    if (!r) {
        fail(origin, line, why);
    }
    return prefix{r->first, r->last, r->length, 0, line};
}

// The apps key: each application's name (its id is its index in `apps`) and prefixes.
void read_apps(YAML::Node const& node, std::string const& origin, std::vector<std::string>& apps,
               std::vector<prefix>& prefixes) {
    if (!node.IsMap() && !node.IsNull()) {
        fail(origin, line_of(node), "apps must map application names to lists");
    }
    for (auto const& app : node) {
        std::string const name = scalar(app.first, origin, "an application name");
        check_name(name, origin, line_of(app.first), "application name");
        auto const id = static_cast<std::uint32_t>(apps.size());
        apps.push_back(name);
        YAML::Node const& list = app.second;
        if (list.IsScalar()) {
            prefix p = parse_prefix(list.as<std::string>(), origin, line_of(list));
            p.app = id;
            prefixes.push_back(p);
            continue;
        }
        if (!list.IsSequence()) {
            fail(origin, line_of(list), "application '" + name + "' needs a prefix list");
        }
        for (auto const& item : list) {
            prefix p = parse_prefix(scalar(item, origin, "a prefix"), origin, line_of(item));
            p.app = id;
            prefixes.push_back(p);
        }
    }
}

// The vpcs key: exporter (ADDRESS or ADDRESS#DOMAIN, kept in canonical form) to vpc id.
void read_vpcs(YAML::Node const& node, std::string const& origin,
               std::map<std::string, std::string, std::less<>>& vpcs) {
    if (!node.IsMap() && !node.IsNull()) {
        fail(origin, line_of(node), "vpcs must map exporter addresses to vpc ids");
    }
    for (auto const& v : node) {
        std::string const exporter = scalar(v.first, origin, "an exporter");
        std::string const vpc = scalar(v.second, origin, "a vpc id");
        int const line = line_of(v.first);
        std::size_t const hash = exporter.find('#');
        auto const address = ip_address::parse(exporter.substr(0, hash));
        std::uint32_t domain = 0;
        if (hash != std::string::npos) {
            std::string_view const d = std::string_view(exporter).substr(hash + 1);
            auto const r = std::from_chars(d.data(), d.data() + d.size(), domain);
            if (d.empty() || r.ec != std::errc{} || r.ptr != d.data() + d.size()) {
                fail(origin, line, "'" + exporter + "' is not ADDRESS or ADDRESS#DOMAIN");
            }
        }
        if (!address) {
            fail(origin, line, "'" + exporter + "' is not ADDRESS or ADDRESS#DOMAIN");
        }
        check_name(vpc, origin, line, "vpc id");
        std::string const canonical =
            address->to_string() + (hash == std::string::npos ? "" : "#" + std::to_string(domain));
        if (!vpcs.emplace(canonical, vpc).second) {
            fail(origin, line, "exporter '" + exporter + "' is given twice");
        }
    }
}

// Sorts the prefixes for the sweep: outer prefixes first at the same start, so a nested one
// always follows its parent. A prefix given twice is an error.
void sort_prefixes(std::vector<prefix>& prefixes, std::string const& origin) {
    std::sort(prefixes.begin(), prefixes.end(), [](prefix const& a, prefix const& b) {
        return a.first != b.first ? a.first < b.first : a.length < b.length;
    });
    for (std::size_t i = 1; i < prefixes.size(); ++i) {
        if (prefixes[i].first == prefixes[i - 1].first &&
            prefixes[i].length == prefixes[i - 1].length) {
            fail(origin, prefixes[i].line,
                 "this prefix is also given on line " + std::to_string(prefixes[i - 1].line));
        }
    }
}

}  // namespace

std::optional<address_range> parse_cidr(std::string_view text, std::string& why) {
    std::size_t const slash = text.find('/');
    std::string const quoted = "'" + std::string(text) + "'";
    if (slash == std::string_view::npos) {
        why = quoted + " is not a prefix ADDRESS/LENGTH";
        return std::nullopt;
    }
    auto const address = ip_address::parse(text.substr(0, slash));
    unsigned length = 0;
    std::string_view const len_text = text.substr(slash + 1);
    auto const r = std::from_chars(len_text.data(), len_text.data() + len_text.size(), length);
    if (!address || len_text.empty() || r.ec != std::errc{} ||
        r.ptr != len_text.data() + len_text.size()) {
        why = quoted + " is not a prefix ADDRESS/LENGTH";
        return std::nullopt;
    }
    // An IPv4 prefix parses to the mapped form: its length counts from bit 96.
    bool const v4 = text.substr(0, slash).find(':') == std::string_view::npos;
    unsigned const max_len = v4 ? 32 : 128;
    if (length > max_len) {
        why = quoted + ": length over " + std::to_string(max_len);
        return std::nullopt;
    }
    unsigned const bits = v4 ? length + 96 : length;
    uint128 const v = address->value();
    if (bits == 128) {
        return address_range{v, v, bits};
    }
    uint128 const host_mask = bits == 0 ? ~uint128{0} : (uint128{1} << (128 - bits)) - 1;
    if ((v & host_mask) != 0) {
        why = quoted + " has bits set past its length";
        return std::nullopt;
    }
    return address_range{v, v | host_mask, bits};
}

apps_table apps_table::parse(std::string_view yaml, std::string const& origin) {
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (YAML::Exception const& e) {
        fail(origin, e.mark.line + 1, e.msg);
    }
    apps_table t;
    if (root.IsNull()) {
        return t;
    }
    if (!root.IsMap()) {
        fail(origin, line_of(root), "must be a map with apps, vpcs and unmatched");
    }
    std::vector<prefix> prefixes;
    for (auto const& kv : root) {
        std::string const key = scalar(kv.first, origin, "a key");
        if (key == "apps") {
            read_apps(kv.second, origin, t.apps_, prefixes);
        } else if (key == "vpcs") {
            read_vpcs(kv.second, origin, t.vpcs_);
        } else if (key == "unmatched") {
            std::string const u = scalar(kv.second, origin, "unmatched");
            if (u == "address") {
                t.unmatched_ = unmatched_policy::address;
            } else if (u == "drop") {
                t.unmatched_ = unmatched_policy::drop;
            } else {
                check_name(u, origin, line_of(kv.second), "unmatched name");
                t.unmatched_ = unmatched_policy::name;
                t.unmatched_name_ = u;
            }
        } else {
            fail(origin, line_of(kv.first),
                 "unknown key '" + key + "' (expected apps, vpcs, unmatched)");
        }
    }
    t.prefixes_ = prefixes.size();
    sort_prefixes(prefixes, origin);
    // Sweep: the stack holds the prefixes covering `next`, innermost on top; prefixes nest
    // or are disjoint, never overlap partly.
    std::vector<prefix const*> open;
    uint128 next = 0;
    bool done = false;  // `next` passed the last address
    auto emit = [&](uint128 last, std::uint32_t app) {
        if (done || next > last) {
            return;
        }
        if (!t.ranges_.empty() && t.ranges_.back().app == app &&
            t.ranges_.back().last + 1 == next) {
            t.ranges_.back().last = last;
        } else {
            t.ranges_.push_back(range{next, last, app});
        }
        done = last == ~uint128{0};
        next = last + 1;
    };
    auto close_before = [&](uint128 first, bool all) {
        while (!open.empty() && (all || open.back()->last < first)) {
            emit(open.back()->last, open.back()->app);
            open.pop_back();
        }
    };
    for (prefix const& p : prefixes) {
        close_before(p.first, false);
        if (!open.empty() && p.first > next) {
            emit(p.first - 1, open.back()->app);
        }
        if (!done && p.first > next) {
            next = p.first;
        }
        open.push_back(&p);
    }
    close_before(0, true);
    return t;
}

apps_table apps_table::load(std::string const& path) {
    std::ifstream in(path);
    if (!in) {
        throw apps_file_error("apps file " + path + ": cannot be read");
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse(text.str(), path);
}

std::string const* apps_table::app_of(ip_address const& a) const noexcept {
    uint128 const v = a.value();
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), v,
                               [](uint128 x, range const& r) { return x < r.first; });
    if (it == ranges_.begin()) {
        return nullptr;
    }
    --it;
    return v <= it->last ? &apps_[it->app] : nullptr;
}

std::string apps_table::vpc_of(ip_address const& exporter, std::uint32_t domain) const {
    std::string const address = exporter.to_string();
    if (auto it = vpcs_.find(address + "#" + std::to_string(domain)); it != vpcs_.end()) {
        return it->second;
    }
    if (auto it = vpcs_.find(address); it != vpcs_.end()) {
        return it->second;
    }
    return "exporter-" + address;
}

}  // namespace flowd
