#include "server_fixture.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
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
    std::vector<char*> envp;
    for (auto& e : env_s) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
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
            throw std::runtime_error("flowd exited with " + std::to_string(exit_code_) + " at start: " + text);
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

void flowd_process::signal(int signo) const { kill(pid_, signo); }

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

std::string flowd_process::log() const { return read_file(log_path_); }

run_result run_flowd(std::vector<std::string> const& args, std::map<std::string, std::string> const& env) {
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

http_client::http_client(std::uint16_t port, std::string host) : impl_(new impl) {
    impl_->host = host;
    net::ip::tcp::endpoint ep{net::ip::make_address(host), port};
    impl_->stream.expires_after(std::chrono::seconds(30));
    impl_->stream.connect(ep);
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

http_response http_client::get(std::string const& target, std::map<std::string, std::string> const& headers) {
    http_request req{http::verb::get, target, 11};
    for (auto const& [k, v] : headers) {
        req.set(k, v);
    }
    return send(std::move(req));
}

http_response http_client::post(std::string const& target, std::string body, std::string content_type,
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

std::string seed_batch() {
    return R"([
 {"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":300,"hour":1},
 {"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":200,"bytes_rx":600,"hour":1},
 {"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":1},
 {"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":2},
 {"src_app":"baz","dest_app":"qux","vpc_id":"vpc-1","bytes_tx":100,"bytes_rx":500,"hour":2}])";
}

}  // namespace flowd::test
