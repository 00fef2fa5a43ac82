#include "flowd/codec/flow_json.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>

#include <simdjson.h>

#include "flowd/codec/common_shape.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace flowd {

static_assert(body_padding == simdjson::SIMDJSON_PADDING);

namespace {

namespace od = simdjson::ondemand;

constexpr std::size_t max_name_bytes = 255;

enum class field_id : unsigned { src_app, dest_app, vpc_id, bytes_tx, bytes_rx, hour, count };
constexpr std::array<std::string_view, 6> field_names{"src_app",  "dest_app", "vpc_id",
                                                      "bytes_tx", "bytes_rx", "hour"};

std::optional<field_id> known_field(std::string_view key) noexcept {
    // By length first: one fixed-size compare instead of up to six string compares.
    switch (key.size()) {
        case 4:
            return key == "hour" ? std::optional(field_id::hour) : std::nullopt;
        case 6:
            return key == "vpc_id" ? std::optional(field_id::vpc_id) : std::nullopt;
        case 7:
            return key == "src_app" ? std::optional(field_id::src_app) : std::nullopt;
        case 8:
            if (key == "dest_app") {
                return field_id::dest_app;
            }
            if (key == "bytes_tx") {
                return field_id::bytes_tx;
            }
            if (key == "bytes_rx") {
                return field_id::bytes_rx;
            }
            return std::nullopt;
        default:
            return std::nullopt;
    }
}

// The bytes of a string token up to its closing quote, when it has no escape: then they
// are its value as is (stage 1 already checked the UTF-8 and that no control character is
// unescaped). `raw` points just past the opening quote, inside the padded buffer, and the
// string is closed (stage 1), so the scan stops. Empty optional when there is an escape.
std::optional<std::string_view> unescaped_as_is(char const* raw) noexcept {
#if defined(__SSE2__)
    // Names are ~10 bytes: one 16-byte compare usually finds the closing quote. Reading 16
    // bytes from inside the body stays inside its SIMDJSON_PADDING.
    __m128i const chunk = _mm_loadu_si128(reinterpret_cast<__m128i const*>(raw));
    auto const quotes =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(chunk, _mm_set1_epi8('"'))));
    auto const escapes =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(chunk, _mm_set1_epi8('\\'))));
    if (quotes != 0) {
        auto const n = static_cast<unsigned>(std::countr_zero(quotes));
        if ((escapes & ((1U << n) - 1)) != 0) {
            return std::nullopt;
        }
        return std::string_view(raw, n);
    }
    if (escapes != 0) {
        return std::nullopt;
    }
    std::size_t n = 16;
#else
    std::size_t n = 0;
#endif
    while (raw[n] != '"' && raw[n] != '\\') {
        ++n;
    }
    if (raw[n] == '\\') {
        return std::nullopt;
    }
    return std::string_view(raw, n);
}

problem invalid_json(std::string detail) {
    return problem{problem_type::invalid_json, std::move(detail), {}, {}};
}

problem syntax_error(simdjson::error_code e, std::optional<std::size_t> record) {
    std::string detail = e == simdjson::DEPTH_ERROR
                             ? "the body nests arrays and objects deeper than max_json_depth"
                             : "the body is not valid JSON (RFC 8259)";
    if (record) {
        detail += " at record " + std::to_string(*record);
    }
    detail += ": ";
    detail += simdjson::error_message(e);
    return invalid_json(std::move(detail));
}

problem bad_field(std::size_t record, field_id f, std::string detail) {
    std::string_view const name = field_names[static_cast<unsigned>(f)];
    return problem{problem_type::invalid_record,
                   "record " + std::to_string(record) + ": field '" + std::string(name) + "' " +
                       std::move(detail),
                   record, std::string(name)};
}

std::string_view type_name(od::json_type t) noexcept {
    switch (t) {
        case od::json_type::array:
            return "an array";
        case od::json_type::object:
            return "an object";
        case od::json_type::number:
            return "a number";
        case od::json_type::string:
            return "a string";
        case od::json_type::boolean:
            return "a boolean";
        case od::json_type::null:
            return "null";
    }
    return "a value";
}

std::string_view trim_right(std::string_view s) noexcept;

// RFC 8259 number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?. Checked on the token
// because simdjson's number getters also refuse valid JSON (big integers, exponents past
// double's range) and accept none of the invalid ones we need to tell apart.
bool is_json_number(std::string_view s) noexcept {
    std::size_t i = 0;
    auto digits = [&s, &i] {
        std::size_t const start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            ++i;
        }
        return i - start;
    };
    if (i < s.size() && s[i] == '-') {
        ++i;
    }
    if (i < s.size() && s[i] == '0') {
        ++i;
    } else if (digits() == 0) {
        return false;
    }
    if (i < s.size() && s[i] == '.') {
        ++i;
        if (digits() == 0) {
            return false;
        }
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
            ++i;
        }
        if (digits() == 0) {
            return false;
        }
    }
    return i == s.size();
}

// True when a string token's escapes are all RFC 8259 escapes (\uXXXX with four hex digits).
bool has_valid_escapes(std::string_view token) noexcept {
    for (std::size_t i = 0; i < token.size(); ++i) {
        if (token[i] != '\\') {
            continue;
        }
        if (++i >= token.size()) {
            return false;
        }
        char const c = token[i];
        if (c == 'u') {
            if (i + 4 >= token.size()) {
                return false;
            }
            for (std::size_t k = 1; k <= 4; ++k) {
                if (std::isxdigit(static_cast<unsigned char>(token[i + k])) == 0) {
                    return false;
                }
            }
            i += 4;
        } else if (std::string_view("\"\\/bfnrt").find(c) == std::string_view::npos) {
            return false;
        }
    }
    return true;
}

// Walks a value the record does not use, so that the body is valid JSON as a whole
// (On-Demand would otherwise skip it unchecked). On-Demand enforces no depth limit, so
// `depth_left` (the nesting levels still allowed, this value's included) bounds both
// max_json_depth and this recursion: a body of a million '[' must not exhaust the stack.
simdjson::error_code validate_value(od::value v, std::size_t depth_left) noexcept {
    od::json_type t{};
    if (auto e = v.type().get(t)) {
        return e;
    }
    if ((t == od::json_type::object || t == od::json_type::array) && depth_left == 0) {
        return simdjson::DEPTH_ERROR;
    }
    switch (t) {
        case od::json_type::object: {
            od::object o;
            if (auto e = v.get_object().get(o)) {
                return e;
            }
            for (auto field : o) {
                std::string_view key;
                if (auto e = field.unescaped_key().get(key)) {
                    return e;
                }
                od::value inner;
                if (auto e = field.value().get(inner)) {
                    return e;
                }
                if (auto e = validate_value(inner, depth_left - 1)) {
                    return e;
                }
            }
            return simdjson::SUCCESS;
        }
        case od::json_type::array: {
            od::array a;
            if (auto e = v.get_array().get(a)) {
                return e;
            }
            for (auto element : a) {
                od::value inner;
                if (auto e = element.get(inner)) {
                    return e;
                }
                if (auto e = validate_value(inner, depth_left - 1)) {
                    return e;
                }
            }
            return simdjson::SUCCESS;
        }
        case od::json_type::number:
            return is_json_number(trim_right(v.raw_json_token())) ? simdjson::SUCCESS
                                                                  : simdjson::NUMBER_ERROR;
        case od::json_type::string: {
            // An unpaired surrogate escape is valid JSON grammar; an ignored field may carry one.
            std::string_view const token = trim_right(v.raw_json_token());
            std::string_view s;
            auto const e = v.get_string().get(s);
            return e == simdjson::STRING_ERROR && has_valid_escapes(token) ? simdjson::SUCCESS : e;
        }
        case od::json_type::boolean: {
            bool b = false;
            return v.get_bool().get(b);
        }
        case od::json_type::null: {
            bool is_null = false;
            if (auto e = v.is_null().get(is_null)) {
                return e;
            }
            return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
        }
    }
    return simdjson::INCORRECT_TYPE;
}

std::string_view trim_right(std::string_view s) noexcept {
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

struct record_fields {
    std::array<std::string_view, 3> names{};
    std::uint64_t bytes_tx = 0;
    std::uint64_t bytes_rx = 0;
    std::uint32_t hour = 0;
    unsigned seen = 0;  // bit per field_id
};

bool fail(problem& err, problem p) {
    err = std::move(p);
    return false;
}

// Reads an integer field: digits only, no sign, fraction or exponent, at most `max`. Returns
// false with `err` set when the field is bad. Nothing here allocates on the good path: a
// message or a std::optional<problem> built per field cost more than the parse itself.
bool read_integer(od::value& v, std::size_t record, field_id f, std::uint64_t max,
                  std::uint64_t& out, std::size_t depth_left, problem& err) {
    // The common case first: simdjson's unsigned parser accepts exactly a base-10 integer
    // (digits, no leading zero, at most 2^64-1) followed by a structural character or
    // whitespace, and consumes it only then. Anything else takes the full path below, which
    // words every error from the token.
    std::string_view const raw_token = v.raw_json_token();  // before get_uint64() consumes
    if (std::uint64_t n = 0; v.get_uint64().get(n) == simdjson::SUCCESS) {
        if (n <= max) {
            out = n;
            return true;
        }
        return fail(err, bad_field(record, f,
                                   "must be an integer 0.." + std::to_string(max) + ", got " +
                                       quote_value(trim_right(raw_token))));
    }
    od::json_type t{};
    if (auto e = v.type().get(t)) {
        return fail(err, syntax_error(e, record));
    }
    auto range = [max] { return "must be an integer 0.." + std::to_string(max); };
    if (t != od::json_type::number) {
        if (auto e = validate_value(v, depth_left)) {
            return fail(err, syntax_error(e, record));
        }
        return fail(err, bad_field(record, f, range() + ", got " + std::string(type_name(t))));
    }
    std::string_view const token = trim_right(v.raw_json_token());
    if (!is_json_number(token)) {
        return fail(err, syntax_error(simdjson::NUMBER_ERROR, record));
    }
    if (token.find_first_not_of("0123456789") != std::string_view::npos) {
        // Valid JSON but not an integer by SPEC: a fraction, an exponent or a sign.
        return fail(err, bad_field(record, f,
                                   range() + " with no fraction, exponent or sign, got " +
                                       quote_value(token)));
    }
    // Digits only; more than 2^64-1 (which get_uint64 reports as a JSON error) is out of range too.
    std::uint64_t n = 0;
    auto const parsed = std::from_chars(token.data(), token.data() + token.size(), n);
    if (parsed.ec != std::errc{} || n > max) {
        return fail(err, bad_field(record, f, range() + ", got " + quote_value(token)));
    }
    out = n;
    return true;
}

// As read_integer(): false with `err` set when the field is bad.
bool read_name(od::value& v, std::size_t record, field_id f, std::string_view& out,
               std::size_t depth_left, problem& err) {
    // The common case first: a string without escapes, 1..255 bytes, is its own value, read in
    // place in the body (no copy into simdjson's string buffer). Anything else takes the full
    // path below, which also words every error.
    if (std::string_view const token = v.raw_json_token(); !token.empty() && token[0] == '"') {
        if (auto const s = unescaped_as_is(token.data() + 1);
            s && !s->empty() && s->size() <= max_name_bytes) {
            od::raw_json_string consumed;
            if (v.get_raw_json_string().get(consumed) == simdjson::SUCCESS) {
                out = *s;
                return true;
            }
        }
    }
    od::json_type t{};
    if (auto e = v.type().get(t)) {
        return fail(err, syntax_error(e, record));
    }
    if (t != od::json_type::string) {
        if (auto e = validate_value(v, depth_left)) {
            return fail(err, syntax_error(e, record));
        }
        return fail(
            err, bad_field(record, f,
                           "must be a string of 1..255 bytes, got " + std::string(type_name(t))));
    }
    std::string_view const token = trim_right(v.raw_json_token());
    std::string_view s;
    if (auto e = v.get_string().get(s)) {
        // Grammatically valid but a \uD800-style escape without its pair: valid JSON whose
        // value is not UTF-8, so the record is at fault, not the body.
        if (e == simdjson::STRING_ERROR && has_valid_escapes(token)) {
            return fail(
                err,
                bad_field(
                    record, f,
                    "must be valid UTF-8 after unescaping, got an unpaired surrogate escape in " +
                        quote_value(token)));
        }
        return fail(err, syntax_error(e, record));
    }
    if (s.empty() || s.size() > max_name_bytes) {
        return fail(err,
                    bad_field(record, f,
                              "must be 1..255 bytes of UTF-8, got " + std::to_string(s.size()) +
                                  " bytes" + (s.empty() ? std::string() : ": " + quote_value(s))));
    }
    out = s;
    return true;
}

// Decodes one record object into `batch`; `depth_left` as for validate_value().
std::optional<problem> decode_record(od::value element, std::size_t record, flow_batch& batch,
                                     std::size_t depth_left) {
    od::json_type t{};
    if (auto e = element.type().get(t)) {
        return syntax_error(e, record);
    }
    if (t != od::json_type::object) {
        if (auto e = validate_value(element, depth_left)) {
            return syntax_error(e, record);
        }
        return problem{problem_type::invalid_record,
                       "record " + std::to_string(record) + " must be a JSON object, got " +
                           std::string(type_name(t)),
                       record, ""};
    }
    if (depth_left == 0) {
        return syntax_error(simdjson::DEPTH_ERROR, record);
    }
    od::object obj;
    if (auto e = element.get_object().get(obj)) {
        return syntax_error(e, record);
    }
    record_fields r;
    problem err;
    for (auto field_result : obj) {
        if (auto e = field_result.error()) {
            return syntax_error(e, record);
        }
        od::field& field = field_result.value_unsafe();  // no copy of the field's iterator
        // Compare the raw key when it has no escape (unescaping copies it out first).
        std::string_view key;
        if (auto const raw = unescaped_as_is(field.key().raw())) {
            key = *raw;
        } else if (auto e = field.unescaped_key().get(key)) {
            return syntax_error(e, record);
        }
        od::value& v = field.value();
        std::optional<field_id> const f = known_field(key);
        if (!f) {
            if (auto e = validate_value(v, depth_left - 1)) {
                return syntax_error(e, record);
            }
            continue;
        }
        auto const bit = 1U << static_cast<unsigned>(*f);
        if ((r.seen & bit) != 0) {
            return bad_field(record, *f, "appears more than once in the record");
        }
        r.seen |= bit;
        bool ok = true;
        switch (*f) {
            case field_id::src_app:
            case field_id::dest_app:
            case field_id::vpc_id:
                ok = read_name(v, record, *f, r.names[static_cast<unsigned>(*f)], depth_left - 1,
                               err);
                break;
            case field_id::bytes_tx:
                ok = read_integer(v, record, *f, max_counter, r.bytes_tx, depth_left - 1, err);
                break;
            case field_id::bytes_rx:
                ok = read_integer(v, record, *f, max_counter, r.bytes_rx, depth_left - 1, err);
                break;
            case field_id::hour: {
                std::uint64_t h = 0;
                ok = read_integer(v, record, *f, max_hour, h, depth_left - 1, err);
                r.hour = static_cast<std::uint32_t>(h);
                break;
            }
            case field_id::count:
                break;
        }
        if (!ok) {
            return err;
        }
    }
    for (unsigned i = 0; i < static_cast<unsigned>(field_id::count); ++i) {
        if ((r.seen & (1U << i)) == 0) {
            return bad_field(record, static_cast<field_id>(i), "is required");
        }
    }
    auto const added = batch.add(r.names[0], r.names[1], r.names[2], r.hour,
                                 flow_counters{r.bytes_tx, r.bytes_rx}, record);
    if (added == flow_batch::add_status::ok) {
        return std::nullopt;
    }
    std::string const name = added == flow_batch::add_status::overflow_tx ? "bytes_tx" : "bytes_rx";
    return problem{problem_type::counter_overflow,
                   "record " + std::to_string(record) + ": the sum of '" + name +
                       "' over this batch for this key would pass 9223372036854775807",
                   record, name};
}

problem too_many(std::size_t max) {
    return problem{problem_type::too_many_records,
                   "a batch may hold at most " + std::to_string(max) +
                       " records (max_records_per_batch); split it",
                   {},
                   {}};
}

// After the top-level value was consumed: anything left but whitespace?
bool has_trailing_content(od::document& doc) noexcept {
    const char* location = nullptr;
    return doc.current_location().get(location) == simdjson::SUCCESS;
}

od::parser& thread_parser(std::size_t max_depth) {
    thread_local od::parser parser;
    thread_local std::size_t depth = 0;
    if (depth != max_depth) {
        // One structural level for the batch array itself.
        if (parser.allocate(simdjson::SIMDJSON_PADDING, max_depth + 1) != simdjson::SUCCESS) {
            throw std::bad_alloc();
        }
        depth = max_depth;
    }
    return parser;
}

// A 400 decided already (a 422 may still give way to a 400 found later).
bool is_bad_request(std::optional<problem> const& p) noexcept {
    return p && p->type != problem_type::counter_overflow;
}

// The nesting levels left to each record of a JSON array body: the array takes one.
std::size_t record_depth(decode_limits const& limits) noexcept {
    return limits.max_depth == 0 ? 0 : limits.max_depth - 1;
}

boost::system::result<flow_batch, problem> decode_array(od::parser& parser, std::string& body,
                                                        decode_limits const& limits) {
    od::document doc;
    if (auto e = parser.iterate(body.data(), body.size(), body.capacity()).get(doc)) {
        if (e == simdjson::EMPTY) {
            return invalid_json("the body is empty; send a JSON array of flow records");
        }
        return syntax_error(e, std::nullopt);
    }
    od::json_type t{};
    if (auto e = doc.type().get(t)) {
        return syntax_error(e, std::nullopt);
    }
    if (t != od::json_type::array) {
        return invalid_json("the body must be a JSON array of flow records, got " +
                            std::string(type_name(t)));
    }
    od::array array;
    if (auto e = doc.get_array().get(array)) {
        return syntax_error(e, std::nullopt);
    }
    flow_batch batch;
    batch.reserve(expected_records(body.size(), limits));
    std::size_t index = 0;
    // SPEC precedence is 413 too-many-records, then 400, then 422: keep the first bad record
    // while the rest is still counted, and a 422 while the rest is still checked for a 400.
    std::optional<problem> found;
    for (auto element : array) {
        od::value v;
        if (auto e = element.get(v)) {
            return is_bad_request(found) ? *found : syntax_error(e, index);
        }
        if (index == limits.max_records) {
            return too_many(limits.max_records);
        }
        if (is_bad_request(found)) {
            if (validate_value(v, record_depth(limits))) {
                return *found;
            }
        } else if (auto p = decode_record(v, index, batch, record_depth(limits))) {
            if (p->type == problem_type::invalid_json) {
                return *p;  // past a syntax error the structure cannot be walked
            }
            if (!found || p->type != problem_type::counter_overflow) {
                found = std::move(p);
            }
        }
        ++index;
    }
    if (has_trailing_content(doc)) {
        return is_bad_request(found) ? *found
                                     : invalid_json("the body has content after the JSON array");
    }
    if (found) {
        return *found;
    }
    return batch;
}

std::optional<problem> decode_line(od::parser& parser, std::string& body, std::string_view line,
                                   std::size_t line_start, std::size_t index, flow_batch& batch,
                                   bool count_only, std::size_t max_depth) {
    if (count_only) {
        return std::nullopt;
    }
    // The line is followed by the rest of the body and its padding: readable bytes.
    od::document doc;
    if (auto e = parser.iterate(line.data(), line.size(), body.capacity() - line_start).get(doc)) {
        return syntax_error(e, index);
    }
    od::json_type t{};
    if (auto e = doc.type().get(t)) {
        return syntax_error(e, index);
    }
    if (t != od::json_type::object && t != od::json_type::array) {
        // get_value() refuses a scalar document; a valid one is a record of the wrong type.
        std::string_view s;
        simdjson::error_code e = simdjson::SUCCESS;
        switch (t) {
            case od::json_type::number:
                e = is_json_number(trim_right(doc.raw_json_token())) ? simdjson::SUCCESS
                                                                     : simdjson::NUMBER_ERROR;
                break;
            case od::json_type::string:
                e = doc.get_string().get(s);
                break;
            case od::json_type::boolean: {
                // Checked on the token, as numbers are: simdjson 3.0's root get_bool() refuses
                // "false" followed by 2+ whitespace bytes and its root is_null() "null" followed
                // by any (found by fuzz/): a valid line answered invalid-json.
                std::string_view const token = trim_right(doc.raw_json_token());
                e = token == "true" || token == "false"
                        ? simdjson::SUCCESS
                        : (token.starts_with('t') ? simdjson::T_ATOM_ERROR
                                                  : simdjson::F_ATOM_ERROR);
                break;
            }
            default:
                e = trim_right(doc.raw_json_token()) == "null" ? simdjson::SUCCESS
                                                               : simdjson::N_ATOM_ERROR;
        }
        if (e) {
            return syntax_error(e, index);
        }
        return problem{problem_type::invalid_record,
                       "record " + std::to_string(index) + " must be a JSON object, got " +
                           std::string(type_name(t)),
                       index, ""};
    }
    od::value v;
    if (auto e = doc.get_value().get(v)) {
        return syntax_error(e, index);
    }
    if (auto p = decode_record(v, index, batch, max_depth)) {
        return p;
    }
    if (has_trailing_content(doc)) {
        return invalid_json("line of record " + std::to_string(index) +
                            " has content after the JSON object");
    }
    return std::nullopt;
}

bool blank(std::string_view line) noexcept {
    return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

boost::system::result<flow_batch, problem> decode_ndjson(od::parser& parser, std::string& body,
                                                         decode_limits const& limits) {
    flow_batch batch;
    batch.reserve(expected_records(body.size(), limits));
    std::size_t index = 0;
    std::size_t pos = 0;
    std::optional<problem> found;
    while (pos < body.size()) {
        std::size_t end = body.find('\n', pos);
        if (end == std::string::npos) {
            end = body.size();
        }
        std::string_view const line(body.data() + pos, end - pos);
        std::size_t const line_start = pos;
        pos = end + 1;
        if (blank(line)) {
            continue;
        }
        if (index == limits.max_records) {
            return too_many(limits.max_records);
        }
        // SPEC precedence (413, 400, 422): past a bad line only count; past a 422 keep checking.
        if (auto p = decode_line(parser, body, line, line_start, index, batch,
                                 is_bad_request(found), limits.max_depth)) {
            if (!found || p->type != problem_type::counter_overflow) {
                found = std::move(p);
            }
        }
        ++index;
    }
    if (found) {
        return *found;
    }
    return batch;
}

}  // namespace

boost::system::result<flow_batch, problem> decode_flows(std::string& body, body_format format,
                                                        decode_limits const& limits) {
    if (flow_batch batch; decode_common_shape(body, format, limits, batch)) {
        return batch;
    }
    return decode_flows_generic(body, format, limits);
}

boost::system::result<flow_batch, problem> decode_flows_generic(std::string& body,
                                                                body_format format,
                                                                decode_limits const& limits) {
    ensure_padding(body);
    od::parser& parser = thread_parser(limits.max_depth);
    auto result = format == body_format::json_array ? decode_array(parser, body, limits)
                                                    : decode_ndjson(parser, body, limits);
    // Do not keep the index of a huge body alive in every thread.
    constexpr std::size_t keep_capacity = 4U << 20;
    if (parser.capacity() > keep_capacity) {
        if (parser.allocate(keep_capacity, limits.max_depth + 1) != simdjson::SUCCESS) {
            throw std::bad_alloc();
        }
    }
    return result;
}

std::string_view json_implementation() noexcept {
    // The kernel this file was compiled against; simdjson::builtin_implementation() would
    // name the shared library's, which Debian builds portable.
    return SIMDJSON_STRINGIFY(SIMDJSON_BUILTIN_IMPLEMENTATION);
}

bool cpu_runs_json_implementation() noexcept {
#if defined(__x86_64__) && defined(__AVX2__)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") &&
           __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("pclmul");
#else
    return true;
#endif
}

}  // namespace flowd
