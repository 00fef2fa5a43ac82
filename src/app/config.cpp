#include "flowd/app/config.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <functional>
#include <ios>
#include <limits>
#include <optional>
#include <set>

#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "flowd/domain/text.hpp"
#include "flowd/flow/apps_table.hpp"

namespace flowd {
namespace {

using setter = std::function<void(config&, std::string const& key, std::string const& value)>;

std::uint64_t parse_uint(std::string const& key, std::string const& value, std::uint64_t min,
                         std::uint64_t max) {
    std::uint64_t v = 0;
    auto const* const last = value.data() + value.size();
    auto const r = std::from_chars(value.data(), last, v);
    if (value.empty() || r.ec != std::errc{} || r.ptr != last || v < min || v > max) {
        throw config_error(key + ": '" + value + "' is not an integer in " + std::to_string(min) +
                           ".." + std::to_string(max));
    }
    return v;
}

std::chrono::milliseconds parse_duration(std::string const& key, std::string const& value) {
    std::optional<std::uint64_t> const ms = parse_duration_ms(value);
    if (!ms || *ms == 0) {
        throw config_error(key + ": '" + value +
                           "' is not a positive duration like 500ms, 10s, 5m or 1h");
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(*ms));
}

template <class T>
setter uint_field(T config::*field, std::uint64_t min, std::uint64_t max) {
    return [field, min, max](config& c, std::string const& key, std::string const& value) {
        c.*field = static_cast<T>(parse_uint(key, value, min, max));
    };
}

setter duration_field(std::chrono::milliseconds config::*field) {
    return [field](config& c, std::string const& key, std::string const& value) {
        c.*field = parse_duration(key, value);
    };
}

setter choice_field(std::string config::*field, std::vector<std::string> choices) {
    return [field, choices](config& c, std::string const& key, std::string const& value) {
        if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
            std::string list;
            for (auto const& ch : choices) {
                list += (list.empty() ? "" : "|") + ch;
            }
            throw config_error(key + ": '" + value + "' is not one of " + list);
        }
        c.*field = value;
    };
}

setter address_field(std::string config::*field) {
    return [field](config& c, std::string const& key, std::string const& value) {
        (void)parse_host_port(key, value);
        c.*field = value;
    };
}

// NATS URLs, comma-separated: each nats://HOST:PORT (tls:// too); checked here so a typo
// stops flowd at start rather than leaving it reconnecting forever.
void set_cluster(config& c, std::string const& key, std::string const& value) {
    std::size_t pos = 0;
    while (pos <= value.size()) {
        std::size_t comma = value.find(',', pos);
        if (comma == std::string::npos) {
            comma = value.size();
        }
        std::string const url = value.substr(pos, comma - pos);
        std::size_t const scheme = url.find("://");
        std::string const proto = scheme == std::string::npos ? "" : url.substr(0, scheme);
        if ((proto != "nats" && proto != "tls") || url.size() <= scheme + 3) {
            throw config_error(key + ": '" + url + "' is not nats://HOST:PORT");
        }
        (void)parse_host_port(key, url.substr(scheme + 3));
        pos = comma + 1;
    }
    c.cluster = value;
}

setter bool_field(bool config::*field) {
    return [field](config& c, std::string const& key, std::string const& value) {
        if (value == "true") {
            c.*field = true;
        } else if (value == "false") {
            c.*field = false;
        } else {
            throw config_error(key + ": '" + value + "' is not true or false");
        }
    };
}

// SPEC: a --data-dir that is not a directory is a bad value (exit 2). A path that does not
// exist yet is created at start.
void set_data_dir(config& c, std::string const& key, std::string const& value) {
    if (value.empty()) {
        throw config_error(key + ": must not be empty");
    }
    struct stat st {};
    if (::stat(value.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
        throw config_error(key + ": '" + value + "' is not a directory");
    }
    c.data_dir = value;
}

// A file path; whether it can be read is checked at start, where the file is used.
setter path_field(std::string config::*field) {
    return [field](config& c, std::string const& key, std::string const& value) {
        if (value.empty()) {
            throw config_error(key + ": must not be empty");
        }
        c.*field = value;
    };
}

struct option {
    std::string key;  // config file key; flag is --key with '_' written '-'
    bool is_flag;     // also a command-line flag (SPEC: only some are)
    setter set;
    bool is_switch = false;  // a flag that may be given without a value, meaning "true"
};

// Every key, flag and FLOWD_ variable: one long function because it is one table, a row
// a key, read like config/flowd.yaml; cutting it would only scatter the rows.
std::vector<option> const& options() {
    static std::vector<option> const table{
        {"listen", true, address_field(&config::listen)},
        {"metrics_listen", true, address_field(&config::metrics_listen)},
        {"threads", true, uint_field(&config::threads, 1, 1024)},
        {"log_level", true,
         choice_field(&config::log_level, {"trace", "debug", "info", "warn", "error"})},
        {"log_format", false, choice_field(&config::log_format, {"text", "json"})},
        {"max_body_bytes", false, uint_field(&config::max_body_bytes, 1, std::uint64_t{1} << 32)},
        {"max_records_per_batch", false,
         uint_field(&config::max_records_per_batch, 1, 100'000'000)},
        {"max_json_depth", false, uint_field(&config::max_json_depth, 2, 1024)},
        {"max_header_bytes", false, uint_field(&config::max_header_bytes, 1024, 1U << 20)},
        {"max_keys", false, uint_field(&config::max_keys, 1, 1'000'000'000)},
        {"max_store_bytes", false, uint_field(&config::max_store_bytes, 0, std::uint64_t{1} << 50)},
        {"max_query_hours", false, uint_field(&config::max_query_hours, 1, 1U << 31)},
        {"max_query_scan_rows", false,
         uint_field(&config::max_query_scan_rows, 1, std::uint64_t{1} << 40)},
        {"max_query_groups", false,
         uint_field(&config::max_query_groups, 1, std::uint64_t{1} << 40)},
        {"max_concurrent_queries", false, uint_field(&config::max_concurrent_queries, 0, 1U << 20)},
        {"query_threads", false, uint_field(&config::query_threads, 0, 256)},
        {"store_shards", false,
         [](config& c, std::string const& key, std::string const& value) {
             auto const n = parse_uint(key, value, 1, 4096);
             if (!std::has_single_bit(n)) {
                 throw config_error(key + ": '" + value + "' is not a power of two in 1..4096");
             }
             c.store_shards = static_cast<std::size_t>(n);
         }},
        {"grace_period", false, duration_field(&config::grace_period)},
        {"header_timeout", false, duration_field(&config::header_timeout)},
        {"body_timeout", false, duration_field(&config::body_timeout)},
        {"idle_timeout", false, duration_field(&config::idle_timeout)},
        {"seal_after", false,
         [](config& c, std::string const& key, std::string const& value) {
             // 0 turns sealing off (SPEC: off by default); anything else is a duration.
             c.seal_after =
                 value == "0" ? std::chrono::milliseconds(0) : parse_duration(key, value);
         }},
        {"max_connections", false, uint_field(&config::max_connections, 1, 10'000'000)},
        {"ui", false, bool_field(&config::ui)},
        {"stream_resume_seconds", false, uint_field(&config::stream_resume_seconds, 1, 86'400)},
        {"stream_buffer_bytes", false,
         uint_field(&config::stream_buffer_bytes, 4096, std::uint64_t{1} << 30)},
        {"max_streams", false, uint_field(&config::max_streams, 1, 1'000'000)},
        {"tls_cert_file", false, path_field(&config::tls_cert_file)},
        {"tls_key_file", false, path_field(&config::tls_key_file)},
        {"tls_client_ca_file", false, path_field(&config::tls_client_ca_file)},
        {"data_dir", true, set_data_dir},
        {"fsync", false, choice_field(&config::fsync, {"always", "interval"})},
        {"fsync_interval", false, duration_field(&config::fsync_interval)},
        {"checkpoint_interval", false, duration_field(&config::checkpoint_interval)},
        {"checkpoint_log_bytes", false,
         uint_field(&config::checkpoint_log_bytes, 1 << 20, std::uint64_t{1} << 40)},
        {"wal_segment_bytes", false,
         uint_field(&config::wal_segment_bytes, 1 << 16, std::uint64_t{1} << 31)},
        {"truncate_corrupt_log", true, bool_field(&config::truncate_corrupt_log), true},
        {"retention_hours", false, uint_field(&config::retention_hours, 0, 1'000'000)},
        {"idempotency_window", false, duration_field(&config::idempotency_window)},
        {"idempotency_max_keys", false, uint_field(&config::idempotency_max_keys, 1, 100'000'000)},
        {"tokens_file", true, path_field(&config::tokens_file)},
        {"rate_limit_requests_per_second", false,
         uint_field(&config::rate_limit_requests_per_second, 0, 1'000'000'000)},
        {"rate_limit_requests_burst", false,
         uint_field(&config::rate_limit_requests_burst, 0, 1'000'000'000)},
        {"rate_limit_records_per_second", false,
         uint_field(&config::rate_limit_records_per_second, 0, 1'000'000'000)},
        {"rate_limit_records_burst", false,
         uint_field(&config::rate_limit_records_burst, 0, 1'000'000'000)},
        {"rate_limit_max_clients", false,
         uint_field(&config::rate_limit_max_clients, 16, 100'000'000)},
        {"cluster", true, set_cluster},
        {"node_name", false,
         [](config& c, std::string const& key, std::string const& value) {
             if (value.empty() || value.size() > 64 ||
                 value.find_first_of(" \t.*>") != std::string::npos) {
                 throw config_error(key + ": '" + value +
                                    "' is not 1..64 characters without spaces, '.', '*' or '>'");
             }
             c.node_name = value;
         }},
        {"cluster_stream", false,
         [](config& c, std::string const& key, std::string const& value) {
             if (value.empty() || value.size() > 64 ||
                 value.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789_-") != std::string::npos) {
                 throw config_error(key + ": '" + value +
                                    "' is not 1..64 characters of A-Z a-z 0-9 _ -");
             }
             c.cluster_stream = value;
         }},
        {"cluster_replicas", false, uint_field(&config::cluster_replicas, 1, 5)},
        {"min_seq_wait", false, duration_field(&config::min_seq_wait)},
        {"cluster_publish_timeout", false, duration_field(&config::cluster_publish_timeout)},
        {"cluster_max_pending", false, uint_field(&config::cluster_max_pending, 1, 1'000'000)},
        {"cluster_max_bytes", false,
         uint_field(&config::cluster_max_bytes, 0, std::uint64_t{1} << 60)},
        {"cluster_max_age_hours", false, uint_field(&config::cluster_max_age_hours, 0, 1'000'000)},
        {"flow_listen", true, address_field(&config::flow_listen)},
        {"apps_file", false, path_field(&config::apps_file)},
        {"flow_rcvbuf_bytes", false, uint_field(&config::flow_rcvbuf_bytes, 0, 1U << 30)},
        {"flow_allowed_exporters", false,
         [](config& c, std::string const& key, std::string const& value) {
             for (std::string const& item : split_list(value)) {
                 std::string why;
                 if (!parse_cidr(item, why)) {
                     throw config_error(key + ": " + why);
                 }
             }
             c.flow_allowed_exporters = value;
         }},
        {"flow_max_exporters", false, uint_field(&config::flow_max_exporters, 1, 1'000'000)},
        {"flow_max_templates", false, uint_field(&config::flow_max_templates, 1, 65'535)},
        {"flow_batch_interval", false, duration_field(&config::flow_batch_interval)},
        {"flow_batch_records", false, uint_field(&config::flow_batch_records, 1, 10'000'000)},
    };
    return table;
}

option const* find_option(std::string const& key) {
    for (option const& o : options()) {
        if (o.key == key) {
            return &o;
        }
    }
    return nullptr;
}

std::string upper_env_name(std::string const& key) {
    std::string out = "FLOWD_";
    for (char ch : key) {
        out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
    }
    return out;
}

void apply_file(config& c, std::string const& path) {
    // A directory opens as a stream and fails only at the first read, with an exception
    // yaml-cpp does not wrap.
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        throw config_error("config file " + path + ": is a directory, not a file");
    }
    YAML::Node root;
    try {
        root = YAML::LoadFile(path);
    } catch (YAML::BadFile const&) {
        throw config_error("config file " + path + ": cannot be read");
    } catch (YAML::Exception const& e) {
        throw config_error("config file " + path + ": " + e.what());
    } catch (std::ios_base::failure const& e) {
        throw config_error("config file " + path + ": cannot be read (" + e.what() + ")");
    }
    if (root.IsNull()) {
        return;
    }
    if (!root.IsMap()) {
        throw config_error("config file " + path + ": must be a flat map of key: value");
    }
    // yaml-cpp keeps both entries of a key given twice; the later one would silently win.
    std::map<std::string, int> lines;
    for (auto const& kv : root) {
        auto const key = kv.first.as<std::string>();
        option const* o = find_option(key);
        if (o == nullptr) {
            throw config_error("config file " + path + ": unknown key '" + key + "'");
        }
        int const line = kv.first.Mark().line + 1;
        if (auto [it, fresh] = lines.emplace(key, line); !fresh) {
            throw config_error("config file " + path + ": key '" + key + "' is given twice (line " +
                               std::to_string(it->second) + " and line " + std::to_string(line) +
                               ")");
        }
        if (!kv.second.IsScalar()) {
            throw config_error("config file " + path + ": key '" + key +
                               "' must have a single value");
        }
        o->set(c, path + ": " + key, kv.second.as<std::string>());
    }
}

// FLOWD_<KEY> variables into cmd.cfg; others named FLOWD_* are warned about.
void apply_env(command& cmd, std::map<std::string, std::string> const& env) {
    std::set<std::string> known_env{"FLOWD_CONFIG"};
    for (option const& o : options()) {
        std::string const name = upper_env_name(o.key);
        known_env.insert(name);
        if (auto it = env.find(name); it != env.end()) {
            o.set(cmd.cfg, name, it->second);
        }
    }
    // A misspelt variable would otherwise be ignored without a word.
    for (auto const& [name, value] : env) {
        if (name.rfind("FLOWD_", 0) == 0 && known_env.count(name) == 0) {
            cmd.warnings.push_back("environment variable " + name +
                                   " is not a flowd setting and is ignored (settings are "
                                   "FLOWD_CONFIG and FLOWD_<KEY> for each key of "
                                   "config/flowd.yaml)");
        }
    }
}

}  // namespace

std::vector<std::string> split_list(std::string const& value) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos < value.size()) {
        std::size_t comma = value.find(',', pos);
        if (comma == std::string::npos) {
            comma = value.size();
        }
        std::string item = value.substr(pos, comma - pos);
        item.erase(0, item.find_first_not_of(" \t"));
        item.erase(item.find_last_not_of(" \t") + 1);
        if (!item.empty()) {
            out.push_back(item);
        }
        pos = comma + 1;
    }
    return out;
}

host_port parse_host_port(std::string const& key, std::string const& value) {
    std::string host;
    std::string port;
    if (!value.empty() && value.front() == '[') {
        std::size_t const close = value.find(']');
        if (close == std::string::npos || close + 1 >= value.size() || value[close + 1] != ':') {
            throw config_error(key + ": '" + value + "' is not [IPv6]:PORT");
        }
        host = value.substr(1, close - 1);
        port = value.substr(close + 2);
    } else {
        std::size_t const colon = value.rfind(':');
        if (colon == std::string::npos || value.find(':') != colon) {
            throw config_error(key + ": '" + value + "' is not HOST:PORT (IPv6: [ADDR]:PORT)");
        }
        host = value.substr(0, colon);
        port = value.substr(colon + 1);
    }
    if (host.empty()) {
        throw config_error(key + ": '" + value + "' has no host");
    }
    return host_port{host, static_cast<std::uint16_t>(parse_uint(key + " port", port, 0, 65535))};
}

command parse_command_line(std::vector<std::string> const& args,
                           std::map<std::string, std::string> const& env) {
    command cmd;
    // Flags first into a list, so the precedence below does not depend on their position.
    std::vector<std::pair<option const*, std::string>> flags;
    std::optional<std::string> config_path;
    if (auto it = env.find("FLOWD_CONFIG"); it != env.end()) {
        config_path = it->second;
    }
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string const& arg = args[i];
        if (arg == "--help" || arg == "-h") {
            cmd.what = command::action::help;
            return cmd;
        }
        if (arg == "--version") {
            cmd.what = command::action::version;
            return cmd;
        }
        if (arg.rfind("--", 0) != 0) {
            throw config_error("unexpected argument '" + arg + "' (see flowd --help)");
        }
        std::string name = arg.substr(2);
        std::optional<std::string> value;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
        }
        std::string key = name;
        std::replace(key.begin(), key.end(), '-', '_');
        option const* o = find_option(key);
        // Before taking a value, so "--bogus" alone is named as the unknown flag it is.
        if (name != "config" &&
            (o == nullptr || !o->is_flag || name.find('_') != std::string::npos)) {
            throw config_error("unknown flag --" + name + " (see flowd --help)");
        }
        if (!value && o != nullptr && o->is_switch &&
            (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0)) {
            value = "true";
        }
        if (!value) {
            if (i + 1 >= args.size()) {
                throw config_error("--" + name + ": needs a value");
            }
            value = args[++i];
        }
        if (name == "config") {
            config_path = *value;
            continue;
        }
        flags.emplace_back(o, *value);
    }
    if (config_path) {
        if (config_path->empty()) {
            throw config_error("--config: must not be empty");
        }
        cmd.cfg.config_file = *config_path;
        apply_file(cmd.cfg, *config_path);
    }
    apply_env(cmd, env);
    for (auto const& [o, value] : flags) {
        std::string flag = o->key;
        std::replace(flag.begin(), flag.end(), '_', '-');
        o->set(cmd.cfg, "--" + flag, value);
    }
    if (!cmd.cfg.cluster.empty() && cmd.cfg.node_name.empty()) {
        std::array<char, 256> host{};
        if (::gethostname(host.data(), host.size() - 1) != 0 || host[0] == '\0') {
            throw config_error("node_name: not set and the host name cannot be read");
        }
        cmd.cfg.node_name = host.data();
    }
    return cmd;
}

std::vector<config_key> config_keys() {
    std::vector<config_key> out;
    out.reserve(options().size());
    for (option const& o : options()) {
        out.push_back(config_key{o.key, o.is_flag});
    }
    return out;
}

}  // namespace flowd
