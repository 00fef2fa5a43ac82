#include "flowd/codec/gzip.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

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

problem gzip_problem(std::string detail) {
    return problem{problem_type::invalid_json, std::move(detail), {}, {}};
}

// One inflate stream over a whole body, ended with the object. zlib counts in uInt (32
// bits) and max_body_bytes may be 2^32: feed() hands it input, and inflate_into() output
// room, at most uInt's maximum at a time. (Casting the whole sizes gave an avail_out of 0
// for an output buffer of 2^32 bytes, so a gzip body of 1 GiB or more was 413 whatever it
// inflated to.)
class inflater {
public:
    explicit inflater(std::string_view in) : in_(in) {
        if (inflateInit2(&zs_, gzip_window_bits) != Z_OK) {
            throw std::runtime_error("inflateInit2 failed");
        }
    }
    ~inflater() { inflateEnd(&zs_); }
    inflater(inflater const&) = delete;
    inflater& operator=(inflater const&) = delete;

    void feed() {
        if (zs_.avail_in == 0 && fed_ < in_.size()) {
            std::size_t const n = std::min<std::size_t>(in_.size() - fed_, max_chunk);
            // zlib's API takes non-const input; it never writes through it.
            zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in_.data() + fed_));
            zs_.avail_in = static_cast<uInt>(n);
            fed_ += n;
        }
    }
    [[nodiscard]] bool input_left() const noexcept {
        return zs_.avail_in != 0 || fed_ < in_.size();
    }
    // Inflates into out[0, room) (room at most max_chunk); returns zlib's code and how much
    // it wrote.
    std::pair<int, std::size_t> inflate_into(unsigned char* out, std::size_t room) {
        zs_.next_out = out;
        zs_.avail_out = static_cast<uInt>(room);
        int const rc = inflate(&zs_, Z_NO_FLUSH);
        return {rc, room - zs_.avail_out};
    }
    // The next gzip member (RFC 1952 allows concatenation).
    void next_member() { inflateReset(&zs_); }
    [[nodiscard]] char const* message() const noexcept { return zs_.msg; }

private:
    z_stream zs_{};
    std::string_view in_;
    std::size_t fed_ = 0;
};

enum class past_limit { too_large, done, corrupt, truncated, go_on };

// The output is full at the limit: inflates one more byte, which means too large; else
// says whether the body ended there, is bad, or goes on.
past_limit probe_past_limit(inflater& z) {
    unsigned char probe = 0;
    auto const [rc, wrote] = z.inflate_into(&probe, 1);
    if (wrote != 0) {
        return past_limit::too_large;
    }
    if (rc == Z_STREAM_END && !z.input_left()) {
        return past_limit::done;
    }
    if (rc != Z_STREAM_END && rc != Z_OK && rc != Z_BUF_ERROR) {
        return past_limit::corrupt;
    }
    if (rc == Z_STREAM_END) {
        z.next_member();
        return past_limit::go_on;
    }
    if (z.input_left()) {
        return past_limit::go_on;  // the next piece of a body past uInt's range
    }
    return past_limit::truncated;
}

}  // namespace

boost::system::result<std::string, problem> gunzip(std::string_view in, std::size_t limit) {
    inflater z{in};
    std::string out;
    out.resize(std::min<std::size_t>(limit, std::max<std::size_t>(in.size() * 4, 4096)));
    std::size_t produced = 0;
    for (;;) {
        z.feed();
        if (produced == out.size()) {
            if (out.size() >= limit) {
                switch (probe_past_limit(z)) {
                    case past_limit::too_large:
                        return too_large(limit);
                    case past_limit::done:
                        out.resize(produced);
                        return out;
                    case past_limit::corrupt:
                        return gzip_problem("the gzip body is corrupt");
                    case past_limit::truncated:
                        return gzip_problem("the gzip body is truncated");
                    case past_limit::go_on:
                        continue;
                }
            }
            out.resize(std::min(limit, out.size() * 2));
        }
        std::size_t const room = std::min(out.size() - produced, max_chunk);
        auto const [rc, wrote] =
            z.inflate_into(reinterpret_cast<Bytef*>(out.data() + produced), room);
        produced += wrote;
        if (rc == Z_STREAM_END) {
            if (!z.input_left()) {
                break;
            }
            z.next_member();
            continue;
        }
        if (rc == Z_BUF_ERROR && !z.input_left()) {
            return gzip_problem("the gzip body is truncated");
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            return gzip_problem(std::string("the gzip body is corrupt: ") +
                                (z.message() != nullptr ? z.message() : "inflate failed"));
        }
    }
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
