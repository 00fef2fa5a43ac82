#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "flowd/domain/uint128.hpp"
#include "flowd/flow/ip_address.hpp"

namespace flowd {

// A bad apps file: what() names the file, the line and why; the mapping in use stays.
class apps_file_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// An address prefix as the range of addresses it covers (IPv4 inside ::ffff:0:0/96).
struct address_range {
    uint128 first = 0;
    uint128 last = 0;
    unsigned length = 0;  // in the 128-bit space: an IPv4 length plus 96

    [[nodiscard]] bool contains(ip_address const& a) const noexcept {
        uint128 const v = a.value();
        return first <= v && v <= last;
    }
};

// ADDRESS/LENGTH (IPv4 or IPv6, no host bits set); nullopt with `why` said when it is not.
[[nodiscard]] std::optional<address_range> parse_cidr(std::string_view text, std::string& why);

// The apps file of SPEC ("Flow exporters"): prefixes to application names (longest prefix
// wins), exporters to vpc ids, and what an unmatched address becomes. Immutable once built;
// safe to share between threads (swap a new one in on reload).
//
// Prefixes are flattened at load into disjoint address ranges sorted by their first
// address, each naming the application of the longest prefix covering it, so a lookup is
// one binary search whatever the nesting.
class apps_table {
public:
    enum class unmatched_policy { address, drop, name };

    apps_table() = default;

    // Parses YAML text; `origin` names the file in errors. Throws apps_file_error.
    [[nodiscard]] static apps_table parse(std::string_view yaml, std::string const& origin);
    [[nodiscard]] static apps_table load(std::string const& path);

    // The application of `a`: nullptr when no prefix covers it.
    [[nodiscard]] std::string const* app_of(ip_address const& a) const noexcept;
    // The vpc_id of an exporter: "ADDRESS#DOMAIN", else "ADDRESS", else exporter-<address>.
    [[nodiscard]] std::string vpc_of(ip_address const& exporter, std::uint32_t domain) const;

    [[nodiscard]] unmatched_policy unmatched() const noexcept { return unmatched_; }
    // The name unmatched addresses take under unmatched_policy::name.
    [[nodiscard]] std::string const& unmatched_name() const noexcept { return unmatched_name_; }
    [[nodiscard]] std::size_t prefix_count() const noexcept { return prefixes_; }
    [[nodiscard]] std::size_t app_count() const noexcept { return apps_.size(); }

private:
    struct range {
        uint128 first = 0;
        uint128 last = 0;
        std::uint32_t app = 0;
    };
    std::vector<std::string> apps_;
    std::vector<range> ranges_;  // disjoint, sorted by first
    std::map<std::string, std::string, std::less<>> vpcs_;
    unmatched_policy unmatched_ = unmatched_policy::address;
    std::string unmatched_name_;
    std::size_t prefixes_ = 0;
};

}  // namespace flowd
