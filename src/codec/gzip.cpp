#include "flowd/codec/gzip.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include <zlib.h>

namespace flowd {
namespace {

// zlib's windowBits for gzip framing only (no zlib or raw deflate).
constexpr int gzip_window_bits = 15 + 16;

// The most zlib takes or gives in one call (its counts are uInt).
constexpr std::size_t max_chunk = std::numeric_limits<uInt>::max();

problem too_large(std::size_t limit) {
    return problem{
        problem_type::payload_too_large,
        "the decompressed body is longer than max_body_bytes (" + std::to_string(limit) + " bytes)",
        {},
        {}};
}

}  // namespace

boost::system::result<std::string, problem> gunzip(std::string_view in, std::size_t limit) {
    z_stream zs{};
    if (inflateInit2(&zs, gzip_window_bits) != Z_OK) {
        throw std::runtime_error("inflateInit2 failed");
    }
    std::string out;
    out.resize(std::min<std::size_t>(limit, std::max<std::size_t>(in.size() * 4, 4096)));
    std::size_t produced = 0;
    // zlib counts in uInt (32 bits) and max_body_bytes may be 2^32: hand it input and
    // output room at most uInt's maximum at a time. (Casting the whole sizes gave an
    // avail_out of 0 for an output buffer of 2^32 bytes, so a gzip body of 1 GiB or more
    // was 413 whatever it inflated to.)
    std::size_t fed = 0;
    auto feed = [&zs, &fed, in] {
        if (zs.avail_in == 0 && fed < in.size()) {
            std::size_t const n = std::min<std::size_t>(in.size() - fed, max_chunk);
            // zlib's API takes non-const input; it never writes through it.
            zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + fed));
            zs.avail_in = static_cast<uInt>(n);
            fed += n;
        }
    };
    auto input_left = [&zs, &fed, in] { return zs.avail_in != 0 || fed < in.size(); };
    int rc = Z_OK;
    for (;;) {
        feed();
        if (produced == out.size()) {
            if (out.size() >= limit) {
                // Output is full at the limit: one more byte means too large.
                unsigned char probe = 0;
                zs.next_out = &probe;
                zs.avail_out = 1;
                rc = inflate(&zs, Z_NO_FLUSH);
                bool const more = zs.avail_out == 0;
                if (more) {
                    inflateEnd(&zs);
                    return too_large(limit);
                }
                if (rc == Z_STREAM_END && !input_left()) {
                    break;
                }
                if (rc != Z_STREAM_END && rc != Z_OK && rc != Z_BUF_ERROR) {
                    inflateEnd(&zs);
                    return problem{problem_type::invalid_json, "the gzip body is corrupt", {}, {}};
                }
                if (rc == Z_STREAM_END) {
                    inflateReset(&zs);
                    continue;
                }
                if (input_left()) {
                    continue;  // the next piece of a body past uInt's range
                }
                inflateEnd(&zs);
                return problem{problem_type::invalid_json, "the gzip body is truncated", {}, {}};
            }
            out.resize(std::min(limit, out.size() * 2));
        }
        std::size_t const room = std::min(out.size() - produced, max_chunk);
        zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
        zs.avail_out = static_cast<uInt>(room);
        rc = inflate(&zs, Z_NO_FLUSH);
        produced += room - zs.avail_out;
        if (rc == Z_STREAM_END) {
            if (!input_left()) {
                break;
            }
            // Another gzip member follows (RFC 1952 allows concatenation).
            inflateReset(&zs);
            continue;
        }
        if (rc == Z_BUF_ERROR && !input_left()) {
            inflateEnd(&zs);
            return problem{problem_type::invalid_json, "the gzip body is truncated", {}, {}};
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            inflateEnd(&zs);
            return problem{problem_type::invalid_json,
                           std::string("the gzip body is corrupt: ") +
                               (zs.msg != nullptr ? zs.msg : "inflate failed"),
                           {},
                           {}};
        }
    }
    inflateEnd(&zs);
    out.resize(produced);
    return out;
}

struct gzip_writer::state {
    z_stream zs{};
    state() {
        // Z_DEFAULT_COMPRESSION - 5 (= -6) is not a zlib level: every gzip answer failed.
        if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, gzip_window_bits, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            throw std::runtime_error("deflateInit2 failed");
        }
    }
    ~state() { deflateEnd(&zs); }
    state(state const&) = delete;
    state& operator=(state const&) = delete;
};

gzip_writer::gzip_writer() : state_(std::make_unique<state>()) {}
gzip_writer::~gzip_writer() = default;
gzip_writer::gzip_writer(gzip_writer&&) noexcept = default;
gzip_writer& gzip_writer::operator=(gzip_writer&&) noexcept = default;

void gzip_writer::write(std::string_view in, std::string& out, bool finish) {
    z_stream& zs = state_->zs;
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    int const flush = finish ? Z_FINISH : Z_NO_FLUSH;
    for (;;) {
        std::size_t const old = out.size();
        std::size_t const room = deflateBound(&zs, zs.avail_in) + 64;
        out.resize(old + room);
        zs.next_out = reinterpret_cast<Bytef*>(out.data() + old);
        zs.avail_out = static_cast<uInt>(room);
        int const rc = deflate(&zs, flush);
        out.resize(old + room - zs.avail_out);
        if (rc == Z_STREAM_ERROR) {
            throw std::runtime_error("deflate failed");
        }
        if (finish ? rc == Z_STREAM_END : (zs.avail_in == 0 && zs.avail_out != 0)) {
            return;
        }
    }
}

std::string gzip(std::string_view in) {
    gzip_writer w;
    std::string out;
    w.write(in, out, true);
    return out;
}

}  // namespace flowd
