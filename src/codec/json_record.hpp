#pragma once

// The generic JSON decoder's records (src/codec only): the fields, their problems, one
// record object into a batch. Included by flow_json.cpp alone, for the reasons
// json_tokens.hpp gives.

#include <array>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "flowd/codec/problem.hpp"
#include "flowd/domain/flow_batch.hpp"
#include "json_tokens.hpp"

namespace flowd {
namespace {

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

// Reads the value of known field `f` into `r`; false with `err` set when it is bad.
bool read_field(od::value& v, std::size_t record, field_id f, record_fields& r,
                std::size_t depth_left, problem& err) {
    switch (f) {
        case field_id::src_app:
        case field_id::dest_app:
        case field_id::vpc_id:
            return read_name(v, record, f, r.names[static_cast<unsigned>(f)], depth_left, err);
        case field_id::bytes_tx:
            return read_integer(v, record, f, max_counter, r.bytes_tx, depth_left, err);
        case field_id::bytes_rx:
            return read_integer(v, record, f, max_counter, r.bytes_rx, depth_left, err);
        case field_id::hour: {
            std::uint64_t h = 0;
            bool const ok = read_integer(v, record, f, max_hour, h, depth_left, err);
            r.hour = static_cast<std::uint32_t>(h);
            return ok;
        }
        case field_id::count:
            break;
    }
    return true;
}

// Adds a whole record to `batch`; a 422 when a sum over the batch would overflow.
std::optional<problem> add_record(flow_batch& batch, record_fields const& r, std::size_t record) {
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
        if (!read_field(v, record, *f, r, depth_left - 1, err)) {
            return err;
        }
    }
    for (unsigned i = 0; i < static_cast<unsigned>(field_id::count); ++i) {
        if ((r.seen & (1U << i)) == 0) {
            return bad_field(record, static_cast<field_id>(i), "is required");
        }
    }
    return add_record(batch, r, record);
}

}  // namespace
}  // namespace flowd
