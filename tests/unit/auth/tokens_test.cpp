#include "flowd/auth/tokens.hpp"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

namespace flowd {
namespace {

std::string hash_line(std::string const& name, std::string const& scopes,
                      std::string const& token) {
    return name + " " + scopes + " sha256:" + to_hex(sha256(token));
}

TEST(TokensTest, Sha256MatchesTheStandardTestVector) {
    // FIPS 180-2, appendix B.1.
    EXPECT_EQ(to_hex(sha256("abc")),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(to_hex(sha256("")),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(TokensTest, ParsesLinesSkippingBlanksAndComments) {
    std::string const text = "# exporters\n\n" + hash_line("exporter-1", "write", "t1") +
                             "\n   \n\t" + hash_line("grafana", "read", "t2") + "  \n" +
                             hash_line("admin", "write,read", "t3");

    token_set const set = token_set::parse(text, "tokens");

    ASSERT_EQ(set.size(), 3U);
    token_entry const* e1 = set.find("t1");
    ASSERT_NE(e1, nullptr);
    EXPECT_EQ(e1->name, "exporter-1");
    EXPECT_TRUE(e1->allows(token_scope::write));
    EXPECT_FALSE(e1->allows(token_scope::read));
    token_entry const* e2 = set.find("t2");
    ASSERT_NE(e2, nullptr);
    EXPECT_EQ(e2->name, "grafana");
    EXPECT_TRUE(e2->allows(token_scope::read));
    EXPECT_FALSE(e2->allows(token_scope::write));
    token_entry const* e3 = set.find("t3");
    ASSERT_NE(e3, nullptr);
    EXPECT_TRUE(e3->allows(token_scope::read));
    EXPECT_TRUE(e3->allows(token_scope::write));
    EXPECT_EQ(set.find("t4"), nullptr);
    EXPECT_EQ(set.find(""), nullptr);
}

TEST(TokensTest, AcceptsCrLfLineEndsAndUpperCaseHex) {
    std::string hex = to_hex(sha256("tok"));
    for (char& c : hex) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }

    token_set const set = token_set::parse("a read sha256:" + hex + "\r\n", "tokens");

    ASSERT_NE(set.find("tok"), nullptr);
}

TEST(TokensTest, EmptyFileIsAnEmptySet) {
    EXPECT_EQ(token_set::parse("", "f").size(), 0U);
    EXPECT_EQ(token_set::parse("# nothing yet\n\n", "f").size(), 0U);
}

TEST(TokensTest, BadLinesNameFileAndLine) {
    std::string const good = hash_line("ok", "read", "x");
    struct bad_case {
        std::string line;
        std::string why;
    };
    for (bad_case const& c : {
             bad_case{"only-a-name", "expected"},
             bad_case{"a read", "expected"},
             bad_case{"a read sha256:" + to_hex(sha256("y")) + " extra", "expected"},
             bad_case{"a admin sha256:" + to_hex(sha256("y")), "scopes"},
             bad_case{"a read,read sha256:" + to_hex(sha256("y")), "scopes"},
             bad_case{"a read, sha256:" + to_hex(sha256("y")), "scopes"},
             bad_case{"a read md5:" + to_hex(sha256("y")), "sha256:"},
             bad_case{"a read sha256:abc", "sha256:"},
             bad_case{"a read sha256:" + std::string(64, 'g'), "sha256:"},
             bad_case{"a read plaintext-token", "sha256:"},
             bad_case{"bad/name read sha256:" + to_hex(sha256("y")), "name"},
             bad_case{std::string(65, 'n') + " read sha256:" + to_hex(sha256("y")), "name"},
             bad_case{hash_line("dup", "read", "x"), "same token hash"},
         }) {
        SCOPED_TRACE(c.line);
        try {
            (void)token_set::parse("# header\n" + good + "\n" + c.line + "\n", "/etc/flowd/tokens");
            ADD_FAILURE() << "no error";
        } catch (token_file_error const& e) {
            std::string const what = e.what();
            EXPECT_EQ(what.rfind("/etc/flowd/tokens:3: ", 0), 0U) << what;
            EXPECT_NE(what.find(c.why), std::string::npos) << what;
        }
    }
}

TEST(TokensTest, SameNameTwiceIsAllowedForRotation) {
    token_set const set = token_set::parse(
        hash_line("exporter", "write", "old") + "\n" + hash_line("exporter", "write", "new"), "f");

    ASSERT_NE(set.find("old"), nullptr);
    ASSERT_NE(set.find("new"), nullptr);
    EXPECT_EQ(set.find("old")->name, set.find("new")->name);
}

TEST(TokensTest, MissingFileIsAnError) {
    EXPECT_THROW((void)token_set::load("/nonexistent/flowd/tokens"), token_file_error);
}

TEST(TokensTest, ScopesParseAndPrint) {
    EXPECT_EQ(parse_scopes("read"), 1U);
    EXPECT_EQ(parse_scopes("write"), 2U);
    EXPECT_EQ(parse_scopes("read,write"), 3U);
    EXPECT_EQ(parse_scopes("write,read"), 3U);
    for (char const* bad : {"", ",", "read,", "Read", "read write", "read,write,read", "all"}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(parse_scopes(bad), 0U);
    }
    EXPECT_EQ(scopes_text(3), "read,write");
    EXPECT_EQ(scopes_text(2), "write");
    EXPECT_EQ(scopes_text(1), "read");
}

TEST(TokensTest, BearerSchemeIsCaseInsensitive) {
    for (char const* v :
         {"Bearer abc", "bearer abc", "BEARER abc", "BeArEr   abc", " Bearer abc "}) {
        SCOPED_TRACE(v);
        bearer_credentials const c = parse_bearer(v);
        EXPECT_EQ(c.what, bearer_credentials::kind::token);
        EXPECT_EQ(c.token, "abc");
    }
}

TEST(TokensTest, MalformedAuthorizationValues) {
    for (char const* v : {"", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearerabc", "Bearer a b",
                          "Bearer a\"b", "Bearer ===", "Token abc"}) {
        SCOPED_TRACE(v);
        EXPECT_EQ(parse_bearer(v).what, bearer_credentials::kind::malformed);
    }
    EXPECT_EQ(parse_bearer("Bearer a-._~+/b==").what, bearer_credentials::kind::token);
}

TEST(TokensTest, GeneratedTokensAreFreshBase64Url) {
    std::set<std::string> seen;
    for (int i = 0; i < 100; ++i) {
        std::string const t = generate_token();
        EXPECT_EQ(t.rfind("flowd_", 0), 0U) << t;
        EXPECT_EQ(t.size(), 6U + 43U) << t;
        EXPECT_EQ(t.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789-_",
                                      6),
                  std::string::npos)
            << t;
        EXPECT_EQ(parse_bearer("Bearer " + t).what, bearer_credentials::kind::token);
        seen.insert(t);
    }
    EXPECT_EQ(seen.size(), 100U);
}

TEST(TokensTest, FileLineOfATokenFindsIt) {
    std::string const token = generate_token();
    std::string const line = token_file_line("exporter-7", 3, token);

    token_set const set = token_set::parse(line + "\n", "f");

    EXPECT_EQ(line.find(token), std::string::npos) << "the line must not hold the token";
    ASSERT_NE(set.find(token), nullptr);
    EXPECT_EQ(set.find(token)->name, "exporter-7");
    EXPECT_EQ(set.find(token)->scopes, 3U);
}

TEST(TokensTest, StoreSnapshotOutlivesReplace) {
    token_store store{token_set::parse(hash_line("a", "read", "one"), "f")};
    std::shared_ptr<token_set const> const before = store.snapshot();

    store.replace(token_set::parse(hash_line("b", "read", "two"), "f"));

    ASSERT_NE(before->find("one"), nullptr);
    EXPECT_EQ(before->find("one")->name, "a");
    EXPECT_EQ(store.snapshot()->find("one"), nullptr);
    EXPECT_NE(store.snapshot()->find("two"), nullptr);
    EXPECT_EQ(token_store{}.snapshot(), nullptr);
}

// A tokens file at `mode`, removed when the test ends.
class temp_tokens_file {
public:
    temp_tokens_file(std::string const& text, ::mode_t mode) {
        auto const* info = ::testing::UnitTest::GetInstance()->current_test_info();
        path_ = (std::filesystem::temp_directory_path() /
                 ("flowd-tokens-" + std::to_string(::getpid()) + "-" + info->name()))
                    .string();
        std::ofstream{path_} << text;
        ::chmod(path_.c_str(), mode);
    }
    ~temp_tokens_file() { std::filesystem::remove(path_); }
    temp_tokens_file(temp_tokens_file const&) = delete;
    temp_tokens_file& operator=(temp_tokens_file const&) = delete;

    [[nodiscard]] std::string const& path() const { return path_; }

private:
    std::string path_;
};

TEST(TokensFileWarningsTest, PrivateFileWithTokensHasNone) {
    temp_tokens_file const file{hash_line("a", "read", "t1") + "\n", 0600};

    auto const warnings = token_file_warnings(file.path(), token_set::load(file.path()));

    EXPECT_TRUE(warnings.empty()) << warnings.front();
}

TEST(TokensFileWarningsTest, FileWithoutTokensSaysEveryRequestIsRefused) {
    temp_tokens_file const file{"# nobody yet\n\n", 0600};

    auto const warnings = token_file_warnings(file.path(), token_set::load(file.path()));

    ASSERT_EQ(warnings.size(), 1U);
    EXPECT_NE(warnings[0].find(file.path()), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find("no tokens"), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find("401"), std::string::npos) << warnings[0];
}

TEST(TokensFileWarningsTest, GroupOrWorldReadableFileIsAWarning) {
    for (::mode_t const mode : std::initializer_list<::mode_t>{0640, 0604, 0660}) {
        SCOPED_TRACE(mode);
        temp_tokens_file const file{hash_line("a", "read", "t1") + "\n", mode};

        auto const warnings = token_file_warnings(file.path(), token_set::load(file.path()));

        ASSERT_EQ(warnings.size(), 1U);
        EXPECT_NE(warnings[0].find(file.path()), std::string::npos) << warnings[0];
        EXPECT_NE(warnings[0].find("chmod 600"), std::string::npos) << warnings[0];
    }
}

}  // namespace
}  // namespace flowd
