// The fast path of decode_flows(): a JSON array of records of the common shape, read in
// one pass over the body without simdjson. See decode_common_shape() in flow_json.hpp.
//
// Why: on POST B=1000 the generic On-Demand walk (stage 1's structural index, then a field
// loop that asks every value its type, checks it and words any error) cost about a third of
// flowd's CPU per record. Exporters send one shape: flat objects with the six known keys,
// names of plain ASCII, integers of digits. For that shape one hand-written pass checks
// everything SPEC asks and builds the batch. Anything else (an escape, a non-ASCII byte, an
// unknown or repeated key, a fraction, a leading zero, a limit reached, an error of any
// kind) makes it give up, and decode_flows() decodes the body again with the generic
// decoder, which words every error. So this path never answers a problem, and what it
// accepts, the generic decoder accepts with the same batch (checked by the unit tests and
// by the flow_json fuzzer on every input).

#include "flowd/codec/common_shape.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "flowd/domain/flow_counters.hpp"
#include "flowd/domain/flow_record.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace flowd {
namespace {

// decode_flows() makes body_padding bytes past the end readable (ensure_padding), so a
// 16-byte load that starts inside the body never leaves the allocation.
constexpr std::size_t max_name_bytes = 255;

// The six known keys, as bits of `seen`.
constexpr unsigned bit_src = 1U << 0;
constexpr unsigned bit_dest = 1U << 1;
constexpr unsigned bit_vpc = 1U << 2;
constexpr unsigned bit_tx = 1U << 3;
constexpr unsigned bit_rx = 1U << 4;
constexpr unsigned bit_hour = 1U << 5;
constexpr unsigned all_bits = (1U << 6) - 1;

bool is_ws(char c) noexcept {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

class scanner {
public:
    scanner(char const* begin, char const* end) noexcept : p_(begin), end_(end) {}

    void skip_ws() noexcept {
        while (p_ != end_ && is_ws(*p_)) {
            ++p_;
        }
    }

    // Consumes `c` after optional whitespace.
    bool expect(char c) noexcept {
        skip_ws();
        if (p_ == end_ || *p_ != c) {
            return false;
        }
        ++p_;
        return true;
    }

    // After an opening quote: the string up to its closing quote when every byte of it is
    // printable ASCII other than '\\' (so it is its own value and valid UTF-8), at most
    // `max` bytes. Empty optional-like result (nullptr data) otherwise.
    bool plain_string(std::size_t max, std::string_view& out) noexcept {
        char const* const start = p_;
#if defined(__SSE2__)
        for (std::size_t n = 0;; n += 16) {
            // A load starting before end_ stays inside the body's readable padding.
            __m128i const chunk = _mm_loadu_si128(reinterpret_cast<__m128i const*>(start + n));
            auto const quotes =
                static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(chunk, _mm_set1_epi8('"'))));
            // Signed compare: bytes >= 0x80 are negative, so one compare finds control
            // characters and non-ASCII alike.
            auto const bad = static_cast<unsigned>(
                _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(chunk, _mm_set1_epi8('\\')),
                                               _mm_cmplt_epi8(chunk, _mm_set1_epi8(0x20)))));
            if (quotes != 0) {
                auto const k = static_cast<unsigned>(std::countr_zero(quotes));
                std::size_t const len = n + k;
                if ((bad & ((1U << k) - 1)) != 0 || len > max ||
                    len >= static_cast<std::size_t>(end_ - start)) {
                    return false;
                }
                out = std::string_view(start, len);
                p_ = start + len + 1;
                return true;
            }
            if (bad != 0 || n + 16 > max || n + 16 >= static_cast<std::size_t>(end_ - start)) {
                return false;
            }
        }
#else
        for (std::size_t n = 0; n <= max && start + n != end_; ++n) {
            auto const c = static_cast<unsigned char>(start[n]);
            if (c == '"') {
                out = std::string_view(start, n);
                p_ = start + n + 1;
                return true;
            }
            if (c < 0x20 || c >= 0x80 || c == '\\') {
                return false;
            }
        }
        return false;
#endif
    }

    // An integer of digits only, no leading zero, at most `max`.
    bool integer(std::uint64_t max, std::uint64_t& out) noexcept {
        if (p_ == end_) {
            return false;
        }
        // Up to 7 digits (what counters of one sample and hours nearly always are): one
        // 8-byte load, no loop. The load may reach into the body's readable padding; the
        // digit count is cut at the body's end.
        std::uint64_t const w = load<std::uint64_t>(p_);
        std::uint64_t const non_digits =
            ((w + 0x4646464646464646ULL) | (w - 0x3030303030303030ULL)) & 0x8080808080808080ULL;
        auto const n = std::min<std::size_t>(
            non_digits == 0 ? 8 : static_cast<std::size_t>(std::countr_zero(non_digits)) / 8,
            static_cast<std::size_t>(end_ - p_));
        if (n == 0 || (n > 1 && *p_ == '0')) {
            return false;  // not a number of digits, or a leading zero: the generic path words it
        }
        if (n < 8) {
            std::uint64_t const v = eight_digits(w << (8 * (8 - n)));
            if (v > max) {
                return false;
            }
            p_ += n;
            out = v;
            return true;
        }
        auto d = static_cast<unsigned>(*p_ - '0');
        if (d > 9) {
            return false;
        }
        char const* const start = p_;
        std::uint64_t v = d;
        ++p_;
        if (d != 0) {
            // 19 digits always fit in 64 bits; max_counter has 19, so more is out of range.
            while (p_ != end_ && (d = static_cast<unsigned>(*p_ - '0')) <= 9) {
                if (p_ - start == 19) {
                    return false;
                }
                v = v * 10 + d;
                ++p_;
            }
        } else if (p_ != end_ && static_cast<unsigned>(*p_ - '0') <= 9) {
            return false;  // a leading zero: invalid JSON, the generic decoder words it
        }
        if (v > max) {
            return false;
        }
        out = v;
        return true;
    }

    // One record object, its opening brace consumed; adds it to `batch`.
    bool record(flow_batch& batch, std::size_t index) noexcept {
        std::string_view names[3];
        std::uint64_t tx = 0;
        std::uint64_t rx = 0;
        std::uint64_t hour = 0;
        if (!compact_record(names, tx, rx, hour) && !any_order_record(names, tx, rx, hour)) {
            return false;
        }
        return batch.add(names[0], names[1], names[2], static_cast<std::uint32_t>(hour),
                         flow_counters{tx, rx}, index) == flow_batch::add_status::ok;
    }

    // The record's fields in any order, with any whitespace, each known key exactly once;
    // its closing brace consumed.
    bool any_order_record(std::string_view (&names)[3], std::uint64_t& tx, std::uint64_t& rx,
                          std::uint64_t& hour) noexcept {
        unsigned seen = 0;
        for (unsigned k = 0;; ++k) {
            unsigned const bit = key(k);
            if (bit == 0 || (seen & bit) != 0) {
                return false;  // not a known key, or one seen already
            }
            seen |= bit;
            skip_ws();
            bool ok = false;
            switch (bit) {
                case bit_src:
                    ok = name(names[0]);
                    break;
                case bit_dest:
                    ok = name(names[1]);
                    break;
                case bit_vpc:
                    ok = name(names[2]);
                    break;
                case bit_tx:
                    ok = integer(max_counter, tx);
                    break;
                case bit_rx:
                    ok = integer(max_counter, rx);
                    break;
                default:
                    ok = integer(max_hour, hour);
                    break;
            }
            skip_ws();
            if (!ok || p_ == end_) {
                return false;
            }
            if (*p_++ != ',') {
                break;
            }
        }
        return p_[-1] == '}' && seen == all_bits;
    }

    // A record written the way exporters and flowd write them, compact with the keys in SPEC
    // order, read as one fixed sequence: no whitespace skipping, no key dispatch. Anything
    // else leaves the position where it was (just past the '{') for the field loop.
    bool compact_record(std::string_view (&names)[3], std::uint64_t& tx, std::uint64_t& rx,
                        std::uint64_t& hour) noexcept {
        char const* const start = p_;
        bool const ok = literal("\"src_app\":\"") && plain_name(names[0]) &&
                        literal(",\"dest_app\":\"") && plain_name(names[1]) &&
                        literal(",\"vpc_id\":\"") && plain_name(names[2]) &&
                        literal(",\"bytes_tx\":") && integer(max_counter, tx) &&
                        literal(",\"bytes_rx\":") && integer(max_counter, rx) &&
                        literal(",\"hour\":") && integer(max_hour, hour) && peek('}');
        if (!ok) {
            p_ = start;
            return false;
        }
        ++p_;
        return true;
    }

    // A name after its opening quote: plain and not empty.
    bool plain_name(std::string_view& out) noexcept {
        return plain_string(max_name_bytes, out) && !out.empty();
    }

    // The `"key":` of the k-th field of a record: its bit, or 0 when it is not a known key.
    unsigned key(unsigned k) noexcept {
        // The common case costs a fixed-size compare: compact JSON with the keys in SPEC
        // order (what exporters and flowd itself write).
        switch (k) {
            case 0:
                if (literal("\"src_app\":")) {
                    return bit_src;
                }
                break;
            case 1:
                if (literal("\"dest_app\":")) {
                    return bit_dest;
                }
                break;
            case 2:
                if (literal("\"vpc_id\":")) {
                    return bit_vpc;
                }
                break;
            case 3:
                if (literal("\"bytes_tx\":")) {
                    return bit_tx;
                }
                break;
            case 4:
                if (literal("\"bytes_rx\":")) {
                    return bit_rx;
                }
                break;
            case 5:
                if (literal("\"hour\":")) {
                    return bit_hour;
                }
                break;
            default:
                break;
        }
        std::string_view key;
        if (!expect('"') || !plain_string(8, key) || !expect(':')) {
            return 0;
        }
        switch (key.size()) {
            case 4:
                return key == "hour" ? bit_hour : 0;
            case 6:
                return key == "vpc_id" ? bit_vpc : 0;
            case 7:
                return key == "src_app" ? bit_src : 0;
            case 8:
                if (key == "dest_app") {
                    return bit_dest;
                }
                if (key == "bytes_tx") {
                    return bit_tx;
                }
                return key == "bytes_rx" ? bit_rx : 0;
            default:
                return 0;
        }
    }

    // Consumes `text` (4 to 16 bytes) when the body continues with exactly it. Two
    // overlapping fixed-size loads per side: g++ 12 left std::memcmp of these odd constant
    // sizes as a call, 5 % of a POST B=1000 under perf.
    template <std::size_t N>
    bool literal(char const (&text)[N]) noexcept {
        constexpr std::size_t n = N - 1;  // without the terminating NUL
        static_assert(n >= 4 && n <= 16);
        if (static_cast<std::size_t>(end_ - p_) < n) {
            return false;
        }
        bool same = false;
        if constexpr (n >= 8) {
            same = (load<std::uint64_t>(p_) ^ load<std::uint64_t>(text)) == 0 &&
                   (load<std::uint64_t>(p_ + n - 8) ^ load<std::uint64_t>(text + n - 8)) == 0;
        } else {
            same = (load<std::uint32_t>(p_) ^ load<std::uint32_t>(text)) == 0 &&
                   (load<std::uint32_t>(p_ + n - 4) ^ load<std::uint32_t>(text + n - 4)) == 0;
        }
        if (!same) {
            return false;
        }
        p_ += n;
        return true;
    }

    // The number written by 8 ASCII digits, the first in the lowest byte; zero bytes count as
    // the digit 0 (so a shorter number shifted up to the high bytes reads as itself). The
    // multiply-and-shift reduction of simdjson's parse_eight_digits_unrolled (Lemire).
    static std::uint64_t eight_digits(std::uint64_t w) noexcept {
        w = ((w & 0x0F0F0F0F0F0F0F0FULL) * 2561) >> 8;
        w = ((w & 0x00FF00FF00FF00FFULL) * 6553601) >> 16;
        return ((w & 0x0000FFFF0000FFFFULL) * 42949672960001ULL) >> 32;
    }

    template <class Word>
    static Word load(char const* at) noexcept {
        Word w{};
        std::memcpy(&w, at, sizeof w);
        return w;
    }

    bool name(std::string_view& out) noexcept {
        if (p_ == end_ || *p_ != '"') {
            return false;
        }
        ++p_;
        return plain_name(out);
    }

    bool at_end() noexcept {
        skip_ws();
        return p_ == end_;
    }

    [[nodiscard]] bool peek(char c) const noexcept {
        return p_ != end_ && *p_ == c;
    }

private:
    char const* p_;
    char const* end_;
};

}  // namespace

bool decode_common_shape(std::string& body, body_format format, decode_limits const& limits,
                         flow_batch& batch) {
    if (format != body_format::json_array || limits.max_depth < 2 || limits.max_records == 0) {
        return false;
    }
    ensure_padding(body);
    flow_batch out;
    out.reserve(expected_records(body.size(), limits));
    scanner s(body.data(), body.data() + body.size());
    if (!s.expect('[')) {
        return false;
    }
    s.skip_ws();
    if (s.peek(']')) {
        return false;  // an empty batch: rare, the generic decoder answers it
    }
    std::size_t index = 0;
    do {
        if (index == limits.max_records || !s.expect('{') || !s.record(out, index)) {
            return false;
        }
        ++index;
    } while (s.expect(','));
    if (!s.expect(']') || !s.at_end()) {
        return false;
    }
    batch = std::move(out);
    return true;
}

}  // namespace flowd
