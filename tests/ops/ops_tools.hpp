#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/types.h>

#include "../integration/server_fixture.hpp"

// Helpers for the operators' kit tests: run the real tools (promtool, prometheus,
// systemd-analyze) found on PATH. A missing tool is a failure, never a skip:
// scripts/install-deps.sh installs them.
namespace flowd::test {

// The repository root (for deploy/ and config/ files).
std::string source_path(std::string const& relative);
std::string read_text(std::string const& path);

struct tool_result {
    int exit_code = -1;  // 128+signal when killed; -1 when it could not be started
    std::string out;
    std::string err;
    std::string spawn_error;  // why it could not be started (e.g. not on PATH)
    [[nodiscard]] std::string describe() const;
};

// Runs `argv` (argv[0] searched on PATH) to completion with `stdin_text` as its input; kills
// it after `limit`.
tool_result run_tool(std::vector<std::string> const& argv, std::string const& stdin_text = {},
                     std::chrono::seconds limit = std::chrono::seconds(60));

// A long-running child (argv[0] searched on PATH), stdout+stderr into one log file in
// `dir`. The destructor sends SIGTERM, waits (bounded), then SIGKILL.
class child_process {
public:
    child_process(std::vector<std::string> const& argv, std::string const& dir);
    ~child_process();
    child_process(child_process const&) = delete;
    child_process& operator=(child_process const&) = delete;

    // False once it exited (reaps it).
    bool running();
    [[nodiscard]] std::string log() const;

private:
    pid_t pid_ = -1;
    bool exited_ = false;
    std::string log_path_;
};

// A loopback port that was free a moment ago (bound to port 0, then closed): for tools that
// cannot take port 0 themselves.
std::uint16_t pick_free_port();

// Debian's real Prometheus on 127.0.0.1 with its own temporary storage, scraping every second
// the targets given in `scrape_configs_yaml` (the YAML list under scrape_configs:).
class prometheus_server {
public:
    explicit prometheus_server(std::string const& scrape_configs_yaml);

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    // GET /api/v1/query?query=<expr>; the parsed JSON answer (status success or error).
    nlohmann::json query(std::string const& expr);
    [[nodiscard]] std::string log() const { return process_ ? process_->log() : std::string{}; }

private:
    temp_dir dir_;
    std::uint16_t port_ = 0;
    std::unique_ptr<child_process> process_;
};

// Grafana's variables replaced by what Prometheus accepts ($__rate_interval -> 1m ...).
// Throws std::runtime_error naming a variable it does not know.
std::string substitute_grafana_variables(std::string const& expr);

// The metric names a PromQL expression selects (not functions, aggregations, keywords,
// label names or label values).
std::set<std::string> promql_metric_names(std::string const& expr);

}  // namespace flowd::test
