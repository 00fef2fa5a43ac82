// flowd-loadgen: drives POST /flows (or GET /flows) over N keep-alive connections from
// one thread, then verifies that the server's totals moved by exactly what it sent.
//
//   flowd-loadgen --port 8080 [--host 127.0.0.1] [--connections 32] [--duration 10]
//                 [--requests N] [--batch 100] [--keys 1000] [--hours 24] [--first-hour 0]
//                 [--ndjson] [--gzip] [--rate REQ_PER_S] [--get-hour H] [--no-verify] [--seed S]
//                 [--bodies N]   (distinct bodies, sent round robin; default 64)
//
// Prints requests/s, flows/s, latency percentiles and errors by status, and a last line
// "RESULT key=value ..." for scripts. With --rate the load is open-loop and latency is
// measured from each request's scheduled time (coordinated omission accounted for).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/dynamic_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>

#include "flowd/codec/gzip.hpp"
#include "workload.hpp"

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

struct options {
    std::string host = "127.0.0.1";
    unsigned short port = 8080;
    std::size_t connections = 32;
    double duration = 10;
    std::size_t requests = 0;  // 0: run for `duration`
    double rate = 0;           // 0: closed loop
    std::optional<std::uint32_t> get_hour;
    bool gzip = false;
    bool verify = true;
    flowd::bench::workload_options work;
};

[[noreturn]] void usage_exit(char const* why) {
    std::fprintf(stderr, "flowd-loadgen: %s (see the comment at the top of bench/loadgen.cpp)\n",
                 why);
    std::exit(2);
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string const a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage_exit(("missing value for " + a).c_str());
            }
            return argv[++i];
        };
        if (a == "--host") {
            o.host = next();
        } else if (a == "--port") {
            o.port = static_cast<unsigned short>(std::stoul(next()));
        } else if (a == "--connections") {
            o.connections = std::stoul(next());
        } else if (a == "--duration") {
            o.duration = std::stod(next());
        } else if (a == "--requests") {
            o.requests = std::stoul(next());
        } else if (a == "--rate") {
            o.rate = std::stod(next());
        } else if (a == "--batch") {
            o.work.batch = std::stoul(next());
        } else if (a == "--keys") {
            o.work.keys = std::stoul(next());
        } else if (a == "--hours") {
            o.work.hours = static_cast<std::uint32_t>(std::stoul(next()));
        } else if (a == "--first-hour") {
            o.work.first_hour = static_cast<std::uint32_t>(std::stoul(next()));
        } else if (a == "--seed") {
            o.work.seed = std::stoull(next());
        } else if (a == "--bodies") {
            o.work.bodies = std::stoul(next());
        } else if (a == "--ndjson") {
            o.work.ndjson = true;
        } else if (a == "--gzip") {
            o.gzip = true;
        } else if (a == "--get-hour") {
            o.get_hour = static_cast<std::uint32_t>(std::stoul(next()));
        } else if (a == "--no-verify") {
            o.verify = false;
        } else {
            usage_exit(("unknown option " + a).c_str());
        }
    }
    if (o.work.bodies == 0 || o.connections == 0 || o.work.batch == 0 || o.work.keys == 0 ||
        o.work.hours == 0) {
        usage_exit("connections, batch, keys and hours must be positive");
    }
    return o;
}

struct shared_state {
    options const& opt;
    std::vector<flowd::bench::body> const& bodies;
    std::vector<std::string> wire;  // bodies as sent (gzip or not)
    std::vector<std::uint32_t> latencies_us;
    std::vector<std::size_t> sent_ok;  // per body: successful sends
    std::map<unsigned, std::size_t> statuses;
    std::size_t issued = 0;
    std::size_t completed = 0;
    std::size_t io_errors = 0;
    std::size_t response_bytes = 0;  // bodies of the answers (as sent: gzip or not)
    // Cluster mode: the highest stream sequence a POST was answered with; the verification
    // reads with min_seq at it (read-your-writes), so it does not race the apply lag.
    std::uint64_t max_seq = 0;
    clock_type::time_point start;
    clock_type::time_point stop_at;
    bool stopping = false;
};

class connection : public std::enable_shared_from_this<connection> {
public:
    connection(net::io_context& ioc, shared_state& s, std::size_t index)
        : stream_(ioc), timer_(ioc), s_(s), index_(index) {
        // Beast reads at most the buffer's free capacity (512 bytes at least) per call: a
        // small buffer read a 120 KB GET answer in hundreds of recv calls, which cost more
        // CPU than flowd spent answering it and ended up in the measured latency.
        buffer_.reserve(read_buffer_bytes);
    }

    void start(net::ip::tcp::endpoint ep) {
        stream_.connect(ep);
        stream_.socket().set_option(net::ip::tcp::no_delay(true));
        next_ = s_.start;
        schedule();
    }

private:
    static constexpr std::size_t read_buffer_bytes = 256 * 1024;

    void schedule() {
        if (s_.stopping || clock_type::now() >= s_.stop_at ||
            (s_.opt.requests != 0 && s_.issued >= s_.opt.requests)) {
            s_.stopping = true;
            return;
        }
        if (s_.opt.rate > 0) {
            // Open loop: this connection's share of the rate, each request at its slot.
            auto const interval = std::chrono::duration<double>(
                static_cast<double>(s_.opt.connections) / s_.opt.rate);
            if (sent_ == 0) {
                next_ = s_.start + std::chrono::duration_cast<clock_type::duration>(
                                       interval * (static_cast<double>(index_) /
                                                   static_cast<double>(s_.opt.connections)));
            } else {
                next_ += std::chrono::duration_cast<clock_type::duration>(interval);
            }
            if (next_ > clock_type::now()) {
                timer_.expires_at(next_);
                timer_.async_wait([self = shared_from_this()](beast::error_code) { self->send(); });
                return;
            }
        } else {
            next_ = clock_type::now();
        }
        send();
    }

    void send() {
        ++s_.issued;
        ++sent_;
        // Round robin over the bodies: with as many bodies as requests, each is sent once.
        body_ = (s_.issued - 1) % s_.bodies.size();
        req_ = {};
        req_.version(11);
        req_.set(http::field::host, s_.opt.host);
        if (s_.opt.get_hour) {
            req_.method(http::verb::get);
            req_.target("/flows?hour=" + std::to_string(*s_.opt.get_hour));
            req_.body().clear();
        } else {
            req_.method(http::verb::post);
            req_.target("/flows");
            req_.set(http::field::content_type,
                     s_.opt.work.ndjson ? "application/x-ndjson" : "application/json");
            if (s_.opt.gzip) {
                req_.set(http::field::content_encoding, "gzip");
            }
            req_.body() = s_.wire[body_];
        }
        req_.prepare_payload();
        http::async_write(
            stream_, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
                if (ec) {
                    return self->fail();
                }
                self->res_.emplace();
                self->res_->body_limit(1ULL << 31);
                http::async_read(
                    self->stream_, self->buffer_, *self->res_,
                    [self](beast::error_code ec2, std::size_t) { self->on_read(ec2); });
            });
    }

    void on_read(beast::error_code ec) {
        if (ec) {
            return fail();
        }
        auto const now = clock_type::now();
        auto const us = std::chrono::duration_cast<std::chrono::microseconds>(now - next_).count();
        s_.latencies_us.push_back(
            static_cast<std::uint32_t>(std::min<long long>(us, 0xffffffffLL)));
        unsigned const status = res_->get().result_int();
        ++s_.statuses[status];
        ++s_.completed;
        s_.response_bytes += res_->get().body().size();
        if (status == 200 && !s_.opt.get_hour) {
            ++s_.sent_ok[body_];
            std::string const& body = res_->get().body();
            if (std::size_t const at = body.find("\"seq\":"); at != std::string::npos) {
                s_.max_seq = std::max<std::uint64_t>(
                    s_.max_seq, std::strtoull(body.c_str() + at + 6, nullptr, 10));
            }
        }
        if (!res_->get().keep_alive()) {
            return fail();
        }
        schedule();
    }

    void fail() {
        ++s_.io_errors;
        beast::error_code ignored;
        stream_.socket().close(ignored);
    }

    beast::tcp_stream stream_;
    net::steady_timer timer_;
    shared_state& s_;
    std::size_t index_;
    std::size_t sent_ = 0;
    std::size_t body_ = 0;
    clock_type::time_point next_;
    http::request<http::string_body> req_;
    std::optional<http::response_parser<http::string_body>> res_;
    beast::flat_buffer buffer_;
};

using totals_map = std::map<flowd::bench::key_tuple, flowd::bench::sums>;

// The server's totals for the hours the workload uses.
totals_map fetch_totals(options const& o, std::uint64_t min_seq = 0) {
    totals_map out;
    net::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.connect(net::ip::tcp::endpoint(net::ip::make_address(o.host), o.port));
    beast::flat_buffer buffer;
    for (std::uint32_t h = o.work.first_hour; h < o.work.first_hour + o.work.hours; ++h) {
        std::string target = "/flows?hour=" + std::to_string(h);
        if (min_seq != 0) {
            target += "&min_seq=" + std::to_string(min_seq);
        }
        http::request<http::string_body> req{http::verb::get, target, 11};
        req.set(http::field::host, o.host);
        http::write(stream, req);
        http::response_parser<http::string_body> res;
        res.body_limit(1ULL << 32);
        http::read(stream, buffer, res);
        if (res.get().result_int() != 200) {
            throw std::runtime_error("GET hour " + std::to_string(h) + " answered " +
                                     std::to_string(res.get().result_int()));
        }
        for (auto const& r : nlohmann::json::parse(res.get().body())) {
            flowd::bench::sums& s = out[{r["src_app"], r["dest_app"], r["vpc_id"], r["hour"]}];
            s.tx = r["bytes_tx"];
            s.rx = r["bytes_rx"];
        }
    }
    return out;
}

double percentile(std::vector<std::uint32_t> const& sorted, double p) {
    if (sorted.empty()) {
        return 0;
    }
    auto const idx =
        static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
    return sorted[std::min(idx, sorted.size() - 1)] / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
    options const opt = parse(argc, argv);
    auto const bodies = flowd::bench::make_bodies(opt.work, opt.verify && !opt.get_hour);
    shared_state s{opt, bodies, {}, {},   std::vector<std::size_t>(bodies.size(), 0),
                   {},  0,      0,  0,    0,
                   0,   {},     {}, false};
    std::size_t body_bytes = 0;
    for (auto const& b : bodies) {
        s.wire.push_back(opt.gzip ? flowd::gzip(b.text) : b.text);
        body_bytes += s.wire.back().size();
    }
    bool const verify = opt.verify && !opt.get_hour;
    totals_map before;
    if (verify) {
        before = fetch_totals(opt);
    }
    s.latencies_us.reserve(1 << 20);

    net::io_context ioc;
    net::ip::tcp::endpoint const ep{net::ip::make_address(opt.host), opt.port};
    s.start = clock_type::now();
    s.stop_at = opt.requests != 0 ? clock_type::time_point::max()
                                  : s.start + std::chrono::duration_cast<clock_type::duration>(
                                                  std::chrono::duration<double>(opt.duration));
    std::vector<std::shared_ptr<connection>> conns;
    for (std::size_t i = 0; i < opt.connections; ++i) {
        conns.push_back(std::make_shared<connection>(ioc, s, i));
        conns.back()->start(ep);
    }
    ioc.run();
    double const took = std::chrono::duration<double>(clock_type::now() - s.start).count();

    std::sort(s.latencies_us.begin(), s.latencies_us.end());
    std::size_t ok = 0;
    std::size_t errors = s.io_errors;
    std::string by_status;
    for (auto const& [status, n] : s.statuses) {
        by_status += " " + std::to_string(status) + ":" + std::to_string(n);
        if (status / 100 == 2) {
            ok += n;
        } else {
            errors += n;
        }
    }
    double const rps = static_cast<double>(ok) / took;
    double const fps = opt.get_hour ? 0.0 : rps * static_cast<double>(opt.work.batch);
    std::printf(
        "%s %zu connections, %.1f s: %zu ok (%.0f req/s, %.0f flows/s), %zu errors; statuses:%s\n",
        opt.get_hour ? "GET" : "POST", opt.connections, took, ok, rps, fps, errors,
        by_status.c_str());
    std::printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
                percentile(s.latencies_us, 50), percentile(s.latencies_us, 90),
                percentile(s.latencies_us, 99), percentile(s.latencies_us, 99.9),
                percentile(s.latencies_us, 100));

    std::string verdict = "skipped";
    if (verify) {
        totals_map expected = before;
        for (std::size_t i = 0; i < bodies.size(); ++i) {
            for (auto const& [key, add] : bodies[i].totals) {
                auto& e = expected[key];
                e.tx += add.tx * s.sent_ok[i];
                e.rx += add.rx * s.sent_ok[i];
            }
        }
        totals_map const after = fetch_totals(opt, s.max_seq);
        std::size_t mismatches = 0;
        for (auto const& [key, e] : expected) {
            auto it = after.find(key);
            if (e.tx == 0 && e.rx == 0 && it == after.end()) {
                continue;
            }
            if (it == after.end() || it->second.tx != e.tx || it->second.rx != e.rx) {
                ++mismatches;
            }
        }
        for (auto const& [key, a] : after) {
            if (expected.find(key) == expected.end()) {
                ++mismatches;
            }
        }
        verdict = mismatches == 0 ? "exact" : "MISMATCH";
        std::printf("verify: %s (%zu keys over %u hours, %zu mismatched)\n", verdict.c_str(),
                    after.size(), opt.work.hours, mismatches);
    }
    std::printf(
        "RESULT req_per_s=%.0f flows_per_s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f "
        "ok=%zu "
        "errors=%zu body_bytes_avg=%zu response_bytes_avg=%zu verify=%s\n",
        rps, fps, percentile(s.latencies_us, 50), percentile(s.latencies_us, 90),
        percentile(s.latencies_us, 99), percentile(s.latencies_us, 99.9), ok, errors,
        opt.get_hour ? 0 : body_bytes / bodies.size(),
        s.completed == 0 ? 0 : s.response_bytes / s.completed, verdict.c_str());
    return verdict == "MISMATCH" || ok == 0 ? 1 : 0;
}
