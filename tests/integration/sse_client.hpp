#pragma once
// A blocking Server-Sent Events reader for the integration tests (GET /flows/stream): the
// stream tests and the cluster tests (a POST to one node seen on a stream of another).

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>
#include <sys/socket.h>

#include "server_fixture.hpp"

namespace flowd::test {

struct sse_event {
    std::string id;
    std::string type;
    std::string data;
};

// A blocking SSE reader over a raw socket: reads the head, de-chunks the body and splits
// it into events. Every read is bounded by SO_RCVTIMEO.
class sse_client {
public:
    sse_client(std::uint16_t port, std::string const& target,
               std::map<std::string, std::string> headers = {}, int receive_buffer = 0)
        : socket_(ioc_) {
        socket_.open(boost::asio::ip::tcp::v4());
        if (receive_buffer > 0) {
            socket_.set_option(boost::asio::socket_base::receive_buffer_size(receive_buffer));
        }
        timeval tv{1, 0};
        ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
        boost::asio::write(socket_, boost::asio::buffer(request_head("GET", target, headers)));
    }

    // The status line and headers.
    std::string head(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
        auto const deadline = std::chrono::steady_clock::now() + limit;
        while (raw_.find("\r\n\r\n") == std::string::npos) {
            if (!fill(deadline)) {
                return raw_;
            }
        }
        std::size_t const end = raw_.find("\r\n\r\n") + 4;
        std::string h = raw_.substr(0, end);
        raw_.erase(0, end);
        head_done_ = true;
        // The body's first chunks may have come in the same read as the head.
        dechunk();
        return h;
    }

    // The next event (comments skipped), or nullopt when the body ended or `limit` passed.
    std::optional<sse_event> next(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
        if (!head_done_) {
            (void)head(limit);
        }
        auto const deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            std::size_t const end = body_.find("\n\n");
            if (end != std::string::npos) {
                std::string const block = body_.substr(0, end);
                body_.erase(0, end + 2);
                sse_event e;
                std::size_t pos = 0;
                bool any = false;
                while (pos <= block.size()) {
                    std::size_t const nl = std::min(block.find('\n', pos), block.size());
                    std::string const line = block.substr(pos, nl - pos);
                    pos = nl + 1;
                    if (line.rfind("id: ", 0) == 0) {
                        e.id = line.substr(4);
                        any = true;
                    } else if (line.rfind("event: ", 0) == 0) {
                        e.type = line.substr(7);
                        any = true;
                    } else if (line.rfind("data: ", 0) == 0) {
                        e.data += (e.data.empty() ? "" : "\n") + line.substr(6);
                        any = true;
                    }
                }
                if (any) {
                    return e;
                }
                continue;
            }
            if (ended_ || !fill(deadline)) {
                return std::nullopt;
            }
        }
    }

    // Events up to and including `synced`; the rows of the full send go to `rows`.
    std::optional<sse_event> until_synced(std::vector<nlohmann::json>& rows) {
        while (auto e = next()) {
            if (e->type == "synced") {
                return e;
            }
            if (e->type == "rows") {
                for (nlohmann::json const& r : nlohmann::json::parse(e->data)) {
                    rows.push_back(r);
                }
            }
        }
        return std::nullopt;
    }

    [[nodiscard]] bool ended() const noexcept { return ended_; }

private:
    // Reads more bytes and de-chunks them; false at EOF or past the deadline.
    bool fill(std::chrono::steady_clock::time_point deadline) {
        while (std::chrono::steady_clock::now() < deadline) {
            std::array<char, 65536> buf{};
            boost::system::error_code ec;
            std::size_t const n = socket_.read_some(boost::asio::buffer(buf), ec);
            if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
                continue;  // SO_RCVTIMEO passed; the deadline decides
            }
            if (ec) {
                ended_ = true;
                return false;
            }
            raw_.append(buf.data(), n);
            if (head_done_) {
                dechunk();
            }
            return true;
        }
        return false;
    }

    void dechunk() {
        for (;;) {
            std::size_t const eol = raw_.find("\r\n");
            if (eol == std::string::npos) {
                return;
            }
            std::size_t const size = std::stoul(raw_.substr(0, eol), nullptr, 16);
            if (size == 0) {
                ended_ = true;
                raw_.clear();
                return;
            }
            if (raw_.size() < eol + 2 + size + 2) {
                return;
            }
            body_.append(raw_, eol + 2, size);
            raw_.erase(0, eol + 2 + size + 2);
        }
    }

    boost::asio::io_context ioc_;
    boost::asio::ip::tcp::socket socket_;
    std::string raw_;
    std::string body_;
    bool head_done_ = false;
    bool ended_ = false;
};

}  // namespace flowd::test
