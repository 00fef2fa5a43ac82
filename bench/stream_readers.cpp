// flowd-stream-readers: N live readers of GET /flows/stream on one thread (epoll), for the
// live-stream figures of `make bench` (scripts/bench-live.sh).
//
//   flowd-stream-readers --port P [--host 127.0.0.1] [--streams 1000] [--token T]
//                        [--target /flows/stream?from=0&to=1&interval=1s]
//                        [--duration 10] [--probe-hour H] [--probe-every 1] [--grace 3]
//                        [--hold] [--quiet-for S]
//
// Opens --streams connections, each GETting --target, and parses every answer as it arrives:
// the chunked framing, then the events (`id:`, `event:`, `data:` lines) without keeping
// them whole. Once every stream has seen `synced`:
//   --hold: prints "RESULT opened=N ..." and keeps the streams open until a line (or EOF)
//     arrives on stdin, then closes them all and prints "RESULT closed=N".
//   else, for --duration seconds: every --probe-every seconds (when --probe-hour is given) it
//     POSTs one probe row (at a random point of the second),
//     `{"src_app":"probe-<pid>-<k>",...,"hour":H}` (a key of its own, so exactly one `rows` event
//     of each stream carries it), on its own connection of the same loop. A probe's latency is from
//     just before its POST was written to the end of the event (its blank line) carrying it, per
//     stream. Then it waits --grace seconds for the last probes, and reports p50/p99/max over every
//     stream x probe, how many streams saw every probe, the events and bytes it parsed, and its own
//     ceiling: its CPU (user and system) over the window in cores, and the rate at which it parses
//     the bytes one stream received, replayed from memory with no socket (parse-only, one core).
//
// Prints a last line "RESULT key=value ..." for scripts.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.hpp"

using clock_type = std::chrono::steady_clock;

namespace {

struct options {
    std::string host = "127.0.0.1";
    unsigned short port = 8080;
    std::size_t streams = 1000;
    std::string target = "/flows/stream?from=0&to=1&interval=1s";
    std::string token;
    double duration = 10;
    long probe_hour = -1;  // -1: no probes
    double probe_every = 1;
    double grace = 3;
    bool hold = false;
};

[[noreturn]] void usage_exit(char const* why) {
    std::fprintf(stderr,
                 "flowd-stream-readers: %s (see the comment at the top of "
                 "bench/stream_readers.cpp)\n",
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
        } else if (args.is("--streams")) {
            o.streams = args.number();
        } else if (args.is("--target")) {
            o.target = args.value();
        } else if (args.is("--token")) {
            o.token = args.value();
        } else if (args.is("--duration")) {
            o.duration = args.real();
        } else if (args.is("--probe-hour")) {
            o.probe_hour = static_cast<long>(args.number());
        } else if (args.is("--probe-every")) {
            o.probe_every = args.real();
        } else if (args.is("--grace")) {
            o.grace = args.real();
        } else if (args.is("--hold")) {
            o.hold = true;
        } else {
            args.unknown();
        }
    }
    if (o.streams == 0 || o.probe_every <= 0) {
        usage_exit("--streams and --probe-every must be positive");
    }
    return o;
}

// The probes found in one event's data: a key "probe-<pid>-<k>" of its own per probe.
class probe_scanner {
public:
    explicit probe_scanner(std::string marker) : marker_(std::move(marker)) {}

    // `data`: the next bytes of one data: line. A marker split between two calls is found
    // in the joint of the previous call's tail and this call's head.
    void scan(std::string_view data, std::vector<std::uint32_t>& found) {
        if (!tail_.empty()) {
            std::string joint = tail_;
            joint.append(data.substr(0, keep));
            find_all(joint, found);
        }
        find_all(data, found);
        if (data.size() >= keep) {
            tail_.assign(data.substr(data.size() - keep));
        } else {
            tail_.append(data);
            if (tail_.size() > keep) {
                tail_.erase(0, tail_.size() - keep);
            }
        }
    }
    void line_end() { tail_.clear(); }

private:
    // Longer than the marker and the longest probe number with its closing quote.
    static constexpr std::size_t keep = 48;

    void find_all(std::string_view s, std::vector<std::uint32_t>& found) const {
        char const* p = s.data();
        char const* const end = s.data() + s.size();
        while (p < end) {
            void const* hit =
                ::memmem(p, static_cast<std::size_t>(end - p), marker_.data(), marker_.size());
            if (hit == nullptr) {
                return;
            }
            char const* q = static_cast<char const*>(hit) + marker_.size();
            std::uint32_t id = 0;
            std::size_t digits = 0;
            while (q < end && *q >= '0' && *q <= '9') {
                id = id * 10 + static_cast<std::uint32_t>(*q - '0');
                ++q;
                ++digits;
            }
            // Only a number whose closing quote arrived is whole.
            if (digits != 0 && q < end && *q == '"' &&
                std::find(found.begin(), found.end(), id) == found.end()) {
                found.push_back(id);
            }
            p = static_cast<char const*>(hit) + 1;
        }
    }

    std::string marker_;
    std::string tail_;
};

enum class event_kind { rows, synced, reset, other };

// Server-Sent Events, parsed as the bytes come (WHATWG HTML "Server-sent events": fields
// `name: value`, `:` comments, a blank line ends an event). data: values are never kept,
// only scanned for probes.
class sse_parser {
public:
    using on_event_fn = std::function<void(event_kind, std::vector<std::uint32_t> const&)>;

    explicit sse_parser(std::string const& marker) : probes_(marker) {}

    void feed(std::string_view bytes, on_event_fn const& on_event) {
        while (!bytes.empty()) {
            std::size_t const nl = bytes.find('\n');
            std::string_view const part = bytes.substr(0, nl);
            take(part);
            if (nl == std::string_view::npos) {
                return;
            }
            end_line(on_event);
            bytes.remove_prefix(nl + 1);
        }
    }

private:
    enum class state { name, value, data, skip };

    void take(std::string_view part) {
        while (!part.empty()) {
            switch (state_) {
                case state::name: {
                    std::size_t const colon = part.find(':');
                    name_.append(part.substr(0, colon));
                    at_line_start_ = false;
                    if (colon == std::string_view::npos) {
                        return;
                    }
                    part.remove_prefix(colon + 1);
                    // A leading space of the value is not part of it.
                    if (!part.empty() && part.front() == ' ') {
                        part.remove_prefix(1);
                    } else {
                        skip_space_ = part.empty();
                    }
                    state_ = name_.empty()     ? state::skip
                             : name_ == "data" ? state::data
                                               : state::value;
                    continue;
                }
                case state::value:
                    if (skip_space_ && part.front() == ' ') {
                        part.remove_prefix(1);
                    }
                    skip_space_ = false;
                    if (value_.size() < 256) {
                        value_.append(part.substr(0, 256 - value_.size()));
                    }
                    return;
                case state::data:
                    if (skip_space_ && part.front() == ' ') {
                        part.remove_prefix(1);
                    }
                    skip_space_ = false;
                    probes_.scan(part, found_);
                    return;
                case state::skip:
                    return;
            }
        }
    }

    void end_line(on_event_fn const& on_event) {
        if (at_line_start_) {
            if (has_fields_) {
                on_event(kind_, found_);
            }
            kind_ = event_kind::other;
            has_fields_ = false;
            found_.clear();
        } else {
            if (!value_.empty() && value_.back() == '\r') {
                value_.pop_back();
            }
            if (state_ == state::value && name_ == "event") {
                kind_ = value_ == "rows"     ? event_kind::rows
                        : value_ == "synced" ? event_kind::synced
                        : value_ == "reset"  ? event_kind::reset
                                             : event_kind::other;
            }
            has_fields_ = has_fields_ || state_ != state::skip;
        }
        probes_.line_end();
        name_.clear();
        value_.clear();
        state_ = state::name;
        skip_space_ = false;
        at_line_start_ = true;
    }

    probe_scanner probes_;
    state state_ = state::name;
    bool at_line_start_ = true;
    bool skip_space_ = false;
    bool has_fields_ = false;
    std::string name_;
    std::string value_;
    event_kind kind_ = event_kind::other;
    std::vector<std::uint32_t> found_;
};

// One answer's framing: the head (status 200 expected), then chunks whose data go to the
// SSE parser. Owned by the loop's thread.
class stream_reader {
public:
    explicit stream_reader(std::string const& marker) : sse_(marker) {}

    // False when the answer is not a 200 stream or its framing is broken.
    bool feed(std::string_view bytes, sse_parser::on_event_fn const& on_event) {
        while (!bytes.empty()) {
            switch (state_) {
                case state::head: {
                    std::size_t const before = line_.size();
                    line_.append(bytes);
                    std::size_t const end = line_.find("\r\n\r\n");
                    if (end == std::string::npos) {
                        return line_.size() < 16384;
                    }
                    if (line_.compare(0, 9, "HTTP/1.1 ") != 0 || line_.compare(9, 3, "200") != 0) {
                        return false;
                    }
                    bytes.remove_prefix(end + 4 - before);
                    line_.clear();
                    state_ = state::size;
                    break;
                }
                case state::size: {
                    std::size_t const nl = bytes.find('\n');
                    line_.append(bytes.substr(0, nl));
                    if (nl == std::string_view::npos) {
                        return line_.size() < 64;
                    }
                    bytes.remove_prefix(nl + 1);
                    std::size_t n = 0;
                    std::size_t digits = 0;
                    for (char const c : line_) {
                        int const v = c >= '0' && c <= '9'   ? c - '0'
                                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                             : -1;
                        if (v < 0) {
                            break;
                        }
                        n = n * 16 + static_cast<std::size_t>(v);
                        ++digits;
                    }
                    line_.clear();
                    if (digits == 0 || n == 0) {
                        return false;  // broken, or the body's end: the stream is over
                    }
                    left_ = n;
                    state_ = state::data;
                    break;
                }
                case state::data: {
                    std::size_t const take = std::min(left_, bytes.size());
                    sse_.feed(bytes.substr(0, take), on_event);
                    bytes.remove_prefix(take);
                    left_ -= take;
                    if (left_ == 0) {
                        state_ = state::data_end;
                    }
                    break;
                }
                case state::data_end: {
                    std::size_t const nl = bytes.find('\n');
                    if (nl == std::string_view::npos) {
                        return true;
                    }
                    bytes.remove_prefix(nl + 1);
                    state_ = state::size;
                    break;
                }
            }
        }
        return true;
    }

private:
    enum class state { head, size, data, data_end };
    state state_ = state::head;
    std::string line_;
    std::size_t left_ = 0;
    sse_parser sse_;
};

struct stream_conn {
    int fd = -1;
    stream_reader reader;
    bool synced = false;
    std::vector<bool> seen;  // per probe
    std::size_t seen_count = 0;

    explicit stream_conn(std::string const& marker) : reader(marker) {}
};

int connect_to(options const& o) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(o.port);
    if (::inet_pton(AF_INET, o.host.c_str(), &to.sin_addr) != 1) {
        usage_exit("--host must be an IPv4 address");
    }
    int const fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
        std::fprintf(stderr, "flowd-stream-readers: connect to %s:%u: %s\n", o.host.c_str(), o.port,
                     std::strerror(errno));
        std::exit(1);
    }
    int const one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

void send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t const n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            std::fprintf(stderr, "flowd-stream-readers: send: %s\n", std::strerror(errno));
            std::exit(1);
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

double cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto const s = [](timeval t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return s(u.ru_utime) + s(u.ru_stime);
}

double percentile(std::vector<double> const& sorted, double p) {
    if (sorted.empty()) {
        return 0;
    }
    auto const idx =
        static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
    return sorted[std::min(idx, sorted.size() - 1)];
}

double seconds(clock_type::duration d) {
    return std::chrono::duration<double>(d).count();
}

// The probe's connection: one POST at a time, its answer read to the end of its head and
// Content-Length body.
struct probe_conn {
    int fd = -1;
    bool busy = false;
    std::string in;
    std::size_t answered = 0;
    std::size_t failed = 0;

    // Consumes what arrived; true once the answer is whole.
    bool read_some() {
        char buf[4096];
        ssize_t const n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                return false;
            }
            std::fprintf(stderr, "flowd-stream-readers: the probe's connection closed\n");
            std::exit(1);
        }
        in.append(buf, static_cast<std::size_t>(n));
        std::size_t const end = in.find("\r\n\r\n");
        if (end == std::string::npos) {
            return false;
        }
        std::size_t length = 0;
        std::size_t const cl = in.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) {
            length = std::strtoull(in.c_str() + cl + 16, nullptr, 10);
        }
        if (in.size() < end + 4 + length) {
            return false;
        }
        if (in.compare(9, 3, "200") == 0) {
            ++answered;
        } else {
            ++failed;
            std::fprintf(stderr, "flowd-stream-readers: a probe was answered %.12s\n", in.c_str());
        }
        in.erase(0, end + 4 + length);
        busy = false;
        return true;
    }
};

}  // namespace

int main(int argc, char** argv) {
    options const opt = parse(argc, argv);
    // Every stream is a descriptor: take the hard limit.
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
    }
    std::string const auth = opt.token.empty() ? "" : "Authorization: Bearer " + opt.token + "\r\n";
    std::string const get = "GET " + opt.target + " HTTP/1.1\r\nHost: " + opt.host +
                            "\r\nAccept: text/event-stream\r\n" + auth + "\r\n";
    std::string const probe_prefix = "probe-" + std::to_string(::getpid()) + "-";
    std::string const marker = R"("src_app":")" + probe_prefix;

    int const ep = ::epoll_create1(EPOLL_CLOEXEC);
    std::vector<stream_conn> conns;
    conns.reserve(opt.streams);
    auto const opening = clock_type::now();
    for (std::size_t i = 0; i < opt.streams; ++i) {
        stream_conn& c = conns.emplace_back(marker);
        c.fd = connect_to(opt);
        send_all(c.fd, get);
        ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    }
    constexpr std::uint64_t probe_tag = ~std::uint64_t{0};
    constexpr std::uint64_t stdin_tag = probe_tag - 1;

    // What the event loop counts.
    std::size_t synced = 0;
    std::size_t failed = 0;
    std::size_t rows_events = 0;
    std::size_t resets = 0;
    std::size_t bytes = 0;
    std::vector<clock_type::time_point> probe_sent;
    std::vector<double> latencies_ms;
    std::string sample;  // the first bytes stream 0 received, for the parse-only ceiling
    constexpr std::size_t sample_limit = 32U << 20;
    clock_type::time_point now = clock_type::now();
    std::size_t current = 0;
    sse_parser::on_event_fn const on_event = [&](event_kind kind,
                                                 std::vector<std::uint32_t> const& found) {
        stream_conn& c = conns[current];
        switch (kind) {
            case event_kind::synced:
                if (!c.synced) {
                    c.synced = true;
                    ++synced;
                }
                break;
            case event_kind::reset:
                ++resets;
                if (c.synced) {
                    c.synced = false;
                    --synced;
                }
                break;
            case event_kind::rows:
                ++rows_events;
                break;
            case event_kind::other:
                break;
        }
        for (std::uint32_t const id : found) {
            if (id < probe_sent.size() && !c.seen[id]) {
                c.seen[id] = true;
                ++c.seen_count;
                latencies_ms.push_back(seconds(now - probe_sent[id]) * 1000.0);
            }
        }
    };

    std::vector<char> buffer(256 * 1024);
    std::vector<epoll_event> events(256);
    bool input_closed = false;
    probe_conn probe;
    // One pass of the loop: wait up to `wait_ms`, read what is ready.
    auto poll_once = [&](int wait_ms) {
        int const n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), wait_ms);
        if (n < 0 && errno != EINTR) {
            std::perror("flowd-stream-readers: epoll_wait");
            std::exit(1);
        }
        for (int i = 0; i < n; ++i) {
            std::uint64_t const tag = events[static_cast<std::size_t>(i)].data.u64;
            if (tag == probe_tag) {
                probe.read_some();
                continue;
            }
            if (tag == stdin_tag) {
                input_closed = true;
                continue;
            }
            stream_conn& c = conns[tag];
            ssize_t const got = ::recv(c.fd, buffer.data(), buffer.size(), 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }
            now = clock_type::now();
            current = tag;
            bool ok = got > 0;
            if (ok) {
                auto const size = static_cast<std::size_t>(got);
                bytes += size;
                if (tag == 0 && sample.size() < sample_limit) {
                    sample.append(buffer.data(), std::min(size, sample_limit - sample.size()));
                }
                ok = c.reader.feed({buffer.data(), size}, on_event);
            }
            if (!ok) {
                ++failed;
                if (c.synced) {
                    c.synced = false;
                    --synced;
                }
                ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
                ::close(c.fd);
                c.fd = -1;
            }
        }
    };

    // Every stream's full send first.
    while (synced + failed < opt.streams) {
        if (clock_type::now() - opening > std::chrono::seconds(120)) {
            std::fprintf(stderr, "flowd-stream-readers: %zu of %zu streams synced after 120 s\n",
                         synced, opt.streams);
            return 1;
        }
        poll_once(100);
    }
    double const open_s = seconds(clock_type::now() - opening);
    if (failed != 0) {
        std::fprintf(stderr, "flowd-stream-readers: %zu streams failed or ended while opening\n",
                     failed);
        return 1;
    }
    // Scripts wait for this line before they start the load.
    std::fprintf(stderr, "flowd-stream-readers: %zu streams synced in %.3f s\n", synced, open_s);

    if (opt.hold) {
        std::printf("RESULT opened=%zu open_s=%.3f\n", synced, open_s);
        std::fflush(stdout);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = stdin_tag;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
        while (!input_closed) {
            poll_once(1000);
        }
        for (stream_conn& c : conns) {
            if (c.fd >= 0) {
                ::close(c.fd);
            }
        }
        std::printf("RESULT closed=%zu failed=%zu resets=%zu\n", conns.size(), failed, resets);
        return failed == 0 ? 0 : 1;
    }

    if (opt.probe_hour >= 0) {
        probe.fd = connect_to(opt);
        ::fcntl(probe.fd, F_SETFL, ::fcntl(probe.fd, F_GETFL) | O_NONBLOCK);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = probe_tag;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, probe.fd, &ev);
    }
    std::size_t const probes_planned =
        opt.probe_hour >= 0 ? static_cast<std::size_t>(opt.duration / opt.probe_every) : 0;
    for (stream_conn& c : conns) {
        c.seen.assign(probes_planned, false);
    }
    std::size_t const bytes_before = bytes;
    std::size_t const events_before = rows_events;
    double const cpu_before = cpu_seconds();
    auto const start = clock_type::now();
    auto const every = std::chrono::duration_cast<clock_type::duration>(
        std::chrono::duration<double>(opt.probe_every));
    auto const stop_at = start + std::chrono::duration_cast<clock_type::duration>(
                                     std::chrono::duration<double>(opt.duration));
    auto const grace_end = stop_at + std::chrono::duration_cast<clock_type::duration>(
                                         std::chrono::duration<double>(opt.grace));
    std::size_t skipped = 0;
    // Each probe at a random point of its slot: the streams' timers tick at fixed phases,
    // and a probe always sent just after (or before) a tick would see only one delay.
    std::vector<clock_type::duration> phase(probes_planned + 1);
    std::mt19937_64 rng(static_cast<std::uint64_t>(::getpid()));
    std::uniform_real_distribution<double> within(0.0, 0.9);
    for (auto& p : phase) {
        p = std::chrono::duration_cast<clock_type::duration>(every * within(rng));
    }
    for (;;) {
        auto const t = clock_type::now();
        // The next probe: its slot came and it fits in the run; a slot whose previous probe
        // is still unanswered is skipped (and counted).
        if (probes_planned != 0 && probe_sent.size() < probes_planned &&
            t >= start + every * static_cast<long>(probe_sent.size() + skipped) +
                     phase[(probe_sent.size() + skipped) % phase.size()]) {
            if (probe.busy) {
                ++skipped;
            } else {
                std::string const body = R"([{"src_app":")" + probe_prefix +
                                         std::to_string(probe_sent.size()) +
                                         R"(","dest_app":"probe","vpc_id":"probe","bytes_tx":1,)"
                                         R"("bytes_rx":1,"hour":)" +
                                         std::to_string(opt.probe_hour) + "}]";
                std::string const req = "POST /flows HTTP/1.1\r\nHost: " + opt.host +
                                        "\r\nContent-Type: application/json\r\n" + auth +
                                        "Content-Length: " + std::to_string(body.size()) +
                                        "\r\n\r\n" + body;
                probe.busy = true;
                probe_sent.push_back(clock_type::now());
                send_all(probe.fd, req);
            }
        }
        if (t >= grace_end) {
            break;
        }
        // Past the run, done early once every stream saw every probe.
        if (t >= stop_at && !probe.busy) {
            std::size_t const want = probe_sent.size();
            bool const all = std::all_of(conns.begin(), conns.end(), [&](stream_conn const& c) {
                return c.fd < 0 || c.seen_count == want;
            });
            if (all) {
                break;
            }
        }
        poll_once(5);
    }
    auto const window_end = clock_type::now();
    double const wall = seconds(window_end - start);
    double const cpu_cores = (cpu_seconds() - cpu_before) / wall;
    double const bytes_per_s = static_cast<double>(bytes - bytes_before) / wall;
    double const events_per_s = static_cast<double>(rows_events - events_before) / wall;

    std::sort(latencies_ms.begin(), latencies_ms.end());
    std::size_t const sent = probe_sent.size();
    std::size_t all_probes = 0;
    for (stream_conn const& c : conns) {
        all_probes += c.fd >= 0 && c.seen_count == sent ? 1 : 0;
    }

    // Its own ceiling: the bytes stream 0 received, framing and events parsed again from
    // memory (no sockets) until a second has passed.
    double parse_bytes_per_s = 0;
    if (!sample.empty()) {
        std::size_t parsed = 0;
        auto const t0 = clock_type::now();
        std::size_t dummy = 0;
        sse_parser::on_event_fn const count = [&](event_kind, std::vector<std::uint32_t> const& f) {
            dummy += f.size() + 1;
        };
        while (clock_type::now() - t0 < std::chrono::seconds(1)) {
            stream_reader replay(marker);
            for (std::size_t at = 0; at < sample.size(); at += 65536) {
                (void)replay.feed(std::string_view(sample).substr(at, 65536), count);
            }
            parsed += sample.size();
        }
        parse_bytes_per_s = static_cast<double>(parsed) / seconds(clock_type::now() - t0);
        if (dummy == 0) {
            parse_bytes_per_s = 0;  // nothing was parsed: no figure
        }
    }

    std::printf(
        "%zu streams open in %.2f s; %zu probes sent (%zu slots skipped, %zu answered "
        "200); latency ms p50 %.1f p99 %.1f max %.1f over %zu arrivals of %zu; %zu "
        "streams saw every probe; %.0f rows events/s, %.1f MB/s; %zu resets; CPU %.2f "
        "cores; parse-only %.1f MB/s\n",
        opt.streams, open_s, sent, skipped, probe.answered, percentile(latencies_ms, 50),
        percentile(latencies_ms, 99), percentile(latencies_ms, 100), latencies_ms.size(),
        sent * opt.streams, all_probes, events_per_s, bytes_per_s / 1e6, resets, cpu_cores,
        parse_bytes_per_s / 1e6);
    std::printf(
        "RESULT streams=%zu open_s=%.3f probes=%zu skipped=%zu probe_errors=%zu "
        "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f arrivals=%zu expected=%zu all_probes=%zu "
        "failed=%zu resets=%zu events_per_s=%.0f bytes_per_s=%.0f cpu_cores=%.3f "
        "parse_bytes_per_s=%.0f\n",
        opt.streams, open_s, sent, skipped, probe.failed, percentile(latencies_ms, 50),
        percentile(latencies_ms, 99), percentile(latencies_ms, 100), latencies_ms.size(),
        sent * opt.streams, all_probes, failed, resets, events_per_s, bytes_per_s, cpu_cores,
        parse_bytes_per_s);
    return failed == 0 && probe.failed == 0 ? 0 : 1;
}
