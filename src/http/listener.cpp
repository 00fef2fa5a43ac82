#include "flowd/http/listener.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <spdlog/spdlog.h>

namespace flowd {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr std::chrono::milliseconds accept_backoff{100};

}  // namespace

listener::listener(net::io_context& ioc, tcp::endpoint endpoint, session_services const& services)
    : ioc_(ioc),
      strand_(net::make_strand(ioc)),
      acceptor_(strand_),
      backoff_(strand_),
      services_(services) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    if (endpoint.address().is_v6()) {
        acceptor_.set_option(net::ip::v6_only(true));
    }
    acceptor_.bind(endpoint);
    acceptor_.listen(net::socket_base::max_listen_connections);
    endpoint_ = acceptor_.local_endpoint();
}

void listener::run() {
    net::dispatch(strand_, beast::bind_front_handler(&listener::do_accept, shared_from_this()));
}

void listener::stop() {
    net::post(strand_, [self = shared_from_this()] {
        beast::error_code ec;
        self->acceptor_.close(ec);
        self->backoff_.cancel();
    });
}

void listener::do_accept() {
    if (!acceptor_.is_open()) {
        return;
    }
    // Each connection gets its own strand.
    acceptor_.async_accept(net::make_strand(ioc_),
                           beast::bind_front_handler(&listener::on_accept, shared_from_this()));
}

void listener::on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) {
        return;
    }
    if (ec) {
        // Out of descriptors or memory: retrying at once would spin a core and flood the
        // log while nothing can change; pause, then try again.
        services_.log->warn("accept: {}; retrying in {}ms", ec.message(), accept_backoff.count());
        backoff_.expires_after(accept_backoff);
        backoff_.async_wait([self = shared_from_this()](beast::error_code) { self->do_accept(); });
        return;
    }
    std::make_shared<http_session>(std::move(socket), services_, next_id_++)->run();
    do_accept();
}

}  // namespace flowd
