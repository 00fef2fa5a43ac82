#include <algorithm>
#include <string>
#include <string_view>

#include "flowd/domain/int_hash.hpp"
#include "flowd/domain/text.hpp"
#include "flowd/query/execute.hpp"

// The ETag half of execute.hpp: an answer's strong ETag and If-None-Match.
namespace flowd {

namespace {

// Two independent 64-bit streams: an ETag collision needs both to collide (about 2^-128),
// and unlike std::hash the function is fixed, so ETags agree across restarts and nodes.
class etag_hash {
public:
    void add(std::string_view bytes) noexcept {
        add_word(bytes.size());
        std::size_t i = 0;
        for (; i + 8 <= bytes.size(); i += 8) {
            std::uint64_t w = 0;
            std::memcpy(&w, bytes.data() + i, 8);
            add_word(w);
        }
        std::uint64_t tail = 0;
        if (i < bytes.size()) {
            std::memcpy(&tail, bytes.data() + i, bytes.size() - i);
        }
        add_word(tail);
    }
    void add_word(std::uint64_t w) noexcept {
        a_ = fmix64((a_ ^ w) * 0x9e3779b97f4a7c15ULL);
        b_ = fmix64((b_ + w) * 0xc2b2ae3d27d4eb4fULL + 0x165667b19e3779f9ULL);
    }
    void add_wide(uint128 v) noexcept {
        add_word(static_cast<std::uint64_t>(v));
        add_word(static_cast<std::uint64_t>(v >> 64));
    }
    [[nodiscard]] std::string hex() const {
        static constexpr char digits[] = "0123456789abcdef";
        std::string out;
        for (std::uint64_t const v : {fmix64(a_), fmix64(b_ ^ a_)}) {
            for (int s = 60; s >= 0; s -= 4) {
                out.push_back(digits[(v >> s) & 0xfU]);
            }
        }
        return out;
    }

private:
    std::uint64_t a_ = 0x6a09e667f3bcc908ULL;
    std::uint64_t b_ = 0xbb67ae8584caa73bULL;
};

}  // namespace

std::string answer_etag(query_plan const& plan, answer_format format, bool gzip,
                        std::vector<hour_stat> const& stats, std::uint32_t sealed_before,
                        std::uint64_t seed) {
    etag_hash h;
    // How many hours of the range are sealed: sealing changes the answer's headers.
    h.add_word(std::clamp(sealed_before, plan.from, plan.to) - plan.from);
    h.add_word(static_cast<std::uint64_t>(plan.route));
    h.add(plan.normalised);
    h.add_word(static_cast<std::uint64_t>(format));
    h.add_word(gzip ? 1 : 0);
    h.add_word(seed);
    for (hour_stat const& s : stats) {
        h.add_word(s.hour);
        h.add_word(s.keys);
        h.add_wide(s.bytes_tx);
        h.add_wide(s.bytes_rx);
    }
    return "\"" + h.hex() + "\"";
}

bool etag_matches(std::string_view if_none_match, std::string_view etag) noexcept {
    // RFC 9110: If-None-Match compares weakly, so W/"x" matches "x".
    return any_list_element(if_none_match, [etag](std::string_view element) {
        if (element == "*") {
            return true;
        }
        if (element.starts_with("W/")) {
            element.remove_prefix(2);
        }
        return element == etag;
    });
}

}  // namespace flowd
