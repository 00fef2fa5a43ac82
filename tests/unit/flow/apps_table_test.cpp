#include "flowd/flow/apps_table.hpp"

#include <gtest/gtest.h>

namespace flowd {
namespace {

ip_address addr(char const* text) {
    return *ip_address::parse(text);
}

std::string app(apps_table const& t, char const* text) {
    std::string const* a = t.app_of(addr(text));
    return a == nullptr ? "(none)" : *a;
}

TEST(AppsTableTest, LongestPrefixWins) {
    apps_table const t = apps_table::parse(R"(
apps:
  net: [10.0.0.0/8]
  web: [10.0.1.0/24]
  host: [10.0.1.7/32]
  other: [192.168.0.0/16]
)",
                                           "t.yaml");

    EXPECT_EQ(app(t, "10.0.1.7"), "host");
    EXPECT_EQ(app(t, "10.0.1.6"), "web");
    EXPECT_EQ(app(t, "10.0.1.8"), "web");
    EXPECT_EQ(app(t, "10.0.2.1"), "net");
    EXPECT_EQ(app(t, "10.255.255.255"), "net");
    EXPECT_EQ(app(t, "9.255.255.255"), "(none)");
    EXPECT_EQ(app(t, "11.0.0.0"), "(none)");
    EXPECT_EQ(app(t, "192.168.3.4"), "other");
}

TEST(AppsTableTest, Ipv6PrefixesAndDefaultRoute) {
    apps_table const t = apps_table::parse(R"(
apps:
  any6: ["::/0"]
  web: ["2001:db8:1::/48", 10.0.1.0/24]
)",
                                           "t.yaml");

    EXPECT_EQ(app(t, "2001:db8:1::5"), "web");
    EXPECT_EQ(app(t, "2001:db8:2::5"), "any6");
    // IPv4 lives inside ::ffff:0:0/96, so ::/0 covers it too.
    EXPECT_EQ(app(t, "10.0.1.1"), "web");
    EXPECT_EQ(app(t, "10.0.2.1"), "any6");
}

TEST(AppsTableTest, Ipv4MappedIpv6IsIpv4) {
    apps_table const t = apps_table::parse("apps:\n  web: [10.0.1.0/24]\n", "t.yaml");

    EXPECT_EQ(app(t, "::ffff:10.0.1.9"), "web");
    EXPECT_EQ(addr("::ffff:10.0.1.9").to_string(), "10.0.1.9");
}

TEST(AppsTableTest, VpcByAddressThenAddressAndDomain) {
    apps_table const t = apps_table::parse(R"(
vpcs:
  "127.0.0.1": vpc-lab
  "127.0.0.1#7": vpc-seven
  "::ffff:192.0.2.1": vpc-mapped
)",
                                           "t.yaml");

    EXPECT_EQ(t.vpc_of(addr("127.0.0.1"), 0), "vpc-lab");
    EXPECT_EQ(t.vpc_of(addr("127.0.0.1"), 7), "vpc-seven");
    EXPECT_EQ(t.vpc_of(addr("192.0.2.1"), 3), "vpc-mapped");
    EXPECT_EQ(t.vpc_of(addr("2001:db8::1"), 0), "exporter-2001:db8::1");
}

TEST(AppsTableTest, UnmatchedPolicies) {
    EXPECT_EQ(apps_table::parse("unmatched: address\n", "t").unmatched(),
              apps_table::unmatched_policy::address);
    EXPECT_EQ(apps_table::parse("unmatched: drop\n", "t").unmatched(),
              apps_table::unmatched_policy::drop);
    apps_table const named = apps_table::parse("unmatched: unknown\n", "t");
    EXPECT_EQ(named.unmatched(), apps_table::unmatched_policy::name);
    EXPECT_EQ(named.unmatched_name(), "unknown");
    EXPECT_EQ(apps_table{}.unmatched(), apps_table::unmatched_policy::address);
}

void expect_error(char const* yaml, std::string const& fragment) {
    try {
        (void)apps_table::parse(yaml, "apps.yaml");
        ADD_FAILURE() << "no error for: " << yaml;
    } catch (apps_file_error const& e) {
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
}

TEST(AppsTableTest, BadFileReportsItsLine) {
    expect_error("apps:\n  web: [10.0.1.0/24]\n  db: [10.0.2.0/33]\n", "apps.yaml: line 3:");
    expect_error("apps:\n  web: [not-an-address/24]\n", "line 2:");
    expect_error("apps:\n  web: [10.0.1.1/24]\n", "bits set past its length");
    expect_error("apps:\n  web: [10.0.1.0/24]\n  db:\n    - 10.0.1.0/24\n", "line 4:");
    expect_error("bogus: 1\n", "line 1: unknown key 'bogus'");
    expect_error("vpcs:\n  \"1.2.3.4#x\": v\n", "line 2:");
    expect_error("apps: [\n", "apps.yaml");
}

TEST(AppsTableTest, LoadOfAMissingFileSaysSo) {
    EXPECT_THROW((void)apps_table::load("/nonexistent/apps.yaml"), apps_file_error);
}

}  // namespace
}  // namespace flowd
