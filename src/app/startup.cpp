#include "flowd/app/startup.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include <sched.h>

#include "flowd/http/tls.hpp"

namespace flowd {

namespace net = boost::asio;

std::string endpoint_text(net::ip::tcp::endpoint const& ep) {
    std::string const host = ep.address().to_string();
    return (ep.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(ep.port());
}

net::ip::tcp::endpoint resolve_listen(std::string const& key, std::string const& value) {
    host_port const hp = parse_host_port(key, value);
    boost::system::error_code ec;
    auto address = net::ip::make_address(hp.host, ec);
    if (ec) {
        net::io_context ioc;
        net::ip::tcp::resolver resolver{ioc};
        auto results = resolver.resolve(hp.host, std::to_string(hp.port), ec);
        if (ec || results.empty()) {
            throw config_error(key + ": cannot resolve host '" + hp.host + "'");
        }
        return results.begin()->endpoint();
    }
    return {address, hp.port};
}

// More connections need more descriptors: use the whole hard limit. Returns the soft limit
// now in force (RLIM_INFINITY when unknown).
rlim_t raise_open_files_limit(spdlog::logger& log) {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        return RLIM_INFINITY;
    }
    if (lim.rlim_cur < lim.rlim_max) {
        rlim_t const old = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) == 0) {
            log.info("raised the open-files limit from {} to {}", old, lim.rlim_cur);
        } else {
            lim.rlim_cur = old;
        }
    }
    return lim.rlim_cur;
}

// Descriptors kept for everything but client connections: logs, the metrics exposer and its
// clients, the write-ahead log and checkpoints, a few for accept itself.
constexpr rlim_t reserved_descriptors = 128;

// max_connections, or fewer when the open-files limit cannot hold that many (logged).
std::size_t effective_max_connections(std::size_t wanted, rlim_t nofile, spdlog::logger& log) {
    if (nofile == RLIM_INFINITY) {
        return wanted;
    }
    rlim_t const room =
        nofile > reserved_descriptors * 2 ? nofile - reserved_descriptors : nofile / 2;
    if (room >= wanted) {
        return wanted;
    }
    auto const cap = static_cast<std::size_t>(std::max<rlim_t>(room, 1));
    log.warn(
        "the open-files limit ({}) allows at most {} connections: max_connections is {}, the "
        "effective cap is {} (raise the hard limit, e.g. LimitNOFILE=, for more)",
        nofile, cap, wanted, cap);
    return cap;
}

std::shared_ptr<net::ssl::context> tls_context_of(config const& cfg) {
    if (cfg.tls_cert_file.empty() && cfg.tls_key_file.empty() && cfg.tls_client_ca_file.empty()) {
        return nullptr;
    }
    try {
        return make_tls_context(
            tls_files{cfg.tls_cert_file, cfg.tls_key_file, cfg.tls_client_ca_file});
    } catch (tls_error const& e) {
        throw config_error(e.what());
    }
}

// The tokens file at start: a file that cannot be used stops flowd (exit 2).
token_store initial_tokens(config const& cfg) {
    if (cfg.tokens_file.empty()) {
        return token_store{};
    }
    try {
        return token_store{token_set::load(cfg.tokens_file)};
    } catch (token_file_error const& e) {
        throw config_error(std::string("tokens_file: ") + e.what());
    }
}

rate_limit_options rate_limits_of(config const& cfg) {
    // A burst of 0 means one second's worth of the rate.
    auto limits = [](std::uint64_t rate, std::uint64_t burst) {
        return bucket_limits{
            static_cast<double>(rate),
            static_cast<double>(burst == 0 ? std::max<std::uint64_t>(rate, 1) : burst)};
    };
    return rate_limit_options{
        limits(cfg.rate_limit_requests_per_second, cfg.rate_limit_requests_burst),
        limits(cfg.rate_limit_records_per_second, cfg.rate_limit_records_burst),
        cfg.rate_limit_max_clients};
}

std::vector<std::string> split_urls(std::string const& list) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos <= list.size()) {
        std::size_t comma = list.find(',', pos);
        if (comma == std::string::npos) {
            comma = list.size();
        }
        out.push_back(list.substr(pos, comma - pos));
        pos = comma + 1;
    }
    return out;
}

memory_limit memory_limit_of_host() {
    // cgroup v2 first: a container's limit is what the kernel will enforce.
    std::ifstream cgroup("/sys/fs/cgroup/memory.max");
    std::string value;
    if (cgroup >> value && value != "max") {
        try {
            return {std::stoull(value), "cgroup memory.max"};
        } catch (std::exception const&) {
            // fall through to MemTotal
        }
    }
    std::ifstream meminfo("/proc/meminfo");
    for (std::string line; std::getline(meminfo, line);) {
        if (line.rfind("MemTotal:", 0) == 0) {
            std::istringstream fields(line.substr(9));
            std::uint64_t kib = 0;
            if (fields >> kib) {
                return {kib * 1024, "MemTotal"};
            }
        }
    }
    return {0, "unknown"};
}

std::uint64_t effective_max_store_bytes(config const& cfg) {
    return cfg.max_store_bytes != 0 ? cfg.max_store_bytes : memory_limit_of_host().bytes / 2;
}

unsigned affinity_cpu_count() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int const n = CPU_COUNT(&set);
        if (n > 0) {
            return static_cast<unsigned>(n);
        }
    }
    return std::max(1U, std::thread::hardware_concurrency());
}

}  // namespace flowd
