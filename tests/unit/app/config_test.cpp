#include "flowd/app/config.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

namespace flowd {
namespace {

using env_map = std::map<std::string, std::string>;

// A YAML file in the temp directory, removed when the test ends.
class temp_yaml {
public:
    explicit temp_yaml(std::string const& text) {
        auto const* info = ::testing::UnitTest::GetInstance()->current_test_info();
        path_ = std::filesystem::temp_directory_path() /
                ("flowd-config-" + std::to_string(::getpid()) + "-" + info->name() + ".yaml");
        std::ofstream{path_} << text;
    }
    ~temp_yaml() { std::filesystem::remove(path_); }
    temp_yaml(temp_yaml const&) = delete;
    temp_yaml& operator=(temp_yaml const&) = delete;

    [[nodiscard]] std::string path() const { return path_.string(); }

private:
    std::filesystem::path path_;
};

config parse(std::vector<std::string> const& args, env_map const& env = {}) {
    return parse_command_line(args, env).cfg;
}

TEST(ConfigTest, DefaultsWithoutArguments) {
    command const cmd = parse_command_line({}, {});

    EXPECT_EQ(cmd.what, command::action::run);
    EXPECT_EQ(cmd.cfg.listen, "127.0.0.1:8080");
    EXPECT_EQ(cmd.cfg.metrics_listen, "127.0.0.1:9464");
    EXPECT_EQ(cmd.cfg.max_body_bytes, 16'777'216U);
    EXPECT_EQ(cmd.cfg.max_json_depth, 64U);
    EXPECT_EQ(cmd.cfg.max_keys, 50'000'000U);
    EXPECT_EQ(cmd.cfg.grace_period, std::chrono::seconds(10));
    EXPECT_TRUE(cmd.cfg.config_file.empty());
}

TEST(ConfigTest, FileOverridesDefaults) {
    temp_yaml const file{"listen: 0.0.0.0:1234\nmax_body_bytes: 1000\ngrace_period: 5s\n"};

    config const c = parse({"--config", file.path()});

    EXPECT_EQ(c.listen, "0.0.0.0:1234");
    EXPECT_EQ(c.max_body_bytes, 1000U);
    EXPECT_EQ(c.grace_period, std::chrono::seconds(5));
    EXPECT_EQ(c.config_file, file.path());
}

TEST(ConfigTest, EnvironmentOverridesFile) {
    temp_yaml const file{"listen: 0.0.0.0:1234\nthreads: 2\n"};

    config const c = parse({"--config", file.path()}, {{"FLOWD_LISTEN", "127.0.0.1:5555"}});

    EXPECT_EQ(c.listen, "127.0.0.1:5555");
    EXPECT_EQ(c.threads, 2U);
}

TEST(ConfigTest, FlagsOverrideEnvironmentAndFile) {
    temp_yaml const file{"listen: 0.0.0.0:1234\nlog_level: debug\n"};

    config const c = parse({"--listen", "127.0.0.1:7777", "--config", file.path()},
                           {{"FLOWD_LISTEN", "127.0.0.1:5555"}, {"FLOWD_LOG_LEVEL", "warn"}});

    EXPECT_EQ(c.listen, "127.0.0.1:7777");
    EXPECT_EQ(c.log_level, "warn");
}

TEST(ConfigTest, ConfigFileFromEnvironment) {
    temp_yaml const file{"threads: 3\n"};

    config const c = parse({}, {{"FLOWD_CONFIG", file.path()}});

    EXPECT_EQ(c.threads, 3U);
}

TEST(ConfigTest, ConfigFlagOverridesConfigEnvironment) {
    temp_yaml const file{"threads: 3\n"};

    config const c =
        parse({"--config=" + file.path()}, {{"FLOWD_CONFIG", "/nonexistent/flowd.yaml"}});

    EXPECT_EQ(c.threads, 3U);
}

TEST(ConfigTest, EveryTuningKeyHasAnEnvironmentVariable) {
    config const c = parse(
        {}, {{"FLOWD_MAX_KEYS", "42"}, {"FLOWD_STORE_SHARDS", "8"}, {"FLOWD_IDLE_TIMEOUT", "2m"}});

    EXPECT_EQ(c.max_keys, 42U);
    EXPECT_EQ(c.store_shards, 8U);
    EXPECT_EQ(c.idle_timeout, std::chrono::minutes(2));
}

TEST(ConfigTest, EmptyFileKeepsDefaults) {
    temp_yaml const file{"# nothing set\n"};

    config const c = parse({"--config", file.path()});

    EXPECT_EQ(c.listen, "127.0.0.1:8080");
}

TEST(ConfigTest, UnknownKeyInFileIsAnError) {
    temp_yaml const file{"listen: 127.0.0.1:1\nlisten_port: 80\n"};

    EXPECT_THROW((void)parse({"--config", file.path()}), config_error);
}

TEST(ConfigTest, UnknownKeyErrorNamesTheKey) {
    temp_yaml const file{"colour: blue\n"};

    try {
        (void)parse({"--config", file.path()});
        FAIL() << "no config_error";
    } catch (config_error const& e) {
        EXPECT_NE(std::string(e.what()).find("colour"), std::string::npos);
    }
}

TEST(ConfigTest, NestedValueInFileIsAnError) {
    temp_yaml const file{"listen:\n  host: 127.0.0.1\n"};

    EXPECT_THROW((void)parse({"--config", file.path()}), config_error);
}

TEST(ConfigTest, MalformedYamlIsAnError) {
    temp_yaml const file{"listen: [unclosed\n"};

    EXPECT_THROW((void)parse({"--config", file.path()}), config_error);
}

TEST(ConfigTest, MissingConfigFileIsAnError) {
    EXPECT_THROW((void)parse({"--config", "/nonexistent/dir/flowd.yaml"}), config_error);
}

// A directory opens as an ifstream but fails at the first read; that must be a
// config_error like any other unreadable path, not an exception main does not expect.
TEST(ConfigTest, DirectoryAsConfigFileIsAnErrorNamingIt) {
    std::string const dir = std::filesystem::temp_directory_path().string();

    try {
        (void)parse({"--config", dir});
        FAIL() << "no config_error";
    } catch (config_error const& e) {
        EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
    }
}

TEST(ConfigTest, DuplicateKeyInFileIsAnErrorNamingBothLines) {
    temp_yaml const file{"threads: 2\nlisten: 127.0.0.1:1\n# comment\nthreads: 4\n"};

    try {
        (void)parse({"--config", file.path()});
        FAIL() << "no config_error";
    } catch (config_error const& e) {
        std::string const what = e.what();
        EXPECT_NE(what.find("'threads'"), std::string::npos) << what;
        EXPECT_NE(what.find("line 1"), std::string::npos) << what;
        EXPECT_NE(what.find("line 4"), std::string::npos) << what;
    }
}

TEST(ConfigTest, UnknownFlowdVariableIsAWarningNamingIt) {
    command const cmd = parse_command_line({}, {{"FLOWD_MAX_BODY_BYTE", "10"}});

    ASSERT_EQ(cmd.warnings.size(), 1U);
    EXPECT_NE(cmd.warnings[0].find("FLOWD_MAX_BODY_BYTE"), std::string::npos) << cmd.warnings[0];
}

TEST(ConfigTest, KnownFlowdVariablesAreNoWarning) {
    temp_yaml const file{"threads: 2\n"};

    command const cmd = parse_command_line({}, {{"FLOWD_CONFIG", file.path()},
                                                {"FLOWD_MAX_BODY_BYTES", "10"},
                                                {"FLOWD_CLUSTER_MAX_AGE_HOURS", "1"},
                                                {"FLOWD_TRUNCATE_CORRUPT_LOG", "false"}});

    EXPECT_TRUE(cmd.warnings.empty()) << cmd.warnings.front();
}

TEST(ConfigTest, UnknownFlagIsNamedWithOrWithoutAValue) {
    for (std::vector<std::string> const& args :
         {std::vector<std::string>{"--bogus"}, std::vector<std::string>{"--bogus", "1"},
          std::vector<std::string>{"--bogus=1"}, std::vector<std::string>{"--bogus", "--threads"},
          std::vector<std::string>{"--threads", "2", "--bogus"}}) {
        SCOPED_TRACE(args.front());
        try {
            (void)parse(args);
            FAIL() << "no config_error";
        } catch (config_error const& e) {
            EXPECT_NE(std::string(e.what()).find("unknown flag --bogus"), std::string::npos)
                << e.what();
        }
    }
}

TEST(ConfigTest, FileOnlyKeyWithoutValueIsAnUnknownFlag) {
    try {
        (void)parse({"--max-body-bytes"});
        FAIL() << "no config_error";
    } catch (config_error const& e) {
        EXPECT_NE(std::string(e.what()).find("unknown flag --max-body-bytes"), std::string::npos)
            << e.what();
    }
}

// config/flowd.yaml documents every key (STYLE section 9), and its header names every key
// that is also a flag.
TEST(ConfigTest, ShippedConfigFileListsEveryKeyAndItsHeaderEveryFlag) {
    std::ifstream in{std::string(FLOWD_SOURCE_DIR) + "/config/flowd.yaml"};
    ASSERT_TRUE(in) << "config/flowd.yaml is missing";
    std::string header;
    std::vector<std::string> lines;
    bool in_header = true;
    for (std::string line; std::getline(in, line);) {
        in_header = in_header && !line.empty();
        if (in_header) {
            header += line + "\n";
        }
        lines.push_back(line);
    }

    for (config_key const& k : config_keys()) {
        SCOPED_TRACE(k.name);
        bool const listed = std::any_of(lines.begin(), lines.end(), [&](std::string const& l) {
            return l.rfind(k.name + ":", 0) == 0 || l.rfind("# " + k.name + ":", 0) == 0;
        });
        EXPECT_TRUE(listed) << "no '" << k.name << ":' line";
        if (k.is_flag) {
            EXPECT_TRUE(std::regex_search(header, std::regex("\\b" + k.name + "\\b"))) << header;
        }
    }
}

TEST(ConfigTest, ShippedConfigFileLoadsWhenPresent) {
    std::string const shipped = std::string(FLOWD_SOURCE_DIR) + "/config/flowd.yaml";
    if (!std::filesystem::exists(shipped)) {
        GTEST_SKIP() << "config/flowd.yaml is not in this tree yet";
    }

    config const c = parse({"--config", shipped});

    EXPECT_EQ(c.config_file, shipped);
}

TEST(ConfigTest, UnknownFlagIsAnError) {
    EXPECT_THROW((void)parse({"--colour", "blue"}), config_error);
}

TEST(ConfigTest, FileOnlyKeyIsNotAFlag) {
    EXPECT_THROW((void)parse({"--max-body-bytes", "10"}), config_error);
}

TEST(ConfigTest, FlagWithUnderscoreIsAnError) {
    EXPECT_THROW((void)parse({"--log_level", "debug"}), config_error);
}

TEST(ConfigTest, PositionalArgumentIsAnError) {
    EXPECT_THROW((void)parse({"serve"}), config_error);
}

TEST(ConfigTest, FlagWithoutValueIsAnError) {
    EXPECT_THROW((void)parse({"--listen"}), config_error);
}

TEST(ConfigTest, ListenWithEqualsForm) {
    config const c = parse({"--listen=127.0.0.1:0", "--metrics-listen=[::1]:9000"});

    EXPECT_EQ(c.listen, "127.0.0.1:0");
    EXPECT_EQ(c.metrics_listen, "[::1]:9000");
}

TEST(ConfigTest, BadDurationsAreErrors) {
    for (std::string const bad : {"10", "0s", "-1s", "1.5s", "10x", "ms", "10 s", ""}) {
        SCOPED_TRACE(bad);

        EXPECT_THROW((void)parse({}, {{"FLOWD_GRACE_PERIOD", bad}}), config_error);
    }
}

TEST(ConfigTest, DurationUnits) {
    config const c = parse({}, {{"FLOWD_GRACE_PERIOD", "250ms"},
                                {"FLOWD_HEADER_TIMEOUT", "3s"},
                                {"FLOWD_BODY_TIMEOUT", "2m"},
                                {"FLOWD_IDLE_TIMEOUT", "1h"}});

    EXPECT_EQ(c.grace_period, std::chrono::milliseconds(250));
    EXPECT_EQ(c.header_timeout, std::chrono::seconds(3));
    EXPECT_EQ(c.body_timeout, std::chrono::minutes(2));
    EXPECT_EQ(c.idle_timeout, std::chrono::hours(1));
}

TEST(ConfigTest, BadPortsAreErrors) {
    for (std::string const bad :
         {"127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1", ":8080",
          "::1:8080", "[::1]", "[::1]8080", "[::1:80"}) {
        SCOPED_TRACE(bad);

        EXPECT_THROW((void)parse({"--listen", bad}), config_error);
    }
}

TEST(ConfigTest, BadThreadsIsAnError) {
    EXPECT_THROW((void)parse({"--threads", "0"}), config_error);
    EXPECT_THROW((void)parse({"--threads", "four"}), config_error);
    EXPECT_THROW((void)parse({"--threads", "2x"}), config_error);
}

TEST(ConfigTest, BadLogLevelIsAnError) {
    EXPECT_THROW((void)parse({"--log-level", "verbose"}), config_error);
}

TEST(ConfigTest, StoreShardsMustBeAPowerOfTwo) {
    EXPECT_THROW((void)parse({}, {{"FLOWD_STORE_SHARDS", "3"}}), config_error);
    EXPECT_THROW((void)parse({}, {{"FLOWD_STORE_SHARDS", "0"}}), config_error);
    EXPECT_EQ(parse({}, {{"FLOWD_STORE_SHARDS", "1"}}).store_shards, 1U);
    EXPECT_EQ(parse({}, {{"FLOWD_STORE_SHARDS", "4096"}}).store_shards, 4096U);
}

TEST(ConfigTest, BadValueInFileIsAnError) {
    temp_yaml const file{"store_shards: 6\n"};

    EXPECT_THROW((void)parse({"--config", file.path()}), config_error);
}

TEST(ConfigTest, HelpAction) {
    EXPECT_EQ(parse_command_line({"--help"}, {}).what, command::action::help);
    EXPECT_EQ(parse_command_line({"-h"}, {}).what, command::action::help);
    EXPECT_NE(usage().find("--listen"), std::string::npos);
}

TEST(ConfigTest, VersionAction) {
    EXPECT_EQ(parse_command_line({"--version"}, {}).what, command::action::version);
}

TEST(ConfigTest, ParsesHostAndPort) {
    host_port const hp = parse_host_port("listen", "127.0.0.1:8080");

    EXPECT_EQ(hp.host, "127.0.0.1");
    EXPECT_EQ(hp.port, 8080U);
}

TEST(ConfigTest, ParsesBracketedIpv6) {
    host_port const hp = parse_host_port("listen", "[::1]:0");

    EXPECT_EQ(hp.host, "::1");
    EXPECT_EQ(hp.port, 0U);
}

TEST(ConfigTest, ParsesHostName) {
    host_port const hp = parse_host_port("listen", "localhost:65535");

    EXPECT_EQ(hp.host, "localhost");
    EXPECT_EQ(hp.port, 65535U);
}

TEST(ConfigTest, HostPortErrorNamesTheSetting) {
    try {
        (void)parse_host_port("--metrics-listen", "nope");
        FAIL() << "no config_error";
    } catch (config_error const& e) {
        EXPECT_NE(std::string(e.what()).find("--metrics-listen"), std::string::npos);
    }
}

TEST(ConfigTest, ClusterTakesNatsUrlsAndDefaultsNodeNameToTheHostName) {
    config const c = parse({"--cluster", "nats://127.0.0.1:4222,nats://h2:4223"});

    EXPECT_EQ(c.cluster, "nats://127.0.0.1:4222,nats://h2:4223");
    EXPECT_FALSE(c.node_name.empty());
    EXPECT_EQ(c.cluster_stream, "FLOWD");
    EXPECT_EQ(c.cluster_replicas, 3U);
    EXPECT_EQ(c.min_seq_wait, std::chrono::milliseconds(2'000));
}

TEST(ConfigTest, StreamLimitsAreOffByDefaultAndBounded) {
    config const off = parse({"--cluster", "nats://127.0.0.1:4222"});
    EXPECT_EQ(off.cluster_max_bytes, 0U);
    EXPECT_EQ(off.cluster_max_age_hours, 0U);
    config const on =
        parse({"--cluster", "nats://127.0.0.1:4222"},
              {{"FLOWD_CLUSTER_MAX_BYTES", "1073741824"}, {"FLOWD_CLUSTER_MAX_AGE_HOURS", "720"}});
    EXPECT_EQ(on.cluster_max_bytes, 1073741824U);
    EXPECT_EQ(on.cluster_max_age_hours, 720U);
    EXPECT_THROW((void)parse({}, {{"FLOWD_CLUSTER_MAX_AGE_HOURS", "-1"}}), config_error);
    EXPECT_THROW((void)parse({}, {{"FLOWD_CLUSTER_MAX_BYTES", "lots"}}), config_error);
}

TEST(ConfigTest, ClusterRefusesBadUrls) {
    EXPECT_THROW((void)parse({"--cluster", "http://127.0.0.1:4222"}), config_error);
    EXPECT_THROW((void)parse({"--cluster", "nats://127.0.0.1"}), config_error);
    EXPECT_THROW((void)parse({"--cluster", "nats://127.0.0.1:4222,"}), config_error);
}

TEST(ConfigTest, DataDirMustBeADirectoryWhenItExists) {
    EXPECT_EQ(parse({"--data-dir", "/tmp"}).data_dir, "/tmp");
    // Created at start when missing.
    EXPECT_EQ(parse({"--data-dir", "/tmp/flowd-no-such-dir-x"}).data_dir,
              "/tmp/flowd-no-such-dir-x");
    try {
        (void)parse({"--data-dir", "/etc/hostname"});
        FAIL() << "no config_error";
    } catch (config_error const& e) {
        EXPECT_NE(std::string(e.what()).find("not a directory"), std::string::npos) << e.what();
    }
}

TEST(ConfigTest, DurabilityKeys) {
    config const c = parse({"--truncate-corrupt-log", "--data-dir", "/tmp"},
                           {{"FLOWD_FSYNC", "always"},
                            {"FLOWD_FSYNC_INTERVAL", "250ms"},
                            {"FLOWD_RETENTION_HOURS", "48"},
                            {"FLOWD_IDEMPOTENCY_WINDOW", "2m"}});
    EXPECT_TRUE(c.truncate_corrupt_log);
    EXPECT_EQ(c.fsync, "always");
    EXPECT_EQ(c.fsync_interval, std::chrono::milliseconds(250));
    EXPECT_EQ(c.retention_hours, 48U);
    EXPECT_EQ(c.idempotency_window, std::chrono::minutes(2));
    EXPECT_FALSE(parse({"--truncate-corrupt-log=false"}).truncate_corrupt_log);
    EXPECT_THROW((void)parse({}, {{"FLOWD_FSYNC", "sometimes"}}), config_error);
    EXPECT_THROW((void)parse({"--truncate-corrupt-log=yes"}), config_error);
}

TEST(ConfigTest, UiKeyTurnsTheConsoleOff) {
    EXPECT_TRUE(parse({}).ui);
    EXPECT_FALSE(parse({}, {{"FLOWD_UI", "false"}}).ui);
    EXPECT_THROW((void)parse({}, {{"FLOWD_UI", "off"}}), config_error);
    EXPECT_THROW((void)parse({"--ui", "false"}), config_error);
}

TEST(ConfigTest, DescribeNamesEverySetting) {
    std::string const d = describe(config{});

    EXPECT_NE(d.find("listen=127.0.0.1:8080"), std::string::npos);
    EXPECT_NE(d.find("max_keys=50000000"), std::string::npos);
    EXPECT_NE(d.find("grace_period=10000ms"), std::string::npos);
}

TEST(ConfigTest, FlowExporterKeys) {
    config const c = parse({"--flow-listen", "[::]:2055"},
                           {{"FLOWD_APPS_FILE", "/etc/flowd/apps.yaml"},
                            {"FLOWD_FLOW_ALLOWED_EXPORTERS", "10.0.0.0/8, 2001:db8::/32"},
                            {"FLOWD_FLOW_BATCH_INTERVAL", "50ms"},
                            {"FLOWD_FLOW_BATCH_RECORDS", "500"},
                            {"FLOWD_FLOW_MAX_TEMPLATES", "8"}});

    EXPECT_EQ(c.flow_listen, "[::]:2055");
    EXPECT_EQ(c.apps_file, "/etc/flowd/apps.yaml");
    EXPECT_EQ(split_list(c.flow_allowed_exporters),
              (std::vector<std::string>{"10.0.0.0/8", "2001:db8::/32"}));
    EXPECT_EQ(c.flow_batch_interval, std::chrono::milliseconds(50));
    EXPECT_EQ(c.flow_batch_records, 500U);
    EXPECT_EQ(c.flow_max_templates, 8U);
    EXPECT_EQ(config{}.flow_batch_interval, std::chrono::milliseconds(200));
    EXPECT_EQ(config{}.flow_batch_records, 10'000U);
    EXPECT_TRUE(config{}.flow_listen.empty());
}

TEST(ConfigTest, FlowAllowedExportersNamesABadPrefix) {
    try {
        (void)parse({}, {{"FLOWD_FLOW_ALLOWED_EXPORTERS", "10.0.0.0/8,10.1.2.3/16"}});
        FAIL() << "no config_error";
    } catch (config_error const& e) {
        EXPECT_NE(std::string(e.what()).find("'10.1.2.3/16' has bits set past its length"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_THROW((void)parse({"--flow-listen", "2055"}), config_error);
    EXPECT_THROW((void)parse({}, {{"FLOWD_FLOW_MAX_EXPORTERS", "0"}}), config_error);
}

}  // namespace
}  // namespace flowd
