#include "flowd/codec/flow_json.hpp"

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "flowd/codec/json_writer.hpp"

namespace flowd {
namespace {

using namespace std::string_literals;

constexpr std::array<std::pair<std::string_view, std::string_view>, 6> default_fields{{
    {"src_app", R"("foo")"},
    {"dest_app", R"("bar")"},
    {"vpc_id", R"("vpc-0")"},
    {"bytes_tx", "100"},
    {"bytes_rx", "300"},
    {"hour", "1"},
}};

// The seed record with `field` given the raw JSON `value`, or left out when nullopt.
std::string record_with(std::string_view field, std::optional<std::string_view> value) {
    std::string out = "{";
    for (auto const& [name, default_value] : default_fields) {
        if (name == field && !value) {
            continue;
        }
        if (out.size() > 1) {
            out += ',';
        }
        out += '"';
        out += name;
        out += "\":";
        out += name == field ? *value : default_value;
    }
    out += '}';
    return out;
}

std::string seed_record() {
    return record_with("", std::nullopt);
}

boost::system::result<flow_batch, problem> decode(std::string body,
                                                  body_format format = body_format::json_array,
                                                  decode_limits limits = {}) {
    return decode_flows(body, format, limits);
}

// The problem a body is rejected with; records a failure when it is accepted.
problem rejection(std::string body, body_format format = body_format::json_array,
                  decode_limits limits = {}) {
    auto result = decode(std::move(body), format, limits);
    if (result) {
        ADD_FAILURE() << "body was accepted";
        return problem{};
    }
    return result.error();
}

flow_batch accepted(std::string body, body_format format = body_format::json_array,
                    decode_limits limits = {}) {
    auto result = decode(std::move(body), format, limits);
    if (!result) {
        ADD_FAILURE() << "body was rejected: " << result.error().detail;
        return flow_batch{};
    }
    return std::move(*result);
}

// `depth` nested arrays around one element, so the innermost level is entered.
std::string nested_arrays(std::size_t depth) {
    return std::string(depth, '[') + "1" + std::string(depth, ']');
}

TEST(FlowJsonTest, DecodesSeedBatchIntoAggregatedEntries) {
    std::string const body = R"([
 {"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":300,"hour":1},
 {"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":200,"bytes_rx":600,"hour":1},
 {"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":1},
 {"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":2},
 {"src_app":"baz","dest_app":"qux","vpc_id":"vpc-1","bytes_tx":100,"bytes_rx":500,"hour":2}])";

    flow_batch const batch = accepted(body);

    EXPECT_EQ(batch.record_count(), 5U);
    ASSERT_EQ(batch.entries().size(), 4U);
    EXPECT_EQ(batch.entries()[0].record, (flow_record{"foo", "bar", "vpc-0", 1, {300, 900}}));
    EXPECT_EQ(batch.entries()[1].record, (flow_record{"baz", "qux", "vpc-0", 1, {100, 500}}));
    EXPECT_EQ(batch.entries()[1].first_record, 2U);
    EXPECT_EQ(batch.entries()[3].record, (flow_record{"baz", "qux", "vpc-1", 2, {100, 500}}));
}

TEST(FlowJsonTest, EmptyArrayIsAnEmptyBatch) {
    flow_batch const batch = accepted(" [ ] \n");

    EXPECT_TRUE(batch.empty());
}

TEST(FlowJsonTest, FieldOrderDoesNotMatter) {
    flow_batch const batch = accepted(
        R"([{"hour":3,"bytes_rx":2,"bytes_tx":1,"vpc_id":"v","dest_app":"d","src_app":"s"}])");

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record, (flow_record{"s", "d", "v", 3, {1, 2}}));
}

TEST(FlowJsonTest, LeavesBodyContentsUnchanged) {
    std::string body = "[" + seed_record() + "]";
    std::string const original = body;

    auto const result = decode_flows(body, body_format::json_array, {});

    EXPECT_TRUE(result);
    EXPECT_EQ(body, original);
}

class FlowJsonMissingFieldTest : public ::testing::TestWithParam<std::string_view> {};

TEST_P(FlowJsonMissingFieldTest, RejectsRecordWithoutField) {
    std::string const body =
        "[" + seed_record() + "," + record_with(GetParam(), std::nullopt) + "]";

    problem const p = rejection(body);

    EXPECT_EQ(p.type, problem_type::invalid_record);
    EXPECT_EQ(p.record, 1U);
    EXPECT_EQ(p.field, GetParam());
}

INSTANTIATE_TEST_SUITE_P(EveryField, FlowJsonMissingFieldTest,
                         ::testing::Values("src_app", "dest_app", "vpc_id", "bytes_tx", "bytes_rx",
                                           "hour"));

struct bad_value {
    std::string_view field;
    std::string_view value;
    std::string_view name;
};

class FlowJsonBadValueTest : public ::testing::TestWithParam<bad_value> {};

TEST_P(FlowJsonBadValueTest, RejectsAsInvalidRecordNamingTheField) {
    std::string const body = "[" + record_with(GetParam().field, GetParam().value) + "]";

    problem const p = rejection(body);

    EXPECT_EQ(p.type, problem_type::invalid_record) << p.detail;
    EXPECT_EQ(p.record, 0U);
    EXPECT_EQ(p.field, GetParam().field);
}

std::string bad_value_name(::testing::TestParamInfo<bad_value> const& info) {
    return std::string(info.param.name);
}

INSTANTIATE_TEST_SUITE_P(
    IntegerFields, FlowJsonBadValueTest,
    ::testing::Values(
        bad_value{"bytes_tx", R"("100")", "BytesTxString"},
        bad_value{"bytes_tx", "true", "BytesTxBool"}, bad_value{"bytes_tx", "null", "BytesTxNull"},
        bad_value{"bytes_tx", "{}", "BytesTxObject"}, bad_value{"bytes_tx", "[1]", "BytesTxArray"},
        bad_value{"bytes_tx", "1.0", "BytesTxFraction"},
        bad_value{"bytes_tx", "1e2", "BytesTxExponent"},
        bad_value{"bytes_tx", "1E2", "BytesTxUpperExponent"},
        bad_value{"bytes_tx", "-0", "BytesTxMinusZero"},
        bad_value{"bytes_tx", "-1", "BytesTxNegative"},
        bad_value{"bytes_tx", "9223372036854775808", "BytesTxTwoToThe63"},
        bad_value{"bytes_tx", "18446744073709551616", "BytesTxTwoToThe64"},
        bad_value{"bytes_tx", "123456789012345678901234567890", "BytesTxThirtyDigits"},
        bad_value{"bytes_tx", "1e400", "BytesTxHugeExponent"},
        bad_value{"bytes_rx", R"("1")", "BytesRxString"},
        bad_value{"bytes_rx", "false", "BytesRxBool"}, bad_value{"bytes_rx", "null", "BytesRxNull"},
        bad_value{"bytes_rx", "{\"a\":1}", "BytesRxObject"},
        bad_value{"bytes_rx", "[]", "BytesRxArray"},
        bad_value{"bytes_rx", "0.5", "BytesRxFraction"},
        bad_value{"bytes_rx", "-5", "BytesRxNegative"},
        bad_value{"bytes_rx", "9223372036854775808", "BytesRxTwoToThe63"},
        bad_value{"hour", R"("1")", "HourString"}, bad_value{"hour", "true", "HourBool"},
        bad_value{"hour", "null", "HourNull"}, bad_value{"hour", "{}", "HourObject"},
        bad_value{"hour", "[]", "HourArray"}, bad_value{"hour", "1.0", "HourFraction"},
        bad_value{"hour", "1e2", "HourExponent"}, bad_value{"hour", "-0", "HourMinusZero"},
        bad_value{"hour", "-1", "HourNegative"}, bad_value{"hour", "2147483648", "HourTwoToThe31"},
        bad_value{"hour", "4294967296", "HourTwoToThe32"}),
    bad_value_name);

INSTANTIATE_TEST_SUITE_P(NameFields, FlowJsonBadValueTest,
                         ::testing::Values(bad_value{"src_app", "1", "SrcAppNumber"},
                                           bad_value{"src_app", "true", "SrcAppBool"},
                                           bad_value{"src_app", "null", "SrcAppNull"},
                                           bad_value{"src_app", R"({"a":"b"})", "SrcAppObject"},
                                           bad_value{"src_app", R"(["a"])", "SrcAppArray"},
                                           bad_value{"src_app", R"("")", "SrcAppEmpty"},
                                           bad_value{"dest_app", "1.5", "DestAppNumber"},
                                           bad_value{"dest_app", R"("")", "DestAppEmpty"},
                                           bad_value{"vpc_id", "0", "VpcIdNumber"},
                                           bad_value{"vpc_id", R"("")", "VpcIdEmpty"},
                                           bad_value{"vpc_id", "false", "VpcIdBool"}),
                         bad_value_name);

TEST(FlowJsonTest, AcceptsLargestCounters) {
    flow_batch const batch =
        accepted(R"([{"src_app":"a","dest_app":"b","vpc_id":"c","bytes_tx":9223372036854775807,)"
                 R"("bytes_rx":9223372036854775807,"hour":0}])");

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record.counters, (flow_counters{max_counter, max_counter}));
}

TEST(FlowJsonTest, AcceptsZeroCounters) {
    flow_batch const batch = accepted("[" + record_with("bytes_tx", "0") + "]");

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record.counters.bytes_tx, 0U);
}

TEST(FlowJsonTest, AcceptsLargestHour) {
    flow_batch const batch = accepted("[" + record_with("hour", "2147483647") + "]");

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record.hour, max_hour);
}

TEST(FlowJsonTest, LeadingZeroIsInvalidJson) {
    problem const p = rejection("[" + record_with("bytes_tx", "01") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, LeadingPlusIsInvalidJson) {
    problem const p = rejection("[" + record_with("hour", "+1") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, NanIsInvalidJson) {
    problem const p = rejection("[" + record_with("bytes_tx", "NaN") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, InfinityIsInvalidJson) {
    problem const p = rejection("[" + record_with("bytes_rx", "Infinity") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, NegativeInfinityIsInvalidJson) {
    problem const p = rejection("[" + record_with("bytes_rx", "-Infinity") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, NanInIgnoredFieldIsInvalidJson) {
    problem const p = rejection(R"([{"x":NaN,)" + seed_record().substr(1) + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, NumberWithTrailingLettersIsInvalidJson) {
    problem const p = rejection("[" + record_with("bytes_tx", "12abc") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, AcceptsNameOf255Bytes) {
    std::string const name(255, 'n');

    flow_batch const batch = accepted("[" + record_with("src_app", "\"" + name + "\"") + "]");

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record.src_app, name);
}

TEST(FlowJsonTest, RejectsNameOf256Bytes) {
    problem const p =
        rejection("[" + record_with("vpc_id", "\"" + std::string(256, 'n') + "\"") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_record);
    EXPECT_EQ(p.field, "vpc_id");
}

TEST(FlowJsonTest, NameLengthCountsUtf8BytesAfterUnescaping) {
    std::string escaped;
    for (int i = 0; i < 128; ++i) {
        escaped += "\\u00e9";  // two bytes each once unescaped: 256 bytes
    }

    problem const p = rejection("[" + record_with("dest_app", "\"" + escaped + "\"") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_record);
    EXPECT_EQ(p.field, "dest_app");
}

TEST(FlowJsonTest, AcceptsEscapedNameThatFitsAfterUnescaping) {
    std::string escaped = "a";
    for (int i = 0; i < 127; ++i) {
        escaped += "\\u00e9";  // 1 + 254 = 255 bytes once unescaped
    }

    flow_batch const batch = accepted("[" + record_with("dest_app", "\"" + escaped + "\"") + "]");

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record.dest_app.size(), 255U);
}

TEST(FlowJsonTest, UnescapesNamesToUtf8) {
    flow_batch const batch =
        accepted("[" + record_with("src_app", R"("caf\u00e9 \"q\" \\ \n \ud83d\ude00")") + "]");

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record.src_app, "caf\xc3\xa9 \"q\" \\ \n \xf0\x9f\x98\x80");
}

TEST(FlowJsonTest, RawUtf8NamesAreKept) {
    flow_batch const batch = accepted("[" + record_with("vpc_id", "\"vpc-\xe2\x82\xac\"") + "]");

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record.vpc_id, "vpc-\xe2\x82\xac");
}

TEST(FlowJsonTest, EscapedKeyCountsAsTheKnownField) {
    flow_batch const batch = accepted(
        R"([{"src\u005fapp":"s","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}])");

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record.src_app, "s");
}

TEST(FlowJsonTest, EscapedKeyDuplicatingAFieldIsInvalidRecord) {
    problem const p = rejection(R"([{"src\u005fapp":"x",)" + seed_record().substr(1) + "]");

    EXPECT_EQ(p.type, problem_type::invalid_record);
    EXPECT_EQ(p.field, "src_app");
}

TEST(FlowJsonTest, DuplicateKnownFieldIsInvalidRecord) {
    problem const p =
        rejection("[" + seed_record() + R"(,{"hour":1,)" + seed_record().substr(1) + "]");

    EXPECT_EQ(p.type, problem_type::invalid_record);
    EXPECT_EQ(p.record, 1U);
    EXPECT_EQ(p.field, "hour");
}

TEST(FlowJsonTest, InvalidUtf8InNameIsInvalidJson) {
    problem const p = rejection("[" + record_with("src_app", "\"bad\xff\"") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, InvalidUtf8InIgnoredFieldIsInvalidJson) {
    problem const p = rejection("[{\"note\":\"\xc3\x28\"," + seed_record().substr(1) + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, OverlongUtf8EncodingIsInvalidJson) {
    problem const p = rejection("[" + record_with("src_app", "\"\xc0\xaf\"") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, LoneSurrogateEscapeInNameIsInvalidRecord) {
    problem const p = rejection("[" + record_with("src_app", R"("a\ud800b")") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_record);
    EXPECT_EQ(p.record, 0U);
    EXPECT_EQ(p.field, "src_app");
}

TEST(FlowJsonTest, LoneSurrogateEscapeInIgnoredFieldIsAccepted) {
    flow_batch const batch = accepted(R"([{"note":"\udc00",)" + seed_record().substr(1) + "]");

    EXPECT_EQ(batch.record_count(), 1U);
}

TEST(FlowJsonTest, TruncatedUnicodeEscapeInNameIsInvalidJson) {
    problem const p = rejection("[" + record_with("src_app", R"("a\ud8")") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, BadEscapeInNameIsInvalidJson) {
    problem const p = rejection("[" + record_with("src_app", R"("a\qb")") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, RawControlCharacterInStringIsInvalidJson) {
    problem const p = rejection("[" + record_with("src_app", "\"a\tb\"") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, IgnoresUnknownFields) {
    flow_batch const batch =
        accepted(R"([{"proto":"tcp","tags":{"a":[1,2.5,-3e4,{"b":null}],"c":true},)" +
                 seed_record().substr(1, seed_record().size() - 2) + R"(,"z":[]}])");

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record, (flow_record{"foo", "bar", "vpc-0", 1, {100, 300}}));
}

TEST(FlowJsonTest, IgnoredFieldMayHoldAnyValidNumber) {
    flow_batch const batch =
        accepted(R"([{"big":123456789012345678901234567890,"huge":1e400,"neg":-0.0e-7,)" +
                 seed_record().substr(1) + "]");

    EXPECT_EQ(batch.record_count(), 1U);
}

TEST(FlowJsonTest, IgnoredFieldWithBadLiteralIsInvalidJson) {
    problem const p = rejection(R"([{"flag":tru,)" + seed_record().substr(1) + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, IgnoredFieldWithBadNullIsInvalidJson) {
    problem const p = rejection(R"([{"flag":nul,)" + seed_record().substr(1) + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, IgnoredFieldWithTrailingCommaIsInvalidJson) {
    problem const p = rejection(R"([{"list":[1,2,],)" + seed_record().substr(1) + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, IgnoredFieldAfterKnownFieldsMustBeValid) {
    problem const p =
        rejection("[" + seed_record().substr(0, seed_record().size() - 1) + R"(,"x":{"a" 1}}])");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, WrongTypedFieldHoldingInvalidJsonIsInvalidJson) {
    problem const p = rejection("[" + record_with("bytes_tx", "[tru]") + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, NestingUpToMaxDepthIsAccepted) {
    decode_limits limits;
    limits.max_depth = 5;
    // array (1) > record (2) > three levels in an ignored field (3..5)
    std::string const body = R"([{"x":)" + nested_arrays(3) + "," + seed_record().substr(1) + "]";

    flow_batch const batch = accepted(body, body_format::json_array, limits);

    EXPECT_EQ(batch.record_count(), 1U);
}

TEST(FlowJsonTest, NestingPastMaxDepthInIgnoredFieldIsRejected) {
    decode_limits limits;
    limits.max_depth = 5;
    std::string const body = R"([{"x":)" + nested_arrays(4) + "," + seed_record().substr(1) + "]";

    problem const p = rejection(body, body_format::json_array, limits);

    EXPECT_EQ(p.type, problem_type::invalid_json);
    EXPECT_EQ(status_of(p.type), 400U);
}

TEST(FlowJsonTest, NestingPastDefaultMaxDepthIsRejected) {
    std::string const body = R"([{"x":)" + nested_arrays(100) + "," + seed_record().substr(1) + "]";

    problem const p = rejection(body);

    EXPECT_EQ(status_of(p.type), 400U);
}

TEST(FlowJsonTest, HugeNestingIsRejectedWithoutExhaustingTheStack) {
    std::string const body =
        R"([{"x":)" + nested_arrays(1'000'000) + "," + seed_record().substr(1) + "]";

    problem const p = rejection(body);

    EXPECT_EQ(status_of(p.type), 400U);
}

TEST(FlowJsonTest, DeepNestingInWrongTypedFieldIsRejected) {
    std::string const body = "[" + record_with("src_app", nested_arrays(1'000'000)) + "]";

    problem const p = rejection(body);

    EXPECT_EQ(status_of(p.type), 400U);
}

TEST(FlowJsonTest, DeepNestingAsRecordIsRejected) {
    problem const p = rejection("[" + nested_arrays(1'000'000) + "]");

    EXPECT_EQ(status_of(p.type), 400U);
}

TEST(FlowJsonTest, EmptyBodyIsInvalidJson) {
    problem const p = rejection("");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, WhitespaceBodyIsInvalidJson) {
    problem const p = rejection(" \n\t ");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, ObjectBodyIsInvalidJson) {
    problem const p = rejection(seed_record());

    EXPECT_EQ(p.type, problem_type::invalid_json);
    EXPECT_FALSE(p.record.has_value());
}

TEST(FlowJsonTest, ScalarBodyIsInvalidJson) {
    EXPECT_EQ(rejection("1").type, problem_type::invalid_json);
    EXPECT_EQ(rejection(R"("text")").type, problem_type::invalid_json);
    EXPECT_EQ(rejection("null").type, problem_type::invalid_json);
}

TEST(FlowJsonTest, TrailingContentAfterArrayIsInvalidJson) {
    EXPECT_EQ(rejection("[" + seed_record() + "] x").type, problem_type::invalid_json);
    EXPECT_EQ(rejection("[][]").type, problem_type::invalid_json);
    EXPECT_EQ(rejection("[" + seed_record() + "]]").type, problem_type::invalid_json);
    EXPECT_EQ(rejection("[" + seed_record() + "],").type, problem_type::invalid_json);
}

TEST(FlowJsonTest, TrailingWhitespaceAfterArrayIsAccepted) {
    flow_batch const batch = accepted("[" + seed_record() + "]\r\n\t ");

    EXPECT_EQ(batch.record_count(), 1U);
}

TEST(FlowJsonTest, UnterminatedArrayIsInvalidJson) {
    problem const p = rejection("[" + seed_record());

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, UnterminatedRecordIsInvalidJson) {
    problem const p = rejection("[" + seed_record().substr(0, seed_record().size() - 1) + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, RecordThatIsNotAnObjectIsInvalidRecordWithEmptyField) {
    problem const p = rejection("[" + seed_record() + ",[1,2]]");

    EXPECT_EQ(p.type, problem_type::invalid_record);
    EXPECT_EQ(p.record, 1U);
    EXPECT_EQ(p.field, "");
}

TEST(FlowJsonTest, ScalarRecordIsInvalidRecord) {
    problem const p = rejection(R"(["record"])");

    EXPECT_EQ(p.type, problem_type::invalid_record);
    EXPECT_EQ(p.record, 0U);
    EXPECT_EQ(p.field, "");
}

TEST(FlowJsonTest, MissingCommaBetweenRecordsIsInvalidJson) {
    problem const p = rejection("[" + seed_record() + " " + seed_record() + "]");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, MissingCommaBetweenFieldsIsInvalidJson) {
    problem const p = rejection(
        R"([{"src_app":"a" "dest_app":"b","vpc_id":"c","bytes_tx":1,"bytes_rx":1,"hour":1}])");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, MissingColonIsInvalidJson) {
    problem const p = rejection(
        R"([{"src_app" "a","dest_app":"b","vpc_id":"c","bytes_tx":1,"bytes_rx":1,"hour":1}])");

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, SyntaxErrorAfterABadRecordIsStillReported) {
    // The first fault in document order wins; here that is the record, not the JSON.
    problem const p = rejection("[" + record_with("hour", "-1") + ",{]");

    EXPECT_EQ(status_of(p.type), 400U);
}

TEST(FlowJsonTest, MoreThanMaxRecordsIsTooManyRecords) {
    decode_limits limits;
    limits.max_records = 2;

    problem const p =
        rejection("[" + seed_record() + "," + seed_record() + "," + seed_record() + "]",
                  body_format::json_array, limits);

    EXPECT_EQ(p.type, problem_type::too_many_records);
    EXPECT_EQ(status_of(p.type), 413U);
}

TEST(FlowJsonTest, ExactlyMaxRecordsIsAccepted) {
    decode_limits limits;
    limits.max_records = 2;

    flow_batch const batch =
        accepted("[" + seed_record() + "," + seed_record() + "]", body_format::json_array, limits);

    EXPECT_EQ(batch.record_count(), 2U);
}

TEST(FlowJsonTest, OverflowWithinBatchIsCounterOverflowNamingTheRecord) {
    std::string const body = "[" + seed_record() + "," +
                             record_with("bytes_tx", "9223372036854775807") + "," +
                             record_with("bytes_tx", "9223372036854775807") + "]";

    problem const p = rejection(body);

    EXPECT_EQ(p.type, problem_type::counter_overflow);
    EXPECT_EQ(status_of(p.type), 422U);
    EXPECT_EQ(p.record, 1U);
    EXPECT_EQ(p.field, "bytes_tx");
}

TEST(FlowJsonTest, RxOverflowWithinBatchNamesBytesRx) {
    std::string const body = "[" + record_with("bytes_rx", "9223372036854775000") + "," +
                             record_with("bytes_rx", "808") + "]";

    problem const p = rejection(body);

    EXPECT_EQ(p.type, problem_type::counter_overflow);
    EXPECT_EQ(p.record, 1U);
    EXPECT_EQ(p.field, "bytes_rx");
}

TEST(FlowJsonTest, SumExactlyAtMaxWithinBatchIsAccepted) {
    std::string const body = "[" + record_with("bytes_rx", "9223372036854775000") + "," +
                             record_with("bytes_rx", "807") + "]";

    flow_batch const batch = accepted(body);

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record.counters.bytes_rx, max_counter);
}

TEST(FlowJsonTest, EscapedAndPlainSpellingsOfANameAreOneKey) {
    std::string const body = "[" + record_with("src_app", R"("foo")") + "," +
                             record_with("src_app", R"("f\u006fo")") + "," +
                             record_with("src_app", R"("fo\u006f")") + "]";

    flow_batch const batch = accepted(body);

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record, (flow_record{"foo", "bar", "vpc-0", 1, {300, 900}}));
    EXPECT_EQ(batch.record_count(), 3U);
}

TEST(FlowJsonTest, NamesAroundSixteenBytesWithAndWithoutEscapes) {
    // The closing quote is looked for 16 bytes at a time: names of 15, 16 and 17 bytes, and
    // an escape before and after the 16th byte.
    std::string const n15(15, 'a');
    std::string const n16(16, 'b');
    std::string const n17(17, 'c');
    std::string const body = "[" + record_with("src_app", "\"" + n15 + "\"") + "," +
                             record_with("src_app", "\"" + n16 + "\"") + "," +
                             record_with("src_app", "\"" + n17 + "\"") + "," +
                             record_with("src_app", R"("0123456789\"bcdefghij")") + "," +
                             record_with("src_app", R"("0123456789abcdefghij\"k")") + "," +
                             record_with("src_app", R"("\\")") + "]";

    flow_batch const batch = accepted(body);

    ASSERT_EQ(batch.entries().size(), 6U);
    EXPECT_EQ(batch.entries()[0].record.src_app, n15);
    EXPECT_EQ(batch.entries()[1].record.src_app, n16);
    EXPECT_EQ(batch.entries()[2].record.src_app, n17);
    EXPECT_EQ(batch.entries()[3].record.src_app, "0123456789\"bcdefghij");
    EXPECT_EQ(batch.entries()[4].record.src_app, "0123456789abcdefghij\"k");
    EXPECT_EQ(batch.entries()[5].record.src_app, "\\");
}

TEST(FlowJsonTest, NameOf255PlainBytesIsAcceptedAnd256Rejected) {
    flow_batch const batch =
        accepted("[" + record_with("vpc_id", "\"" + std::string(255, 'v') + "\"") + "]");
    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record.vpc_id, std::string(255, 'v'));

    problem const p =
        rejection("[" + record_with("vpc_id", "\"" + std::string(256, 'v') + "\"") + "]");
    EXPECT_EQ(p.type, problem_type::invalid_record);
    EXPECT_EQ(p.field, "vpc_id");
}

TEST(FlowJsonTest, PlainKeysWithExtraFieldsAndWhitespace) {
    flow_batch const batch = accepted(
        R"([ { "hour" : 4 , "extra_field" : {"src_app": "x"}, "vpc_id" : "v" , "src_app" : "s" ,)"
        R"( "bytes_rx" : 2 , "dest_app" : "d" , "bytes_tx" : 1 , "hour_" : 1 } ])");

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record, (flow_record{"s", "d", "v", 4, {1, 2}}));
}

TEST(FlowJsonTest, IntegersPastTheLimitNameTheField) {
    for (std::string const value : {"9223372036854775808", "18446744073709551615",
                                    "18446744073709551616", "99999999999999999999999"}) {
        SCOPED_TRACE(value);
        problem const p = rejection("[" + record_with("bytes_tx", value) + "]");

        EXPECT_EQ(p.type, problem_type::invalid_record);
        EXPECT_EQ(p.record, 0U);
        EXPECT_EQ(p.field, "bytes_tx");
        EXPECT_NE(p.detail.find(value), std::string::npos) << p.detail;
    }
    problem const h = rejection("[" + record_with("hour", "2147483648") + "]");
    EXPECT_EQ(h.type, problem_type::invalid_record);
    EXPECT_EQ(h.field, "hour");
}

TEST(FlowJsonTest, NumberFollowedByAColonIsInvalidJson) {
    problem const p = rejection(
        R"([{"src_app":"a":1,"dest_app":"b","vpc_id":"c","bytes_tx":1,"bytes_rx":1,"hour":1}])");
    EXPECT_EQ(p.type, problem_type::invalid_json);

    problem const q = rejection(
        R"([{"src_app":"a","dest_app":"b","vpc_id":"c","bytes_tx":1:2,"bytes_rx":1,"hour":1}])");
    EXPECT_EQ(q.type, problem_type::invalid_json);
}

TEST(FlowJsonTest, OverflowNearTheLimitNamesTheRecordWhereTheSumPasses) {
    std::string const other = record_with("src_app", R"("other")");
    std::string const body = "[" + record_with("bytes_tx", "9223372036854775806") + "," + other +
                             "," + record_with("bytes_tx", "1") + "," + other + "," +
                             record_with("bytes_tx", "1") + "]";

    problem const p = rejection(body);

    EXPECT_EQ(p.type, problem_type::counter_overflow);
    EXPECT_EQ(p.record, 4U);
    EXPECT_EQ(p.field, "bytes_tx");
}

TEST(FlowJsonTest, AKeyRepeatedAcrossBatchesDecodesTheSameEachTime) {
    for (int i = 0; i < 3; ++i) {
        flow_batch const batch = accepted("[" + seed_record() + "," + seed_record() + "]");

        ASSERT_EQ(batch.entries().size(), 1U);
        EXPECT_EQ(batch.entries()[0].record, (flow_record{"foo", "bar", "vpc-0", 1, {200, 600}}));
    }
}

TEST(FlowJsonTest, ParserIsReusableAfterAnError) {
    (void)rejection("[" + record_with("hour", "x") + "]");

    flow_batch const batch = accepted("[" + seed_record() + "]");

    EXPECT_EQ(batch.record_count(), 1U);
}

TEST(FlowJsonTest, DecodesLargeBody) {
    std::string body = "[";
    for (int i = 0; i < 20'000; ++i) {
        if (i != 0) {
            body += ',';
        }
        body += record_with("src_app", "\"app-" + std::to_string(i % 100) + "\"");
    }
    body += ']';

    flow_batch const batch = accepted(body);

    EXPECT_EQ(batch.record_count(), 20'000U);
    EXPECT_EQ(batch.entries().size(), 100U);
}

// NDJSON

TEST(FlowJsonNdjsonTest, DecodesOneRecordPerLine) {
    flow_batch const batch =
        accepted(seed_record() + "\n" + record_with("hour", "2") + "\n", body_format::ndjson);

    EXPECT_EQ(batch.record_count(), 2U);
    EXPECT_EQ(batch.entries().size(), 2U);
}

TEST(FlowJsonNdjsonTest, LastLineNeedsNoNewline) {
    flow_batch const batch = accepted(seed_record() + "\n" + seed_record(), body_format::ndjson);

    EXPECT_EQ(batch.record_count(), 2U);
}

TEST(FlowJsonNdjsonTest, EmptyBodyIsAnEmptyBatch) {
    flow_batch const batch = accepted("", body_format::ndjson);

    EXPECT_TRUE(batch.empty());
}

TEST(FlowJsonNdjsonTest, SkipsBlankLines) {
    flow_batch const batch = accepted(
        "\n\n" + seed_record() + "\n   \n\t\n\r\n" + seed_record() + "\n\n", body_format::ndjson);

    EXPECT_EQ(batch.record_count(), 2U);
}

TEST(FlowJsonNdjsonTest, RecordIndexCountsNonBlankLines) {
    std::string const body =
        seed_record() + "\n\n\n" + seed_record() + "\n  \n" + record_with("bytes_tx", "-1") + "\n";

    problem const p = rejection(body, body_format::ndjson);

    EXPECT_EQ(p.type, problem_type::invalid_record);
    EXPECT_EQ(p.record, 2U);
    EXPECT_EQ(p.field, "bytes_tx");
}

TEST(FlowJsonNdjsonTest, AcceptsCrlfLines) {
    flow_batch const batch =
        accepted(seed_record() + "\r\n" + seed_record() + "\r\n", body_format::ndjson);

    EXPECT_EQ(batch.record_count(), 2U);
}

TEST(FlowJsonNdjsonTest, TwoObjectsOnOneLineAreInvalid) {
    problem const p = rejection(seed_record() + seed_record() + "\n", body_format::ndjson);

    EXPECT_EQ(status_of(p.type), 400U);
}

TEST(FlowJsonNdjsonTest, RecordSplitOverTwoLinesIsInvalidJson) {
    std::string const record = seed_record();
    std::string const body = record.substr(0, 20) + "\n" + record.substr(20) + "\n";

    problem const p = rejection(body, body_format::ndjson);

    EXPECT_EQ(p.type, problem_type::invalid_json);
    EXPECT_EQ(p.record, std::nullopt);
}

TEST(FlowJsonNdjsonTest, ArrayLineIsInvalidRecord) {
    problem const p = rejection(seed_record() + "\n[" + seed_record() + "]\n", body_format::ndjson);

    EXPECT_EQ(p.type, problem_type::invalid_record);
    EXPECT_EQ(p.record, 1U);
    EXPECT_EQ(p.field, "");
}

TEST(FlowJsonNdjsonTest, ScalarLineIsInvalidRecord) {
    problem const p = rejection("42\n", body_format::ndjson);

    EXPECT_EQ(p.type, problem_type::invalid_record);
    EXPECT_EQ(p.record, 0U);
}

TEST(FlowJsonNdjsonTest, InvalidUtf8LineIsInvalidJson) {
    problem const p = rejection(seed_record() + "\n" + record_with("vpc_id", "\"\xfe\"") + "\n",
                                body_format::ndjson);

    EXPECT_EQ(p.type, problem_type::invalid_json);
}

TEST(FlowJsonNdjsonTest, MoreThanMaxRecordsIsTooManyRecords) {
    decode_limits limits;
    limits.max_records = 2;

    problem const p =
        rejection(seed_record() + "\n\n" + seed_record() + "\n" + seed_record() + "\n",
                  body_format::ndjson, limits);

    EXPECT_EQ(p.type, problem_type::too_many_records);
}

TEST(FlowJsonNdjsonTest, BlankLinesDoNotCountTowardsMaxRecords) {
    decode_limits limits;
    limits.max_records = 2;

    flow_batch const batch = accepted("\n" + seed_record() + "\n\n\n" + seed_record() + "\n\n",
                                      body_format::ndjson, limits);

    EXPECT_EQ(batch.record_count(), 2U);
}

TEST(FlowJsonNdjsonTest, OverflowWithinBatchNamesTheRecord) {
    std::string const body = record_with("bytes_tx", "9223372036854775807") + "\n\n" +
                             record_with("bytes_tx", "1") + "\n";

    problem const p = rejection(body, body_format::ndjson);

    EXPECT_EQ(p.type, problem_type::counter_overflow);
    EXPECT_EQ(p.record, 1U);
    EXPECT_EQ(p.field, "bytes_tx");
}

TEST(FlowJsonNdjsonTest, DeepNestingIsRejected) {
    problem const p =
        rejection(R"({"x":)" + nested_arrays(1'000'000) + "," + seed_record().substr(1) + "\n",
                  body_format::ndjson);

    EXPECT_EQ(status_of(p.type), 400U);
}

// Encoding

TEST(FlowJsonEncodeTest, AppendsRecordInSpecShape) {
    std::string out;

    append_flow_json(out, "foo", "bar", "vpc-0", {300, 900}, 1);

    EXPECT_EQ(
        out,
        R"({"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":300,"bytes_rx":900,"hour":1})");
}

TEST(FlowJsonEncodeTest, AppendsLargestValues) {
    std::string out = "x";

    append_flow_json(out, "a", "b", "c", {max_counter, max_counter}, max_hour);

    EXPECT_EQ(out, R"(x{"src_app":"a","dest_app":"b","vpc_id":"c","bytes_tx":9223372036854775807,)"
                   R"("bytes_rx":9223372036854775807,"hour":2147483647})");
}

TEST(FlowJsonEncodeTest, EscapesOnlyQuoteBackslashAndControlCharacters) {
    std::string out;

    append_json_string(out, "a\"b\\c/d\x01\x1f\x7f\b\f\n\r\t\xc3\xa9");

    EXPECT_EQ(out, "\"a\\\"b\\\\c/d\\u0001\\u001f\x7f\\b\\f\\n\\r\\t\xc3\xa9\"");
}

// The encoder copies plain runs 8 bytes at a time; every byte value at every position of a
// name longer than two words must come out as the byte-at-a-time rule says.
TEST(FlowJsonEncodeTest, EveryByteAtEveryPositionIsEscapedAsByByte) {
    auto reference = [](std::string_view s) {
        std::string r = "\"";
        for (char const ch : s) {
            auto const c = static_cast<unsigned char>(ch);
            if (c == '"' || c == '\\') {
                r += '\\';
                r += ch;
            } else if (c < 0x20) {
                static constexpr std::array<char const*, 32> names = {
                    "u0000", "u0001", "u0002", "u0003", "u0004", "u0005", "u0006", "u0007",
                    "b",     "t",     "n",     "u000b", "f",     "r",     "u000e", "u000f",
                    "u0010", "u0011", "u0012", "u0013", "u0014", "u0015", "u0016", "u0017",
                    "u0018", "u0019", "u001a", "u001b", "u001c", "u001d", "u001e", "u001f"};
                r += '\\';
                r += names.at(c);
            } else {
                r += ch;
            }
        }
        return r + "\"";
    };
    for (int byte = 0; byte < 256; ++byte) {
        for (std::size_t at = 0; at < 20; ++at) {
            std::string name = "abcdefghijklmnopqrst";
            name[at] = static_cast<char>(byte);
            std::string out;

            append_json_string(out, name);

            ASSERT_EQ(out, reference(name)) << "byte " << byte << " at " << at;
        }
    }
}

TEST(FlowJsonEncodeTest, EscapesEmbeddedNul) {
    std::string out;

    append_json_string(out, std::string_view("a\0b", 3));

    EXPECT_EQ(out, "\"a\\u0000b\"");
}

TEST(FlowJsonEncodeTest, RowsOfTrickyNamesAndCountersAreTheJsonTheyMean) {
    std::string const names[] = {
        "", "plain", "q\"uote\\", std::string("ctl\x01\x1f\0x", 7), "\b\f\n\r\t", "\xe2\x82\xac"};
    for (std::string const& name : names) {
        for (std::uint64_t n :
             {std::uint64_t{0}, std::uint64_t{9}, std::uint64_t{10}, max_counter}) {
            std::string out;

            append_flow_json(out, name, "d", name, {n, n + 1},
                             static_cast<std::uint32_t>(n % 1000));

            nlohmann::json const row = nlohmann::json::parse(out);
            EXPECT_EQ(row, (nlohmann::json{{"src_app", name},
                                           {"dest_app", "d"},
                                           {"vpc_id", name},
                                           {"bytes_tx", n},
                                           {"bytes_rx", n + 1},
                                           {"hour", n % 1000}}))
                << out;
            EXPECT_EQ(out.rfind("{\"src_app\":", 0), 0U) << out;
        }
    }
}

TEST(FlowJsonEncodeTest, EncodedRecordDecodesToTheSameRecord) {
    std::string const tricky = std::string("s\"\\\x01\n\xc3\xa9", 7);
    std::string body = "[";
    append_flow_json(body, tricky, "d", "v", {5, 6}, 7);
    body += "]";

    flow_batch const batch = accepted(body);

    ASSERT_EQ(batch.entries().size(), 1U);
    EXPECT_EQ(batch.entries()[0].record, (flow_record{tricky, "d", "v", 7, {5, 6}}));
}

TEST(FlowJsonEncodeTest, NamesTheJsonImplementation) {
    EXPECT_FALSE(json_implementation().empty());
    EXPECT_TRUE(cpu_runs_json_implementation());
}

}  // namespace
}  // namespace flowd
