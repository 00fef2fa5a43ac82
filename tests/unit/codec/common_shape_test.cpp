// decode_common_shape(), the fast path of decode_flows(): what it accepts, decode_flows_generic()
// accepts with the same batch; everything else it declines, leaving the batch as it was, so
// that the generic decoder answers (and words every error).

#include "flowd/codec/common_shape.hpp"

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "flowd/codec/flow_json.hpp"

namespace flowd {
namespace {

std::string const compact =
    R"([{"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":300,"hour":1},)"
    R"({"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":5,"bytes_rx":7,"hour":1},)"
    R"({"src_app":"baz","dest_app":"qux","vpc_id":"vpc-1","bytes_tx":0,"bytes_rx":9223372036854775807,"hour":2147483647}])";

// The batch as comparable values: entries in order with their first record, and the count.
struct batch_values {
    std::vector<flow_record> records;
    std::vector<std::size_t> first_records;
    std::size_t record_count = 0;
    friend bool operator==(batch_values const&, batch_values const&) = default;
};

batch_values values_of(flow_batch const& b) {
    batch_values v;
    for (batch_entry const& e : b.entries()) {
        v.records.push_back(e.record.to_record());
        v.first_records.push_back(e.first_record);
    }
    v.record_count = b.record_count();
    return v;
}

// Decodes `body` both ways; the fast path's answer must agree with the generic one.
// Returns whether the fast path took the body.
bool agrees(std::string const& body, decode_limits const& limits = {},
            body_format format = body_format::json_array) {
    std::string fast_body = body;
    std::string generic_body = body;
    flow_batch fast;
    bool const taken = decode_common_shape(fast_body, format, limits, fast);
    EXPECT_EQ(fast_body, body) << "the fast path changed the body";
    auto const generic = decode_flows_generic(generic_body, format, limits);
    if (taken) {
        EXPECT_TRUE(generic.has_value())
            << "fast path accepted what the generic decoder refuses: " << body << "\n"
            << generic.error().detail;
        if (generic.has_value()) {
            EXPECT_EQ(values_of(fast), values_of(*generic)) << body;
        }
    } else {
        EXPECT_TRUE(fast.empty()) << "a declined body left records in the batch";
    }
    return taken;
}

TEST(CommonShapeTest, TakesCompactBatchesInSpecOrder) {
    EXPECT_TRUE(agrees(compact));
    std::string body = compact;
    flow_batch batch;
    ASSERT_TRUE(decode_common_shape(body, body_format::json_array, {}, batch));
    ASSERT_EQ(batch.entries().size(), 2U);
    EXPECT_EQ(batch.record_count(), 3U);
    EXPECT_EQ(batch.entries()[0].record.counters, (flow_counters{105, 307}));
    EXPECT_EQ(batch.entries()[1].record.src_app, "baz");
    EXPECT_EQ(batch.entries()[1].record.hour, 2147483647U);
    EXPECT_EQ(batch.entries()[1].first_record, 2U);
}

TEST(CommonShapeTest, TakesWhitespaceAndAnyKeyOrder) {
    EXPECT_TRUE(
        agrees(" \r\n\t[ { \"hour\" : 3 ,\n\t\"vpc_id\" :\"v\", \"bytes_rx\":1 ,"
               "\"bytes_tx\": 2,\"dest_app\":\"d\",\"src_app\" : \"s\" } ,\r\n"
               "{\"src_app\":\"s\",\"dest_app\":\"d\",\"vpc_id\":\"v\",\"bytes_tx\":0,"
               "\"bytes_rx\":0,\"hour\":3}\n]\n "));
    EXPECT_TRUE(agrees(R"([{"src_app":"~ !#$%&'()*+,-./:;<=>?@[]^_`{|}","dest_app":"d",)"
                       R"("vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":0}])"));
}

TEST(CommonShapeTest, TakesNamesOfOneAndOf255Bytes) {
    for (std::size_t n : {1U, 15U, 16U, 17U, 31U, 32U, 33U, 254U, 255U}) {
        std::string const name(n, 'x');
        EXPECT_TRUE(agrees(R"([{"src_app":")" + name +
                           R"(","dest_app":"d","vpc_id":"v",)"
                           R"("bytes_tx":1,"bytes_rx":1,"hour":0}])"))
            << n;
    }
}

// Integers are read 8 bytes at a time up to 7 digits, by a loop past that: every length,
// every digit in every place, the largest values, and what follows them.
TEST(CommonShapeTest, TakesIntegersOfEveryLength) {
    std::mt19937_64 rng(7);
    for (std::size_t digits = 1; digits <= 19; ++digits) {
        for (int round = 0; round < 20; ++round) {
            // 19 digits starting with 1 to 8 stay under 2^63-1.
            std::string n(1, static_cast<char>('1' + rng() % (digits == 19 ? 8 : 9)));
            while (n.size() < digits) {
                n += static_cast<char>('0' + rng() % 10);
            }
            std::string const hour = digits <= 9 ? n : "0";
            EXPECT_TRUE(agrees(R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":)" + n +
                               R"(,"bytes_rx":)" + n + R"(,"hour":)" + hour + "}]"))
                << n;
            EXPECT_TRUE(agrees(R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":)" + n +
                               R"( ,"bytes_rx":)" + n + "\n,\"hour\":" + hour + "\t}]"))
                << n;
        }
    }
    for (std::string const n : {"0", "9", "10", "99999999", "100000000", "9223372036854775807"}) {
        EXPECT_TRUE(agrees(R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":)" + n +
                           R"(,"bytes_rx":1,"hour":0}])"))
            << n;
    }
    EXPECT_TRUE(agrees(R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,)"
                       R"("hour":2147483647}])"));
}

// Each of these is valid or invalid in a way only the generic decoder words or handles.
TEST(CommonShapeTest, DeclinesEverythingElse) {
    auto const with = [](std::string_view field, std::string_view value) {
        std::string body = R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,)"
                           R"("bytes_rx":1,"hour":0}])";
        std::size_t const at = body.find(std::string("\"") + std::string(field) + "\":");
        std::size_t const from = body.find(':', at) + 1;
        std::size_t const to = body.find_first_of(",}", from);
        return body.replace(from, to - from, value);
    };
    std::vector<std::string> const bodies = {
        with("src_app", R"("a\"b")"),         // an escape
        with("src_app", R"("\u0041")"),       // an escape of a plain letter
        with("dest_app", "\"caf\xc3\xa9\""),  // non-ASCII (valid UTF-8)
        with("dest_app", "\"\xff\""),         // not UTF-8
        with("vpc_id", "\"a\tb\""),           // a raw control character
        with("vpc_id", R"("")"),              // empty
        with("vpc_id", '"' + std::string(256, 'x') + '"'),
        with("src_app", "1"),
        with("src_app", "null"),
        with("bytes_tx", "01"),
        with("bytes_tx", "-1"),
        with("bytes_tx", "1.0"),
        with("bytes_tx", "1e3"),
        with("bytes_tx", "\"1\""),
        with("bytes_tx", "9223372036854775808"),
        with("bytes_rx", "18446744073709551616"),
        with("bytes_rx", "123456789012345678901"),
        with("hour", "2147483648"),
        with("hour", "[0]"),
        with("hour", "{}"),
        R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1}])",
        R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":0,"hour":0}])",
        R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":0,"x":0}])",
        R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"h\u006fur":0}])",
        R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":0},])",
        R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":0,}])",
        R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":0}{}])",
        R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":0}] x)",
        R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":0}]])",
        R"({"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":0})",
        "[]",
        "[1]",
        "[{}]",
        "",
        "\xef\xbb\xbf[]",  // a byte order mark
        // Two records of one key whose sums pass 2^63-1: counter-overflow, worded generically.
        R"([{"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":9223372036854775807,"bytes_rx":1,"hour":0},)"
        R"({"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":0}])",
    };
    for (std::string const& body : bodies) {
        EXPECT_FALSE(agrees(body)) << body;
    }
}

TEST(CommonShapeTest, DeclinesPastTheLimitsAndOtherFormats) {
    EXPECT_FALSE(agrees(compact, decode_limits{2, 64}));  // 3 records: too-many-records
    EXPECT_TRUE(agrees(compact, decode_limits{3, 64}));
    EXPECT_FALSE(agrees(compact, decode_limits{1'000'000, 1}));  // records nest at depth 2
    EXPECT_TRUE(agrees(compact, decode_limits{1'000'000, 2}));
    std::string const line =
        R"({"src_app":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":0})";
    EXPECT_FALSE(agrees(line + "\n" + line + "\n", {}, body_format::ndjson));
}

TEST(CommonShapeTest, LeavesTheBatchAloneWhenItDeclines) {
    std::string good = compact;
    flow_batch batch;
    ASSERT_TRUE(decode_common_shape(good, body_format::json_array, {}, batch));
    batch_values const before = values_of(batch);
    std::string bad = compact.substr(0, compact.size() - 1);
    EXPECT_FALSE(decode_common_shape(bad, body_format::json_array, {}, batch));
    EXPECT_EQ(values_of(batch), before);
}

TEST(CommonShapeTest, NeverTakesATruncatedBody) {
    // Every proper prefix of a batch is invalid JSON: the fast path must decline each one,
    // whatever the bytes after the end of the body (the padding) happen to hold.
    for (char const pad : {'"', '7', '}'}) {
        for (std::size_t n = 0; n < compact.size(); ++n) {
            std::string body = compact.substr(0, n) + std::string(64, pad);
            body.resize(n);  // keeps the capacity, and in it the padding past the new end
            EXPECT_FALSE(agrees(body)) << n << " " << pad;
        }
    }
}

// Seeded random edits of valid bodies (substitutions, insertions, deletions drawn from the
// bytes that matter to the grammar): the fast path may take or decline each, but what it
// takes the generic decoder takes with the same batch.
TEST(CommonShapeTest, AgreesWithTheGenericDecoderOnMutatedBodies) {
    std::mt19937_64 rng(20261129);
    std::string const alphabet = "{}[],:\"\\ \t\n0123456789-.eE+xsu\x01\x7f\xc3\xa9";
    std::size_t taken = 0;
    int const rounds = 20000;
    for (int i = 0; i < rounds; ++i) {
        std::string body = compact;
        int const edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits; ++e) {
            std::size_t const at = rng() % (body.size() + 1);
            char const c = alphabet[rng() % alphabet.size()];
            switch (rng() % 3) {
                case 0:
                    if (at < body.size()) {
                        body[at] = c;
                    }
                    break;
                case 1:
                    body.insert(body.begin() + static_cast<std::ptrdiff_t>(at), c);
                    break;
                default:
                    if (at < body.size()) {
                        body.erase(at, 1);
                    }
                    break;
            }
        }
        taken += agrees(body) ? 1U : 0U;
        if (::testing::Test::HasFailure()) {
            FAIL() << "after " << i << " bodies, on: " << body;
        }
    }
    // Some edits keep the body valid and of the common shape (a digit for a digit, a name
    // letter): the comparison above must have run on accepted bodies too.
    EXPECT_GT(taken, 100U);
}

}  // namespace
}  // namespace flowd
