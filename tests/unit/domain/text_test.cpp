#include "flowd/domain/text.hpp"

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace flowd {
namespace {

std::vector<std::string> elements(std::string_view list) {
    std::vector<std::string> out;
    any_list_element(list, [&out](std::string_view e) {
        out.emplace_back(e);
        return false;
    });
    return out;
}

TEST(TextTest, TrimOwsDropsSpacesAndTabsAtBothEnds) {
    EXPECT_EQ(trim_ows(" \t gzip ;q=1\t "), "gzip ;q=1");
    EXPECT_EQ(trim_ows(" \t "), "");
    EXPECT_EQ(trim_ows(""), "");
    EXPECT_EQ(trim_ows("x"), "x");
}

TEST(TextTest, AsciiLowerLowersOnlyAsciiLetters) {
    EXPECT_EQ(ascii_lower("Application/JSON; Q=0.5"), "application/json; q=0.5");
    EXPECT_EQ(ascii_lower("\xC3\x89t\xC3\xA9"), "\xC3\x89t\xC3\xA9");
}

TEST(TextTest, ListElementsAreTrimmedAndEmptyOnesSkipped) {
    EXPECT_EQ(elements(" gzip , ,br;q=0.5,,\tdeflate\t,"),
              (std::vector<std::string>{"gzip", "br;q=0.5", "deflate"}));
    EXPECT_TRUE(elements("").empty());
    EXPECT_TRUE(elements(" , ,").empty());
}

TEST(TextTest, ListVisitStopsAtTheFirstElementThatSaysSo) {
    std::vector<std::string> seen;
    bool const found = any_list_element("a, b, c", [&seen](std::string_view e) {
        seen.emplace_back(e);
        return e == "b";
    });
    EXPECT_TRUE(found);
    EXPECT_EQ(seen, (std::vector<std::string>{"a", "b"}));
    EXPECT_FALSE(any_list_element("a, c", [](std::string_view e) { return e == "b"; }));
}

}  // namespace
}  // namespace flowd
