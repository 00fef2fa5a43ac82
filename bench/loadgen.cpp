// flowd-loadgen: drives POST /flows (or GET /flows) over N keep-alive connections spread over
// T threads, then verifies that the server's totals moved by exactly what it sent.
//
//   flowd-loadgen --port 8080 [--host 127.0.0.1] [--connections 32] [--threads 1]
//                 [--duration 10] [--requests N] [--batch 100] [--keys 1000] [--hours 24]
//                 [--first-hour 0] [--ndjson] [--gzip] [--rate REQ_PER_S] [--get-hour H]
//                 [--no-verify] [--seed S]
//                 [--bodies N]   (distinct bodies, sent round robin; default 64)
//   flowd-loadgen --dump-body FILE [--batch ...]   (writes the first body as sent, for wrk)
//
// Prints requests/s, flows/s, latency percentiles and errors by status, and a last line
// "RESULT key=value ..." for scripts. With --rate the load is open-loop and latency is
// measured from each request's scheduled time (coordinated omission accounted for).
//
// It must be faster than what it measures (`make bench` checks it against wrk on nginx):
// each thread runs its own epoll loop over its connections, every request is serialised
// once before the clock starts and sent from there, and an answer is read no further than
// its status line, Content-Length, Transfer-Encoding and Connection (the body is counted
// and skipped, or kept when small for the cluster's "seq"). Nothing is allocated per
// request.

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nlohmann/json.hpp>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "cli.hpp"
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
    std::size_t threads = 1;
    double duration = 10;
    std::size_t requests = 0;  // 0: run for `duration`
    double rate = 0;           // 0: closed loop
    std::optional<std::uint32_t> get_hour;
    bool gzip = false;
    bool verify = true;
    std::string dump_body;
    flowd::bench::workload_options work;
};

[[noreturn]] void usage_exit(char const* why) {
    std::fprintf(stderr, "flowd-loadgen: %s (see the comment at the top of bench/loadgen.cpp)\n",
                 why);
    std::exit(2);
}

options parse(int argc, char** argv) {
    options o;
    flowd::bench::arg_reader args(argc, argv, usage_exit);
    while (args.next()) {
        if (args.is("--host")) {
            o.host = args.value();
        } else if (args.is("--port")) {
            o.port = static_cast<unsigned short>(args.number());
        } else if (args.is("--connections")) {
            o.connections = args.number();
        } else if (args.is("--threads")) {
            o.threads = args.number();
        } else if (args.is("--duration")) {
            o.duration = args.real();
        } else if (args.is("--requests")) {
            o.requests = args.number();
        } else if (args.is("--rate")) {
            o.rate = args.real();
        } else if (args.is("--batch")) {
            o.work.batch = args.number();
        } else if (args.is("--keys")) {
            o.work.keys = args.number();
        } else if (args.is("--hours")) {
            o.work.hours = static_cast<std::uint32_t>(args.number());
        } else if (args.is("--first-hour")) {
            o.work.first_hour = static_cast<std::uint32_t>(args.number());
        } else if (args.is("--seed")) {
            o.work.seed = args.number();
        } else if (args.is("--bodies")) {
            o.work.bodies = args.number();
        } else if (args.is("--ndjson")) {
            o.work.ndjson = true;
        } else if (args.is("--gzip")) {
            o.gzip = true;
        } else if (args.is("--get-hour")) {
            o.get_hour = static_cast<std::uint32_t>(args.number());
        } else if (args.is("--no-verify")) {
            o.verify = false;
        } else if (args.is("--dump-body")) {
            o.dump_body = args.value();
        } else {
            args.unknown();
        }
    }
    if (o.work.bodies == 0 || o.connections == 0 || o.work.batch == 0 || o.work.keys == 0 ||
        o.work.hours == 0 || o.threads == 0) {
        usage_exit("connections, threads, batch, keys and hours must be positive");
    }
    o.threads = std::min(o.threads, o.connections);
    return o;
}

// Reads one HTTP/1.x answer at a time from a connection's bytes: the status line and the
// three headers that frame it (Content-Length, Transfer-Encoding: chunked, Connection);
// a body is counted and skipped, or kept whole when small and asked for. One per
// connection, owned by its thread.
class response_reader {
public:
    enum class result { more, done, error };

    explicit response_reader(std::size_t capacity)
        : buf_(std::make_unique<char[]>(capacity)), cap_(capacity) {}

    // Where the next recv() writes, after moving unread bytes to the front.
    char* space() {
        if (pos_ != 0) {
            std::memmove(buf_.get(), buf_.get() + pos_, len_ - pos_);
            len_ -= pos_;
            pos_ = 0;
        }
        return buf_.get() + len_;
    }
    [[nodiscard]] std::size_t room() const { return cap_ - len_; }
    void produced(std::size_t n) { len_ += n; }

    // `keep_small`: keep a 200's body of up to small_body bytes whole for body().
    result parse(bool keep_small);

    [[nodiscard]] unsigned status() const { return status_; }
    [[nodiscard]] bool close() const { return close_; }
    [[nodiscard]] std::size_t body_bytes() const { return body_bytes_; }
    // The kept body; valid until the next space().
    [[nodiscard]] std::string_view body() const { return body_; }

private:
    static constexpr std::size_t small_body = 4096;
    enum class state { head, length, chunk_size, chunk_data, chunk_end, trailer };

    result parse_head(bool keep_small);
    // The next CRLF-ended line from pos_, or nullopt when it has not all arrived.
    std::optional<std::string_view> line();

    std::unique_ptr<char[]> buf_;
    std::size_t cap_;
    std::size_t pos_ = 0;  // parsed up to here
    std::size_t len_ = 0;  // received up to here
    state state_ = state::head;
    std::size_t remaining_ = 0;  // of the body or the chunk
    bool keep_ = false;
    unsigned status_ = 0;
    bool close_ = false;
    std::size_t body_bytes_ = 0;
    std::string_view body_;
};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x | 0x20) == (y | 0x20);
           });
}

bool icontains(std::string_view hay, std::string_view needle) {
    for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
        if (iequals(hay.substr(i, needle.size()), needle)) {
            return true;
        }
    }
    return false;
}

std::string_view trim(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
    }
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
        v.remove_suffix(1);
    }
    return v;
}

std::optional<std::string_view> response_reader::line() {
    std::string_view const rest(buf_.get() + pos_, len_ - pos_);
    std::size_t const eol = rest.find("\r\n");
    if (eol == std::string_view::npos) {
        return std::nullopt;
    }
    pos_ += eol + 2;
    return rest.substr(0, eol);
}

response_reader::result response_reader::parse_head(bool keep_small) {
    std::string_view const rest(buf_.get() + pos_, len_ - pos_);
    std::size_t const end = rest.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        // A head that fills the whole buffer never ends.
        return pos_ == 0 && len_ == cap_ ? result::error : result::more;
    }
    std::string_view head = rest.substr(0, end + 2);
    pos_ += end + 4;
    // "HTTP/1.1 200 OK"
    if (head.size() < 12 || head.substr(0, 7) != "HTTP/1." || head[8] != ' ') {
        return result::error;
    }
    status_ = 0;
    for (std::size_t i = 9; i < 12; ++i) {
        if (head[i] < '0' || head[i] > '9') {
            return result::error;
        }
        status_ = status_ * 10 + static_cast<unsigned>(head[i] - '0');
    }
    bool const http10 = head[7] == '0';
    close_ = http10;
    std::optional<std::size_t> length;
    bool chunked = false;
    head.remove_prefix(head.find("\r\n") + 2);
    while (!head.empty()) {
        std::size_t const eol = head.find("\r\n");
        std::string_view const field = head.substr(0, eol);
        head.remove_prefix(eol + 2);
        std::size_t const colon = field.find(':');
        if (colon == std::string_view::npos) {
            continue;
        }
        std::string_view const name = field.substr(0, colon);
        std::string_view const value = trim(field.substr(colon + 1));
        if (iequals(name, "content-length")) {
            std::size_t n = 0;
            for (char const c : value) {
                if (c < '0' || c > '9') {
                    return result::error;
                }
                n = n * 10 + static_cast<std::size_t>(c - '0');
            }
            length = n;
        } else if (iequals(name, "transfer-encoding")) {
            chunked = icontains(value, "chunked");
        } else if (iequals(name, "connection")) {
            if (icontains(value, "close")) {
                close_ = true;
            } else if (http10 && icontains(value, "keep-alive")) {
                close_ = false;
            }
        }
    }
    body_bytes_ = 0;
    body_ = {};
    if (status_ / 100 == 1 || status_ == 204 || status_ == 304) {
        return result::done;
    }
    if (chunked) {
        state_ = state::chunk_size;
        return result::more;
    }
    if (!length) {
        // Read-until-close framing: no server measured here answers so.
        return result::error;
    }
    remaining_ = *length;
    keep_ = keep_small && status_ == 200 && *length <= small_body;
    state_ = state::length;
    return result::more;
}

response_reader::result response_reader::parse(bool keep_small) {
    while (true) {
        switch (state_) {
            case state::head: {
                result const r = parse_head(keep_small);
                if (r == result::done && status_ / 100 == 1) {
                    continue;  // an interim answer: the real one follows
                }
                if (r != result::more || state_ == state::head) {
                    return r;
                }
                break;
            }
            case state::length: {
                std::size_t const have = len_ - pos_;
                if (keep_) {
                    if (have < remaining_) {
                        return result::more;
                    }
                    body_ = {buf_.get() + pos_, remaining_};
                }
                std::size_t const take = std::min(have, remaining_);
                pos_ += take;
                remaining_ -= take;
                body_bytes_ += take;
                if (remaining_ != 0) {
                    return result::more;
                }
                state_ = state::head;
                return result::done;
            }
            case state::chunk_size: {
                auto const l = line();
                if (!l) {
                    return len_ - pos_ == cap_ ? result::error : result::more;
                }
                std::size_t n = 0;
                std::size_t digits = 0;
                for (char const c : *l) {
                    int const v = c >= '0' && c <= '9'   ? c - '0'
                                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                         : -1;
                    if (v < 0) {
                        break;  // a chunk extension, or the line's end
                    }
                    n = n * 16 + static_cast<std::size_t>(v);
                    ++digits;
                }
                if (digits == 0) {
                    return result::error;
                }
                remaining_ = n;
                state_ = n == 0 ? state::trailer : state::chunk_data;
                break;
            }
            case state::chunk_data: {
                std::size_t const take = std::min(len_ - pos_, remaining_);
                pos_ += take;
                remaining_ -= take;
                body_bytes_ += take;
                if (remaining_ != 0) {
                    return result::more;
                }
                state_ = state::chunk_end;
                break;
            }
            case state::chunk_end: {
                auto const l = line();
                if (!l) {
                    return result::more;
                }
                if (!l->empty()) {
                    return result::error;
                }
                state_ = state::chunk_size;
                break;
            }
            case state::trailer: {
                auto const l = line();
                if (!l) {
                    return len_ - pos_ == cap_ ? result::error : result::more;
                }
                if (l->empty()) {
                    state_ = state::head;
                    return result::done;
                }
                break;
            }
        }
    }
}

// What one thread counted; merged after every thread has ended.
struct thread_stats {
    std::vector<std::uint32_t> latencies_us;
    std::vector<std::size_t> sent_ok;  // per body: answered 200
    std::array<std::size_t, 1000> statuses{};
    std::size_t completed = 0;
    std::size_t io_errors = 0;
    std::size_t response_bytes = 0;  // bodies of the answers (as sent: gzip or not)
    // Cluster mode: the highest stream sequence a POST was answered with; the verification
    // reads with min_seq at it (read-your-writes), so it does not race the apply lag.
    std::uint64_t max_seq = 0;
};

// Read-only once the threads start, but for `issued`.
struct run_plan {
    options const& opt;
    std::vector<std::string> requests;  // each body's whole request, head and body
    clock_type::time_point start;
    clock_type::time_point stop_at;
    std::atomic<std::size_t> issued{0};
};

enum class phase { idle, waiting, writing, reading, dead };

struct connection {
    int fd = -1;
    std::size_t index = 0;  // among all connections: its slot in the open-loop schedule
    phase state = phase::idle;
    std::size_t sent = 0;
    std::size_t body = 0;
    std::size_t written = 0;
    clock_type::time_point next;  // scheduled (open loop) or sent (closed loop)
    response_reader reader;

    connection(int f, std::size_t i, std::size_t buffer) : fd(f), index(i), reader(buffer) {}
};

// After the deadline, answers still in flight get this long before they count as errors.
constexpr auto drain_limit = std::chrono::seconds(10);

// One thread's event loop over its connections (level-triggered epoll; a timerfd for the
// open-loop schedule).
class worker {
public:
    worker(run_plan& plan, thread_stats& stats, std::vector<connection>& conns)
        : plan_(plan), stats_(stats), conns_(conns) {}

    void run() {
        epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (plan_.opt.rate > 0) {
            timer_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.ptr = nullptr;
            ::epoll_ctl(epoll_, EPOLL_CTL_ADD, timer_, &ev);
        }
        for (connection& c : conns_) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.ptr = &c;
            ::epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
        }
        for (connection& c : conns_) {
            ++active_;
            c.state = phase::waiting;
            schedule(c, plan_.start);
        }
        std::array<epoll_event, 128> events{};
        // A run for a duration wakes now and then to give up on answers that never come.
        bool const timed = plan_.opt.requests == 0;
        while (active_ != 0) {
            arm_timer();
            int const n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()),
                                       timed ? 100 : -1);
            if (n < 0 && errno != EINTR) {
                std::perror("flowd-loadgen: epoll_wait");
                std::exit(1);
            }
            for (int i = 0; i < n; ++i) {
                auto* c = static_cast<connection*>(events[static_cast<std::size_t>(i)].data.ptr);
                if (c == nullptr) {
                    on_timer();
                } else {
                    on_event(*c, events[static_cast<std::size_t>(i)].events);
                }
            }
            if (timed && clock_type::now() > plan_.stop_at + drain_limit) {
                for (connection& c : conns_) {
                    if (c.state == phase::writing || c.state == phase::reading) {
                        fail(c);
                    }
                }
            }
        }
        for (connection& c : conns_) {
            if (c.fd >= 0) {
                ::close(c.fd);
            }
        }
        if (timer_ >= 0) {
            ::close(timer_);
        }
        ::close(epoll_);
    }

private:
    void stop(connection& c) {
        c.state = phase::idle;
        --active_;
    }

    void fail(connection& c) {
        ++stats_.io_errors;
        ::close(c.fd);
        c.fd = -1;
        c.state = phase::dead;
        --active_;
    }

    // Sends c's next request now or at its slot, or retires c when the run is over.
    void schedule(connection& c, clock_type::time_point now) {
        if (now >= plan_.stop_at) {
            return stop(c);
        }
        if (plan_.opt.rate > 0) {
            // Open loop: this connection's share of the rate, each request at its slot.
            auto const interval = std::chrono::duration<double>(
                static_cast<double>(plan_.opt.connections) / plan_.opt.rate);
            if (c.sent == 0) {
                c.next = plan_.start + std::chrono::duration_cast<clock_type::duration>(
                                           interval * (static_cast<double>(c.index) /
                                                       static_cast<double>(plan_.opt.connections)));
            } else {
                c.next += std::chrono::duration_cast<clock_type::duration>(interval);
            }
            if (c.next >= plan_.stop_at) {
                return stop(c);
            }
            if (c.next > now) {
                c.state = phase::waiting;
                return;
            }
        } else {
            c.next = now;
        }
        send(c);
    }

    void send(connection& c) {
        std::size_t const n = plan_.issued.fetch_add(1, std::memory_order_relaxed);
        if (plan_.opt.requests != 0 && n >= plan_.opt.requests) {
            return stop(c);
        }
        ++c.sent;
        // Round robin over the bodies: with as many bodies as requests, each is sent once.
        c.body = n % plan_.requests.size();
        c.written = 0;
        c.state = phase::writing;
        write_some(c);
    }

    void write_some(connection& c) {
        std::string const& req = plan_.requests[c.body];
        while (c.written < req.size()) {
            ssize_t const w =
                ::send(c.fd, req.data() + c.written, req.size() - c.written, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    watch(c, EPOLLIN | EPOLLOUT);
                    return;
                }
                if (errno == EINTR) {
                    continue;
                }
                return fail(c);
            }
            c.written += static_cast<std::size_t>(w);
        }
        if (c.state == phase::writing) {
            c.state = phase::reading;
        }
    }

    void watch(connection& c, std::uint32_t what) {
        epoll_event ev{};
        ev.events = what;
        ev.data.ptr = &c;
        ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
    }

    void on_event(connection& c, std::uint32_t what) {
        if (c.state == phase::dead) {
            return;
        }
        if ((what & EPOLLOUT) != 0 && c.state == phase::writing) {
            write_some(c);
            if (c.state == phase::reading) {
                watch(c, EPOLLIN);
            }
        }
        if ((what & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0 && c.state != phase::dead) {
            on_readable(c);
        }
    }

    void on_readable(connection& c) {
        ssize_t const r = ::recv(c.fd, c.reader.space(), c.reader.room(), 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return;
        }
        if (r <= 0 || (c.state != phase::reading && c.state != phase::writing)) {
            // Closed, failed, or talking when nothing was asked.
            return fail(c);
        }
        c.reader.produced(static_cast<std::size_t>(r));
        bool const post = !plan_.opt.get_hour.has_value();
        response_reader::result const got = c.reader.parse(post);
        if (got == response_reader::result::more) {
            return;
        }
        if (got == response_reader::result::error) {
            return fail(c);
        }
        auto const now = clock_type::now();
        complete(c, now);
        // An answer before the whole request was written leaves the stream out of step.
        if (c.reader.close() || c.state == phase::writing) {
            return fail(c);
        }
        schedule(c, now);
    }

    void complete(connection& c, clock_type::time_point now) {
        auto const us = std::chrono::duration_cast<std::chrono::microseconds>(now - c.next).count();
        stats_.latencies_us.push_back(
            static_cast<std::uint32_t>(std::clamp<long long>(us, 0, 0xffffffffLL)));
        unsigned const status = c.reader.status();
        ++stats_.statuses[std::min<std::size_t>(status, stats_.statuses.size() - 1)];
        ++stats_.completed;
        stats_.response_bytes += c.reader.body_bytes();
        if (status == 200 && !plan_.opt.get_hour) {
            ++stats_.sent_ok[c.body];
            std::string_view const body = c.reader.body();
            if (std::size_t const at = body.find("\"seq\":"); at != std::string_view::npos) {
                std::uint64_t seq = 0;
                for (std::size_t i = at + 6; i < body.size() && body[i] >= '0' && body[i] <= '9';
                     ++i) {
                    seq = seq * 10 + static_cast<std::uint64_t>(body[i] - '0');
                }
                stats_.max_seq = std::max(stats_.max_seq, seq);
            }
        }
    }

    void on_timer() {
        std::uint64_t expirations = 0;
        (void)::read(timer_, &expirations, sizeof expirations);
        armed_ = {};
        auto const now = clock_type::now();
        for (connection& c : conns_) {
            if (c.state == phase::waiting && c.next <= now) {
                send(c);
            }
        }
    }

    // Points the timer at the earliest slot of a waiting connection.
    void arm_timer() {
        if (timer_ < 0) {
            return;
        }
        auto earliest = clock_type::time_point::max();
        for (connection const& c : conns_) {
            if (c.state == phase::waiting) {
                earliest = std::min(earliest, c.next);
            }
        }
        if (earliest == clock_type::time_point::max() || earliest == armed_) {
            return;
        }
        armed_ = earliest;
        auto const ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(earliest.time_since_epoch())
                .count();
        itimerspec spec{};
        spec.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
        spec.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
        if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) {
            spec.it_value.tv_nsec = 1;  // zero would disarm it
        }
        ::timerfd_settime(timer_, TFD_TIMER_ABSTIME, &spec, nullptr);
    }

    run_plan& plan_;
    thread_stats& stats_;
    std::vector<connection>& conns_;
    int epoll_ = -1;
    int timer_ = -1;
    clock_type::time_point armed_{};
    std::size_t active_ = 0;
};

std::string request_head(options const& o, std::size_t content_length) {
    if (o.get_hour) {
        return "GET /flows?hour=" + std::to_string(*o.get_hour) + " HTTP/1.1\r\nHost: " + o.host +
               "\r\n\r\n";
    }
    std::string h = "POST /flows HTTP/1.1\r\nHost: " + o.host + "\r\nContent-Type: ";
    h += o.work.ndjson ? "application/x-ndjson" : "application/json";
    h += "\r\n";
    if (o.gzip) {
        h += "Content-Encoding: gzip\r\n";
    }
    h += "Content-Length: " + std::to_string(content_length) + "\r\n\r\n";
    return h;
}

int connect_to(options const& o) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(o.port);
    if (::inet_pton(AF_INET, o.host.c_str(), &to.sin_addr) != 1) {
        usage_exit("--host must be an IPv4 address");
    }
    int const fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
        std::fprintf(stderr, "flowd-loadgen: connect to %s:%u: %s\n", o.host.c_str(), o.port,
                     std::strerror(errno));
        std::exit(1);
    }
    int const one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

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

// This process's user and system CPU so far.
double cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto const s = [](timeval t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return s(u.ru_utime) + s(u.ru_stime);
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
    bool const verify = opt.verify && !opt.get_hour && opt.dump_body.empty();
    auto const bodies = flowd::bench::make_bodies(opt.work, verify);
    if (!opt.dump_body.empty()) {
        std::string const wire = opt.gzip ? flowd::gzip(bodies[0].text) : bodies[0].text;
        std::FILE* f = std::fopen(opt.dump_body.c_str(), "wb");
        if (f == nullptr || std::fwrite(wire.data(), 1, wire.size(), f) != wire.size() ||
            std::fclose(f) != 0) {
            std::perror("flowd-loadgen: --dump-body");
            return 1;
        }
        return 0;
    }
    run_plan plan{opt, {}, {}, {}};
    std::size_t body_bytes = 0;
    if (opt.get_hour) {
        plan.requests.push_back(request_head(opt, 0));
    } else {
        for (auto const& b : bodies) {
            std::string const wire = opt.gzip ? flowd::gzip(b.text) : b.text;
            body_bytes += wire.size();
            plan.requests.push_back(request_head(opt, wire.size()) + wire);
        }
    }
    totals_map before;
    if (verify) {
        before = fetch_totals(opt);
    }

    // Connections dealt round robin to the threads; all connected before the clock starts.
    // A GET answer may be large: a buffer that takes it in few reads keeps the generator's
    // CPU out of the measured latency.
    std::size_t const buffer_bytes = opt.get_hour ? 256 * 1024 : 16 * 1024;
    std::vector<std::vector<connection>> conns(opt.threads);
    for (auto& v : conns) {
        v.reserve(opt.connections / opt.threads + 1);
    }
    for (std::size_t i = 0; i < opt.connections; ++i) {
        conns[i % opt.threads].emplace_back(connect_to(opt), i, buffer_bytes);
    }
    std::vector<thread_stats> stats(opt.threads);
    for (thread_stats& st : stats) {
        st.sent_ok.assign(plan.requests.size(), 0);
        st.latencies_us.reserve((1 << 20) / opt.threads);
    }
    double const cpu_before = cpu_seconds();
    plan.start = clock_type::now();
    plan.stop_at = opt.requests != 0
                       ? clock_type::time_point::max()
                       : plan.start + std::chrono::duration_cast<clock_type::duration>(
                                          std::chrono::duration<double>(opt.duration));
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < opt.threads; ++t) {
        threads.emplace_back([&, t] { worker(plan, stats[t], conns[t]).run(); });
    }
    for (auto& t : threads) {
        t.join();
    }
    double const took = std::chrono::duration<double>(clock_type::now() - plan.start).count();
    // The generator's own CPU over the run, in cores: near --threads (or the cores it is
    // pinned to), it, not the server, set the pace.
    double const cpu_cores = (cpu_seconds() - cpu_before) / took;

    thread_stats all;
    all.sent_ok.assign(plan.requests.size(), 0);
    for (thread_stats const& st : stats) {
        all.latencies_us.insert(all.latencies_us.end(), st.latencies_us.begin(),
                                st.latencies_us.end());
        for (std::size_t i = 0; i < st.sent_ok.size(); ++i) {
            all.sent_ok[i] += st.sent_ok[i];
        }
        for (std::size_t i = 0; i < st.statuses.size(); ++i) {
            all.statuses[i] += st.statuses[i];
        }
        all.completed += st.completed;
        all.io_errors += st.io_errors;
        all.response_bytes += st.response_bytes;
        all.max_seq = std::max(all.max_seq, st.max_seq);
    }
    std::sort(all.latencies_us.begin(), all.latencies_us.end());
    std::size_t ok = 0;
    std::size_t errors = all.io_errors;
    std::string by_status;
    for (std::size_t status = 0; status < all.statuses.size(); ++status) {
        std::size_t const n = all.statuses[status];
        if (n == 0) {
            continue;
        }
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
        "%s %zu connections, %zu threads, %.1f s: %zu ok (%.0f req/s, %.0f flows/s), %zu "
        "errors; statuses:%s; generator CPU %.2f cores\n",
        opt.get_hour ? "GET" : "POST", opt.connections, opt.threads, took, ok, rps, fps, errors,
        by_status.c_str(), cpu_cores);
    std::printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
                percentile(all.latencies_us, 50), percentile(all.latencies_us, 90),
                percentile(all.latencies_us, 99), percentile(all.latencies_us, 99.9),
                percentile(all.latencies_us, 100));

    std::string verdict = "skipped";
    if (verify) {
        totals_map expected = before;
        for (std::size_t i = 0; i < bodies.size(); ++i) {
            for (auto const& [key, add] : bodies[i].totals) {
                auto& e = expected[key];
                e.tx += add.tx * all.sent_ok[i];
                e.rx += add.rx * all.sent_ok[i];
            }
        }
        totals_map const after = fetch_totals(opt, all.max_seq);
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
        "errors=%zu body_bytes_avg=%zu response_bytes_avg=%zu verify=%s threads=%zu "
        "cpu_cores=%.2f\n",
        rps, fps, percentile(all.latencies_us, 50), percentile(all.latencies_us, 90),
        percentile(all.latencies_us, 99), percentile(all.latencies_us, 99.9), ok, errors,
        opt.get_hour ? 0 : body_bytes / bodies.size(),
        all.completed == 0 ? 0 : all.response_bytes / all.completed, verdict.c_str(), opt.threads,
        cpu_cores);
    return verdict == "MISMATCH" || ok == 0 ? 1 : 0;
}
