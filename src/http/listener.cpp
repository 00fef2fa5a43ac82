#include "flowd/http/listener.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
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

listener::listener(net::io_context& ioc, tcp::endpoint endpoint, session_services const& services,
                   std::shared_ptr<net::ssl::context> tls)
    : ioc_(ioc),
      strand_(net::make_strand(ioc)),
      acceptor_(strand_),
      backoff_(strand_),
      services_(services),
      tls_(std::move(tls)) {
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
    // Each connection gets its own strand, unless one thread runs every handler anyway.
    auto accepted = beast::bind_front_handler(&listener::on_accept, shared_from_this());
    if (io_threads_ == 1) {
        acceptor_.async_accept(ioc_.get_executor(), std::move(accepted));
    } else {
        acceptor_.async_accept(net::make_strand(ioc_), std::move(accepted));
    }
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
    session_start start;
    start.id = next_id_++;
    start.max_connections = max_connections_;
    // Claim a slot; past the cap, give it back and refuse (the refusal holds no slot).
    if (open_->fetch_add(1, std::memory_order_acq_rel) >= max_connections_) {
        open_->fetch_sub(1, std::memory_order_acq_rel);
        start.refuse = true;
    } else {
        start.slot = connection_slot(open_);
    }
    if (tls_) {
        start_tls_session(std::move(socket), services_, *tls_, std::move(start));
    } else {
        start_plain_session(std::move(socket), services_, std::move(start));
    }
    do_accept();
}

}  // namespace flowd
