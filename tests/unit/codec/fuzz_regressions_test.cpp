// Replays every input the fuzz harnesses keep (the seed corpus in fuzz/corpus/ and the
// inputs that once made a harness abort, in tests/fuzz_regressions/) through the same
// checks the harnesses run (fuzz/checks.hpp): the codec answers each with a clean result
// or a SPEC problem, and agrees with the nlohmann-based reference.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "checks.hpp"

namespace flowd {
namespace {

namespace fs = std::filesystem;

// The files of fuzz/corpus/<harness>/ and tests/fuzz_regressions/<harness>/, sorted.
std::vector<fs::path> inputs(std::string const& harness) {
    std::vector<fs::path> out;
    for (char const* dir : {"fuzz/corpus/", "tests/fuzz_regressions/"}) {
        fs::path const root = fs::path(FLOWD_SOURCE_DIR) / (dir + harness);
        if (!fs::is_directory(root)) {
            continue;
        }
        for (auto const& entry : fs::directory_iterator(root)) {
            if (entry.is_regular_file()) {
                out.push_back(entry.path());
            }
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string read(fs::path const& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <typename Check>
void replay(std::string const& harness, Check check) {
    auto const files = inputs(harness);
    ASSERT_FALSE(files.empty()) << "no inputs for " << harness;
    for (auto const& f : files) {
        EXPECT_EQ(check(read(f)), "") << f;
    }
}

TEST(FuzzRegressionsTest, DecoderAnswersEveryKeptBodyAsSpecSays) {
    replay("flow_json", [](std::string const& in) { return fuzz::check_decode_all(in); });
}

TEST(FuzzRegressionsTest, GunzipThenDecoderAnswersEveryKeptBodyAsSpecSays) {
    replay("gzip", [](std::string const& in) { return fuzz::check_gunzip(in); });
}

TEST(FuzzRegressionsTest, QueryParserAnswersEveryKeptQueryAsSpecSays) {
    replay("query", [](std::string const& in) { return fuzz::check_query(in); });
}

// Found by the flow_json harness: simdjson 3.0's root get_bool()/is_null() refused these
// valid lines, so flowd answered invalid-json where the record is at fault.
TEST(FuzzRegressionsTest, NdjsonScalarLineWithTrailingWhitespaceIsAnInvalidRecord) {
    for (std::string body : {"false  \n", "false \t\r\n", "null\t\n", "null \n", "true   \n"}) {
        auto const result = decode_flows(body, body_format::ndjson, decode_limits{});
        ASSERT_FALSE(result) << body;
        EXPECT_EQ(result.error().type, problem_type::invalid_record) << result.error().detail;
        EXPECT_EQ(result.error().record, std::optional<std::size_t>(0));
    }
}

// The checks themselves must be able to fail, or the replay above proves nothing.
TEST(FuzzRegressionsTest, ChecksReportAViolation) {
    problem const wrong{problem_type::invalid_record, "detail", std::nullopt, "hour"};
    EXPECT_NE(fuzz::detail::check_problem(wrong, "test"), "");

    flow_batch batch;
    ASSERT_EQ(batch.add("a", "b", "c", 1, flow_counters{1, 2}, 0), flow_batch::add_status::ok);
    fuzz::detail::reference_batch other;
    EXPECT_NE(fuzz::detail::check_against(batch, other, 1, "test"), "");
}

}  // namespace
}  // namespace flowd
