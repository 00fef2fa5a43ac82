#include "server_fixture.hpp"

#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace flowd::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

namespace {

std::string read_file(std::string const& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string make_temp_dir() {
    char tmpl[] = "/tmp/flowd-test-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    return tmpl;
}

// Spawns FLOWD_BINARY with stdout/stderr redirected to files, in `dir`.
pid_t spawn(std::vector<std::string> const& args, std::map<std::string, std::string> const& env,
            std::string const& dir, std::string const& out_path, std::string const& err_path) {
    std::vector<std::string> argv_s{FLOWD_BINARY};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    // A minimal environment: PATH plus what the test asks for (no stray FLOWD_*).
    std::vector<std::string> env_s{"PATH=/usr/bin:/bin"};
    for (auto const& [k, v] : env) {
        env_s.push_back(k + "=" + v);
    }
    if (char const* asan = std::getenv("ASAN_OPTIONS")) {
        env_s.push_back(std::string("ASAN_OPTIONS=") + asan);
    }
    if (char const* ubsan = std::getenv("UBSAN_OPTIONS")) {
        env_s.push_back(std::string("UBSAN_OPTIONS=") + ubsan);
    }
    if (char const* tsan = std::getenv("TSAN_OPTIONS")) {
        env_s.push_back(std::string("TSAN_OPTIONS=") + tsan);
    }
    std::vector<char*> envp;
    for (auto& e : env_s) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
    pid_t pid = -1;
    int const rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        throw std::runtime_error("posix_spawn failed");
    }
    return pid;
}

int decode_status(int status) {
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return -1;
}

}  // namespace

flowd_process::flowd_process(std::vector<std::string> args, std::map<std::string, std::string> env,
                             bool default_listen)
    : dir_(make_temp_dir()), log_path_(dir_ + "/flowd.log") {
    std::vector<std::string> all;
    if (default_listen) {
        all = {"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"};
    }
    all.insert(all.end(), args.begin(), args.end());
    pid_ = spawn(all, env, dir_, dir_ + "/flowd.out", log_path_);
    std::regex const http_re(R"(http listening on \S+:(\d+))");
    std::regex const metrics_re(R"(metrics listening on \S+:(\d+))");
    auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
        std::string const text = log();
        std::smatch m;
        if (port_ == 0 && std::regex_search(text, m, http_re)) {
            port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
        }
        if (metrics_port_ == 0 && std::regex_search(text, m, metrics_re)) {
            metrics_port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
        }
        if (port_ != 0 && metrics_port_ != 0 && text.find("ready") != std::string::npos) {
            return;
        }
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            exited_ = true;
            exit_code_ = decode_status(status);
            throw std::runtime_error("flowd exited with " + std::to_string(exit_code_) +
                                     " at start: " + text);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw std::runtime_error("flowd did not log its listeners within 20 s: " + log());
}

flowd_process::~flowd_process() {
    if (!exited_ && pid_ > 0) {
        kill(pid_, SIGKILL);
        int status = 0;
        waitpid(pid_, &status, 0);
    }
    std::string const cmd = "rm -rf '" + dir_ + "'";
    [[maybe_unused]] int const rc = std::system(cmd.c_str());
}

void flowd_process::signal(int signo) const {
    kill(pid_, signo);
}

int flowd_process::wait_exit(std::chrono::milliseconds limit) {
    if (exited_) {
        return exit_code_;
    }
    auto const deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            exited_ = true;
            exit_code_ = decode_status(status);
            return exit_code_;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw std::runtime_error("flowd did not exit in time");
}

std::string flowd_process::log() const {
    return read_file(log_path_);
}

bool flowd_process::wait_log(std::string const& needle, std::chrono::milliseconds limit) const {
    return eventually([&] { return log().find(needle) != std::string::npos; }, limit);
}

run_result run_flowd(std::vector<std::string> const& args,
                     std::map<std::string, std::string> const& env) {
    std::string const dir = make_temp_dir();
    pid_t const pid = spawn(args, env, dir, dir + "/out", dir + "/err");
    run_result r;
    auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            r.exit_code = decode_status(status);
            break;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            r.exit_code = -1;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    r.out = read_file(dir + "/out");
    r.err = read_file(dir + "/err");
    std::string const cmd = "rm -rf '" + dir + "'";
    [[maybe_unused]] int const rc = std::system(cmd.c_str());
    return r;
}

struct http_client::impl {
    net::io_context ioc;
    beast::tcp_stream stream{ioc};
    beast::flat_buffer buffer;
    std::string host;
};

http_client::http_client(std::uint16_t port, std::string host) : impl_(nullptr) {
    // Owned by a unique_ptr until connected: a refused connection throws without a leak.
    auto owner = std::make_unique<impl>();
    owner->host = host;
    net::ip::tcp::endpoint ep{net::ip::make_address(host), port};
    owner->stream.expires_after(std::chrono::seconds(30));
    owner->stream.connect(ep);
    impl_ = owner.release();
}

http_client::~http_client() {
    beast::error_code ec;
    impl_->stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
    delete impl_;
}

http_response http_client::send(http_request req) {
    if (req[http::field::host].empty()) {
        req.set(http::field::host, impl_->host);
    }
    req.prepare_payload();
    impl_->stream.expires_after(std::chrono::seconds(30));
    http::write(impl_->stream, req);
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ULL << 32);
    http::read(impl_->stream, impl_->buffer, parser);
    return parser.release();
}

http_response http_client::get(std::string const& target,
                               std::map<std::string, std::string> const& headers) {
    http_request req{http::verb::get, target, 11};
    for (auto const& [k, v] : headers) {
        req.set(k, v);
    }
    return send(std::move(req));
}

http_response http_client::post(std::string const& target, std::string body,
                                std::string content_type,
                                std::map<std::string, std::string> const& headers) {
    http_request req{http::verb::post, target, 11};
    if (!content_type.empty()) {
        req.set(http::field::content_type, content_type);
    }
    for (auto const& [k, v] : headers) {
        req.set(k, v);
    }
    req.body() = std::move(body);
    return send(std::move(req));
}

std::vector<http_response> http_client::raw(std::string const& bytes, std::size_t count) {
    impl_->stream.expires_after(std::chrono::seconds(30));
    net::write(impl_->stream, net::buffer(bytes));
    std::vector<http_response> out;
    for (std::size_t i = 0; i < count; ++i) {
        http::response_parser<http::string_body> parser;
        parser.body_limit(1ULL << 32);
        http::read(impl_->stream, impl_->buffer, parser);
        out.push_back(parser.release());
    }
    return out;
}

void http_client::write(std::string const& bytes) {
    impl_->stream.expires_after(std::chrono::seconds(30));
    net::write(impl_->stream, net::buffer(bytes));
}

http_response http_client::read() {
    impl_->stream.expires_after(std::chrono::seconds(30));
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ULL << 32);
    http::read(impl_->stream, impl_->buffer, parser);
    return parser.release();
}

std::optional<http_response> http_client::try_read() {
    impl_->stream.expires_after(std::chrono::seconds(30));
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ULL << 32);
    beast::error_code ec;
    http::read(impl_->stream, impl_->buffer, parser, ec);
    if (ec == http::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::connection_reset) {
        return std::nullopt;
    }
    if (ec) {
        throw beast::system_error(ec);
    }
    return parser.release();
}

std::string flow_json(std::string const& src, std::string const& dest, std::string const& vpc,
                      std::uint64_t bytes_tx, std::uint64_t bytes_rx, std::uint32_t hour) {
    return R"({"src_app":")" + src + R"(","dest_app":")" + dest + R"(","vpc_id":")" + vpc +
           R"(","bytes_tx":)" + std::to_string(bytes_tx) + R"(,"bytes_rx":)" +
           std::to_string(bytes_rx) + R"(,"hour":)" + std::to_string(hour) + "}";
}

bool eventually(std::function<bool()> const& done, std::chrono::milliseconds limit) {
    auto const deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        if (done()) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

std::string request_head(std::string const& method, std::string const& target,
                         std::map<std::string, std::string> const& headers) {
    std::string out = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (auto const& [k, v] : headers) {
        out += k + ": " + v + "\r\n";
    }
    return out + "\r\n";
}

::testing::AssertionResult is_problem(http_response const& r, unsigned status,
                                      std::string const& slug) {
    auto fail = [&](std::string const& why) {
        return ::testing::AssertionFailure()
               << why << "; status " << r.result_int() << ", body " << r.body();
    };
    if (r.result_int() != status) {
        return fail("status is not " + std::to_string(status));
    }
    if (r[http::field::content_type] != "application/problem+json") {
        return fail("Content-Type is '" + std::string(r[http::field::content_type]) + "'");
    }
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(r.body());
    } catch (nlohmann::json::exception const& e) {
        return fail(std::string("body is not JSON: ") + e.what());
    }
    if (!j.is_object() || j.value("type", "") != "https://flowd.invalid/problems/" + slug) {
        return fail("type is not the '" + slug + "' slug");
    }
    if (!j.contains("status") || j["status"] != status) {
        return fail("`status` member differs");
    }
    if (!j.contains("title") || !j["title"].is_string() || j["title"].get<std::string>().empty()) {
        return fail("no title");
    }
    if (!j.contains("detail") || !j["detail"].is_string() ||
        j["detail"].get<std::string>().empty()) {
        return fail("no detail");
    }
    std::string const id(r["X-Request-Id"]);
    if (id.empty() || j.value("instance", "") != id) {
        return fail("instance is not the X-Request-Id '" + id + "'");
    }
    return ::testing::AssertionSuccess();
}

std::vector<metric_sample> parse_metrics(std::string const& text) {
    std::vector<metric_sample> out;
    std::istringstream in(text);
    std::string line;
    static std::regex const sample_re(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$)");
    static std::regex const label_re(R"re(^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?)re");
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        std::smatch m;
        if (!std::regex_match(line, m, sample_re)) {
            throw std::runtime_error("not a metrics line: " + line);
        }
        metric_sample s;
        s.name = m[1];
        std::string labels = m[3];
        while (!labels.empty()) {
            std::smatch lm;
            if (!std::regex_search(labels, lm, label_re)) {
                throw std::runtime_error("bad labels in: " + line);
            }
            s.labels[lm[1]] = lm[2];
            labels = lm.suffix();
        }
        std::string const value = m[4];
        if (value == "+Inf") {
            s.value = std::numeric_limits<double>::infinity();
        } else if (value == "-Inf") {
            s.value = -std::numeric_limits<double>::infinity();
        } else if (value == "NaN") {
            s.value = std::numeric_limits<double>::quiet_NaN();
        } else {
            std::size_t used = 0;
            s.value = std::stod(value, &used);
            if (used != value.size()) {
                throw std::runtime_error("bad value in: " + line);
            }
        }
        out.push_back(std::move(s));
    }
    return out;
}

std::optional<double> metric_value(std::vector<metric_sample> const& samples,
                                   std::string const& name,
                                   std::map<std::string, std::string> const& labels) {
    std::optional<double> found;
    for (auto const& s : samples) {
        if (s.name != name) {
            continue;
        }
        bool match = true;
        for (auto const& [k, v] : labels) {
            auto it = s.labels.find(k);
            match = match && it != s.labels.end() && it->second == v;
        }
        if (match) {
            if (found) {
                throw std::runtime_error("more than one sample matches " + name);
            }
            found = s.value;
        }
    }
    return found;
}

temp_dir::temp_dir() : path_(make_temp_dir()) {}

temp_dir::~temp_dir() {
    std::string const cmd = "rm -rf '" + path_ + "'";
    [[maybe_unused]] int const rc = std::system(cmd.c_str());
}

std::string temp_dir::write(std::string const& name, std::string const& content) const {
    std::string const path = path_ + "/" + name;
    std::ofstream out(path, std::ios::binary);
    out << content;
    return path;
}

std::string seed_batch() {
    return R"([
 {"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":300,"hour":1},
 {"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":200,"bytes_rx":600,"hour":1},
 {"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":1},
 {"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":2},
 {"src_app":"baz","dest_app":"qux","vpc_id":"vpc-1","bytes_tx":100,"bytes_rx":500,"hour":2}])";
}

}  // namespace flowd::test
