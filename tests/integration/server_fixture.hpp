#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/types.h>

namespace flowd::test {

using http_request = boost::beast::http::request<boost::beast::http::string_body>;
using http_response = boost::beast::http::response<boost::beast::http::string_body>;

// A real flowd process, started as an operator would (the built binary, port 0) in a temp
// directory; the ports come from its `listening on` log lines. Its stderr is collected in
// a file for tests to read. The destructor kills it if still running.
class flowd_process {
public:
    // `args` are appended after --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 unless
    // `default_listen` is false. `env` is added to a minimal environment.
    explicit flowd_process(std::vector<std::string> args = {},
                           std::map<std::string, std::string> env = {}, bool default_listen = true);
    ~flowd_process();
    flowd_process(flowd_process const&) = delete;
    flowd_process& operator=(flowd_process const&) = delete;

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] std::uint16_t metrics_port() const noexcept { return metrics_port_; }
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] std::string const& dir() const noexcept { return dir_; }

    void signal(int signo) const;
    // Waits for exit (bounded) and returns the exit code, or 128+signal.
    int wait_exit(std::chrono::milliseconds limit = std::chrono::seconds(20));
    // Everything flowd wrote to stderr so far.
    [[nodiscard]] std::string log() const;
    // Polls the log until it contains `needle` (bounded); true when it did.
    [[nodiscard]] bool wait_log(std::string const& needle,
                                std::chrono::milliseconds limit = std::chrono::seconds(10)) const;

private:
    pid_t pid_ = -1;
    std::string dir_;
    std::string log_path_;
    std::uint16_t port_ = 0;
    std::uint16_t metrics_port_ = 0;
    bool exited_ = false;
    int exit_code_ = -1;
};

// Runs a flowd binary to completion (for --help, bad flags): exit code, stdout, stderr.
struct run_result {
    int exit_code = -1;
    std::string out;
    std::string err;
};
run_result run_flowd(std::vector<std::string> const& args,
                     std::map<std::string, std::string> const& env = {});

// A synchronous Beast client on one keep-alive connection.
class http_client {
public:
    explicit http_client(std::uint16_t port, std::string host = "127.0.0.1");
    ~http_client();
    http_client(http_client const&) = delete;
    http_client& operator=(http_client const&) = delete;

    http_response send(http_request req);
    http_response get(std::string const& target,
                      std::map<std::string, std::string> const& headers = {});
    http_response post(std::string const& target, std::string body,
                       std::string content_type = "application/json",
                       std::map<std::string, std::string> const& headers = {});
    // Writes raw bytes, then reads `count` responses (pipelining).
    std::vector<http_response> raw(std::string const& bytes, std::size_t count);
    // Writes raw bytes and reads nothing (a request in pieces, or a 100-continue body).
    void write(std::string const& bytes);
    // Reads one response, a 1xx interim answer included.
    http_response read();
    // Reads one response, or nothing when the server closed the connection first.
    std::optional<http_response> try_read();

private:
    struct impl;
    impl* impl_;
};

// The SPEC's seed example body: five records over hours 1 and 2.
std::string seed_batch();

// One record as compact JSON in the wire order of SPEC (names are not escaped).
std::string flow_json(std::string const& src, std::string const& dest, std::string const& vpc,
                      std::uint64_t bytes_tx, std::uint64_t bytes_rx, std::uint32_t hour);

// Polls `done` until it is true or `limit` passes; true when it became true.
bool eventually(std::function<bool()> const& done,
                std::chrono::milliseconds limit = std::chrono::seconds(10));

// A raw request head ending with the blank line, e.g. for http_client::write.
std::string request_head(std::string const& method, std::string const& target,
                         std::map<std::string, std::string> const& headers);

// Checks an RFC 9457 answer: the status, Content-Type application/problem+json, `type` =
// https://flowd.invalid/problems/<slug>, `status`, a title and a detail, and `instance`
// equal to the X-Request-Id header.
::testing::AssertionResult is_problem(http_response const& r, unsigned status,
                                      std::string const& slug);

// One sample of a Prometheus text exposition: `name{labels} value`.
struct metric_sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

// Parses Prometheus text format 0.0.4; throws std::runtime_error on a line that is neither
// a comment, blank, nor `name{labels} value [timestamp]`.
std::vector<metric_sample> parse_metrics(std::string const& text);

// The value of the one sample named `name` whose labels include `labels`; nullopt if none.
std::optional<double> metric_value(std::vector<metric_sample> const& samples,
                                   std::string const& name,
                                   std::map<std::string, std::string> const& labels = {});

// A temporary directory, removed with its contents on destruction.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(temp_dir const&) = delete;
    temp_dir& operator=(temp_dir const&) = delete;

    [[nodiscard]] std::string const& path() const noexcept { return path_; }
    // Writes `content` to `name` inside the directory and returns the full path.
    std::string write(std::string const& name, std::string const& content) const;

private:
    std::string path_;
};

}  // namespace flowd::test
