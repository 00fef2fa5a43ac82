#pragma once

// The invariants the fuzz harnesses (fuzz/*_fuzzer.cpp) check on every input, shared with
// tests/unit/codec/fuzz_regressions_test.cpp so that a kept crashing input is replayed
// against exactly the same checks. Each check returns an empty string when the codec
// answered as SPEC says, else a description of the violation; a harness aborts on it,
// the unit test fails with it.
//
// Where it can, a check compares flowd's answer with a reference built on nlohmann::json
// (a second, independent JSON parser): a body nlohmann accepts and whose records are all
// valid by SPEC must be accepted with the same sums; one it rejects must be rejected.

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

#include "flowd/codec/common_shape.hpp"
#include "flowd/codec/flow_json.hpp"
#include "flowd/codec/gzip.hpp"
#include "flowd/codec/problem.hpp"
#include "flowd/codec/query.hpp"
#include "flowd/domain/flow_record.hpp"
#include "flowd/query/plan.hpp"

namespace flowd::fuzz {

// The limits each body is decoded with: the shipped defaults, and small ones so that the
// record cap and the depth cap are reached by short inputs.
inline constexpr decode_limits default_limits{};
inline constexpr decode_limits small_limits{3, 3};

// The largest gzip output the harnesses allow (flowd's default is 16 MiB; a smaller cap
// keeps a fuzzed gzip bomb cheap while still exercising the limit).
inline constexpr std::size_t gzip_limit = std::size_t{1} << 20;

namespace detail {

inline constexpr std::string_view known_fields[] = {"src_app",  "dest_app", "vpc_id",
                                                    "bytes_tx", "bytes_rx", "hour"};

inline bool is_known_field(std::string_view f) {
    for (std::string_view k : known_fields) {
        if (k == f) {
            return true;
        }
    }
    return false;
}

inline std::string escaped(std::string_view s) {
    // For messages only: JSON-ish escaping, invalid UTF-8 replaced.
    return nlohmann::json(std::string(s))
        .dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

// SPEC (Wire details) slug and status of each problem a codec may answer.
inline std::string check_problem(problem const& p, std::string_view context) {
    struct expected {
        problem_type type;
        std::string_view slug;
        unsigned status;
    };
    static constexpr expected table[] = {
        {problem_type::invalid_json, "invalid-json", 400},
        {problem_type::invalid_record, "invalid-record", 400},
        {problem_type::invalid_query, "invalid-query", 400},
        {problem_type::payload_too_large, "payload-too-large", 413},
        {problem_type::too_many_records, "too-many-records", 413},
        {problem_type::counter_overflow, "counter-overflow", 422},
        {problem_type::query_too_large, "query-too-large", 422},
    };
    std::string const where = std::string(context) + ": ";
    expected const* e = nullptr;
    for (auto const& row : table) {
        if (row.type == p.type) {
            e = &row;
        }
    }
    if (e == nullptr) {
        return where + "a codec answered a problem type it never should (" +
               std::string(slug_of(p.type)) + ")";
    }
    if (slug_of(p.type) != e->slug || status_of(p.type) != e->status) {
        return where + "slug/status " + std::string(slug_of(p.type)) + "/" +
               std::to_string(status_of(p.type)) + " differ from SPEC's " + std::string(e->slug) +
               "/" + std::to_string(e->status);
    }
    if (p.detail.empty()) {
        return where + "problem without a detail";
    }
    if (!p.field.empty() && !is_known_field(p.field)) {
        return where + "problem names an unknown field " + escaped(p.field);
    }
    bool const record_at_fault =
        p.type == problem_type::invalid_record || p.type == problem_type::counter_overflow;
    if (record_at_fault != p.record.has_value()) {
        return where + "problem " + std::string(e->slug) + (record_at_fault ? " lacks" : " has") +
               " a record index";
    }
    if (!record_at_fault && !p.field.empty()) {
        return where + "problem " + std::string(e->slug) + " names a field";
    }
    if (p.type == problem_type::counter_overflow && p.field != "bytes_tx" &&
        p.field != "bytes_rx") {
        return where + "counter-overflow names field " + escaped(p.field);
    }
    // The body a client receives must be JSON whatever bytes the detail quotes.
    std::string const body = to_json(p, "fuzz-request");
    auto const j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        return where + "problem body is not a JSON object: " + body;
    }
    if (j.value("type", std::string()) != std::string(problem_type_base) + std::string(e->slug) ||
        j.value("status", 0U) != e->status ||
        j.value("instance", std::string()) != "fuzz-request") {
        return where + "problem body disagrees with the problem: " + body;
    }
    if (p.record && j.value("record", std::size_t{0}) != *p.record) {
        return where + "problem body has the wrong record: " + body;
    }
    return {};
}

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

// gunzip under `limit`, then, when it inflates, the decode checks on what it gave.
inline std::string check_gunzip(std::string_view input, std::size_t limit = gzip_limit) {
    auto const out = gunzip(input, limit);
    if (!out) {
        if (std::string e = detail::check_problem(out.error(), "gunzip"); !e.empty()) {
            return e;
        }
        if (out.error().type != problem_type::invalid_json &&
            out.error().type != problem_type::payload_too_large) {
            return "gunzip: answered " + std::string(slug_of(out.error().type));
        }
        return {};
    }
    std::size_t const n = out->size();
    if (n > limit) {
        return "gunzip: inflated " + std::to_string(n) + " bytes past the limit " +
               std::to_string(limit);
    }
    // Exactly the limit is accepted, one byte less is payload-too-large (SPEC).
    auto const exact = gunzip(input, n);
    if (!exact || *exact != *out) {
        return "gunzip: " + std::to_string(n) + " bytes under limit " + std::to_string(limit) +
               " but not under limit " + std::to_string(n);
    }
    if (n > 0) {
        auto const less = gunzip(input, n - 1);
        if (less || less.error().type != problem_type::payload_too_large) {
            return "gunzip: " + std::to_string(n) + " bytes accepted under limit " +
                   std::to_string(n - 1);
        }
    }
    return check_decode_all(*out);
}

namespace detail {

inline std::optional<std::string> reference_percent_decode(std::string_view s) {
    std::string out;
    auto hex = [](char c) -> int {
        std::string_view const digits = "0123456789abcdef";
        char const lower = (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c;
        std::size_t const i = digits.find(lower);
        return i == std::string_view::npos ? -1 : static_cast<int>(i);
    };
    for (std::size_t i = 0; i < s.size();) {
        if (s[i] != '%') {
            out += s[i++];
            continue;
        }
        if (s.size() - i < 3 || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0) {
            return std::nullopt;
        }
        out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
        i += 3;
    }
    return out;
}

// SPEC's GET /flows query rules, written independently of src/query/plan.cpp. What the
// reference reads of a query it accepts.
struct reference_plan {
    std::uint64_t from = 0;
    std::uint64_t to = 0;
    std::array<std::array<std::vector<std::string>, 3>, 3> filters;  // [dim][equals/prefix/exclude]
    std::vector<std::string> group_by;
    std::string order_by;
    std::uint64_t limit = 0;  // 0: none
    std::string format;
};

// nullopt: 400; a plan with to - from > 744: the parser must answer 422.
inline std::optional<reference_plan> reference_query(std::string_view q) {
    auto decode = [](std::string_view s) -> std::optional<std::string> {
        std::string plus(s);
        std::replace(plus.begin(), plus.end(), '+', ' ');
        return reference_percent_decode(plus);
    };
    auto number = [](std::string const& v, std::uint64_t max) -> std::optional<std::uint64_t> {
        if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos) {
            return std::nullopt;
        }
        std::uint64_t n = 0;
        for (char c : v) {
            auto const d = static_cast<std::uint64_t>(c - '0');
            if (n > (max - d) / 10) {
                return std::nullopt;
            }
            n = n * 10 + d;
        }
        return n;
    };
    std::vector<std::pair<std::string, std::string>> params;
    for (std::size_t start = 0; start <= q.size();) {
        std::size_t amp = q.find('&', start);
        if (amp == std::string_view::npos) {
            amp = q.size();
        }
        std::string_view const part = q.substr(start, amp - start);
        start = amp + 1;
        if (part.empty()) {
            continue;
        }
        std::size_t const eq = part.find('=');
        if (eq == std::string_view::npos) {
            return std::nullopt;  // no value: empty
        }
        auto const name = decode(part.substr(0, eq));
        auto const value = decode(part.substr(eq + 1));
        if (!name || !value || name->empty() || value->empty()) {
            return std::nullopt;
        }
        params.emplace_back(*name, *value);
    }
    std::array<std::string, 3> const dims{"src_app", "dest_app", "vpc_id"};
    std::array<std::string, 3> const kinds{"", "_prefix", "_exclude"};
    std::map<std::string, std::string> single;
    reference_plan out;
    for (auto const& [name, value] : params) {
        bool filter = false;
        for (std::size_t d = 0; d < 3; ++d) {
            for (std::size_t k = 0; k < 3; ++k) {
                if (name == dims[d] + kinds[k]) {
                    out.filters[d][k].push_back(value);
                    filter = true;
                }
            }
        }
        if (filter) {
            continue;
        }
        static std::set<std::string> const known{"hour",     "from",  "to",    "group_by",
                                                 "order_by", "limit", "format"};
        if (known.count(name) == 0 || single.count(name) != 0) {
            return std::nullopt;
        }
        single[name] = value;
    }
    auto has = [&single](char const* n) { return single.count(n) != 0; };
    if (has("hour")) {
        if (has("from") || has("to")) {
            return std::nullopt;
        }
        auto const h = number(single["hour"], 2147483647U);
        if (!h) {
            return std::nullopt;
        }
        out.from = *h;
        out.to = *h + 1;
    } else {
        if (!has("from") || !has("to")) {
            return std::nullopt;
        }
        auto const a = number(single["from"], 2147483647U);
        auto const b = number(single["to"], 2147483648U);
        if (!a || !b || *b <= *a) {
            return std::nullopt;
        }
        out.from = *a;
        out.to = *b;
    }
    out.group_by = {"src_app", "dest_app", "vpc_id", "hour"};
    if (has("group_by")) {
        out.group_by.clear();
        std::string const& g = single["group_by"];
        std::size_t start = 0;
        for (;;) {
            std::size_t const comma = g.find(',', start);
            std::string const item =
                g.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            if ((item != "src_app" && item != "dest_app" && item != "vpc_id" && item != "hour") ||
                std::find(out.group_by.begin(), out.group_by.end(), item) != out.group_by.end()) {
                return std::nullopt;
            }
            out.group_by.push_back(item);
            if (comma == std::string::npos) {
                break;
            }
            start = comma + 1;
        }
    }
    if (has("order_by")) {
        out.order_by = single["order_by"];
        if (out.order_by != "bytes" && out.order_by != "bytes_tx" && out.order_by != "bytes_rx") {
            return std::nullopt;
        }
    }
    if (has("limit")) {
        auto const n = number(single["limit"], ~std::uint64_t{0});
        if (!n || *n == 0) {
            return std::nullopt;
        }
        out.limit = *n;
    }
    if (has("format")) {
        out.format = single["format"];
        if (out.format != "json" && out.format != "ndjson" && out.format != "csv") {
            return std::nullopt;
        }
    }
    return out;
}

inline std::string percent_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (char ch : s) {
        auto const c = static_cast<unsigned char>(ch);
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 0xfU];
    }
    return out;
}

inline bool same_query(reference_plan const& a, query_plan const& b) {
    if (a.from != b.from || a.to != b.to) {
        return false;
    }
    for (std::size_t d = 0; d < 3; ++d) {
        if (a.filters[d][0] != b.filters.at(d).equals ||
            a.filters[d][1] != b.filters.at(d).prefixes ||
            a.filters[d][2] != b.filters.at(d).excludes) {
            return false;
        }
    }
    if (a.group_by.size() != b.group_by.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.group_by.size(); ++i) {
        if (a.group_by[i] != field_name(b.group_by[i])) {
            return false;
        }
    }
    std::string const format = !b.format                            ? ""
                               : *b.format == answer_format::json   ? "json"
                               : *b.format == answer_format::ndjson ? "ndjson"
                                                                    : "csv";
    return a.order_by == order_name(b.order) && a.limit == b.limit.value_or(0) &&
           a.format == format;
}

}  // namespace detail

// Parses `input` as a GET /flows query string and checks the answer.
inline std::string check_query(std::string_view input) {
    auto const decoded = percent_decode(input);
    std::string plus(input);
    std::replace(plus.begin(), plus.end(), '+', ' ');
    if (decoded != detail::reference_percent_decode(plus)) {
        return "percent_decode disagrees with the reference on " + detail::escaped(input);
    }
    auto const got = parse_query_plan(query_route::flows, input);
    auto const want = detail::reference_query(input);
    bool const too_large = want && want->to - want->from > 744;
    if (!got) {
        if (std::string e = detail::check_problem(got.error(), "query"); !e.empty()) {
            return e;
        }
        problem_type const expected =
            too_large ? problem_type::query_too_large : problem_type::invalid_query;
        if (got.error().type != expected) {
            return "query: answered " + std::string(slug_of(got.error().type)) + " to " +
                   detail::escaped(input);
        }
        if (want && !too_large) {
            return "query: the reference accepts " + detail::escaped(input) +
                   " but flowd answers " + got.error().detail;
        }
        return {};
    }
    query_plan const& q = *got;
    if (q.from > max_hour || q.to <= q.from || q.to - q.from > 744) {
        return "query: accepted the range " + std::to_string(q.from) + ".." + std::to_string(q.to);
    }
    if (!want || too_large || !detail::same_query(*want, q)) {
        return "query: flowd accepts " + detail::escaped(input) +
               (want ? ", the reference reads other values" : ", the reference rejects it");
    }
    // Written back out with every byte percent-encoded, the same query parses the same.
    std::string round = "from=" + std::to_string(q.from) + "&to=" + std::to_string(q.to);
    std::array<std::string, 3> const dims{"src_app", "dest_app", "vpc_id"};
    for (std::size_t d = 0; d < 3; ++d) {
        for (auto const& [kind, values] : {std::pair{"", &q.filters.at(d).equals},
                                           std::pair{"_prefix", &q.filters.at(d).prefixes},
                                           std::pair{"_exclude", &q.filters.at(d).excludes}}) {
            for (std::string const& v : *values) {
                round += "&" + detail::percent_encode(dims.at(d) + kind) + "=" +
                         detail::percent_encode(v);
            }
        }
    }
    if (q.group_by_given) {
        std::string g;
        for (group_field const f : q.group_by) {
            g += (g.empty() ? "" : ",") + std::string(field_name(f));
        }
        round += "&group_by=" + detail::percent_encode(g);
    }
    if (q.order != order_key::none) {
        round += "&order_by=" + std::string(order_name(q.order));
    }
    if (q.limit) {
        round += "&limit=" + std::to_string(*q.limit);
    }
    if (q.format) {
        round += std::string("&format=") + (*q.format == answer_format::json     ? "json"
                                            : *q.format == answer_format::ndjson ? "ndjson"
                                                                                 : "csv");
    }
    auto const again = parse_query_plan(query_route::flows, round);
    if (!again || !detail::same_query(*want, *again) || again->normalised != q.normalised) {
        return "query: the re-encoded query " + detail::escaped(round) + " parses differently";
    }
    return {};
}

}  // namespace flowd::fuzz
