// The network face of SPEC "Security and limits": TLS and mutual TLS, the connection cap,
// the header/body/idle deadlines (slowloris), idle keep-alive connections, garbage input and
// clients that vanish mid-request or mid-answer. The real binary over loopback; every loop
// is bounded by a deadline.
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "flowd/codec/gzip.hpp"
#include "server_fixture.hpp"

namespace flowd::test {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---- raw sockets -----------------------------------------------------------------------

// Raises this process's soft open-files limit towards `want` (never past the hard limit);
// flowd, started from here, inherits it. Returns the soft limit now in force.
rlim_t raise_nofile(rlim_t want) {
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_cur < want) {
        lim.rlim_cur = std::min(want, lim.rlim_max);
        setrlimit(RLIMIT_NOFILE, &lim);
        getrlimit(RLIMIT_NOFILE, &lim);
    }
    return lim.rlim_cur;
}

// A connected loopback TCP socket (closed on destruction); -1 when the connect failed.
class raw_socket {
public:
    explicit raw_socket(std::uint16_t port, int rcvbuf = 0) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) {
            return;
        }
        if (rcvbuf > 0) {
            ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        }
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            ::close(fd_);
            fd_ = -1;
            return;
        }
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    ~raw_socket() { close(); }
    raw_socket(raw_socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    raw_socket& operator=(raw_socket&&) = delete;
    raw_socket(raw_socket const&) = delete;
    raw_socket& operator=(raw_socket const&) = delete;

    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] bool ok() const noexcept { return fd_ >= 0; }

    // Writes everything, or stops at the first error (the peer may have closed).
    bool send(std::string_view bytes) const {
        while (!bytes.empty()) {
            ssize_t const n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) {
                return false;
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }
    void shutdown_write() const { ::shutdown(fd_, SHUT_WR); }

    // Reads until the peer closes or `limit` passes; `closed` says which.
    struct read_result {
        std::string data;
        bool closed = false;
    };
    [[nodiscard]] read_result read_until_close(std::chrono::milliseconds limit) const {
        read_result r;
        auto const deadline = steady::now() + limit;
        char buf[16384];
        for (;;) {
            auto const left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
            if (left.count() <= 0) {
                return r;
            }
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
                continue;
            }
            ssize_t const n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) {
                r.closed = true;
                return r;
            }
            r.data.append(buf, static_cast<std::size_t>(n));
        }
    }
    // Reads until `needle` arrived (true) or the peer closed or `limit` passed (false).
    bool read_until(std::string const& needle, std::chrono::milliseconds limit,
                    std::string& out) const {
        auto const deadline = steady::now() + limit;
        char buf[4096];
        while (out.find(needle) == std::string::npos) {
            auto const left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
            if (left.count() <= 0) {
                return false;
            }
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
                continue;
            }
            ssize_t const n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) {
                return false;
            }
            out.append(buf, static_cast<std::size_t>(n));
        }
        return true;
    }
    // Closes with a reset instead of a FIN: the abrupt way a client can vanish.
    void reset() {
        linger l{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close();
    }
    void close() {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

private:
    int fd_ = -1;
};

// ---- metrics, TLS client, certificates ---------------------------------------------------

double metric(flowd_process const& flowd, std::string const& name,
              std::map<std::string, std::string> const& labels = {}) {
    http_client exposer{flowd.metrics_port()};
    auto const samples = parse_metrics(exposer.get("/metrics").body());
    return metric_value(samples, name, labels).value_or(0);
}

double rejections(flowd_process const& flowd, std::string const& limit) {
    return metric(flowd, "flowd_limit_rejections_total", {{"limit", limit}});
}

// A synchronous HTTPS client on one connection, verifying the server against `ca_file` and
// its address; with `cert_file`/`key_file` it presents a client certificate.
class tls_client {
public:
    tls_client(std::uint16_t port, std::string const& ca_file, std::string const& cert_file = {},
               std::string const& key_file = {}) {
        ctx_.load_verify_file(ca_file);
        ctx_.set_verify_mode(ssl::verify_peer);
        if (!cert_file.empty()) {
            ctx_.use_certificate_chain_file(cert_file);
            ctx_.use_private_key_file(key_file, ssl::context::pem);
        }
        stream_.emplace(ioc_, ctx_);
        stream_->set_verify_callback(ssl::host_name_verification("127.0.0.1"));
        auto& tcp = beast::get_lowest_layer(*stream_);
        tcp.expires_after(10s);
        tcp.connect(net::ip::tcp::endpoint{net::ip::make_address("127.0.0.1"), port});
        stream_->handshake(ssl::stream_base::client);
    }

    http_response send(http_request req) {
        req.set(http::field::host, "127.0.0.1");
        req.prepare_payload();
        beast::get_lowest_layer(*stream_).expires_after(10s);
        http::write(*stream_, req);
        http::response_parser<http::string_body> parser;
        parser.body_limit(1ULL << 30);
        http::read(*stream_, buffer_, parser);
        return parser.release();
    }
    http_response get(std::string const& target) {
        return send(http_request{http::verb::get, target, 11});
    }
    http_response post(std::string const& target, std::string body) {
        http_request req{http::verb::post, target, 11};
        req.set(http::field::content_type, "application/json");
        req.body() = std::move(body);
        return send(std::move(req));
    }

    // Sends GET `target`, a live stream read by read_stream_until().
    void open_stream(std::string const& target) {
        http_request req{http::verb::get, target, 11};
        req.set(http::field::host, "127.0.0.1");
        http::write(*stream_, req);
    }
    // Reads the stream until done(body) holds for its body so far (whole chunks, de-chunked
    // here, every chunk's framing checked), or 10 s pass. Returns the body read so far.
    std::string read_stream_until(std::function<bool(std::string const&)> const& done) {
        auto const deadline = std::chrono::steady_clock::now() + 10s;
        while (!done(stream_body_) && std::chrono::steady_clock::now() < deadline) {
            std::array<char, 4096> buf{};
            beast::get_lowest_layer(*stream_).expires_after(10s);
            stream_raw_.append(buf.data(), stream_->read_some(net::buffer(buf)));
            if (stream_next_ == std::string::npos) {
                std::size_t const head_end = stream_raw_.find("\r\n\r\n");
                if (head_end == std::string::npos) {
                    continue;
                }
                EXPECT_NE(stream_raw_.find("Transfer-Encoding: chunked"), std::string::npos)
                    << stream_raw_;
                stream_next_ = head_end + 4;
            }
            for (std::size_t eol = 0;
                 (eol = stream_raw_.find("\r\n", stream_next_)) != std::string::npos;) {
                std::size_t const size =
                    std::stoul(stream_raw_.substr(stream_next_, eol - stream_next_), nullptr, 16);
                if (stream_raw_.size() < eol + 2 + size + 2) {
                    break;  // the rest of this chunk is still on its way
                }
                stream_body_.append(stream_raw_, eol + 2, size);
                EXPECT_EQ(stream_raw_.substr(eol + 2 + size, 2), "\r\n") << "chunk framing";
                stream_next_ = eol + 2 + size + 2;
            }
        }
        EXPECT_TRUE(done(stream_body_)) << "the stream read only: " << stream_body_;
        return stream_body_;
    }

private:
    net::io_context ioc_;
    ssl::context ctx_{ssl::context::tls_client};
    std::optional<beast::ssl_stream<beast::tcp_stream>> stream_;
    beast::flat_buffer buffer_;
    std::string stream_raw_;                       // a live stream's bytes as read
    std::string stream_body_;                      // and its body, de-chunked
    std::size_t stream_next_ = std::string::npos;  // where its next chunk's size line starts
};

// A test CA, a server certificate for 127.0.0.1 and a client certificate (CN exporter-7),
// made with the openssl command-line tool.
struct test_pki {
    temp_dir dir;
    std::string ca, server_cert, server_key, client_cert, client_key, other_ca;

    test_pki() {
        std::string const d = dir.path();
        ca = d + "/ca.pem";
        server_cert = d + "/server.pem";
        server_key = d + "/server.key";
        client_cert = d + "/client.pem";
        client_key = d + "/client.key";
        other_ca = d + "/other-ca.pem";
        dir.write("san.ext", "subjectAltName=IP:127.0.0.1\n");
        std::string const ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        std::string const script =
            "cd '" + d + "' && " +  //
            "openssl req -x509" + ec +
            " -keyout ca.key -out ca.pem -days 2 -subj '/CN=flowd test CA' && " +
            "openssl req -x509" + ec +
            " -keyout other-ca.key -out other-ca.pem -days 2 -subj '/CN=other CA' && " +
            "openssl req" + ec + " -keyout server.key -out server.csr -subj '/CN=127.0.0.1' && " +
            "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
            "server.pem -days 2 -extfile san.ext && " +
            "openssl req" + ec + " -keyout client.key -out client.csr -subj '/CN=exporter-7' && " +
            "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
            "client.pem -days 2";
        std::string const cmd = "timeout 60 sh -c \"" + script + "\" >'" + d + "/openssl.log' 2>&1";
        if (std::system(cmd.c_str()) != 0) {
            throw std::runtime_error("openssl failed: see " + d + "/openssl.log");
        }
    }
};

std::string const seed_hour1 =
    R"([{"src_app":"baz","dest_app":"qux","vpc_id":"vpc-0","bytes_tx":100,"bytes_rx":500,"hour":1},)"
    R"({"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":300,"bytes_rx":900,"hour":1}])";

// ---- TLS ---------------------------------------------------------------------------------

TEST(TlsTest, PostAndGetOverTlsGiveExactTotals) {
    test_pki pki;
    flowd_process flowd(
        {}, {{"FLOWD_TLS_CERT_FILE", pki.server_cert}, {"FLOWD_TLS_KEY_FILE", pki.server_key}});
    EXPECT_TRUE(flowd.wait_log("TLS on the http listener"));

    tls_client client{flowd.port(), pki.ca};
    auto posted = client.post("/flows", seed_batch());
    auto hour1 = client.get("/flows?hour=1");

    EXPECT_EQ(posted.result_int(), 200U);
    EXPECT_EQ(posted.body(), R"({"accepted":5})");
    EXPECT_EQ(hour1.body(), seed_hour1);
    // Plain HTTP to the TLS port gets 400 tls-required, never the resource.
    http_client plain{flowd.port()};
    EXPECT_TRUE(is_problem(plain.get("/healthz"), 400, "tls-required"));
}

// A live stream's events go out over TLS as chunks written from the shared event (one
// gathering write of size line, event and CRLF), each framed right.
TEST(TlsTest, AStreamOverTlsGetsItsChangedRowsInWellFramedChunks) {
    test_pki pki;
    flowd_process flowd(
        {}, {{"FLOWD_TLS_CERT_FILE", pki.server_cert}, {"FLOWD_TLS_KEY_FILE", pki.server_key}});
    ASSERT_TRUE(flowd.wait_log("TLS on the http listener"));
    tls_client reader{flowd.port(), pki.ca};
    tls_client writer{flowd.port(), pki.ca};
    reader.open_stream("/flows/stream?from=1&to=2&interval=100ms");

    (void)reader.read_stream_until(
        [](std::string const& b) { return b.find("event: synced") != std::string::npos; });
    ASSERT_EQ(writer.post("/flows", seed_batch()).result_int(), 200U);
    std::string const body = reader.read_stream_until(
        [](std::string const& b) { return b.find("\"bytes_tx\":300") != std::string::npos; });

    EXPECT_NE(body.find("event: rows\ndata: "), std::string::npos) << body;
    EXPECT_NE(body.find(R"({"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":300,)"
                        R"("bytes_rx":900,"hour":1})"),
              std::string::npos)
        << body;
}

TEST(TlsTest, MutualTlsNeedsAClientCertificateFromTheConfiguredCa) {
    test_pki pki;
    flowd_process flowd({}, {{"FLOWD_TLS_CERT_FILE", pki.server_cert},
                             {"FLOWD_TLS_KEY_FILE", pki.server_key},
                             {"FLOWD_TLS_CLIENT_CA_FILE", pki.ca},
                             {"FLOWD_LOG_LEVEL", "debug"}});
    EXPECT_TRUE(flowd.wait_log("client certificates required"));

    {
        tls_client client{flowd.port(), pki.ca, pki.client_cert, pki.client_key};
        EXPECT_EQ(client.post("/flows", seed_batch()).result_int(), 200U);
        EXPECT_EQ(client.get("/flows?hour=1").body(), seed_hour1);
    }
    // The certificate's subject CN is the client identity handlers see.
    EXPECT_TRUE(flowd.wait_log("TLS client certificate CN 'exporter-7'"));
    // Without a certificate: the handshake fails, or (TLS 1.3, where the client finishes
    // first) the first request gets an alert instead of an answer.
    auto refused = [&](std::string const& cert, std::string const& key) {
        try {
            tls_client client{flowd.port(), pki.ca, cert, key};
            client.get("/healthz");
            return false;
        } catch (std::exception const&) {
            return true;
        }
    };
    EXPECT_TRUE(refused({}, {}));
    // A certificate signed by another CA is refused too.
    test_pki other;
    EXPECT_TRUE(refused(other.client_cert, other.client_key));
    // The service is intact afterwards.
    tls_client again{flowd.port(), pki.ca, pki.client_cert, pki.client_key};
    EXPECT_EQ(again.get("/flows?hour=1").body(), seed_hour1);
}

TEST(TlsTest, OverTheCapIsOverloadedOverTlsToo) {
    test_pki pki;
    flowd_process flowd({}, {{"FLOWD_TLS_CERT_FILE", pki.server_cert},
                             {"FLOWD_TLS_KEY_FILE", pki.server_key},
                             {"FLOWD_MAX_CONNECTIONS", "1"}});
    tls_client first{flowd.port(), pki.ca};
    EXPECT_EQ(first.get("/healthz").result_int(), 200U);
    tls_client second{flowd.port(), pki.ca};
    auto r = second.get("/healthz");
    EXPECT_TRUE(is_problem(r, 503, "overloaded"));
    EXPECT_EQ(r[http::field::connection], "close");
    EXPECT_EQ(first.get("/healthz").result_int(), 200U);
    EXPECT_EQ(rejections(flowd, "max_connections"), 1);
}

TEST(TlsTest, StalledHandshakeIsClosedAtTheHeaderDeadline) {
    test_pki pki;
    flowd_process flowd({}, {{"FLOWD_TLS_CERT_FILE", pki.server_cert},
                             {"FLOWD_TLS_KEY_FILE", pki.server_key},
                             {"FLOWD_HEADER_TIMEOUT", "1s"}});
    raw_socket silent{flowd.port()};
    ASSERT_TRUE(silent.send("\x16\x03\x01"));  // the start of a ClientHello, then nothing
    auto const start = steady::now();
    auto r = silent.read_until_close(5s);
    EXPECT_TRUE(r.closed);
    EXPECT_LT(steady::now() - start, 3s);
    EXPECT_TRUE(eventually([&] { return rejections(flowd, "header_timeout") == 1; }));
}

TEST(TlsTest, PlainHttpToTheTlsPortIsAnsweredTlsRequiredInPlainText) {
    test_pki pki;
    flowd_process flowd(
        {}, {{"FLOWD_TLS_CERT_FILE", pki.server_cert}, {"FLOWD_TLS_KEY_FILE", pki.server_key}});
    raw_socket plain{flowd.port()};
    ASSERT_TRUE(plain.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));

    auto const r = plain.read_until_close(5s);

    EXPECT_TRUE(r.closed);
    EXPECT_EQ(r.data.rfind("HTTP/1.1 400 ", 0), 0U) << r.data;
    EXPECT_NE(r.data.find("https://flowd.invalid/problems/tls-required"), std::string::npos);
    EXPECT_NE(r.data.find("Connection: close"), std::string::npos);
    // TLS still works on the same port.
    tls_client c{flowd.port(), pki.ca};
    EXPECT_EQ(c.get("/healthz").result_int(), 200U);
}

TEST(TlsTest, BadCertificateOrKeyStopsStartWithOneLine) {
    test_pki pki;
    std::vector<std::map<std::string, std::string>> const bad{
        {{"FLOWD_TLS_CERT_FILE", pki.dir.path() + "/missing.pem"},
         {"FLOWD_TLS_KEY_FILE", pki.server_key}},
        {{"FLOWD_TLS_CERT_FILE", pki.server_cert}},
        {{"FLOWD_TLS_CERT_FILE", pki.server_key}, {"FLOWD_TLS_KEY_FILE", pki.server_key}},
        {{"FLOWD_TLS_CERT_FILE", pki.server_cert}, {"FLOWD_TLS_KEY_FILE", pki.client_key}},
        {{"FLOWD_TLS_CERT_FILE", pki.server_cert},
         {"FLOWD_TLS_KEY_FILE", pki.server_key},
         {"FLOWD_TLS_CLIENT_CA_FILE", pki.dir.path() + "/san.ext"}},
    };
    for (auto const& env : bad) {
        auto r = run_flowd({"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}, env);
        EXPECT_EQ(r.exit_code, 2) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_NE(r.err.find("flowd: tls_"), std::string::npos) << r.err;
    }
}

// ---- deadlines and limits ----------------------------------------------------------------

TEST(NetworkLimitsTest, EveryLimitIsCountedByName) {
    flowd_process flowd({}, {{"FLOWD_HEADER_TIMEOUT", "1s"},
                             {"FLOWD_BODY_TIMEOUT", "1s"},
                             {"FLOWD_IDLE_TIMEOUT", "1s"},
                             {"FLOWD_MAX_BODY_BYTES", "1000"},
                             {"FLOWD_MAX_RECORDS_PER_BATCH", "2"},
                             {"FLOWD_MAX_JSON_DEPTH", "4"},
                             {"FLOWD_MAX_HEADER_BYTES", "1024"}});
    // The three deadlines, at once: no first byte; half a head; half a body.
    raw_socket idle{flowd.port()};
    raw_socket slow_head{flowd.port()};
    raw_socket slow_body{flowd.port()};
    ASSERT_TRUE(slow_head.send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
    ASSERT_TRUE(slow_body.send(
        request_head("POST", "/flows",
                     {{"Content-Type", "application/json"}, {"Content-Length", "100"}}) +
        "[{\"src_app\""));
    EXPECT_TRUE(idle.read_until_close(4s).closed);
    // A head or body that times out is answered 408 before the close (SPEC Others); an idle
    // connection that sent nothing is only closed.
    auto const head_answer = slow_head.read_until_close(4s);
    EXPECT_TRUE(head_answer.closed);
    EXPECT_EQ(head_answer.data.rfind("HTTP/1.1 408 ", 0), 0U) << head_answer.data;
    EXPECT_NE(head_answer.data.find("problems/request-timeout"), std::string::npos);
    EXPECT_NE(head_answer.data.find("Connection: close"), std::string::npos);
    auto const body_answer = slow_body.read_until_close(4s);
    EXPECT_TRUE(body_answer.closed);
    EXPECT_EQ(body_answer.data.rfind("HTTP/1.1 408 ", 0), 0U) << body_answer.data;

    std::string const rec = flow_json("a", "b", "v", 1, 1, 1);
    {
        http_client c{flowd.port()};
        EXPECT_TRUE(is_problem(c.post("/flows", std::string(1001, ' ')), 413, "payload-too-large"));
    }
    {
        http_client c{flowd.port()};
        // A gzip bomb: 500 kB of spaces in under 1000 bytes, refused after inflating at most
        // the limit.
        std::string const bomb = flowd::gzip("[" + std::string(500'000, ' ') + "]");
        ASSERT_LT(bomb.size(), 1000U);
        EXPECT_TRUE(
            is_problem(c.post("/flows", bomb, "application/json", {{"Content-Encoding", "gzip"}}),
                       413, "payload-too-large"));
        EXPECT_TRUE(is_problem(c.post("/flows", "[" + rec + "," + rec + "," + rec + "]"), 413,
                               "too-many-records"));
        EXPECT_TRUE(is_problem(c.post("/flows", "[[[[[[1]]]]]]"), 400, "invalid-json"));
        EXPECT_TRUE(is_problem(c.get("/healthz", {{"X-Big", std::string(2000, 'x')}}), 431,
                               "header-too-large"));
    }
    EXPECT_EQ(rejections(flowd, "header_timeout"), 1);
    EXPECT_EQ(rejections(flowd, "body_timeout"), 1);
    EXPECT_GE(rejections(flowd, "idle_timeout"), 1);
    EXPECT_EQ(rejections(flowd, "max_body_bytes"), 2);
    EXPECT_EQ(rejections(flowd, "max_records_per_batch"), 1);
    EXPECT_EQ(rejections(flowd, "max_json_depth"), 1);
    EXPECT_EQ(rejections(flowd, "max_header_bytes"), 1);
    EXPECT_EQ(rejections(flowd, "max_connections"), 0);
}

// A client that asks for a large answer and stops reading it: the write makes no progress,
// and past idle_timeout flowd closes that connection, counts write_timeout, and serves on.
TEST(NetworkLimitsTest, AnAnswerTheClientStopsReadingIsClosedAtTheIdleDeadline) {
    flowd_process flowd({}, {{"FLOWD_IDLE_TIMEOUT", "1s"}});
    // 100,000 keys in hour 1: an answer of about 9 MB, more than both sockets' buffers hold.
    {
        http_client c{flowd.port()};
        for (int batch = 0; batch < 20; ++batch) {
            std::string body = "[";
            for (int i = 0; i < 5000; ++i) {
                body +=
                    (i == 0 ? "" : ",") + flow_json("src-" + std::to_string(batch),
                                                    "dest-" + std::to_string(i), "vpc", 1, 1, 1);
            }
            ASSERT_EQ(c.post("/flows", body + "]").result_int(), 200);
        }
    }
    raw_socket stalled{flowd.port(), 4096};
    ASSERT_TRUE(stalled.send("GET /flows?hour=1 HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_TRUE(eventually([&] { return rejections(flowd, "write_timeout") == 1; }));
    // What is read now is the part of the answer the buffers held, then the close.
    EXPECT_TRUE(stalled.read_until_close(10s).closed);
    http_client other{flowd.port()};
    EXPECT_EQ(other.get("/healthz").result_int(), 200);
    EXPECT_EQ(rejections(flowd, "idle_timeout"), 0);
}

// ---- framing (SPEC Others, RFC 9112): the request-smuggling table ----------------------

// A POST hidden in the body of a request whose framing flowd must refuse: the answer is
// the refusal, the connection closes, and the hidden POST is never applied.
TEST(FramingTest, NoTransferEncodingVariantSmugglesARequest) {
    flowd_process flowd;
    struct variant {
        std::string te;
        unsigned status;
    };
    std::vector<variant> const variants{
        {"Transfer-Encoding: chunked, chunked", 400},
        {"Transfer-Encoding: xchunked", 501},
        {"Transfer-Encoding: foo", 501},
        {"Transfer-Encoding: identity", 501},
        {"Transfer-Encoding: gzip, chunked", 501},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: foo", 501},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", 400},
        {"Transfer-Encoding:", 400},
        {"Transfer-Encoding: ,chunked", 400},
        {"Transfer-Encoding: \"chunked\"", 400},
        {"Transfer-Encoding: chunked\r\nContent-Length: 5", 400},
        {"Content-Length: 5\r\nTransfer-Encoding: chunked", 400},
        {"Transfer-Encoding: foo\r\n chunked", 400},
        {"X-Pad: a\r\n\tTransfer-Encoding: chunked", 400},
        {"Content-Length: +219", 400},
        {"Content-Length: 2 19", 400},
    };
    std::uint32_t hour = 7;
    for (variant const& v : variants) {
        SCOPED_TRACE(v.te);
        std::string const hidden_record = flow_json("SMUGGLED", "x", "v", 1, 1, hour);
        std::string const hidden =
            "POST /flows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: " +
            std::to_string(hidden_record.size() + 2) + "\r\nConnection: close\r\n\r\n[" +
            hidden_record + "]";
        raw_socket s{flowd.port()};
        ASSERT_TRUE(
            s.send("POST /flows HTTP/1.1\r\nHost: x\r\nContent-Type: "
                   "application/json\r\n" +
                   v.te + "\r\n\r\n" + hidden));
        auto const r = s.read_until_close(5s);

        EXPECT_TRUE(r.closed);
        EXPECT_EQ(r.data.rfind("HTTP/1.1 " + std::to_string(v.status) + " ", 0), 0U) << r.data;
        EXPECT_EQ(r.data.find("HTTP/1.1 200"), std::string::npos) << r.data;
        EXPECT_NE(r.data.find("Connection: close"), std::string::npos);
        http_client c{flowd.port()};
        EXPECT_EQ(c.get("/flows?hour=" + std::to_string(hour)).body(), "[]");
        ++hour;
    }
}

TEST(FramingTest, ValidFramingsAreServed) {
    flowd_process flowd;
    std::string const rec = flow_json("a", "b", "v", 1, 2, 3);
    std::string const body = "[" + rec + "]";
    std::string const head =
        "POST /flows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    auto hex = [](std::size_t n) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%zx", n);
        return std::string(buf);
    };
    std::vector<std::string> const requests{
        head + "Transfer-Encoding: CHUNKED\r\n\r\n" + hex(body.size()) + "\r\n" + body +
            "\r\n0\r\n\r\n",
        head + "Transfer-Encoding: \tChunked \r\n\r\n" + hex(body.size()) + "\r\n" + body +
            "\r\n0\r\n\r\n",
        head + "Content-Length: 000" + std::to_string(body.size()) + "\r\n\r\n" + body,
    };
    for (std::string const& req : requests) {
        SCOPED_TRACE(req);
        http_client c{flowd.port()};
        auto const answers = c.raw(req, 1);
        ASSERT_EQ(answers.size(), 1U);
        EXPECT_EQ(answers[0].result_int(), 200U) << answers[0].body();
    }
    http_client c{flowd.port()};
    EXPECT_EQ(c.get("/flows?hour=3").body(), "[" + flow_json("a", "b", "v", 3, 6, 3) + "]");
}

TEST(FramingTest, Http11NeedsExactlyOneHostAndHttp10None) {
    flowd_process flowd;
    for (std::string const& req :
         {std::string("GET /healthz HTTP/1.1\r\n\r\n"),
          std::string("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")}) {
        raw_socket s{flowd.port()};
        ASSERT_TRUE(s.send(req));
        auto const r = s.read_until_close(5s);
        EXPECT_TRUE(r.closed);
        EXPECT_EQ(r.data.rfind("HTTP/1.1 400 ", 0), 0U) << r.data;
    }
    raw_socket s{flowd.port()};
    ASSERT_TRUE(s.send("GET /healthz HTTP/1.0\r\n\r\n"));
    auto const r = s.read_until_close(5s);
    EXPECT_EQ(r.data.rfind("HTTP/1.0 200 ", 0), 0U) << r.data;
}

TEST(FramingTest, MaxHeaderBytesCountsEveryByteOfTheHead) {
    flowd_process flowd({}, {{"FLOWD_MAX_HEADER_BYTES", "16384"}});
    auto head_of_size = [](std::size_t size) {
        std::string h = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ";
        std::size_t const pad = size - h.size() - 4;
        return h + std::string(pad, 'p') + "\r\n\r\n";
    };
    auto status_of_raw = [&](std::string const& req) {
        raw_socket s{flowd.port()};
        s.send(req);
        std::string out;
        s.read_until("\r\n", 5s, out);
        return out.substr(0, 13);
    };
    EXPECT_EQ(status_of_raw(head_of_size(16384)), "HTTP/1.1 200 ");
    EXPECT_EQ(status_of_raw(head_of_size(16385)), "HTTP/1.1 431 ");
    // Short `a:` lines, each far under the limit, 16,402 bytes in all.
    std::string many = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    while (many.size() < 16'402 - 2) {
        many += "a:\r\n";
    }
    EXPECT_EQ(status_of_raw(many + "\r\n"), "HTTP/1.1 431 ");
}

// SPEC Others: every GET route answers HEAD with the GET's status and headers and no
// body; OPTIONS answers 204 with Allow; other methods 405 with the same Allow.
TEST(MethodsTest, HeadAndOptionsOnEveryGetRoute) {
    flowd_process flowd;
    {
        http_client c{flowd.port()};
        ASSERT_EQ(c.post("/flows", seed_batch()).result_int(), 200U);
    }
    auto exchange = [&](std::string const& req) {
        raw_socket s{flowd.port()};
        s.send(req);
        return s.read_until_close(5s).data;
    };
    for (std::string const path : {"/flows?hour=1", "/healthz", "/readyz", "/metrics"}) {
        SCOPED_TRACE(path);
        std::string const get =
            exchange("GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        std::string const head =
            exchange("HEAD " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        std::size_t const get_end = get.find("\r\n\r\n");
        ASSERT_NE(get_end, std::string::npos);
        EXPECT_EQ(head.rfind(get.substr(0, get.find("\r\n")), 0), 0U) << head;
        // Only the head: it ends with the blank line, no body follows.
        ASSERT_GE(head.size(), 4U);
        EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n") << head;
        EXPECT_EQ(head.find("\r\n\r\n"), head.size() - 4);
        std::regex const length_re("Content-Length: (\\d+)");
        std::smatch gm;
        std::smatch hm;
        if (std::regex_search(get, gm, length_re) && path != "/metrics") {
            ASSERT_TRUE(std::regex_search(head, hm, length_re)) << head;
            EXPECT_EQ(gm[1], hm[1]);
        }
    }
    // HEAD keeps the connection open: a GET after it on the same connection is answered.
    {
        raw_socket s{flowd.port()};
        s.send(
            "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: "
            "x\r\nConnection: close\r\n\r\n");
        std::string const both = s.read_until_close(5s).data;
        EXPECT_NE(both.find("{\"status\":\"ok\"}"), std::string::npos) << both;
        EXPECT_EQ(both.find("HTTP/1.1 200"), 0U);
        EXPECT_NE(both.find("HTTP/1.1 200", 1), std::string::npos);
    }
    std::string const options =
        exchange("OPTIONS /flows HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(options.rfind("HTTP/1.1 204 ", 0), 0U) << options;
    EXPECT_NE(options.find("Allow: POST, GET, HEAD, OPTIONS"), std::string::npos) << options;
    std::string const put = exchange(
        "PUT /flows HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: "
        "close\r\n\r\n");
    EXPECT_EQ(put.rfind("HTTP/1.1 405 ", 0), 0U) << put;
    EXPECT_NE(put.find("Allow: POST, GET, HEAD, OPTIONS"), std::string::npos) << put;
    std::string const unknown =
        exchange("OPTIONS /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(unknown.rfind("HTTP/1.1 404 ", 0), 0U) << unknown;
}

// 200 sockets each send one header byte a second; with a 2 s header deadline every one is
// closed within 4 s of its first byte, while a normal client's requests all succeed.
// Heads whose bytes keep arriving as their deadline passes. With several I/O threads the
// bytes are read on one thread while the deadline fires on another: its cancel can find no
// read to cancel (the read took a byte, its handler not yet run), and the read that
// follows must still end with the 408, not go on without a deadline. 200 sockets each
// sent a byte every few ms; each must be answered near its deadline, long before
// max_header_bytes (8 KiB) would end it with a 431.
TEST(NetworkLimitsTest, HeadsStillArrivingWhenTheirDeadlinePassesAreAnswered408) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    constexpr int slow = 3;
#else
    constexpr int slow = 1;
#endif
    constexpr int sockets = 200;
    ASSERT_GE(raise_nofile(1024), 600U);
    flowd_process flowd({"--threads", "2"}, {{"FLOWD_HEADER_TIMEOUT", "1s"}});
    std::vector<raw_socket> trickle;
    trickle.reserve(sockets);
    for (int i = 0; i < sockets; ++i) {
        trickle.emplace_back(flowd.port());
        ASSERT_TRUE(trickle.back().ok());
        ASSERT_TRUE(trickle.back().send("POST /flows HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "));
    }
    auto const start = steady::now();
    std::vector<std::string> answer(sockets);
    std::vector<bool> closed(sockets, false);
    int open = sockets;
    while (open > 0 && steady::now() < start + 1s + 2s * slow) {
        for (int i = 0; i < sockets; ++i) {
            auto const k = static_cast<std::size_t>(i);
            if (closed[k]) {
                continue;
            }
            (void)trickle[k].send("a");
            char buf[512];
            ssize_t n = 0;
            while ((n = ::recv(trickle[k].fd(), buf, sizeof buf, MSG_DONTWAIT)) > 0) {
                answer[k].append(buf, static_cast<std::size_t>(n));
            }
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                closed[k] = true;
                --open;
            }
        }
    }

    EXPECT_EQ(open, 0) << "heads still read past their deadline";
    int answered = 0;
    for (std::string const& a : answer) {
        bool const is_408 = a.rfind("HTTP/1.1 408", 0) == 0;
        answered += is_408 ? 1 : 0;
        if (!is_408) {
            ADD_FAILURE() << "answered: " << a.substr(0, a.find("\r\n")) << " (" << a.size()
                          << " bytes)";
        }
    }
    EXPECT_EQ(answered, sockets);
    EXPECT_EQ(rejections(flowd, "header_timeout"), sockets);
}

TEST(NetworkLimitsTest, SlowlorisIsClosedAtTheHeaderDeadlineWhileOthersAreServed) {
    constexpr int sockets = 200;
    ASSERT_GE(raise_nofile(1024), 600U);
    flowd_process flowd({}, {{"FLOWD_HEADER_TIMEOUT", "2s"}});

    std::atomic<bool> stop{false};
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    std::vector<double> latencies_ms;
    std::thread normal([&] {
        http_client client{flowd.port()};
        auto const deadline = steady::now() + 20s;
        while (!stop && steady::now() < deadline) {
            auto const t0 = steady::now();
            auto const r = client.post("/flows", "[" + flow_json("n", "m", "v", 1, 2, 10) + "]");
            latencies_ms.push_back(
                std::chrono::duration<double, std::milli>(steady::now() - t0).count());
            (r.result_int() == 200 ? ok : failed)++;
            std::this_thread::sleep_for(5ms);
        }
    });

    std::string const head = "POST /flows HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    std::vector<raw_socket> slow;
    std::vector<steady::time_point> first_byte(sockets);
    std::vector<double> closed_after_s(sockets, -1);
    slow.reserve(sockets);
    for (int i = 0; i < sockets; ++i) {
        slow.emplace_back(flowd.port());
        ASSERT_TRUE(slow.back().ok());
    }
    int open = sockets;
    std::size_t sent = 0;
    auto next_tick = steady::now();
    auto const give_up = steady::now() + 12s;
    while (open > 0 && steady::now() < give_up) {
        if (steady::now() >= next_tick) {
            char const byte = sent < head.size() ? head[sent] : 'a';
            for (int i = 0; i < sockets; ++i) {
                if (closed_after_s[static_cast<std::size_t>(i)] < 0) {
                    if (sent == 0) {
                        first_byte[static_cast<std::size_t>(i)] = steady::now();
                    }
                    slow[static_cast<std::size_t>(i)].send(std::string_view(&byte, 1));
                }
            }
            ++sent;
            next_tick += 1s;
        }
        std::vector<pollfd> fds;
        std::vector<int> index;
        for (int i = 0; i < sockets; ++i) {
            if (closed_after_s[static_cast<std::size_t>(i)] < 0) {
                fds.push_back(pollfd{slow[static_cast<std::size_t>(i)].fd(), POLLIN, 0});
                index.push_back(i);
            }
        }
        auto const wait =
            std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - steady::now());
        if (::poll(fds.data(), fds.size(), static_cast<int>(std::max<long>(1, wait.count()))) <=
            0) {
            continue;
        }
        for (std::size_t k = 0; k < fds.size(); ++k) {
            if (fds[k].revents == 0) {
                continue;
            }
            char buf[256];
            ssize_t const n = ::recv(fds[k].fd, buf, sizeof buf, 0);
            if (n <= 0) {
                auto const i = static_cast<std::size_t>(index[k]);
                closed_after_s[i] =
                    std::chrono::duration<double>(steady::now() - first_byte[i]).count();
                --open;
            }
        }
    }
    stop = true;
    normal.join();

    EXPECT_EQ(open, 0) << "slow sockets still open after 12 s";
    double const worst = *std::max_element(closed_after_s.begin(), closed_after_s.end());
    EXPECT_LE(worst, 4.0) << "a slow socket was closed " << worst << " s after its first byte";
    EXPECT_GT(ok.load(), 0);
    EXPECT_EQ(failed.load(), 0);
    std::sort(latencies_ms.begin(), latencies_ms.end());
    if (!latencies_ms.empty()) {
        auto pct = [&](double p) {
            return latencies_ms[std::min(
                latencies_ms.size() - 1,
                static_cast<std::size_t>(p * static_cast<double>(latencies_ms.size())))];
        };
        std::printf(
            "[ slowloris ] %d slow sockets closed %.2f s (worst) after their first byte; "
            "normal client: %zu POSTs, latency p50 %.2f ms p99 %.2f ms max %.2f ms\n",
            sockets, worst, latencies_ms.size(), pct(0.5), pct(0.99), latencies_ms.back());
    }
    http_client check{flowd.port()};
    EXPECT_EQ(check.get("/flows?hour=10").body(),
              "[" +
                  flow_json("n", "m", "v", static_cast<std::uint64_t>(ok.load()),
                            2 * static_cast<std::uint64_t>(ok.load()), 10) +
                  "]");
    EXPECT_GE(rejections(flowd, "header_timeout"), sockets);
}

// ---- connections -------------------------------------------------------------------------

// Opens `n` connections and completes one request on each, so flowd holds them all.
std::vector<raw_socket> idle_connections(std::uint16_t port, int n) {
    std::vector<raw_socket> out;
    out.reserve(static_cast<std::size_t>(n));
    std::string const req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    for (int i = 0; i < n; ++i) {
        out.emplace_back(port);
        if (!out.back().ok() || !out.back().send(req)) {
            throw std::runtime_error("connection " + std::to_string(i) + " failed");
        }
    }
    for (auto& s : out) {
        std::string got;
        if (!s.read_until("{\"status\":\"ok\"}", 10s, got)) {
            throw std::runtime_error("no answer on an idle connection: " + got);
        }
    }
    return out;
}

TEST(NetworkLimitsTest, TwoThousandIdleKeepAliveConnectionsLeaveServiceUnaffected) {
    constexpr int idle_count = 2000;
    if (raise_nofile(2 * idle_count + 512) < 2 * idle_count + 256) {
        GTEST_SKIP() << "the hard open-files limit is too low for " << idle_count << " connections";
    }
    flowd_process flowd;
    auto const t0 = steady::now();
    auto idle = idle_connections(flowd.port(), idle_count);
    auto const opened = steady::now();

    http_client client{flowd.port()};
    EXPECT_EQ(client.post("/flows", seed_batch()).result_int(), 200U);
    for (int i = 0; i < 50; ++i) {
        ASSERT_EQ(client.get("/flows?hour=1").body(), seed_hour1);
    }
    auto const served = steady::now();
    EXPECT_GE(metric(flowd, "flowd_http_connections_open"), idle_count + 1);
    std::printf(
        "[ idle ] %d keep-alive connections opened in %.0f ms; 51 requests beside them "
        "in %.1f ms\n",
        idle_count, std::chrono::duration<double, std::milli>(opened - t0).count(),
        std::chrono::duration<double, std::milli>(served - opened).count());
    idle.clear();
    EXPECT_TRUE(eventually([&] { return metric(flowd, "flowd_http_connections_open") == 1; }));
    EXPECT_EQ(rejections(flowd, "max_connections"), 0);
}

TEST(NetworkLimitsTest, OverTheCapIsOverloadedWithConnectionClose) {
    flowd_process flowd({}, {{"FLOWD_MAX_CONNECTIONS", "20"}});
    auto idle = idle_connections(flowd.port(), 20);

    {
        http_client over{flowd.port()};
        auto r = over.get("/healthz");
        EXPECT_TRUE(is_problem(r, 503, "overloaded"));
        EXPECT_EQ(r[http::field::connection], "close");
        EXPECT_FALSE(over.try_read().has_value());  // and the connection is closed
    }
    EXPECT_EQ(rejections(flowd, "max_connections"), 1);
    EXPECT_TRUE(eventually([&] { return metric(flowd, "flowd_http_connections_open") == 20; }));

    // A request with a large body is refused without reading it all, and promptly.
    raw_socket big{flowd.port()};
    big.send(request_head("POST", "/flows", {{"Content-Length", "100000000"}}));
    auto const t0 = steady::now();
    std::string got;
    EXPECT_TRUE(big.read_until("overloaded", 5s, got)) << got;
    EXPECT_TRUE(big.read_until_close(5s).closed);
    EXPECT_LT(steady::now() - t0, 3s);

    // A slot that frees up is used again.
    idle.pop_back();
    EXPECT_TRUE(eventually([&] {
        http_client c{flowd.port()};
        return c.get("/healthz").result_int() == 200;
    }));
}

TEST(NetworkLimitsTest, OpenFilesLimitLowersTheEffectiveCapAndSaysSo) {
    temp_dir dir;
    std::string const cmd =
        "sh -c 'ulimit -n 300 && exec timeout -s TERM 2 " + std::string(FLOWD_BINARY) +
        " --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0' 2>'" + dir.path() + "/err' >/dev/null";
    [[maybe_unused]] int const rc = std::system(cmd.c_str());
    std::ifstream in(dir.path() + "/err");
    std::string const log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(log.find("max_connections is 10000, the effective cap is 172"), std::string::npos)
        << log;
}

// ---- garbage -----------------------------------------------------------------------------

// Valid requests of every kind flowd serves, for mutation.
std::vector<std::string> request_templates() {
    std::string const json =
        "[" + flow_json("a", "b", "v", 1, 2, 3) + "," + flow_json("c", "d", "v", 4, 5, 3) + "]";
    std::string const ndjson =
        flow_json("a", "b", "v", 1, 2, 3) + "\n" + flow_json("e", "f", "w", 1, 1, 4) + "\n";
    auto post = [](std::string const& body, std::string const& type,
                   std::string const& extra = {}) {
        return "POST /flows HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + type +
               "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra + "\r\n" +
               body;
    };
    std::string const gz = flowd::gzip(json);
    return {
        post(json, "application/json"),
        post(ndjson, "application/x-ndjson"),
        post(json, "application/json", "Expect: 100-continue\r\n"),
        post(gz, "application/json", "Content-Encoding: gzip\r\n"),
        "POST /flows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: "
        "chunked\r\n\r\n10\r\n" +
            json.substr(0, 16) + "\r\n" +
            [&] {
                std::string rest = json.substr(16);
                char len[16];
                std::snprintf(len, sizeof len, "%zx", rest.size());
                return std::string(len) + "\r\n" + rest + "\r\n0\r\n\r\n";
            }(),
        "GET /flows?hour=3 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n\r\n",
        "GET /flows?hour=3&hour=4 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
        "DELETE /flows HTTP/1.0\r\n\r\n",
    };
}

std::string mutate(std::string s, std::mt19937_64& rng) {
    auto pick = [&](std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(rng() % n); };
    static std::string const tokens[] = {"\r\n",
                                         "\r\n\r\n",
                                         ":",
                                         " ",
                                         "\0",
                                         "%",
                                         "{",
                                         "[",
                                         "\"",
                                         "99999999999999999999",
                                         "-1",
                                         "chunked",
                                         "gzip",
                                         "Content-Length: 5\r\n",
                                         "Transfer-Encoding: chunked\r\n",
                                         "\xff\xfe",
                                         "HTTP/1.1",
                                         "?hour=",
                                         "\\u0000"};
    int const rounds = 1 + static_cast<int>(rng() % 4);
    for (int r = 0; r < rounds; ++r) {
        switch (rng() % 7) {
            case 0:  // flip a byte
                if (!s.empty()) {
                    s[pick(s.size())] = static_cast<char>(rng());
                }
                break;
            case 1:  // insert a token
                s.insert(pick(s.size() + 1), tokens[pick(std::size(tokens))]);
                break;
            case 2: {  // delete a range
                std::size_t const at = pick(s.size() + 1);
                s.erase(at, pick(32) + 1);
                break;
            }
            case 3: {  // duplicate a range
                std::size_t const at = pick(s.size() + 1);
                s.insert(at, s.substr(at, pick(64) + 1));
                break;
            }
            case 4:  // truncate
                s.resize(pick(s.size() + 1));
                break;
            case 5: {  // a digit changed
                std::size_t const at = s.find_first_of("0123456789", pick(s.size() + 1));
                if (at != std::string::npos) {
                    s[at] = static_cast<char>('0' + rng() % 10);
                }
                break;
            }
            default: {  // random bytes inserted
                std::string junk(pick(40) + 1, '\0');
                for (char& c : junk) {
                    c = static_cast<char>(rng());
                }
                s.insert(pick(s.size() + 1), junk);
                break;
            }
        }
    }
    return s;
}

TEST(NetworkLimitsTest, GarbageNeverKillsFlowdNorGetsA5xx) {
    constexpr int total = 10'000;
    constexpr int workers = 4;
    flowd_process flowd({}, {{"FLOWD_HEADER_TIMEOUT", "2s"},
                             {"FLOWD_BODY_TIMEOUT", "2s"},
                             {"FLOWD_MAX_BODY_BYTES", "100000"}});
    auto const templates = request_templates();
    std::regex const status_re(R"((?:^|\r\n)HTTP/1\.[01] (\d)(\d\d) )");
    std::atomic<int> done{0};
    std::atomic<int> server_errors{0};
    std::atomic<int> hung{0};
    std::atomic<int> answered{0};
    std::mutex sample_mutex;
    std::string sample;
    auto const deadline = steady::now() + 45s;
    auto const t0 = steady::now();
    std::vector<std::thread> threads;
    for (int w = 0; w < workers; ++w) {
        threads.emplace_back([&, w] {
            std::mt19937_64 rng(20261128U + static_cast<unsigned>(w));
            for (int i = 0; i < total / workers && steady::now() < deadline; ++i) {
                std::string req;
                if (rng() % 10 == 0) {
                    req.resize(1 + rng() % 2048);
                    for (char& c : req) {
                        c = static_cast<char>(rng());
                    }
                } else {
                    req = mutate(templates[rng() % templates.size()], rng);
                }
                raw_socket s{flowd.port()};
                if (!s.ok()) {
                    continue;  // counted below as not done
                }
                s.send(req);
                s.shutdown_write();
                auto r = s.read_until_close(8s);
                if (!r.closed) {
                    ++hung;
                }
                for (std::sregex_iterator it(r.data.begin(), r.data.end(), status_re), end;
                     it != end; ++it) {
                    ++answered;
                    // 501 is SPEC's answer to an unknown Transfer-Encoding, not a failure.
                    if ((*it)[1] == "5" && (*it)[2] != "01") {
                        ++server_errors;
                        std::lock_guard lock(sample_mutex);
                        sample = req;
                    }
                }
                ++done;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    double const seconds = std::chrono::duration<double>(steady::now() - t0).count();
    std::printf("[ garbage ] %d requests (%d answers) in %.1f s\n", done.load(), answered.load(),
                seconds);
    EXPECT_EQ(done.load(), total);
    EXPECT_EQ(server_errors.load(), 0) << "a 5xx for: " << sample;
    EXPECT_EQ(hung.load(), 0);
    ASSERT_EQ(::kill(flowd.pid(), 0), 0) << "flowd died";

    http_client client{flowd.port()};
    EXPECT_EQ(client.post("/flows", "[" + flow_json("after", "garbage", "v", 7, 9, 77777) + "]")
                  .result_int(),
              200U);
    EXPECT_EQ(client.get("/flows?hour=77777").body(),
              "[" + flow_json("after", "garbage", "v", 7, 9, 77777) + "]");
    flowd.signal(SIGTERM);
    EXPECT_EQ(flowd.wait_exit(), 0) << flowd.log();
}

// ---- vanishing clients ------------------------------------------------------------------

TEST(NetworkLimitsTest, ClientsVanishingMidBodyAndMidAnswerHurtNothing) {
    flowd_process flowd;
    // A large answer: 100,000 keys in hour 5, several MB of JSON, streamed.
    {
        std::string body = "[";
        for (int i = 0; i < 100'000; ++i) {
            body += (i == 0 ? "" : ",") + flow_json("src-" + std::to_string(i), "d", "v", 1, 1, 5);
        }
        body += "]";
        http_client c{flowd.port()};
        ASSERT_EQ(c.post("/flows", body).result_int(), 200U);
    }
    for (int i = 0; i < 10; ++i) {
        // Mid-body: a head promising 1 MB, 100 kB of it, then gone.
        raw_socket body{flowd.port()};
        body.send(
            request_head("POST", "/flows",
                         {{"Content-Type", "application/json"}, {"Content-Length", "1000000"}}) +
            "[" + std::string(100'000, ' '));
        // Mid-answer: a small receive buffer, a few kB read of the large answer, then gone.
        raw_socket answer{flowd.port(), 4096};
        answer.send("GET /flows?hour=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        std::string got;
        EXPECT_TRUE(answer.read_until("src-", 10s, got));
        if (i % 2 == 0) {
            body.reset();
            answer.reset();
        } else {
            body.close();
            answer.close();
        }
    }
    // Every session ends: none is left behind holding its connection.
    EXPECT_TRUE(eventually([&] { return metric(flowd, "flowd_http_connections_open") == 0; }, 15s));
    http_client check{flowd.port()};
    auto hour5 = check.get("/flows?hour=5");
    EXPECT_EQ(hour5.result_int(), 200U);
    EXPECT_EQ(std::count(hour5.body().begin(), hour5.body().end(), '{'), 100'000);
    EXPECT_EQ(::kill(flowd.pid(), 0), 0);
    // A clean exit: under the asan preset, LeakSanitizer checks flowd's heap here.
    flowd.signal(SIGTERM);
    EXPECT_EQ(flowd.wait_exit(), 0) << flowd.log();
}

}  // namespace
}  // namespace flowd::test
