#include "ops_tools.hpp"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace flowd::test {

namespace {

int decode_status(int status) {
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return -1;
}

// posix_spawnp with stdin/stdout/stderr redirected to files; returns the errno on failure.
int spawn_redirected(std::vector<std::string> const& argv_s, std::string const& in_path,
                     std::string const& out_path, std::string const& err_path, pid_t& pid) {
    std::vector<std::string> copy = argv_s;
    std::vector<char*> argv;
    for (auto& a : copy) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, in_path.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    if (err_path == out_path) {
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
    } else {
        posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644);
    }
    int const rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

std::string percent_encode(std::string const& s) {
    static char const hex[] = "0123456789ABCDEF";
    std::string out;
    for (char const ch : s) {
        auto const c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

}  // namespace

std::string source_path(std::string const& relative) {
    return std::string(FLOWD_SOURCE_DIR) + "/" + relative;
}

std::string read_text(std::string const& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read " + path);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string tool_result::describe() const {
    if (!spawn_error.empty()) {
        return spawn_error;
    }
    return "exit " + std::to_string(exit_code) + "\n--- stdout\n" + out + "\n--- stderr\n" + err;
}

tool_result run_tool(std::vector<std::string> const& argv, std::string const& stdin_text,
                     std::chrono::seconds limit) {
    temp_dir dir;
    std::string const in_path = dir.write("stdin", stdin_text);
    tool_result r;
    pid_t pid = -1;
    int const rc = spawn_redirected(argv, in_path, dir.path() + "/out", dir.path() + "/err", pid);
    if (rc != 0) {
        r.spawn_error = "cannot run '" + argv.at(0) + "': " + std::strerror(rc) +
                        " (scripts/install-deps.sh installs the Debian packages prometheus "
                        "(promtool, prometheus) and systemd (systemd-analyze))";
        return r;
    }
    auto const deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            r.exit_code = decode_status(status);
            break;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            r.exit_code = decode_status(status);
            r.spawn_error = "'" + argv.at(0) + "' ran past " + std::to_string(limit.count()) +
                            " s and was killed";
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    r.out = read_text(dir.path() + "/out");
    r.err = read_text(dir.path() + "/err");
    return r;
}

child_process::child_process(std::vector<std::string> const& argv, std::string const& dir)
    : log_path_(dir + "/" + argv.at(0) + ".log") {
    int const rc = spawn_redirected(argv, "/dev/null", log_path_, log_path_, pid_);
    if (rc != 0) {
        exited_ = true;
        throw std::runtime_error("cannot run '" + argv.at(0) + "': " + std::strerror(rc) +
                                 " (scripts/install-deps.sh installs it)");
    }
}

child_process::~child_process() {
    if (exited_) {
        return;
    }
    kill(pid_, SIGTERM);
    if (!eventually([this] { return !running(); }, std::chrono::seconds(10))) {
        kill(pid_, SIGKILL);
        int status = 0;
        waitpid(pid_, &status, 0);
    }
}

bool child_process::running() {
    if (exited_) {
        return false;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
    }
    return !exited_;
}

std::string child_process::log() const {
    std::ifstream in(log_path_, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::uint16_t pick_free_port() {
    int const fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        throw std::runtime_error("socket failed");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        close(fd);
        throw std::runtime_error("bind to 127.0.0.1:0 failed");
    }
    close(fd);
    return ntohs(addr.sin_port);
}

prometheus_server::prometheus_server(std::string const& scrape_configs_yaml) {
    dir_.write("prometheus.yml",
               "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
               "scrape_configs:\n" +
                   scrape_configs_yaml);
    // Prometheus cannot listen on port 0: take a port that was free and retry if another
    // process took it in between.
    for (int attempt = 0; attempt < 5; ++attempt) {
        port_ = pick_free_port();
        process_ = std::make_unique<child_process>(
            std::vector<std::string>{"prometheus",
                                     "--config.file=" + dir_.path() + "/prometheus.yml",
                                     "--storage.tsdb.path=" + dir_.path() + "/data",
                                     "--web.listen-address=127.0.0.1:" + std::to_string(port_)},
            dir_.path());
        bool const ready = eventually(
            [&] {
                if (!process_->running()) {
                    return true;
                }
                try {
                    http_client client{port_};
                    return client.get("/-/ready").result_int() == 200;
                } catch (std::exception const&) {
                    return false;
                }
            },
            std::chrono::seconds(60));
        if (ready && process_->running()) {
            return;
        }
        std::string const text = process_->log();
        process_.reset();
        if (text.find("address already in use") == std::string::npos) {
            throw std::runtime_error("prometheus did not become ready: " + text);
        }
    }
    throw std::runtime_error("prometheus found no free port in 5 attempts");
}

nlohmann::json prometheus_server::query(std::string const& expr) {
    http_client client{port_};
    auto const r = client.get("/api/v1/query?query=" + percent_encode(expr));
    return nlohmann::json::parse(r.body());
}

std::string substitute_grafana_variables(std::string const& expr) {
    static std::vector<std::pair<std::regex, std::string>> const known{
        {std::regex(R"(\$__rate_interval\b|\$\{__rate_interval\})"), "1m"},
        {std::regex(R"(\$__interval\b|\$\{__interval\})"), "1m"},
        {std::regex(R"(\$__range\b|\$\{__range\})"), "1h"},
        {std::regex(R"(\$instance\b|\$\{instance(:regex)?\})"), ".*"},
    };
    std::string out = expr;
    for (auto const& [re, value] : known) {
        out = std::regex_replace(out, re, value);
    }
    if (auto const at = out.find('$'); at != std::string::npos) {
        throw std::runtime_error("unknown Grafana variable at '" + out.substr(at) + "' in " + expr);
    }
    return out;
}

std::set<std::string> promql_metric_names(std::string const& expr) {
    // Blank out what cannot hold a metric name: string literals, label matchers {..}, range
    // and subquery durations [..], and the label lists of by/without/on/ignoring/group_*.
    std::string s = expr;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char const c = s[i];
        if (c == '"' || c == '\'' || c == '`') {
            std::size_t j = i + 1;
            while (j < s.size() && s[j] != c) {
                j += (s[j] == '\\' && c != '`') ? std::size_t{2} : std::size_t{1};
            }
            for (std::size_t k = i; k <= j && k < s.size(); ++k) {
                s[k] = ' ';
            }
            i = j;
        }
    }
    for (auto const& [open, close] : {std::pair{'{', '}'}, std::pair{'[', ']'}}) {
        for (std::size_t i = s.find(open); i != std::string::npos; i = s.find(open, i)) {
            std::size_t const j = s.find(close, i);
            if (j == std::string::npos) {
                throw std::runtime_error("unbalanced '" + std::string(1, open) + "' in " + expr);
            }
            for (std::size_t k = i; k <= j; ++k) {
                s[k] = ' ';
            }
        }
    }
    static std::regex const label_list(
        R"(\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\))");
    s = std::regex_replace(s, label_list, " ");
    static std::set<std::string> const keywords{
        "and",   "or",           "unless",     "by",          "without", "on",     "ignoring",
        "bool",  "offset",       "group_left", "group_right", "inf",     "nan",    "atan2",
        "sum",   "min",          "max",        "avg",         "group",   "stddev", "stdvar",
        "count", "count_values", "bottomk",    "topk",        "quantile"};
    std::set<std::string> names;
    std::size_t i = 0;
    while (i < s.size()) {
        unsigned char const c = static_cast<unsigned char>(s[i]);
        if (std::isdigit(c) != 0) {  // a number or a duration: 0.99, 5m, 1e3
            while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) != 0 ||
                                    s[i] == '.' || s[i] == '_')) {
                ++i;
            }
            continue;
        }
        if (std::isalpha(c) == 0 && c != '_' && c != ':') {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) != 0 ||
                                s[j] == '_' || s[j] == ':')) {
            ++j;
        }
        std::string const word = s.substr(i, j - i);
        std::size_t k = j;
        while (k < s.size() && std::isspace(static_cast<unsigned char>(s[k])) != 0) {
            ++k;
        }
        bool const is_call = k < s.size() && s[k] == '(';
        if (!is_call && keywords.count(word) == 0) {
            names.insert(word);
        }
        i = j;
    }
    return names;
}

}  // namespace flowd::test
