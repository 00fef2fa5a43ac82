// flowd-beast-floor: the smallest Boost.Beast/Asio keep-alive server that reads a request
// with its body and answers {"accepted":1}: one io_context, one thread, no flowd code. It
// is the framework's own limit on this machine, an anchor of `make bench`: flowd's POST
// rate beside it shows what flowd's own layers cost a request.
//
//   flowd-beast-floor PORT   (0: any; prints "listening on PORT")

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

class session : public std::enable_shared_from_this<session> {
public:
    explicit session(tcp::socket socket) : stream_(std::move(socket)) {
        // Beast reads at most the buffer's free room: without it a 110 KB body took hundreds
        // of recv calls, and the floor fell below flowd (which reserves its body reads).
        buffer_.reserve(read_bytes);
    }

    void read() {
        request_ = {};
        http::async_read(stream_, buffer_, request_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             if (!ec) {
                                 self->answer();
                             }
                         });
    }

private:
    static constexpr std::size_t read_bytes = 64 * 1024;

    void answer() {
        response_ = {http::status::ok, request_.version()};
        response_.set(http::field::content_type, "application/json");
        response_.body() = R"({"accepted":1})";
        response_.keep_alive(request_.keep_alive());
        response_.prepare_payload();
        http::async_write(stream_, response_,
                          [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (!ec && self->response_.keep_alive()) {
                                  self->read();
                              }
                          });
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    http::request<http::string_body> request_;
    http::response<http::string_body> response_;
};

void accept(tcp::acceptor& acceptor) {
    acceptor.async_accept([&acceptor](beast::error_code ec, tcp::socket socket) {
        if (!ec) {
            socket.set_option(tcp::no_delay(true));
            std::make_shared<session>(std::move(socket))->read();
        }
        accept(acceptor);
    });
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: flowd-beast-floor PORT\n");
        return 2;
    }
    net::io_context io{1};
    tcp::acceptor acceptor{
        io, {net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(std::atoi(argv[1]))}};
    std::printf("listening on %u\n", acceptor.local_endpoint().port());
    std::fflush(stdout);
    accept(acceptor);
    io.run();
}
