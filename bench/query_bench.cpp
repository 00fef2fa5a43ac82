// flowd-querybench: the query figures of `make bench` (scripts/bench-queries.sh).
//
//   flowd-querybench load --port P [--csv FILE]
//       POSTs the query dataset: 100,000 keys (source names from 2,000 applications,
//       destinations from the same 2,000, 50 VPCs) in each of hours 0..23 = 2,400,000 rows,
//       in batches of 1,000 on one connection; with --csv also writes the same rows as CSV
//       (the DuckDB anchor loads it).
//   flowd-querybench time --port P --target T [--repeat N] [--header NAME:VALUE]
//       GETs T N times (default 5) on one keep-alive connection; each time is from the
//       request's write to the answer's last byte, read into a buffer reserved up front.
//   flowd-querybench loop --port P --target T --duration S
//       GETs T back to back for S seconds (the readers beside a POST load).
//
// Prints one line "RESULT key=value ..." for scripts.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::size_t keys = 100'000;
constexpr std::size_t apps = 2'000;
constexpr std::size_t vpcs = 50;
constexpr std::uint32_t hours = 24;

std::string app(std::size_t i) {
    return "app-" + std::to_string(1000 + i);
}

// Key k: source k mod 2000; destination from k / 2000 (0..49) so that (source, destination)
// is distinct for every k; the VPC k mod 50.
struct key_names {
    std::string src;
    std::string dest;
    std::string vpc;
};
key_names key_of(std::size_t k) {
    std::size_t const s = k % apps;
    std::size_t const j = k / apps;
    return {app(s), app((s + 1 + j * 39) % apps), "vpc-" + std::to_string(10 + k % vpcs)};
}

// Deterministic bytes per (key, hour): a 64-bit mix, cut to at most 2^30.
std::uint64_t bytes_of(std::size_t k, std::uint32_t hour, std::uint64_t salt) {
    std::uint64_t h = (std::uint64_t{k} << 8 | hour) * 0x9e3779b97f4a7c15ULL + salt;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
    return 1 + (h & ((1ULL << 30) - 1));
}

struct args {
    std::string mode;
    unsigned short port = 8080;
    std::string target;
    std::string csv;
    std::size_t repeat = 5;
    double duration = 5;
    std::vector<std::pair<std::string, std::string>> headers;
};

[[noreturn]] void usage_exit(char const* why) {
    std::fprintf(stderr, "flowd-querybench: %s (see the top of bench/query_bench.cpp)\n", why);
    std::exit(2);
}

args parse(int argc, char** argv) {
    if (argc < 2) {
        usage_exit("missing mode");
    }
    args a;
    a.mode = argv[1];
    for (int i = 2; i < argc; ++i) {
        std::string const o = argv[i];
        if (i + 1 >= argc) {
            usage_exit(("missing value for " + o).c_str());
        }
        std::string const v = argv[++i];
        if (o == "--port") {
            a.port = static_cast<unsigned short>(std::stoul(v));
        } else if (o == "--target") {
            a.target = v;
        } else if (o == "--csv") {
            a.csv = v;
        } else if (o == "--repeat") {
            a.repeat = std::stoul(v);
        } else if (o == "--duration") {
            a.duration = std::stod(v);
        } else if (o == "--header") {
            auto const colon = v.find(':');
            if (colon == std::string::npos) {
                usage_exit("--header wants NAME:VALUE");
            }
            a.headers.emplace_back(v.substr(0, colon), v.substr(colon + 1));
        } else {
            usage_exit(("unknown option " + o).c_str());
        }
    }
    return a;
}

class connection {
public:
    explicit connection(unsigned short port) : socket_(io_) {
        net::ip::tcp::resolver resolver(io_);
        net::connect(socket_, resolver.resolve("127.0.0.1", std::to_string(port)));
        socket_.set_option(net::ip::tcp::no_delay(true));
        buffer_.reserve(1 << 20);
    }

    // Sends one request and reads the whole answer; returns its status and body size.
    std::pair<unsigned, std::size_t> exchange(http::request<http::string_body>& req) {
        http::write(socket_, req);
        http::response_parser<http::string_body> parser;
        parser.body_limit(std::uint64_t{1} << 34);
        parser.get().body().reserve(64 << 20);
        http::read(socket_, buffer_, parser);
        return {parser.get().result_int(), parser.get().body().size()};
    }

private:
    net::io_context io_;
    net::ip::tcp::socket socket_;
    beast::flat_buffer buffer_;
};

int load(args const& a) {
    connection c(a.port);
    std::ofstream csv;
    if (!a.csv.empty()) {
        csv.open(a.csv);
        csv << "src_app,dest_app,vpc_id,bytes_tx,bytes_rx,hour\n";
    }
    std::vector<key_names> names;
    names.reserve(keys);
    for (std::size_t k = 0; k < keys; ++k) {
        names.push_back(key_of(k));
    }
    http::request<http::string_body> req{http::verb::post, "/flows", 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    std::size_t posted = 0;
    for (std::uint32_t h = 0; h < hours; ++h) {
        for (std::size_t first = 0; first < keys; first += 1000) {
            std::string body = "[";
            for (std::size_t k = first; k < std::min(keys, first + 1000); ++k) {
                std::uint64_t const tx = bytes_of(k, h, 1);
                std::uint64_t const rx = bytes_of(k, h, 2);
                if (k != first) {
                    body += ',';
                }
                body += R"({"src_app":")" + names[k].src + R"(","dest_app":")" + names[k].dest +
                        R"(","vpc_id":")" + names[k].vpc + R"(","bytes_tx":)" + std::to_string(tx) +
                        R"(,"bytes_rx":)" + std::to_string(rx) + R"(,"hour":)" + std::to_string(h) +
                        "}";
                if (csv.is_open()) {
                    csv << names[k].src << ',' << names[k].dest << ',' << names[k].vpc << ',' << tx
                        << ',' << rx << ',' << h << '\n';
                }
                ++posted;
            }
            body += ']';
            req.body() = std::move(body);
            req.prepare_payload();
            auto const [status, size] = c.exchange(req);
            if (status != 200) {
                std::fprintf(stderr, "flowd-querybench: POST answered %u\n", status);
                return 1;
            }
        }
    }
    std::printf("RESULT rows=%zu\n", posted);
    return 0;
}

http::request<http::string_body> get_of(args const& a) {
    http::request<http::string_body> req{http::verb::get, a.target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (auto const& [name, value] : a.headers) {
        req.set(name, value);
    }
    return req;
}

int time_gets(args const& a) {
    connection c(a.port);
    auto req = get_of(a);
    std::vector<double> ms;
    std::size_t bytes = 0;
    unsigned status = 0;
    for (std::size_t i = 0; i < a.repeat; ++i) {
        auto const t0 = clock_type::now();
        std::tie(status, bytes) = c.exchange(req);
        ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    std::printf("RESULT status=%u bytes=%zu median_ms=%.3f min_ms=%.3f max_ms=%.3f\n", status,
                bytes, sorted[sorted.size() / 2], sorted.front(), sorted.back());
    return status == 200 || status == 304 ? 0 : 1;
}

int loop_gets(args const& a) {
    connection c(a.port);
    auto req = get_of(a);
    auto const until = clock_type::now() + std::chrono::duration<double>(a.duration);
    std::size_t n = 0;
    unsigned status = 0;
    while (clock_type::now() < until) {
        status = c.exchange(req).first;
        if (status != 200) {
            break;
        }
        ++n;
    }
    std::printf("RESULT status=%u queries=%zu per_s=%.2f\n", status, n,
                static_cast<double>(n) / a.duration);
    return status == 200 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    args const a = parse(argc, argv);
    try {
        if (a.mode == "load") {
            return load(a);
        }
        if (a.target.empty()) {
            usage_exit("--target is required");
        }
        if (a.mode == "time") {
            return time_gets(a);
        }
        if (a.mode == "loop") {
            return loop_gets(a);
        }
    } catch (std::exception const& e) {
        std::fprintf(stderr, "flowd-querybench: %s\n", e.what());
        return 1;
    }
    usage_exit("mode is load, time or loop");
}
