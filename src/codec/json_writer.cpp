#include "flowd/codec/json_writer.hpp"

#include <array>
#include <charconv>
#include <cstring>
#include <memory>

namespace flowd {

namespace {

// Raw-pointer writers for append_json_string() and append_flow_json(): `p` has room.
char* put(char* p, std::string_view s) noexcept {
    std::memcpy(p, s.data(), s.size());
    return p + s.size();
}

char* put_uint(char* p, std::uint64_t v) noexcept {
    return std::to_chars(p, p + 20, v).ptr;
}

// True when one of the 8 bytes of `w` is below 0x20, '"' or '\\': bytes JSON escapes.
// (The zero-byte test of "Bit Twiddling Hacks" is exact about whether any byte matches.)
constexpr bool needs_escape(std::uint64_t w) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101ULL;
    constexpr std::uint64_t highs = 0x8080808080808080ULL;
    auto const has_zero = [](std::uint64_t x) { return ((x - ones) & ~x & highs) != 0; };
    bool const below_space = ((w - ones * 0x20) & ~w & highs) != 0;
    return below_space || has_zero(w ^ (ones * '"')) || has_zero(w ^ (ones * '\\'));
}

char* put_json_string(char* p, std::string_view s) noexcept {
    static constexpr char hex[] = "0123456789abcdef";
    *p++ = '"';
    // Names are plain ASCII almost always: copy 8 bytes at a time while none needs escaping.
    while (s.size() >= 8) {
        std::uint64_t w;
        std::memcpy(&w, s.data(), 8);
        if (needs_escape(w)) {
            break;
        }
        std::memcpy(p, &w, 8);
        p += 8;
        s.remove_prefix(8);
    }
    for (char const ch : s) {
        auto const c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c != '"' && c != '\\') {
            *p++ = ch;
            continue;
        }
        *p++ = '\\';
        switch (c) {
            case '"':
                *p++ = '"';
                break;
            case '\\':
                *p++ = '\\';
                break;
            case '\b':
                *p++ = 'b';
                break;
            case '\f':
                *p++ = 'f';
                break;
            case '\n':
                *p++ = 'n';
                break;
            case '\r':
                *p++ = 'r';
                break;
            case '\t':
                *p++ = 't';
                break;
            default:
                p = put(p, "u00");
                *p++ = hex[c >> 4];
                *p++ = hex[c & 0xf];
        }
    }
    *p++ = '"';
    return p;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
    std::size_t const at = out.size();
    out.resize(at + 2 + 6 * s.size());  // 6 bytes a byte at worst (\u00XX)
    char* const end = put_json_string(out.data() + at, s);
    out.resize(static_cast<std::size_t>(end - out.data()));
}

void append_flow_json(std::string& out, std::string_view src_app, std::string_view dest_app,
                      std::string_view vpc_id, flow_counters const& counters, std::uint32_t hour) {
    // One append per row: the row is written into a stack buffer with raw pointers. A dozen
    // appends per row, each checking capacity, were most of GET serialisation under perf.
    // Names are at most 255 bytes (SPEC), 6 bytes each escaped at worst: a row fits.
    constexpr std::size_t numbers = 3 * 20;
    constexpr std::size_t fixed = 66 + 6;  // punctuation, keys and the names' quotes
    std::size_t const worst =
        fixed + numbers + 6 * (src_app.size() + dest_app.size() + vpc_id.size());
    std::array<char, 5120> stack;  // NOLINT(cppcoreguidelines-pro-type-member-init): written first
    std::unique_ptr<char[]> heap;  // longer names than SPEC allows: still correct
    char* const begin = worst <= stack.size()
                            ? stack.data()
                            : (heap = std::make_unique_for_overwrite<char[]>(worst)).get();
    char* p = begin;
    p = put(p, "{\"src_app\":");
    p = put_json_string(p, src_app);
    p = put(p, ",\"dest_app\":");
    p = put_json_string(p, dest_app);
    p = put(p, ",\"vpc_id\":");
    p = put_json_string(p, vpc_id);
    p = put(p, ",\"bytes_tx\":");
    p = put_uint(p, counters.bytes_tx);
    p = put(p, ",\"bytes_rx\":");
    p = put_uint(p, counters.bytes_rx);
    p = put(p, ",\"hour\":");
    p = put_uint(p, hour);
    *p++ = '}';
    out.append(begin, static_cast<std::size_t>(p - begin));
}

}  // namespace flowd
