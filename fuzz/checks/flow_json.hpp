#pragma once

// The body decoder against a reference built on nlohmann::json (see fuzz/checks/common.hpp for what
// a check returns).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "flowd/codec/common_shape.hpp"
#include "flowd/codec/flow_json.hpp"
#include "flowd/codec/gzip.hpp"
#include "flowd/codec/problem.hpp"
#include "flowd/codec/query.hpp"
#include "flowd/domain/flow_record.hpp"
#include "flowd/query/plan.hpp"

namespace flowd::fuzz {

namespace detail {

// True when the text holds a \uD800..\uDFFF escape: valid JSON grammar that nlohmann
// refuses when unpaired, while flowd accepts it in an ignored field (SPEC: valid JSON).
inline bool has_surrogate_escape(std::string_view s) {
    for (std::size_t i = 0; i + 3 < s.size(); ++i) {
        if (s[i] == '\\' && s[i + 1] == 'u' && (s[i + 2] == 'd' || s[i + 2] == 'D')) {
            char const c = s[i + 3];
            if ((c >= '8' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
                return true;
            }
        }
    }
    return false;
}

// Shape of a JSON text seen through nlohmann's SAX interface: nesting depth, the records
// at `record_level` and which of them repeat a known field (nlohmann's DOM keeps only one).
class shape_scanner : public nlohmann::json_sax<nlohmann::json> {
public:
    explicit shape_scanner(std::size_t record_level) : record_level_(record_level) {}

    std::size_t max_depth = 0;
    std::size_t records = 0;
    std::vector<bool> duplicate;  // per record

    bool null() override { return scalar(); }
    bool boolean(bool /*val*/) override { return scalar(); }
    bool number_integer(number_integer_t /*val*/) override { return scalar(); }
    bool number_unsigned(number_unsigned_t /*val*/) override { return scalar(); }
    bool number_float(number_float_t /*val*/, string_t const& /*s*/) override { return scalar(); }
    bool string(string_t& /*val*/) override { return scalar(); }
    bool binary(binary_t& /*val*/) override { return scalar(); }
    bool start_object(std::size_t /*elements*/) override {
        begin_value();
        if (depth_ == record_level_) {
            seen_ = 0;
        }
        return push();
    }
    bool key(string_t& val) override {
        if (depth_ == record_level_ + 1) {
            for (unsigned i = 0; i < std::size(known_fields); ++i) {
                if (val == known_fields[i]) {
                    if ((seen_ & (1U << i)) != 0) {
                        duplicate.back() = true;
                    }
                    seen_ |= 1U << i;
                }
            }
        }
        return true;
    }
    bool end_object() override { return pop(); }
    bool start_array(std::size_t /*elements*/) override {
        begin_value();
        return push();
    }
    bool end_array() override { return pop(); }
    bool parse_error(std::size_t /*position*/, std::string const& /*last_token*/,
                     nlohmann::detail::exception const& /*ex*/) override {
        return false;
    }

private:
    void begin_value() {
        if (depth_ == record_level_) {
            ++records;
            duplicate.push_back(false);
        }
    }
    bool scalar() {
        begin_value();
        return true;
    }
    bool push() {
        ++depth_;
        max_depth = std::max(max_depth, depth_);
        return true;
    }
    bool pop() {
        --depth_;
        return true;
    }

    std::size_t record_level_;
    std::size_t depth_ = 0;
    unsigned seen_ = 0;
};

// What SPEC says of one JSON text, per the reference parser.
struct reference_text {
    enum class verdict { invalid_json, valid, unknown } syntax = verdict::unknown;
    std::size_t depth = 0;
    bool top_array = false;
    std::vector<nlohmann::json> records;
    std::vector<bool> duplicate;
};

inline reference_text scan(std::string_view text, std::size_t record_level) {
    reference_text out;
    if (text.find('\0') != std::string_view::npos || text.starts_with("\xef\xbb\xbf")) {
        // A NUL byte is never valid JSON, but nlohmann's lexer reads it as the end of input.
        // A byte order mark is not in RFC 8259's grammar; a parser MAY skip it (nlohmann
        // does), flowd refuses it.
        out.syntax = reference_text::verdict::invalid_json;
        return out;
    }
    shape_scanner shape(record_level);
    bool const ok = nlohmann::json::sax_parse(text, &shape);
    if (!ok) {
        out.syntax = has_surrogate_escape(text) ? reference_text::verdict::unknown
                                                : reference_text::verdict::invalid_json;
        return out;
    }
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) {
        return out;  // the SAX parse said yes: should not happen, claim nothing
    }
    out.syntax = reference_text::verdict::valid;
    out.depth = shape.max_depth;
    out.duplicate = std::move(shape.duplicate);
    if (record_level == 0) {
        out.records.push_back(std::move(j));
    } else if (j.is_array()) {
        out.top_array = true;
        for (auto& r : j) {
            out.records.push_back(std::move(r));
        }
    }
    return out;
}

struct reference_record {
    bool valid = false;
    std::string src_app, dest_app, vpc_id;
    std::uint64_t bytes_tx = 0, bytes_rx = 0;
    std::uint32_t hour = 0;
};

inline reference_record check_record(nlohmann::json const& r, bool duplicate) {
    reference_record out;
    if (!r.is_object() || duplicate) {
        return out;
    }
    auto name = [&r](char const* key, std::string& dest) {
        auto const it = r.find(key);
        if (it == r.end() || !it->is_string()) {
            return false;
        }
        dest = it->get<std::string>();
        return !dest.empty() && dest.size() <= 255;
    };
    auto integer = [&r](char const* key, std::uint64_t max, std::uint64_t& dest) {
        auto const it = r.find(key);
        // nlohmann reads -0, 1.0, 1e2 and anything past 2^64-1 as another number type.
        if (it == r.end() || !it->is_number_unsigned()) {
            return false;
        }
        dest = it->get<std::uint64_t>();
        return dest <= max;
    };
    std::uint64_t hour = 0;
    out.valid = name("src_app", out.src_app) && name("dest_app", out.dest_app) &&
                name("vpc_id", out.vpc_id) && integer("bytes_tx", max_counter, out.bytes_tx) &&
                integer("bytes_rx", max_counter, out.bytes_rx) && integer("hour", max_hour, hour);
    out.hour = static_cast<std::uint32_t>(hour);
    return out;
}

// The batch SPEC expects when every record is valid: sums per key, the first record of
// each key, and the first record whose sum would pass 2^63-1 (it is then left out).
struct reference_batch {
    using key = std::tuple<std::string, std::string, std::string, std::uint32_t>;
    std::map<key, std::pair<flow_counters, std::size_t>> sums;
    std::optional<std::size_t> overflow_record;
    std::string overflow_field;

    void add(reference_record const& r, std::size_t index) {
        auto [it, fresh] = sums.try_emplace(key{r.src_app, r.dest_app, r.vpc_id, r.hour},
                                            flow_counters{r.bytes_tx, r.bytes_rx}, index);
        if (fresh) {
            return;
        }
        flow_counters& c = it->second.first;
        bool const tx = r.bytes_tx > max_counter - c.bytes_tx;
        bool const rx = r.bytes_rx > max_counter - c.bytes_rx;
        if (tx || rx) {
            if (!overflow_record) {
                overflow_record = index;
                overflow_field = tx ? "bytes_tx" : "bytes_rx";
            }
            return;
        }
        c.bytes_tx += r.bytes_tx;
        c.bytes_rx += r.bytes_rx;
    }
};

inline bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        auto const c = static_cast<unsigned char>(s[i]);
        std::size_t n = 0;
        std::uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1fU;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0fU;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07U;
        } else {
            return false;
        }
        if (i + n >= s.size()) {
            return false;  // truncated sequence
        }
        for (std::size_t k = 1; k <= n; ++k) {
            auto const cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0U) != 0x80U) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3fU);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff))) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

// Invariants of an accepted batch on its own.
inline std::string check_batch(flow_batch const& b, std::string_view context) {
    std::string const where = std::string(context) + ": ";
    std::uint64_t from_entries = 0;
    std::map<reference_batch::key, int> keys;
    for (auto const& e : b.entries()) {
        flow_record_view const& r = e.record;
        for (std::string_view const* s : {&r.src_app, &r.dest_app, &r.vpc_id}) {
            if (s->empty() || s->size() > 255) {
                return where + "accepted a name of " + std::to_string(s->size()) + " bytes";
            }
            if (!valid_utf8(*s)) {
                return where + "accepted a name that is not UTF-8: " + escaped(*s);
            }
        }
        if (r.hour > max_hour || r.counters.bytes_tx > max_counter ||
            r.counters.bytes_rx > max_counter) {
            return where + "accepted an out-of-range hour or counter";
        }
        if (e.first_record >= b.record_count()) {
            return where + "first_record " + std::to_string(e.first_record) +
                   " past the record count " + std::to_string(b.record_count());
        }
        if (++keys[{std::string(r.src_app), std::string(r.dest_app), std::string(r.vpc_id),
                    r.hour}] != 1) {
            return where + "a key appears twice in one batch";
        }
        ++from_entries;
    }
    if (from_entries > b.record_count() || (b.record_count() > 0 && from_entries == 0)) {
        return where + std::to_string(from_entries) + " keys for " +
               std::to_string(b.record_count()) + " records";
    }
    return {};
}

inline std::string check_against(flow_batch const& b, reference_batch const& ref,
                                 std::size_t records, std::string_view context) {
    std::string const where = std::string(context) + ": ";
    if (b.record_count() != records) {
        return where + "record_count " + std::to_string(b.record_count()) + " but the body has " +
               std::to_string(records) + " records";
    }
    if (b.entries().size() != ref.sums.size()) {
        return where + std::to_string(b.entries().size()) + " keys, the reference has " +
               std::to_string(ref.sums.size());
    }
    for (auto const& e : b.entries()) {
        flow_record_view const& r = e.record;
        auto const it = ref.sums.find(
            {std::string(r.src_app), std::string(r.dest_app), std::string(r.vpc_id), r.hour});
        if (it == ref.sums.end()) {
            return where + "key " + escaped(r.src_app) + "/" + escaped(r.dest_app) + "/" +
                   escaped(r.vpc_id) + " is not in the body";
        }
        if (!(it->second.first == r.counters) || it->second.second != e.first_record) {
            return where + "sums or first record of " + escaped(r.src_app) +
                   " differ from the reference";
        }
    }
    return {};
}

inline std::string describe(boost::system::result<flow_batch, problem> const& r) {
    if (r) {
        return "accepted " + std::to_string(r->record_count()) + " records";
    }
    return std::string(slug_of(r.error().type)) + " (" + r.error().detail + ")";
}

inline bool same(boost::system::result<flow_batch, problem> const& a,
                 boost::system::result<flow_batch, problem> const& b) {
    if (a.has_value() != b.has_value()) {
        return false;
    }
    if (!a) {
        problem const& x = a.error();
        problem const& y = b.error();
        return x.type == y.type && x.detail == y.detail && x.record == y.record &&
               x.field == y.field;
    }
    if (a->record_count() != b->record_count() || a->entries().size() != b->entries().size()) {
        return false;
    }
    for (std::size_t i = 0; i < a->entries().size(); ++i) {
        if (!(a->entries()[i].record == b->entries()[i].record) ||
            a->entries()[i].first_record != b->entries()[i].first_record) {
            return false;
        }
    }
    return true;
}

// A copy of `input` with exactly simdjson's padding as spare capacity, so that a read past
// the padding is a heap overflow ASan sees.
inline std::string padded(std::string_view input) {
    std::string body;
    body.reserve(input.size() + 64);
    body.assign(input);
    return body;
}

// What SPEC expects of `input` under `format` and `limits`, compared with `got`.
inline std::string check_reference(std::string_view input, body_format format,
                                   decode_limits const& limits,
                                   boost::system::result<flow_batch, problem> const& got,
                                   std::string const& where) {
    // The answer SPEC requires, or nothing when the reference cannot tell.
    enum class expect {
        accept,
        invalid_json,
        invalid_json_or_record,
        invalid_record,
        too_many,
        overflow,
        any_400_or_413,
        unknown
    };
    expect want = expect::unknown;
    std::size_t want_record = 0;  // the record SPEC says is at fault, where one is
    reference_batch ref;
    std::size_t count = 0;
    if (format == body_format::json_array) {
        reference_text const t = scan(input, 1);
        if (t.syntax == reference_text::verdict::invalid_json) {
            want = expect::any_400_or_413;  // 413 may win when the error comes late
            if (got && !has_surrogate_escape(input)) {
                return where + "accepted a body that is not JSON";
            }
        } else if (t.syntax == reference_text::verdict::valid) {
            count = t.records.size();
            if (!t.top_array) {
                want = expect::invalid_json;
            } else if (t.depth > limits.max_depth) {
                want = expect::any_400_or_413;
            } else if (count > limits.max_records) {
                want = expect::too_many;
            } else {
                want = expect::accept;
                for (std::size_t i = 0; i < count; ++i) {
                    reference_record const r = check_record(t.records[i], t.duplicate[i]);
                    if (!r.valid) {
                        want = expect::invalid_record;
                        want_record = i;
                        break;
                    }
                    ref.add(r, i);
                }
                if (want == expect::accept && ref.overflow_record) {
                    want = expect::overflow;
                    want_record = ref.overflow_record.value_or(0);
                }
            }
        }
    } else {
        // NDJSON: one record per non-blank line; the first line at fault decides.
        want = expect::accept;
        std::size_t pos = 0;
        std::optional<expect> first_bad;
        while (pos < input.size()) {
            std::size_t end = input.find('\n', pos);
            if (end == std::string_view::npos) {
                end = input.size();
            }
            std::string_view const line = input.substr(pos, end - pos);
            pos = end + 1;
            if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
                continue;
            }
            std::size_t const index = count++;
            if (first_bad) {
                continue;
            }
            reference_text const t = scan(line, 0);
            if (t.syntax == reference_text::verdict::unknown) {
                first_bad = expect::unknown;
            } else if (t.syntax == reference_text::verdict::invalid_json ||
                       t.depth > limits.max_depth) {
                // flowd answers the first fault in reading order: a record that is not an
                // object or has a bad field before the syntax error (or the depth cap) is
                // invalid-record, both are 400.
                first_bad = expect::invalid_json_or_record;
                want_record = index;
            } else {
                reference_record const r = check_record(t.records[0], t.duplicate[0]);
                if (!r.valid) {
                    first_bad = expect::invalid_record;
                    want_record = index;
                } else {
                    ref.add(r, index);
                }
            }
        }
        if (count > limits.max_records) {
            want = expect::too_many;
        } else if (first_bad) {
            want = *first_bad;
        } else if (ref.overflow_record) {
            want = expect::overflow;
            want_record = ref.overflow_record.value_or(0);
        }
    }

    auto type_is = [&got](std::initializer_list<problem_type> types) {
        if (got) {
            return false;
        }
        for (problem_type t : types) {
            if (got.error().type == t) {
                return true;
            }
        }
        return false;
    };
    std::string const result = " but flowd " + describe(got);
    switch (want) {
        case expect::unknown:
            return {};
        case expect::accept:
            if (!got) {
                return where + "the reference accepts the body" + result;
            }
            return check_against(*got, ref, count, where);
        case expect::invalid_json:
            if (!type_is({problem_type::invalid_json})) {
                return where + "the reference finds no top-level array" + result;
            }
            return {};
        case expect::invalid_json_or_record:
            if (!type_is({problem_type::invalid_json, problem_type::invalid_record}) ||
                (got.error().record && *got.error().record != want_record)) {
                return where + "the reference finds line " + std::to_string(want_record) +
                       " not JSON or nested too deep" + result;
            }
            return {};
        case expect::invalid_record:
            if (!type_is({problem_type::invalid_record}) ||
                got.error().record != std::optional<std::size_t>(want_record)) {
                return where + "the reference finds record " + std::to_string(want_record) +
                       " invalid" + result;
            }
            return {};
        case expect::too_many:
            if (!type_is({problem_type::too_many_records})) {
                return where + "the reference counts " + std::to_string(count) + " records" +
                       result;
            }
            return {};
        case expect::overflow:
            if (!type_is({problem_type::counter_overflow}) ||
                got.error().record != std::optional<std::size_t>(want_record) ||
                got.error().field != ref.overflow_field) {
                return where + "the reference overflows " + ref.overflow_field + " at record " +
                       std::to_string(want_record) + result;
            }
            return {};
        case expect::any_400_or_413:
            if (!type_is({problem_type::invalid_json, problem_type::invalid_record,
                          problem_type::too_many_records})) {
                return where + "the reference rejects the body (syntax or depth)" + result;
            }
            return {};
    }
    return {};
}

}  // namespace detail

// Decodes `input` as a POST body with `format` and `limits` and checks the answer.
inline std::string check_decode(std::string_view input, body_format format,
                                decode_limits const& limits) {
    std::string const where = std::string(format == body_format::json_array ? "json" : "ndjson") +
                              " max_records=" + std::to_string(limits.max_records) +
                              " max_depth=" + std::to_string(limits.max_depth);
    std::string body = detail::padded(input);
    auto const got = decode_flows(body, format, limits);
    if (body != input) {
        return where + ": decode_flows changed the body";
    }
    std::string again = detail::padded(input);
    if (!detail::same(got, decode_flows(again, format, limits))) {
        return where + ": decoding the same body twice gave two answers";
    }
    // The fast path (decode_common_shape) never changes an answer: the generic decoder alone
    // gives the same batch or the same problem.
    std::string generic = detail::padded(input);
    if (!detail::same(got, decode_flows_generic(generic, format, limits))) {
        return where + ": decode_flows and decode_flows_generic disagree";
    }
    if (got) {
        if (std::string e = detail::check_batch(*got, where); !e.empty()) {
            return e;
        }
    } else {
        if (std::string e = detail::check_problem(got.error(), where); !e.empty()) {
            return e;
        }
        if (got.error().type == problem_type::invalid_query ||
            got.error().type == problem_type::payload_too_large) {
            return where + ": decode_flows answered " + std::string(slug_of(got.error().type));
        }
    }
    return detail::check_reference(input, format, limits, got, where + ": ");
}

// Every format and limit the decode harness tries.
inline std::string check_decode_all(std::string_view input) {
    for (body_format f : {body_format::json_array, body_format::ndjson}) {
        for (decode_limits const& l : {default_limits, small_limits}) {
            if (std::string e = check_decode(input, f, l); !e.empty()) {
                return e;
            }
        }
    }
    return {};
}

}  // namespace flowd::fuzz
