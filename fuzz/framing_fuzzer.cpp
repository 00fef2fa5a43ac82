// libFuzzer harness: the request-head framing decisions (src/http/framing.cpp), checked
// against Beast's parser on the same bytes. Whatever audit_framing lets through must be
// framed one way only: a Transfer-Encoding the parser would not read as chunked (the
// smuggling hole of issue 13), chunked beside Content-Length, or an HTTP/1.1 request
// without exactly one Host is a violation.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "flowd/http/framing.hpp"
#include "harness.hpp"

namespace {

namespace http = boost::beast::http;

constexpr std::size_t max_header_bytes = 4096;

std::string check(std::string_view input) {
    flowd::head_end const end = flowd::find_head_end(input, max_header_bytes);
    if (end.what != flowd::head_end::state::complete) {
        return {};
    }
    if (end.size > max_header_bytes) {
        return "a head of " + std::to_string(end.size) + " bytes passed the limit";
    }
    std::string_view const head = input.substr(0, end.size);
    if (head.substr(head.size() - 4) != "\r\n\r\n") {
        return "the head does not end with the blank line";
    }
    if (flowd::audit_framing(head)) {
        return {};  // refused: closed without reading further
    }
    http::request_parser<http::empty_body> parser;
    parser.header_limit(max_header_bytes + 4);
    parser.eager(false);
    boost::beast::error_code ec;
    parser.put(boost::asio::buffer(head.data(), head.size()), ec);
    if (ec || !parser.is_header_done()) {
        return {};  // the parser refuses it: 400
    }
    auto const& req = parser.get();
    std::size_t hosts = 0;
    bool te = false;
    bool cl = false;
    for (auto const& f : req) {
        if (f.name() == http::field::host) {
            ++hosts;
        } else if (f.name() == http::field::transfer_encoding) {
            te = true;
        } else if (f.name() == http::field::content_length) {
            cl = true;
        }
    }
    if (te && !parser.chunked()) {
        return "a Transfer-Encoding that the parser does not read as chunked was accepted";
    }
    if (parser.chunked() && cl) {
        return "chunked beside Content-Length was accepted";
    }
    if (req.version() == 11 && hosts != 1) {
        return "an HTTP/1.1 request with " + std::to_string(hosts) + " Host fields was accepted";
    }
    return {};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    std::string_view const input(reinterpret_cast<char const*>(data), size);
    flowd::fuzz::require(check(input));
    return 0;
}
