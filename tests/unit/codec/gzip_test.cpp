#include "flowd/codec/gzip.hpp"

#include <string>

#include <gtest/gtest.h>

namespace flowd {
namespace {

constexpr std::size_t no_limit = std::size_t{1} << 30;

// Poorly compressible bytes, so the compressed size tracks the input.
std::string noise(std::size_t n) {
    std::string out(n, '\0');
    std::uint32_t x = 2463534242U;
    for (char& c : out) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = static_cast<char>(x & 0xffU);
    }
    return out;
}

TEST(GzipTest, RoundTripsText) {
    std::string const text = "[{\"src_app\":\"foo\"}]";

    auto const out = gunzip(gzip(text), no_limit);

    ASSERT_TRUE(out);
    EXPECT_EQ(*out, text);
}

TEST(GzipTest, RoundTripsEmptyInput) {
    auto const out = gunzip(gzip(""), no_limit);

    ASSERT_TRUE(out);
    EXPECT_EQ(*out, "");
}

TEST(GzipTest, RoundTripsLargeIncompressibleInput) {
    std::string const data = noise(1 << 20);

    auto const out = gunzip(gzip(data), no_limit);

    ASSERT_TRUE(out);
    EXPECT_EQ(*out, data);
}

TEST(GzipTest, RoundTripsHighlyCompressibleInput) {
    std::string const data(4 << 20, 'a');  // far more than the first 4x-input guess

    auto const out = gunzip(gzip(data), no_limit);

    ASSERT_TRUE(out);
    EXPECT_EQ(*out, data);
}

TEST(GzipTest, ConcatenatedMembersInflateToConcatenation) {
    std::string const body = gzip("first,") + gzip("") + gzip("second");

    auto const out = gunzip(body, no_limit);

    ASSERT_TRUE(out);
    EXPECT_EQ(*out, "first,second");
}

TEST(GzipTest, TruncatedBodyIsRejected) {
    std::string const full = gzip(noise(10'000));

    auto const out = gunzip(full.substr(0, full.size() - 4), no_limit);

    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().type, problem_type::invalid_json);
}

TEST(GzipTest, HeaderOnlyIsRejected) {
    auto const out = gunzip(gzip("hello").substr(0, 10), no_limit);

    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().type, problem_type::invalid_json);
}

TEST(GzipTest, EmptyInputIsRejected) {
    auto const out = gunzip("", no_limit);

    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().type, problem_type::invalid_json);
}

TEST(GzipTest, NonGzipInputIsRejected) {
    auto const out = gunzip("[{\"plain\":\"json\"}]", no_limit);

    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().type, problem_type::invalid_json);
}

TEST(GzipTest, CorruptChecksumIsRejected) {
    std::string body = gzip("some body that is long enough to compress");
    body[body.size() - 6] = static_cast<char>(body[body.size() - 6] ^ 0x5a);  // inside the CRC-32

    auto const out = gunzip(body, no_limit);

    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().type, problem_type::invalid_json);
}

TEST(GzipTest, CorruptDeflateDataIsRejected) {
    std::string body = gzip(noise(5000));
    for (std::size_t i = 20; i < 60; ++i) {
        body[i] = static_cast<char>(0xff);
    }

    auto const out = gunzip(body, no_limit);

    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().type, problem_type::invalid_json);
}

TEST(GzipTest, TrailingGarbageAfterMemberIsRejected) {
    auto const out = gunzip(gzip("body") + "garbage!", no_limit);

    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().type, problem_type::invalid_json);
}

TEST(GzipTest, OutputExactlyAtLimitIsAccepted) {
    std::string const data = noise(1000);

    auto const out = gunzip(gzip(data), 1000);

    ASSERT_TRUE(out);
    EXPECT_EQ(*out, data);
}

TEST(GzipTest, OutputOneByteOverLimitIsPayloadTooLarge) {
    auto const out = gunzip(gzip(noise(1001)), 1000);

    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().type, problem_type::payload_too_large);
}

TEST(GzipTest, LargeOutputExactlyAtLimitIsAccepted) {
    std::string const data(300'000, 'z');  // grows the buffer several times first

    auto const out = gunzip(gzip(data), data.size());

    ASSERT_TRUE(out);
    EXPECT_EQ(out->size(), data.size());
}

TEST(GzipTest, LargeOutputOneByteOverLimitIsPayloadTooLarge) {
    auto const out = gunzip(gzip(std::string(300'001, 'z')), 300'000);

    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().type, problem_type::payload_too_large);
}

TEST(GzipTest, MembersSummingExactlyToLimitAreAccepted) {
    auto const out = gunzip(gzip(std::string(600, 'a')) + gzip(std::string(400, 'b')), 1000);

    ASSERT_TRUE(out);
    EXPECT_EQ(out->size(), 1000U);
}

TEST(GzipTest, MembersSummingPastLimitArePayloadTooLarge) {
    auto const out = gunzip(gzip(std::string(600, 'a')) + gzip(std::string(401, 'b')), 1000);

    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().type, problem_type::payload_too_large);
}

TEST(GzipTest, BombIsStoppedAtTheLimit) {
    std::string const bomb = gzip(std::string(64 << 20, '\0'));

    auto const out = gunzip(bomb, 1 << 20);

    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().type, problem_type::payload_too_large);
}

TEST(GzipWriterTest, IncrementalWritesFormOneStream) {
    gzip_writer writer;
    std::string compressed;

    writer.write("[1,", compressed, false);
    writer.write(noise(100'000), compressed, false);
    writer.write("2]", compressed, true);

    auto const out = gunzip(compressed, no_limit);
    ASSERT_TRUE(out);
    EXPECT_EQ(*out, "[1," + noise(100'000) + "2]");
}

TEST(GzipWriterTest, FinishWithEmptyInputEndsTheStream) {
    gzip_writer writer;
    std::string compressed;
    writer.write("abc", compressed, false);

    writer.write("", compressed, true);

    auto const out = gunzip(compressed, no_limit);
    ASSERT_TRUE(out);
    EXPECT_EQ(*out, "abc");
}

TEST(GzipWriterTest, MovedWriterKeepsItsStream) {
    gzip_writer first;
    std::string compressed;
    first.write("abc", compressed, false);

    gzip_writer second = std::move(first);
    second.write("def", compressed, true);

    auto const out = gunzip(compressed, no_limit);
    ASSERT_TRUE(out);
    EXPECT_EQ(*out, "abcdef");
}

}  // namespace
}  // namespace flowd
