#include "flowd/domain/flow_batch.hpp"

#include <functional>

namespace flowd {

std::size_t flow_batch::key_view_hash::operator()(key_view const& k) const noexcept {
    std::hash<std::string_view> h;
    std::size_t seed = h(k.src_app);
    // boost::hash_combine's mixing, written out so domain stays free of Boost.
    auto combine = [&seed](std::size_t v) {
        seed ^= v + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2);
    };
    combine(h(k.dest_app));
    combine(h(k.vpc_id));
    combine(k.hour);
    return seed;
}

flow_batch::add_status flow_batch::add(std::string_view src_app, std::string_view dest_app,
                                       std::string_view vpc_id, std::uint32_t hour,
                                       flow_counters counters, std::size_t record_index) {
    auto const found = index_.find(key_view{src_app, dest_app, vpc_id, hour});
    if (found != index_.end()) {
        flow_counters& sums = entries_[found->second].record.counters;
        if (counters.bytes_tx > max_counter - sums.bytes_tx) {
            return add_status::overflow_tx;
        }
        if (counters.bytes_rx > max_counter - sums.bytes_rx) {
            return add_status::overflow_rx;
        }
        sums.add(counters);
        ++records_;
        return add_status::ok;
    }
    batch_entry& entry =
        entries_.emplace_back(batch_entry{flow_record{std::string(src_app), std::string(dest_app),
                                                      std::string(vpc_id), hour, counters},
                                          record_index});
    flow_record const& r = entry.record;
    index_.emplace(key_view{r.src_app, r.dest_app, r.vpc_id, hour}, entries_.size() - 1);
    ++records_;
    return add_status::ok;
}

}  // namespace flowd
