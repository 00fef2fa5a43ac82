#pragma once

#include <cstddef>
#include <cstdint>

#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/optional/optional.hpp>

#include "flowd/codec/flow_json.hpp"

namespace flowd {

// Beast's string_body with a reader that appends what arrives. string_body's own reader
// resizes the string first (zero-filling every byte of the body) and then copies over
// the zeros: a second pass over every body byte on the POST path.
struct request_body : boost::beast::http::string_body {
    class reader {
    public:
        template <bool isRequest, class Fields>
        explicit reader(boost::beast::http::header<isRequest, Fields>& /*header*/, value_type& body)
            : body_(body) {}

        void init(boost::optional<std::uint64_t> const& length, boost::beast::error_code& ec) {
            ec = {};
            if (length) {
                if (*length > body_.max_size() - padding) {
                    ec = boost::beast::http::error::buffer_overflow;
                    return;
                }
                // The JSON decoder reads a little past the end: room for it now saves a copy.
                body_.reserve(static_cast<std::size_t>(*length) + padding);
            }
        }

        template <class ConstBufferSequence>
        std::size_t put(ConstBufferSequence const& buffers, boost::beast::error_code& ec) {
            ec = {};
            std::size_t n = 0;
            for (auto const b : boost::beast::buffers_range_ref(buffers)) {
                body_.append(static_cast<char const*>(b.data()), b.size());
                n += b.size();
            }
            return n;
        }

        void finish(boost::beast::error_code& ec) { ec = {}; }

    private:
        // The decoders' padding, reserved up front so they need not copy the body.
        static constexpr std::size_t padding = body_padding;
        value_type& body_;
    };
};

}  // namespace flowd
