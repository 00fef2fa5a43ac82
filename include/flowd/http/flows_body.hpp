#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>

#include "flowd/codec/gzip.hpp"
#include "flowd/query/execute.hpp"
#include "flowd/store/flow_store.hpp"

namespace flowd {

// Serialises a snapshot as the JSON array of GET /flows, or a query answer through its
// answer_writer, `chunk_bytes` at a time, so the whole body is never held in memory (SPEC:
// answers over 64 KiB are streamed). Optionally gzip-compresses as it goes. Owned by one
// response.
class flows_serializer {
public:
    static constexpr std::size_t chunk_bytes = 64 * 1024;

    // `prefix`, when not empty, is the array's opening and records [0, next) already
    // serialised; it must outlive the serialiser and is the body's first piece.
    flows_serializer(hour_snapshot const& snapshot, bool gzip, std::string_view prefix = {},
                     std::size_t next = 0);
    // A query answer: `writer` already wrote `prefix` (maybe empty) and continues from there.
    flows_serializer(answer_writer& writer, bool gzip, std::string_view prefix);

    // The next piece of the body into `out` (replacing it); false once the body is complete
    // and `out` holds its last piece.
    bool next(std::string& out);

private:
    // Hands json_ on as `out`, deflated under gzip; false when deflate held it all back.
    bool hand_on(std::string& out, bool last);

    hour_snapshot const* snapshot_ = nullptr;
    answer_writer* writer_ = nullptr;
    std::optional<gzip_writer> gzip_;
    std::string_view prefix_;
    std::size_t next_ = 0;
    bool started_ = false;
    std::string json_;
};

// A Beast Body whose value is a snapshot or a query answer; its writer streams it through
// flows_serializer. Sent with chunked transfer encoding.
struct flows_body {
    struct value_type {
        hour_snapshot snapshot;
        bool gzip = false;
        std::string prefix;  // see flows_serializer
        std::size_t next = 0;
        // When set, the body is this answer's, not the snapshot's. Shared: Beast may copy
        // the value, and a writer holds its position.
        std::shared_ptr<answer_writer> answer;
    };

    class writer {
    public:
        using const_buffers_type = boost::asio::const_buffer;

        template <bool IsRequest, class Fields>
        writer(boost::beast::http::header<IsRequest, Fields> const&, value_type const& body)
            : serializer_(body.answer ? flows_serializer(*body.answer, body.gzip, body.prefix)
                                      : flows_serializer(body.snapshot, body.gzip, body.prefix,
                                                         body.next)) {}

        void init(boost::beast::error_code& ec) { ec = {}; }

        boost::optional<std::pair<const_buffers_type, bool>> get(boost::beast::error_code& ec);

    private:
        flows_serializer serializer_;
        std::string buffer_;
        bool done_ = false;
    };
};

// Appends records [first, last) of a snapshot to `out` as JSON array elements (comma
// separated; `first_in_array` says whether no element precedes them).
void append_snapshot_json(std::string& out, hour_snapshot const& snapshot, std::size_t first,
                          std::size_t last, bool first_in_array);

// Appends records from `first` on, as append_snapshot_json() does, until `out` holds at least
// `bytes` bytes or the snapshot ends (the last record may pass the mark by a few hundred
// bytes); returns the index of the next record to write.
std::size_t append_snapshot_json_upto(std::string& out, hour_snapshot const& snapshot,
                                      std::size_t first, std::size_t bytes, bool first_in_array);

}  // namespace flowd
