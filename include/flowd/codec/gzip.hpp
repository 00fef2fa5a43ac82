#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

#include "flowd/codec/problem.hpp"

namespace flowd {

// Inflates a gzip body (one or more members). Stops with payload-too-large as soon as the
// output would pass `limit` bytes, so a gzip bomb costs at most `limit` bytes of memory.
[[nodiscard]] boost::system::result<std::string, problem> gunzip(std::string_view in,
                                                                 std::size_t limit);

// Incremental gzip compressor for response bodies. Owned by one response.
class gzip_writer {
public:
    gzip_writer();
    ~gzip_writer();
    gzip_writer(gzip_writer&&) noexcept;
    gzip_writer& operator=(gzip_writer&&) noexcept;
    gzip_writer(gzip_writer const&) = delete;
    gzip_writer& operator=(gzip_writer const&) = delete;

    // Compresses `in` and appends the output to `out`; `finish` ends the stream.
    void write(std::string_view in, std::string& out, bool finish);

private:
    struct state;
    std::unique_ptr<state> state_;
};

// Compresses a whole buffer.
[[nodiscard]] std::string gzip(std::string_view in);

}  // namespace flowd
