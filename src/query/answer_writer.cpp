#include <string>
#include <string_view>

#include "flowd/codec/json_writer.hpp"
#include "flowd/query/execute.hpp"
#include "grouped_fields.hpp"

// The answer_writer half of execute.hpp: an answer as JSON, NDJSON or CSV.
namespace flowd {

using detail::grouped_mask;

namespace {

void append_uint(std::string& out, std::uint64_t v) {
    append_decimal(out, v);
}

// A summary's CSV: a rank column, the grouped names, the sums; then `other` and `total`.
void write_summary_csv(std::string& out, query_answer const& a) {
    unsigned const mask = grouped_mask(a.plan);
    out += "rank";
    for (unsigned f = 0; f < 3; ++f) {
        if ((mask & (1U << f)) != 0) {
            out.push_back(',');
            out += field_name(static_cast<group_field>(f));
        }
    }
    out += ",bytes_tx,bytes_rx\r\n";
    auto line = [&](std::string_view rank, answer_row const* r, answer_row const& sums) {
        out += rank;
        for (unsigned f = 0; f < 3; ++f) {
            if ((mask & (1U << f)) != 0) {
                out.push_back(',');
                if (r != nullptr) {
                    append_csv_cell(out, a.names->view(r->field.at(f)));
                }
            }
        }
        out.push_back(',');
        append_decimal(out, sums.bytes_tx);
        out.push_back(',');
        append_decimal(out, sums.bytes_rx);
        out += "\r\n";
    };
    for (std::size_t i = 0; i < a.rows.size(); ++i) {
        line(std::to_string(i + 1), &a.rows[i], a.rows[i]);
    }
    line("other", nullptr, a.other);
    line("total", nullptr, a.total);
}

// series=hour: line `line`'s sums per hour, as two JSON members (nothing without a series).
void append_series(std::string& out, query_answer const& a, std::size_t line) {
    if (!a.plan.series_hour) {
        return;
    }
    std::size_t const hours = a.plan.to - a.plan.from;
    for (auto const* which : {&a.series_tx, &a.series_rx}) {
        out += which == &a.series_tx ? ",\"bytes_tx_by_hour\":[" : ",\"bytes_rx_by_hour\":[";
        for (std::size_t h = 0; h < hours; ++h) {
            if (h != 0) {
                out.push_back(',');
            }
            append_decimal(out, (*which)[line * hours + h]);
        }
        out.push_back(']');
    }
}

}  // namespace

std::string_view content_type_of(answer_format f) noexcept {
    switch (f) {
        case answer_format::json:
            return "application/json";
        case answer_format::ndjson:
            return "application/x-ndjson";
        case answer_format::csv:
            return "text/csv; charset=utf-8";
    }
    return "application/json";
}

void append_csv_cell(std::string& out, std::string_view cell) {
    bool const formula = !cell.empty() && (cell[0] == '=' || cell[0] == '+' || cell[0] == '-' ||
                                           cell[0] == '@' || cell[0] == '\t' || cell[0] == '\r');
    bool const quote = cell.find_first_of(",\"\r\n") != std::string_view::npos;
    if (quote) {
        out.push_back('"');
    }
    if (formula) {
        out.push_back('\'');
    }
    for (char const c : cell) {
        if (c == '"') {
            out.push_back('"');
        }
        out.push_back(c);
    }
    if (quote) {
        out.push_back('"');
    }
}

void answer_writer::write_row(std::string& out, answer_row const& r) const {
    unsigned const mask = grouped_mask(answer_.plan);
    string_interner const& names = *answer_.names;
    if (answer_.format == answer_format::csv) {
        bool first = true;
        for (unsigned f = 0; f < 3; ++f) {
            if ((mask & (1U << f)) != 0) {
                if (!first) {
                    out.push_back(',');
                }
                first = false;
                append_csv_cell(out, names.view(r.field.at(f)));
            }
        }
        if (!first) {
            out.push_back(',');
        }
        append_decimal(out, r.bytes_tx);
        out.push_back(',');
        append_decimal(out, r.bytes_rx);
        if ((mask & 8U) != 0) {
            out.push_back(',');
            append_uint(out, r.field[3]);
        }
        out += "\r\n";
        return;
    }
    out.push_back('{');
    for (unsigned f = 0; f < 3; ++f) {
        if ((mask & (1U << f)) != 0) {
            out.push_back('"');
            out += field_name(static_cast<group_field>(f));
            out += "\":";
            append_json_string(out, names.view(r.field.at(f)));
            out.push_back(',');
        }
    }
    out += "\"bytes_tx\":";
    append_decimal(out, r.bytes_tx);
    out += ",\"bytes_rx\":";
    append_decimal(out, r.bytes_rx);
    if ((mask & 8U) != 0) {
        out += ",\"hour\":";
        append_uint(out, r.field[3]);
    }
    out.push_back('}');
}

void answer_writer::write_summary(std::string& out) const {
    query_answer const& a = answer_;
    query_plan const& p = a.plan;
    std::size_t const hours = p.to - p.from;
    if (a.format == answer_format::csv) {
        return write_summary_csv(out, a);
    }
    auto series = [&](std::size_t line) { append_series(out, a, line); };
    out += "{\"from\":";
    append_uint(out, p.from);
    out += ",\"to\":";
    append_uint(out, p.to);
    out += ",\"group_by\":[";
    for (std::size_t i = 0; i < p.group_by.size(); ++i) {
        if (i != 0) {
            out.push_back(',');
        }
        out.push_back('"');
        out += field_name(p.group_by[i]);
        out.push_back('"');
    }
    out += "],\"order_by\":\"";
    out += order_name(p.order);
    out.push_back('"');
    if (p.series_hour) {
        out += ",\"hours\":[";
        for (std::size_t h = 0; h < hours; ++h) {
            if (h != 0) {
                out.push_back(',');
            }
            append_uint(out, p.from + h);
        }
        out.push_back(']');
    }
    out += ",\"top\":[";
    for (std::size_t i = 0; i < a.rows.size(); ++i) {
        if (i != 0) {
            out.push_back(',');
        }
        write_row(out, a.rows[i]);
        if (p.series_hour) {
            out.pop_back();  // the row's '}'
            series(i);
            out.push_back('}');
        }
    }
    out += "]";
    auto remainder = [&](std::string_view name, std::uint64_t groups, answer_row const& sums,
                         std::size_t line) {
        out += ",\"";
        out += name;
        out += "\":{\"groups\":";
        append_uint(out, groups);
        out += ",\"bytes_tx\":";
        append_decimal(out, sums.bytes_tx);
        out += ",\"bytes_rx\":";
        append_decimal(out, sums.bytes_rx);
        series(line);
        out.push_back('}');
    };
    remainder("other", a.other_groups, a.other, a.rows.size());
    remainder("total", a.total_groups, a.total, a.rows.size() + 1);
    out.push_back('}');
}

void answer_writer::write_hours(std::string& out) const {
    out.push_back('[');
    bool first = true;
    for (hour_stat const& h : answer_.stats) {
        if (!first) {
            out.push_back(',');
        }
        first = false;
        out += "{\"hour\":";
        append_uint(out, h.hour);
        out += ",\"keys\":";
        append_uint(out, h.keys);
        out += ",\"bytes_tx\":";
        append_decimal(out, h.bytes_tx);
        out += ",\"bytes_rx\":";
        append_decimal(out, h.bytes_rx);
        out += h.hour < answer_.sealed_before ? ",\"sealed\":true}" : ",\"sealed\":false}";
    }
    out.push_back(']');
}

bool answer_writer::write(std::string& out, std::size_t bytes) {
    if (answer_.plan.route != query_route::flows) {
        if (!started_) {
            started_ = true;
            if (answer_.plan.route == query_route::summary) {
                write_summary(out);
            } else {
                write_hours(out);
            }
        }
        return true;
    }
    std::vector<answer_row> const& rows = answer_.rows;
    if (!started_) {
        started_ = true;
        if (answer_.format == answer_format::json) {
            out.push_back('[');
        } else if (answer_.format == answer_format::csv) {
            unsigned const mask = grouped_mask(answer_.plan);
            for (unsigned f = 0; f < 3; ++f) {
                if ((mask & (1U << f)) != 0) {
                    out += field_name(static_cast<group_field>(f));
                    out.push_back(',');
                }
            }
            out += "bytes_tx,bytes_rx";
            if ((mask & 8U) != 0) {
                out += ",hour";
            }
            out += "\r\n";
        }
    }
    while (next_ < rows.size() && out.size() < bytes) {
        if (answer_.format == answer_format::json && next_ != 0) {
            out.push_back(',');
        }
        write_row(out, rows[next_]);
        if (answer_.format == answer_format::ndjson) {
            out.push_back('\n');
        }
        ++next_;
    }
    if (next_ < rows.size()) {
        return false;
    }
    if (answer_.format == answer_format::json) {
        out.push_back(']');
    }
    return true;
}

}  // namespace flowd
