#include "flowd/query/execute.hpp"

#include <algorithm>
#include <bit>
#include <functional>
#include <optional>
#include <tuple>
#include <utility>

#include "grouped_fields.hpp"
#include "grouping.hpp"

namespace flowd {

using detail::field_mask;
using detail::field_mask_of;
using detail::group_index;
using detail::grouped_mask;
using detail::grouper;
using detail::key_of;

namespace {

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

// keep(key) of a range scan: the plan's filters on the three names, each decided once per
// distinct name.
class row_filter {
public:
    row_filter(query_plan const& plan, string_interner const& names)
        : filters_{name_filter{plan.filters[0], names}, name_filter{plan.filters[1], names},
                   name_filter{plan.filters[2], names}},
          active_{plan.filters[0].active(), plan.filters[1].active(), plan.filters[2].active()} {}

    bool operator()(app_key const& k) {
        return (!active_[0] || filters_[0].passes(k.src)) &&
               (!active_[1] || filters_[1].passes(k.dest)) &&
               (!active_[2] || filters_[2].passes(k.vpc));
    }

private:
    std::array<name_filter, 3> filters_;
    std::array<bool, 3> active_;
};

// Reads the plan's range: summed straight into `add` when the rows need not be kept, else
// (or when retention ran meanwhile) the kept rows copied into `rows`. Returns the hours'
// totals and whether `add` holds the sums.
std::pair<std::vector<hour_stat>, bool> scan_range(flow_store const& store, query_plan const& plan,
                                                   query_limits const& limits, row_filter& keep,
                                                   grouper& add, bool keeps_rows,
                                                   std::vector<flow_store::exported_key>& rows) {
    if (!keeps_rows) {
        // Room for the largest hour's keys, a bound on most groupings' size (growing there
        // rehashed a 100,000-group index five times over).
        std::uint64_t largest = 0;
        if (!add.single()) {
            for (hour_stat const& h : store.hour_stats(plan.from, plan.to)) {
                largest = std::max(largest, h.keys);
            }
        }
        add.expect(static_cast<std::size_t>(
            std::min<std::uint64_t>(largest, limits.max_query_groups) + 16));
        if (auto stats =
                store.visit_range(plan.from, plan.to, limits.max_query_scan_rows, keep, add)) {
            add.flush();
            return {std::move(*stats), true};
        }
        // Retention ran meanwhile: forget what was summed and copy instead.
        add.clear();
    }
    return {store.copy_range(plan.from, plan.to, limits.max_query_scan_rows, keep, rows), false};
}

// series=hour: per line (each top row, then other, then total) the sums of each hour,
// added up by the caller through add_row(), then finished by finish().
class series_sums {
public:
    explicit series_sums(query_answer& a, std::size_t top_n)
        : a_(a),
          mask_(grouped_mask(a.plan)),
          fields_(field_mask_of(mask_)),
          hours_(a.plan.to - a.plan.from),
          top_n_(top_n),
          filtered_(a.plan.has_filters()),
          top_index_(top_n) {
        a.series_tx.assign((top_n + 2) * hours_, 0);
        a.series_rx.assign((top_n + 2) * hours_, 0);
        for (std::size_t f = 0; f < 3; ++f) {
            if ((mask_ & (1U << f)) != 0) {
                top_names_.at(f).assign(a.names->size(), 0);
            }
        }
        for (std::size_t i = 0; i < top_n; ++i) {
            top_index_.find_or_add(a.rows[i].field, static_cast<std::uint32_t>(i));
            for (std::size_t f = 0; f < 3; ++f) {
                if (!top_names_.at(f).empty()) {
                    top_names_.at(f).at(a.rows[i].field.at(f)) = 1;
                }
            }
        }
    }

    void add_row(app_key const& key, std::uint32_t hour, flow_counters const& c) {
        std::size_t const h = hour - a_.plan.from;
        if (filtered_) {
            std::size_t const total_line = (top_n_ + 1) * hours_;
            a_.series_tx[total_line + h] += c.bytes_tx;
            a_.series_rx[total_line + h] += c.bytes_rx;
        }
        // Most rows name no top row's value in some field: one byte read, no hashing.
        if (!top_name(0, key.src) || !top_name(1, key.dest) || !top_name(2, key.vpc)) {
            return;
        }
        std::uint32_t const at = top_index_.find(key_of(key, hour, fields_));
        if (at != group_index::empty) {
            a_.series_tx[at * hours_ + h] += c.bytes_tx;
            a_.series_rx[at * hours_ + h] += c.bytes_rx;
        }
    }

    // `other` is the total less the top rows, hour by hour. Unfiltered, the total of an
    // hour is its stored total, read at the same instant as the rows.
    void finish() {
        std::size_t const other_line = top_n_ * hours_;
        std::size_t const total_line = (top_n_ + 1) * hours_;
        if (!filtered_) {
            for (hour_stat const& s : a_.stats) {
                a_.series_tx[total_line + s.hour - a_.plan.from] = s.bytes_tx;
                a_.series_rx[total_line + s.hour - a_.plan.from] = s.bytes_rx;
            }
        }
        for (std::size_t h = 0; h < hours_; ++h) {
            uint128 tx = a_.series_tx[total_line + h];
            uint128 rx = a_.series_rx[total_line + h];
            for (std::size_t i = 0; i < top_n_; ++i) {
                tx -= a_.series_tx[i * hours_ + h];
                rx -= a_.series_rx[i * hours_ + h];
            }
            a_.series_tx[other_line + h] = tx;
            a_.series_rx[other_line + h] = rx;
        }
    }

private:
    // Whether name `id` is field f's value in a top row (always, for an ungrouped field).
    [[nodiscard]] bool top_name(std::size_t f, std::uint32_t id) const noexcept {
        std::vector<std::uint8_t> const& names = top_names_[f];
        return names.empty() || (id < names.size() && names[id] != 0);
    }

    query_answer& a_;
    unsigned mask_;
    field_mask fields_;
    std::size_t hours_;
    std::size_t top_n_;
    bool filtered_;
    group_index top_index_;
    // Per name field grouped: 1 at each name id a top row holds.
    std::array<std::vector<std::uint8_t>, 3> top_names_;
};

// Summary: the top N once over the whole range, the rest summed as `other`. With
// series=hour, the hours are summed from `rows` when the range was copied, else by a second
// visit of the range, which answers only when the hours' totals it closed on are those of
// the first visit (a.stats): they move with every batch that changes a row (counters only
// grow) and with retention, so equal totals mean both visits saw the same rows. Returns
// false when they differ: the caller starts again.
bool summarise(query_answer& a, std::vector<flow_store::exported_key> const* rows,
               flow_store const& store, query_limits const& limits, row_filter& keep) {
    std::vector<answer_row>& groups = a.rows;
    a.total_groups = groups.size();
    for (answer_row const& g : groups) {
        a.total.bytes_tx += g.bytes_tx;
        a.total.bytes_rx += g.bytes_rx;
    }
    std::size_t const top_n = std::min<std::size_t>(a.plan.top, groups.size());
    if (top_n < groups.size() && a.plan.order != order_key::none) {
        // Only groups whose metric reaches the N-th largest can be in the top: their names
        // alone are ranked (ranking 100,000 groups' names was a tenth of a summary).
        std::vector<uint128> metrics;
        metrics.reserve(groups.size());
        for (answer_row const& g : groups) {
            metrics.push_back(metric_of(g, a.plan.order));
        }
        auto const nth = metrics.begin() + static_cast<std::ptrdiff_t>(top_n - 1);
        std::nth_element(metrics.begin(), nth, metrics.end(), std::greater<>{});
        uint128 const cut = *nth;
        std::erase_if(groups,
                      [&](answer_row const& g) { return metric_of(g, a.plan.order) < cut; });
    }
    order_rows(groups, a.plan, store.names(), top_n);
    a.other = a.total;
    for (answer_row const& g : groups) {
        a.other.bytes_tx -= g.bytes_tx;
        a.other.bytes_rx -= g.bytes_rx;
    }
    a.other_groups = a.total_groups - top_n;
    if (!a.plan.series_hour) {
        return true;
    }
    series_sums series{a, top_n};
    if (rows != nullptr) {
        for (flow_store::exported_key const& r : *rows) {
            series.add_row(r.key, r.hour, r.counters);
        }
    } else {
        auto const stats =
            store.visit_range(a.plan.from, a.plan.to, limits.max_query_scan_rows, keep,
                              [&series](app_key const& k, std::uint32_t hour,
                                        flow_counters const& c) { series.add_row(k, hour, c); });
        if (!stats || *stats != a.stats) {
            return false;
        }
    }
    series.finish();
    return true;
}

problem too_large(std::string detail) {
    return problem{problem_type::query_too_large, std::move(detail), {}, {}};
}

}  // namespace

boost::system::result<query_answer, problem> execute_query(flow_store const& store, query_plan plan,
                                                           answer_format format,
                                                           query_limits const& limits) {
    if (plan.route == query_route::hours) {
        query_answer a;
        a.format = format;
        a.names = &store.names();
        a.stats = store.hour_stats(plan.from, plan.to);
        a.plan = std::move(plan);
        return a;
    }

    row_filter keep{plan, store.names()};
    // Group. When every name field is grouped and so is the hour (or the range is one
    // hour), each stored row is its own group: rows are copied and need no lookups. Else
    // rows are summed into their groups as the store hands them over, under each shard's
    // mutex in turn, with no copy (a 2.4-million-row summary wrote 77 MB of copies, and
    // faulted its pages in, for a few thousand groups); a series by hour visits the range
    // again (summarise()), and copies instead only after batches changed the range between
    // the two visits `series_visits` times running.
    constexpr int series_visits = 2;
    unsigned const mask = grouped_mask(plan);
    field_mask const fields = field_mask_of(mask);
    bool const rows_are_groups =
        (mask & 7U) == 7U && ((mask & 8U) != 0 || plan.to - plan.from == 1);
    for (int attempt = 0;; ++attempt) {
        query_answer a;
        a.format = format;
        a.names = &store.names();
        bool const keeps_rows = rows_are_groups || (plan.series_hour && attempt == series_visits);
        std::vector<answer_row>& groups = a.rows;
        std::vector<flow_store::exported_key> rows;
        grouper add{plan, store.names().size(), groups};
        bool summed = false;
        std::tie(a.stats, summed) = scan_range(store, plan, limits, keep, add, keeps_rows, rows);
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
                groups.push_back(
                    {key_of(r.key, r.hour, fields), r.counters.bytes_tx, r.counters.bytes_rx});
            }
        } else if (!summed) {
            add.expect(std::min<std::size_t>(rows.size(), 1U << 16));
            for (flow_store::exported_key const& r : rows) {
                add(r.key, r.hour, r.counters);
            }
            add.flush();
        }
        bool const counts_groups = plan.route == query_route::summary || plan.group_by_given ||
                                   plan.order != order_key::none;
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
        a.plan = plan;
        if (summarise(a, summed ? nullptr : &rows, store, limits, keep)) {
            return a;
        }
    }
}

}  // namespace flowd
