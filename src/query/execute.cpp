#include "flowd/query/execute.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "flowd/codec/flow_json.hpp"
#include "flowd/codec/json_writer.hpp"
#include "flowd/domain/int_hash.hpp"

namespace flowd {
namespace {

using field_key = std::array<std::uint32_t, 4>;

// Bit f set when group_field f is grouped.
unsigned grouped_mask(query_plan const& plan) noexcept {
    unsigned m = 0;
    for (group_field const f : plan.group_by) {
        m |= 1U << static_cast<unsigned>(f);
    }
    return m;
}

field_key key_of(flow_store::exported_key const& r, unsigned mask) noexcept {
    field_key k{r.key.src, r.key.dest, r.key.vpc, r.hour};
    for (unsigned f = 0; f < 4; ++f) {
        if ((mask & (1U << f)) == 0) {
            k.at(f) = 0;
        }
    }
    return k;
}

// Two 64-bit compares: std::array's operator== becomes a memcmp call, which was a sixth of
// a 2.4-million-row summary.
bool same_key(field_key const& a, field_key const& b) noexcept {
    return ((std::uint64_t{a[0]} << 32 | a[1]) == (std::uint64_t{b[0]} << 32 | b[1])) &
           ((std::uint64_t{a[2]} << 32 | a[3]) == (std::uint64_t{b[2]} << 32 | b[3]));
}

std::uint64_t hash_key(field_key const& k) noexcept {
    std::uint64_t h = (std::uint64_t{k[0]} << 32 | k[1]) * 0x9e3779b97f4a7c15ULL;
    h ^= (std::uint64_t{k[2]} << 32 | k[3]) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

// Group key -> index of the group's row. Open addressing with linear probing over 20-byte
// slots: no allocation per group (a node map paid one per group and a pointer chase per
// row), and the few thousand groups of a typical top-N (per application, per VPC) stay in
// cache while millions of rows stream past. Integers only: names are compared once, when
// the answer is ordered, never while rows are summed.
class group_index {
public:
    explicit group_index(std::size_t expected) {
        std::size_t cap = 16;
        while (cap < expected * 2) {
            cap *= 2;
        }
        slots_.assign(cap, slot{});
    }

    // The row index of `k`, or `fresh` (then stored) when absent.
    std::uint32_t find_or_add(field_key const& k, std::uint32_t fresh) {
        if ((size_ + 1) * 2 > slots_.size()) {
            grow();
        }
        std::size_t const mask = slots_.size() - 1;
        for (std::size_t i = hash_key(k) & mask;; i = (i + 1) & mask) {
            slot& s = slots_[i];
            if (s.row == empty) {
                s.key = k;
                s.row = fresh;
                ++size_;
                return fresh;
            }
            if (same_key(s.key, k)) {
                return s.row;
            }
        }
    }

    [[nodiscard]] std::uint32_t find(field_key const& k) const noexcept {
        std::size_t const mask = slots_.size() - 1;
        for (std::size_t i = hash_key(k) & mask;; i = (i + 1) & mask) {
            slot const& s = slots_[i];
            if (s.row == empty || same_key(s.key, k)) {
                return s.row;
            }
        }
    }

    static constexpr std::uint32_t empty = 0xffffffffU;

private:
    struct slot {
        field_key key{};
        std::uint32_t row = empty;
    };

    void grow() {
        std::vector<slot> old;
        old.swap(slots_);
        slots_.assign(old.size() * 2, slot{});
        size_ = 0;
        for (slot const& s : old) {
            if (s.row != empty) {
                find_or_add(s.key, s.row);
            }
        }
    }

    std::vector<slot> slots_;
    std::size_t size_ = 0;
};

// Whether a name id passes one dimension's filter, decided once per distinct name (the
// string compared once, then an array read per row).
class name_filter {
public:
    name_filter(dimension_filter const& f, string_interner const& names)
        : filter_(&f), names_(&names) {}

    bool passes(std::uint32_t id) {
        if (id >= cache_.size()) {
            cache_.resize(std::max<std::size_t>(id + 1, names_->size()), -1);
        }
        std::int8_t& c = cache_[id];
        if (c < 0) {
            c = filter_->passes(names_->view(id)) ? 1 : 0;
        }
        return c == 1;
    }

private:
    dimension_filter const* filter_;
    string_interner const* names_;
    std::vector<std::int8_t> cache_;
};

uint128 metric_of(answer_row const& r, order_key k) noexcept {
    switch (k) {
        case order_key::bytes_tx:
            return r.bytes_tx;
        case order_key::bytes_rx:
            return r.bytes_rx;
        case order_key::bytes:
        case order_key::none:
            break;
    }
    return r.bytes_tx + r.bytes_rx;
}

// Orders `rows` per SPEC (by the group fields in the order listed, names in byte order and
// the hour as a number; or by a metric descending with ties by those fields) and keeps the
// first `keep`. Names are compared only to
// rank each field's distinct names once; the rows are then sorted by integer ranks (a
// memcmp through the interner at every comparison of a multi-million-row sort was most of
// its time).
void order_rows(std::vector<answer_row>& rows, query_plan const& plan, string_interner const& names,
                std::size_t keep) {
    std::vector<group_field> const& fields = plan.group_by;
    // Per name field: (id, rank) sorted by id.
    std::array<std::vector<std::pair<std::uint32_t, std::uint32_t>>, 3> ranks;
    for (group_field const f : fields) {
        if (f == group_field::hour) {
            continue;
        }
        auto const i = static_cast<std::size_t>(f);
        std::vector<std::uint32_t> ids;
        ids.reserve(rows.size());
        for (answer_row const& r : rows) {
            ids.push_back(r.field.at(i));
        }
        std::sort(ids.begin(), ids.end());
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        std::vector<std::uint32_t> by_name = ids;
        std::sort(by_name.begin(), by_name.end(), [&names](std::uint32_t a, std::uint32_t b) {
            return names.view(a) < names.view(b);
        });
        auto& table = ranks.at(i);
        table.reserve(by_name.size());
        for (std::size_t r = 0; r < by_name.size(); ++r) {
            table.emplace_back(by_name[r], static_cast<std::uint32_t>(r));
        }
        std::sort(table.begin(), table.end());
    }
    struct sort_key {
        uint128 metric;
        std::array<std::uint32_t, 4> rank;
        std::uint32_t index;
    };
    std::vector<sort_key> keys;
    keys.reserve(rows.size());
    for (std::size_t n = 0; n < rows.size(); ++n) {
        answer_row const& r = rows[n];
        sort_key k{plan.order == order_key::none ? 0 : metric_of(r, plan.order),
                   {},
                   static_cast<std::uint32_t>(n)};
        for (std::size_t j = 0; j < fields.size(); ++j) {
            auto const i = static_cast<std::size_t>(fields[j]);
            if (fields[j] == group_field::hour) {
                k.rank.at(j) = r.field[3];
                continue;
            }
            auto const& table = ranks.at(i);
            auto const it =
                std::lower_bound(table.begin(), table.end(),
                                 std::pair<std::uint32_t, std::uint32_t>{r.field.at(i), 0});
            k.rank.at(j) = it->second;
        }
        keys.push_back(k);
    }
    auto const less = [](sort_key const& a, sort_key const& b) {
        if (a.metric != b.metric) {
            return a.metric > b.metric;
        }
        return a.rank < b.rank;  // unused trailing ranks are zero in both
    };
    if (keep < keys.size()) {
        std::partial_sort(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(keep),
                          keys.end(), less);
        keys.resize(keep);
    } else {
        std::sort(keys.begin(), keys.end(), less);
    }
    std::vector<answer_row> sorted;
    sorted.reserve(keys.size());
    for (sort_key const& k : keys) {
        sorted.push_back(rows[k.index]);
    }
    rows.swap(sorted);
}

problem too_large(std::string detail) {
    return problem{problem_type::query_too_large, std::move(detail), {}, {}};
}

void append_uint(std::string& out, std::uint64_t v) {
    append_decimal(out, v);
}

}  // namespace

boost::system::result<query_answer, problem> execute_query(flow_store const& store, query_plan plan,
                                                           answer_format format,
                                                           query_limits const& limits) {
    query_answer a;
    a.format = format;
    a.names = &store.names();
    if (plan.route == query_route::hours) {
        a.stats = store.hour_stats(plan.from, plan.to);
        a.plan = std::move(plan);
        return a;
    }

    std::array<name_filter, 3> filters{name_filter{plan.filters[0], store.names()},
                                       name_filter{plan.filters[1], store.names()},
                                       name_filter{plan.filters[2], store.names()}};
    std::array<bool, 3> const active{plan.filters[0].active(), plan.filters[1].active(),
                                     plan.filters[2].active()};
    auto keep = [&](app_key const& k) {
        return (!active[0] || filters[0].passes(k.src)) &&
               (!active[1] || filters[1].passes(k.dest)) &&
               (!active[2] || filters[2].passes(k.vpc));
    };
    // Group. When every name field is grouped and so is the hour (or the range is one
    // hour), each stored row is its own group: rows are copied and need no lookups. Else
    // rows are summed into their groups as the store hands them over, under each shard's
    // mutex in turn, with no copy (a 2.4-million-row summary wrote 77 MB of copies, and
    // faulted its pages in, for a few thousand groups); a series by hour needs the rows
    // for a second pass, so it copies too.
    unsigned const mask = grouped_mask(plan);
    bool const rows_are_groups =
        (mask & 7U) == 7U && ((mask & 8U) != 0 || plan.to - plan.from == 1);
    bool const keeps_rows = rows_are_groups || plan.series_hour;
    std::vector<answer_row>& groups = a.rows;
    std::vector<flow_store::exported_key> rows;
    std::optional<group_index> index;
    // Grouped by one field alone: its value (a dense name id, or the hour) indexes an
    // array, with no hashing; that was half of a per-application summary's time.
    int const single = std::popcount(mask) == 1 ? std::countr_zero(mask) : -1;
    std::vector<std::uint32_t> dense;
    if (single >= 0) {
        dense.assign(single == 3 ? std::size_t{plan.to - plan.from} : store.names().size(),
                     group_index::empty);
    }
    auto add = [&](app_key const& key, std::uint32_t hour, flow_counters const& c) {
        field_key const k = key_of(flow_store::exported_key{key, hour, {}}, mask);
        auto const fresh = static_cast<std::uint32_t>(groups.size());
        std::uint32_t at = 0;
        if (single >= 0) {
            std::uint32_t const v =
                single == 3 ? hour - plan.from : k.at(static_cast<std::size_t>(single));
            if (v >= dense.size()) {
                dense.resize(std::max<std::size_t>(v + 1, dense.size() * 2), group_index::empty);
            }
            at = dense[v];
            if (at == group_index::empty) {
                dense[v] = at = fresh;
            }
        } else {
            at = index->find_or_add(k, fresh);
        }
        if (at == fresh) {
            groups.push_back({k, 0, 0});
        }
        groups[at].bytes_tx += c.bytes_tx;
        groups[at].bytes_rx += c.bytes_rx;
    };
    bool summed = false;
    if (!keeps_rows) {
        // Room for the largest hour's keys, a bound on most groupings' size (growing there
        // rehashed a 100,000-group index five times over).
        std::uint64_t largest = 0;
        if (single < 0) {
            for (hour_stat const& h : store.hour_stats(plan.from, plan.to)) {
                largest = std::max(largest, h.keys);
            }
        }
        index.emplace(static_cast<std::size_t>(
            std::min<std::uint64_t>(largest, limits.max_query_groups) + 16));
        if (auto stats =
                store.visit_range(plan.from, plan.to, limits.max_query_scan_rows, keep, add)) {
            a.stats = std::move(*stats);
            summed = true;
        } else {
            // Retention ran meanwhile: forget what was summed and copy instead.
            groups.clear();
            std::fill(dense.begin(), dense.end(), group_index::empty);
        }
    }
    if (!summed) {
        a.stats = store.copy_range(plan.from, plan.to, limits.max_query_scan_rows, keep, rows);
    }
    std::uint64_t scanned = 0;
    for (hour_stat const& h : a.stats) {
        scanned += h.keys;
    }
    if (scanned > limits.max_query_scan_rows) {
        return too_large("the range " + std::to_string(plan.from) + " <= hour < " +
                         std::to_string(plan.to) + " holds " + std::to_string(scanned) +
                         " stored rows, more than max_query_scan_rows (" +
                         std::to_string(limits.max_query_scan_rows) + "); narrow the range");
    }
    a.rows_scanned = scanned;

    if (rows_are_groups) {
        groups.reserve(rows.size());
        for (flow_store::exported_key const& r : rows) {
            groups.push_back({key_of(r, mask), r.counters.bytes_tx, r.counters.bytes_rx});
        }
    } else if (!summed) {
        index.emplace(std::min<std::size_t>(rows.size(), 1U << 16));
        for (flow_store::exported_key const& r : rows) {
            add(r.key, r.hour, r.counters);
        }
    }
    bool const counts_groups =
        plan.route == query_route::summary || plan.group_by_given || plan.order != order_key::none;
    if (counts_groups && groups.size() > limits.max_query_groups) {
        return too_large("the query makes " + std::to_string(groups.size()) +
                         " groups, more than max_query_groups (" +
                         std::to_string(limits.max_query_groups) +
                         "); group by fewer fields, filter, or narrow the range");
    }

    if (plan.route == query_route::flows) {
        std::size_t const keep_n =
            plan.limit
                ? static_cast<std::size_t>(std::min<std::uint64_t>(*plan.limit, groups.size()))
                : groups.size();
        order_rows(groups, plan, store.names(), keep_n);
        a.plan = std::move(plan);
        return a;
    }

    // Summary: the top N once over the whole range, the rest summed as `other`.
    a.total_groups = groups.size();
    for (answer_row const& g : groups) {
        a.total.bytes_tx += g.bytes_tx;
        a.total.bytes_rx += g.bytes_rx;
    }
    std::size_t const top_n = std::min<std::size_t>(plan.top, groups.size());
    order_rows(groups, plan, store.names(), top_n);
    a.other = a.total;
    for (answer_row const& g : groups) {
        a.other.bytes_tx -= g.bytes_tx;
        a.other.bytes_rx -= g.bytes_rx;
    }
    a.other_groups = a.total_groups - top_n;
    if (plan.series_hour) {
        std::size_t const hours = plan.to - plan.from;
        std::size_t const lines = top_n + 2;
        a.series_tx.assign(lines * hours, 0);
        a.series_rx.assign(lines * hours, 0);
        group_index top_index(top_n);
        for (std::size_t i = 0; i < top_n; ++i) {
            top_index.find_or_add(groups[i].field, static_cast<std::uint32_t>(i));
        }
        std::size_t const total_line = (top_n + 1) * hours;
        for (flow_store::exported_key const& r : rows) {
            std::size_t const h = r.hour - plan.from;
            a.series_tx[total_line + h] += r.counters.bytes_tx;
            a.series_rx[total_line + h] += r.counters.bytes_rx;
            std::uint32_t const at = top_index.find(key_of(r, mask));
            if (at != group_index::empty) {
                a.series_tx[at * hours + h] += r.counters.bytes_tx;
                a.series_rx[at * hours + h] += r.counters.bytes_rx;
            }
        }
        std::size_t const other_line = top_n * hours;
        for (std::size_t h = 0; h < hours; ++h) {
            uint128 tx = a.series_tx[total_line + h];
            uint128 rx = a.series_rx[total_line + h];
            for (std::size_t i = 0; i < top_n; ++i) {
                tx -= a.series_tx[i * hours + h];
                rx -= a.series_rx[i * hours + h];
            }
            a.series_tx[other_line + h] = tx;
            a.series_rx[other_line + h] = rx;
        }
    }
    a.plan = std::move(plan);
    return a;
}

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
    unsigned const mask = grouped_mask(p);
    std::size_t const hours = p.to - p.from;
    if (a.format == answer_format::csv) {
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
        return;
    }
    auto series = [&](std::size_t line) {
        if (!p.series_hour) {
            return;
        }
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
    };
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
    std::size_t pos = 0;
    while (pos < if_none_match.size()) {
        std::size_t comma = if_none_match.find(',', pos);
        if (comma == std::string_view::npos) {
            comma = if_none_match.size();
        }
        std::string_view item = if_none_match.substr(pos, comma - pos);
        pos = comma + 1;
        std::size_t const b = item.find_first_not_of(" \t");
        if (b == std::string_view::npos) {
            continue;
        }
        item = item.substr(b, item.find_last_not_of(" \t") - b + 1);
        if (item == "*") {
            return true;
        }
        if (item.starts_with("W/")) {
            item.remove_prefix(2);
        }
        if (item == etag) {
            return true;
        }
    }
    return false;
}

}  // namespace flowd
