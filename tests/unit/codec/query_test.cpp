#include "flowd/codec/query.hpp"

#include <string>

#include <gtest/gtest.h>

namespace flowd {
namespace {

TEST(PercentDecodeTest, DecodesHexPairsInEitherCase) {
    EXPECT_EQ(percent_decode("%41%62%7e%7E"), "Ab~~");
}

TEST(PercentDecodeTest, DecodesEscapeAtTheVeryEnd) {
    EXPECT_EQ(percent_decode("ab%21"), "ab!");
}

TEST(PercentDecodeTest, DecodesNulAndHighBytes) {
    EXPECT_EQ(percent_decode("%00%FF"), std::string("\0\xff", 2));
}

TEST(PercentDecodeTest, PlusIsASpaceAndEncodedPlusAPlus) {
    EXPECT_EQ(percent_decode("a+b c"), "a b c");
    EXPECT_EQ(percent_decode("a%2Bb"), "a+b");
    EXPECT_EQ(percent_decode(""), "");
}

TEST(PercentDecodeTest, RejectsIncompleteOrNonHexEscapes) {
    EXPECT_EQ(percent_decode("%"), std::nullopt);
    EXPECT_EQ(percent_decode("%4"), std::nullopt);
    EXPECT_EQ(percent_decode("%g1"), std::nullopt);
    EXPECT_EQ(percent_decode("%1g"), std::nullopt);
}

TEST(PercentDecodeTest, DoesNotDecodeTwice) {
    EXPECT_EQ(percent_decode("%2541"), "%41");
}

}  // namespace
}  // namespace flowd
