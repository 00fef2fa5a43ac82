#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

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
    explicit flowd_process(std::vector<std::string> args = {}, std::map<std::string, std::string> env = {},
                           bool default_listen = true);
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
run_result run_flowd(std::vector<std::string> const& args, std::map<std::string, std::string> const& env = {});

// A synchronous Beast client on one keep-alive connection.
class http_client {
public:
    explicit http_client(std::uint16_t port, std::string host = "127.0.0.1");
    ~http_client();
    http_client(http_client const&) = delete;
    http_client& operator=(http_client const&) = delete;

    http_response send(http_request req);
    http_response get(std::string const& target, std::map<std::string, std::string> const& headers = {});
    http_response post(std::string const& target, std::string body,
                       std::string content_type = "application/json",
                       std::map<std::string, std::string> const& headers = {});
    // Writes raw bytes, then reads `count` responses (pipelining).
    std::vector<http_response> raw(std::string const& bytes, std::size_t count);

private:
    struct impl;
    impl* impl_;
};

// The SPEC's seed example body: five records over hours 1 and 2.
std::string seed_batch();

}  // namespace flowd::test
