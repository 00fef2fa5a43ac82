#include "flowd/store/string_interner.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace flowd {
namespace {

TEST(StringInternerTest, ReturnsSameIdForSameString) {
    string_interner names;

    auto const first = names.intern("foo");
    auto const second = names.intern(std::string("foo"));

    EXPECT_EQ(first, second);
    EXPECT_EQ(names.size(), 1U);
}

TEST(StringInternerTest, GivesDistinctStringsDenseIds) {
    string_interner names;

    auto const a = names.intern("a");
    auto const b = names.intern("b");
    auto const c = names.intern("c");

    EXPECT_EQ(a, 0U);
    EXPECT_EQ(b, 1U);
    EXPECT_EQ(c, 2U);
    EXPECT_EQ(names.size(), 3U);
}

TEST(StringInternerTest, ViewReturnsTheInternedBytes) {
    string_interner names;
    std::string const with_nul("a\0b\xc3\xa9", 5);

    auto const id = names.intern(with_nul);

    EXPECT_EQ(names.view(id), with_nul);
}

TEST(StringInternerTest, ViewOutlivesTheCallersString) {
    string_interner names;
    std::uint32_t id = 0;
    {
        std::string const temporary(100, 'q');
        id = names.intern(temporary);
    }

    auto const view = names.view(id);

    EXPECT_EQ(view, std::string(100, 'q'));
}

TEST(StringInternerTest, FindReturnsIdOfInternedString) {
    string_interner names;
    auto const id = names.intern("vpc-0");

    auto const found = names.find("vpc-0");

    EXPECT_EQ(found, id);
}

TEST(StringInternerTest, FindReturnsNposForUnknownStringAndAddsNothing) {
    string_interner names;
    names.intern("vpc-0");

    auto const found = names.find("vpc-1");

    EXPECT_EQ(found, string_interner::npos);
    EXPECT_EQ(names.size(), 1U);
}

TEST(StringInternerTest, DistinguishesPrefixes) {
    string_interner names;

    auto const short_id = names.intern("ab");
    auto const long_id = names.intern("abc");

    EXPECT_NE(short_id, long_id);
    EXPECT_EQ(names.view(short_id), "ab");
    EXPECT_EQ(names.view(long_id), "abc");
}

TEST(StringInternerTest, KeepsEveryStringAcrossChunkBoundaries) {
    string_interner names;
    constexpr std::uint32_t count = 70'000;  // more than one 65536-entry chunk
    std::vector<std::uint32_t> ids;
    ids.reserve(count);

    for (std::uint32_t i = 0; i < count; ++i) {
        ids.push_back(names.intern("name-" + std::to_string(i)));
    }

    ASSERT_EQ(names.size(), count);
    for (std::uint32_t i = 0; i < count; ++i) {
        ASSERT_EQ(ids[i], i);
        ASSERT_EQ(names.view(i), "name-" + std::to_string(i));
        ASSERT_EQ(names.find("name-" + std::to_string(i)), i);
    }
}

TEST(StringInternerTest, MemoryBytesGrowsWithNewStringsOnly) {
    string_interner names;
    names.intern("first");
    auto const before = names.memory_bytes();

    names.intern("first");
    auto const after_repeat = names.memory_bytes();
    names.intern(std::string(1000, 'x'));
    auto const after_new = names.memory_bytes();

    EXPECT_GT(before, 0U);
    EXPECT_EQ(after_repeat, before);
    EXPECT_GE(after_new, before + 1000);
}

}  // namespace
}  // namespace flowd
