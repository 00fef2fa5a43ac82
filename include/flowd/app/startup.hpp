#pragma once

// What the server needs from the host and the config before it builds anything: listen
// addresses, descriptor limits, TLS, tokens, rate limits, memory, CPUs.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <spdlog/logger.h>
#include <sys/resource.h>

#include "flowd/app/config.hpp"
#include "flowd/auth/rate_limiter.hpp"
#include "flowd/auth/tokens.hpp"

namespace flowd {

// "host:port", an IPv6 host in brackets.
[[nodiscard]] std::string endpoint_text(boost::asio::ip::tcp::endpoint const& ep);
// A listen key's value (host:port; a name is resolved), or config_error naming the key.
[[nodiscard]] boost::asio::ip::tcp::endpoint resolve_listen(std::string const& key,
                                                            std::string const& value);
// More connections need more descriptors: use the whole hard limit. Returns the soft limit
// now in force (RLIM_INFINITY when unknown).
rlim_t raise_open_files_limit(spdlog::logger& log);
// max_connections, or fewer when the open-files limit cannot hold that many (logged).
[[nodiscard]] std::size_t effective_max_connections(std::size_t wanted, rlim_t nofile,
                                                    spdlog::logger& log);
// The TLS context of tls_*_file, or null for plain HTTP; config_error when unusable.
[[nodiscard]] std::shared_ptr<boost::asio::ssl::context> tls_context_of(config const& cfg);
// The tokens file at start: a file that cannot be used stops flowd (exit 2).
[[nodiscard]] token_store initial_tokens(config const& cfg);
[[nodiscard]] rate_limit_options rate_limits_of(config const& cfg);
// A comma-separated list (the cluster's URLs) as its items.
[[nodiscard]] std::vector<std::string> split_urls(std::string const& list);

// The threads flowd runs by default: the CPUs in the process's affinity mask.
[[nodiscard]] unsigned affinity_cpu_count();

// The memory this process may use: cgroup v2 memory.max when set, else MemTotal; `source`
// says which. bytes 0 when neither can be read.
struct memory_limit {
    std::uint64_t bytes = 0;
    std::string source;
};
[[nodiscard]] memory_limit memory_limit_of_host();
// max_store_bytes, or half of memory_limit_of_host() when it is 0.
[[nodiscard]] std::uint64_t effective_max_store_bytes(config const& cfg);

}  // namespace flowd
