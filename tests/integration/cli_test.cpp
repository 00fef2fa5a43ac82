#include <algorithm>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "server_fixture.hpp"

namespace flowd::test {
namespace {

std::size_t line_count(std::string const& text) {
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// Flags that keep a started flowd off fixed ports.
std::vector<std::string> with_free_ports(std::vector<std::string> args) {
    args.insert(args.begin(), {"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"});
    return args;
}

TEST(CliTest, HelpPrintsUsageToStdoutAndExitsZero) {
    auto r = run_flowd({"--help"});

    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("usage: flowd"), std::string::npos);
    EXPECT_NE(r.out.find("--listen"), std::string::npos);
    EXPECT_EQ(r.err, "");
}

TEST(CliTest, VersionPrintsVersionAndExitsZero) {
    auto r = run_flowd({"--version"});

    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.out.rfind("flowd ", 0), 0U) << r.out;
    EXPECT_EQ(line_count(r.out), 1U);
}

TEST(CliTest, UnknownFlagExitsTwoWithOneLineNamingIt) {
    auto r = run_flowd(with_free_ports({"--bogus-flag", "1"}));

    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(line_count(r.err), 1U) << r.err;
    EXPECT_NE(r.err.find("--bogus-flag"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
}

TEST(CliTest, BadFlagValueExitsTwoWithOneLineNamingIt) {
    for (std::vector<std::string> const& args : {std::vector<std::string>{"--threads", "0"},
                                                 std::vector<std::string>{"--log-level", "loud"},
                                                 std::vector<std::string>{"--listen", "127.0.0.1"},
                                                 std::vector<std::string>{"--threads"}}) {
        SCOPED_TRACE(args.front());

        auto r = run_flowd(args);

        EXPECT_EQ(r.exit_code, 2);
        EXPECT_EQ(line_count(r.err), 1U) << r.err;
        EXPECT_NE(r.err.find(args.front()), std::string::npos) << r.err;
    }
}

TEST(CliTest, BadEnvironmentValueExitsTwoWithOneLineNamingIt) {
    auto r = run_flowd(with_free_ports({}), {{"FLOWD_THREADS", "abc"}});

    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(line_count(r.err), 1U) << r.err;
    EXPECT_NE(r.err.find("FLOWD_THREADS"), std::string::npos) << r.err;
}

TEST(CliTest, UnknownConfigKeyExitsTwoWithOneLineNamingIt) {
    temp_dir dir;
    std::string const path = dir.write("flowd.yaml", "threads: 2\nno_such_key: 1\n");

    auto r = run_flowd(with_free_ports({"--config", path}));

    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(line_count(r.err), 1U) << r.err;
    EXPECT_NE(r.err.find("no_such_key"), std::string::npos) << r.err;
}

TEST(CliTest, BadConfigValueExitsTwo) {
    temp_dir dir;
    std::string const path = dir.write("flowd.yaml", "max_body_bytes: lots\n");

    auto r = run_flowd(with_free_ports({"--config", path}));

    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(line_count(r.err), 1U) << r.err;
    EXPECT_NE(r.err.find("max_body_bytes"), std::string::npos) << r.err;
}

TEST(CliTest, MissingConfigFileExitsTwo) {
    temp_dir dir;
    std::string const path = dir.path() + "/absent.yaml";

    auto flag = run_flowd(with_free_ports({"--config", path}));
    auto env = run_flowd(with_free_ports({}), {{"FLOWD_CONFIG", path}});

    EXPECT_EQ(flag.exit_code, 2);
    EXPECT_EQ(line_count(flag.err), 1U) << flag.err;
    EXPECT_NE(flag.err.find(path), std::string::npos) << flag.err;
    EXPECT_EQ(env.exit_code, 2);
    EXPECT_EQ(line_count(env.err), 1U) << env.err;
}

TEST(CliTest, ConfigPathThatIsADirectoryExitsTwoWithOneLine) {
    temp_dir dir;

    auto r = run_flowd(with_free_ports({"--config", dir.path()}));

    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(line_count(r.err), 1U) << r.err;
    EXPECT_NE(r.err.find(dir.path()), std::string::npos) << r.err;
}

TEST(CliTest, DuplicateConfigKeyExitsTwoNamingBothLines) {
    temp_dir dir;
    std::string const path = dir.write("flowd.yaml", "max_keys: 10\nthreads: 2\nmax_keys: 20\n");

    auto r = run_flowd(with_free_ports({"--config", path}));

    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(line_count(r.err), 1U) << r.err;
    EXPECT_NE(r.err.find("max_keys"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("line 1"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("line 3"), std::string::npos) << r.err;
}

TEST(CliTest, UnknownFlagWithoutAValueIsNamed) {
    for (std::vector<std::string> const& args :
         {std::vector<std::string>{"--bogus"}, std::vector<std::string>{"--bogus", "1"}}) {
        SCOPED_TRACE(args.size());

        auto r = run_flowd(with_free_ports(args));

        EXPECT_EQ(r.exit_code, 2);
        EXPECT_EQ(line_count(r.err), 1U) << r.err;
        EXPECT_NE(r.err.find("unknown flag --bogus"), std::string::npos) << r.err;
    }
}

// A typo in a variable name must not pass silently; the known ones (FLOWD_CONFIG and
// FLOWD_<KEY>) say nothing.
TEST(CliTest, UnknownFlowdVariableIsAWarningNamingIt) {
    temp_dir dir;
    std::string const path = dir.write("flowd.yaml", "threads: 2\n");

    flowd_process flowd(
        {}, {{"FLOWD_MAX_BODY_BYTE", "1000"}, {"FLOWD_CONFIG", path}, {"FLOWD_MAX_KEYS", "1000"}});

    std::string const log = flowd.log();
    EXPECT_NE(log.find("warning [app] environment variable FLOWD_MAX_BODY_BYTE "),
              std::string::npos)
        << log;
    EXPECT_EQ(log.find("environment variable FLOWD_CONFIG "), std::string::npos) << log;
    EXPECT_EQ(log.find("environment variable FLOWD_MAX_KEYS "), std::string::npos) << log;
}

TEST(CliTest, DataDirIsCreatedWithItsMissingParents) {
    temp_dir dir;
    std::string const data = dir.path() + "/a/b/data";

    flowd_process flowd({"--data-dir", data});

    http_client client{flowd.port()};
    EXPECT_EQ(client.post("/flows", seed_batch()).result_int(), 200U);
    EXPECT_TRUE(std::filesystem::is_directory(data));
}

TEST(CliTest, ConfigFileEnvironmentAndFlagsApplyInOrder) {
    temp_dir dir;
    // The file asks for 1000-byte bodies, the environment overrides it to 2000; the file's
    // max_keys (1) stands.
    std::string const path =
        dir.write("flowd.yaml", "max_body_bytes: 1000\nmax_keys: 1\nlisten: 127.0.0.1:1\n");
    flowd_process flowd(
        {"--config", path, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"},
        {{"FLOWD_MAX_BODY_BYTES", "2000"}}, false);
    http_client client{flowd.port()};
    std::string const record = flow_json("a", "b", "v", 1, 1, 1);
    std::string padded = "[" + record + std::string(1500 - record.size() - 2, ' ') + "]";

    auto big = client.post("/flows", padded);
    auto second_key = client.post("/flows", "[" + flow_json("c", "d", "v", 1, 1, 1) + "]");

    EXPECT_EQ(big.result_int(), 200U) << big.body();
    EXPECT_TRUE(is_problem(second_key, 507, "store-full"));
}

TEST(CliTest, PortInUseExitsOneWithOneLine) {
    flowd_process first;
    std::string const address = "127.0.0.1:" + std::to_string(first.port());

    auto r = run_flowd({"--listen", address, "--metrics-listen", "127.0.0.1:0"});

    EXPECT_EQ(r.exit_code, 1);
    std::size_t errors = 0;
    std::size_t pos = 0;
    while ((pos = r.err.find(" error ", pos)) != std::string::npos) {
        ++errors;
        ++pos;
    }
    EXPECT_EQ(errors, 1U) << r.err;
    EXPECT_NE(r.err.find(address), std::string::npos) << r.err;
    // The first one is unharmed.
    http_client client{first.port()};
    EXPECT_EQ(client.get("/healthz").result_int(), 200U);
}

TEST(CliTest, WarnsThatDataLivesInMemoryOnly) {
    flowd_process flowd;

    EXPECT_NE(flowd.log().find("memory only"), std::string::npos) << flowd.log();
}

// SECURITY.md: no tokens on a listener others can reach is said at start, and only then.
TEST(CliTest, WarnsWhenListeningBeyondLoopbackWithoutTokens) {
    flowd_process open_to_all({"--listen", "0.0.0.0:0", "--metrics-listen", "127.0.0.1:0"}, {},
                              false);
    EXPECT_TRUE(open_to_all.wait_log("is not on loopback")) << open_to_all.log();

    flowd_process loopback;
    EXPECT_EQ(loopback.log().find("is not on loopback"), std::string::npos) << loopback.log();
}

TEST(CliTest, LogsEachBoundAddress) {
    flowd_process flowd;

    EXPECT_NE(flowd.log().find("listening on 127.0.0.1:" + std::to_string(flowd.port())),
              std::string::npos);
    EXPECT_NE(flowd.log().find("listening on 127.0.0.1:" + std::to_string(flowd.metrics_port())),
              std::string::npos);
}

}  // namespace
}  // namespace flowd::test
