#include "flowd/query/change_journal.hpp"

#include <algorithm>
#include <tuple>

namespace flowd {

change_journal::change_journal(flow_store& store, std::size_t capacity,
                               std::chrono::milliseconds linger)
    : store_(store), capacity_(std::max<std::size_t>(capacity, 1)), linger_(linger) {
    store_.set_change_sink(this);
}

change_journal::~change_journal() {
    store_.watch_changes(false);
    store_.set_change_sink(nullptr);
}

std::uint64_t change_journal::subscribe() {
    std::scoped_lock lock{mutex_};
    ++subscribers_;
    if (!recording_) {
        if (ring_.empty()) {
            ring_.resize(capacity_);
        }
        // Batches committed while nobody watched were not recorded.
        lost_upto_ = seq_;
        recording_ = true;
        store_.watch_changes(true);
    }
    return seq_;
}

void change_journal::unsubscribe() {
    std::scoped_lock lock{mutex_};
    if (subscribers_ != 0 && --subscribers_ == 0) {
        idle_since_ = std::chrono::steady_clock::now();
    }
}

std::uint64_t change_journal::sequence() const {
    std::scoped_lock lock{mutex_};
    return seq_;
}

bool change_journal::holds_since(std::uint64_t since) const {
    std::scoped_lock lock{mutex_};
    return recording_ && since >= lost_upto_ && since <= seq_;
}

void change_journal::rows_changed(std::vector<changed_row> const& rows) {
    std::scoped_lock lock{mutex_};
    if (!recording_) {
        return;  // recording stopped between the store's check and this call
    }
    if (subscribers_ == 0 && std::chrono::steady_clock::now() - idle_since_ > linger_) {
        // Nobody reconnected within the resume window: stop paying for the record.
        recording_ = false;
        store_.watch_changes(false);
        return;
    }
    ++seq_;
    for (changed_row const& r : rows) {
        if (size_ == capacity_) {
            // The oldest row's batch is no longer whole here.
            lost_upto_ = std::max(lost_upto_, ring_[next_].seq);
        } else {
            ++size_;
        }
        ring_[next_] = {seq_, r};
        next_ = (next_ + 1) % capacity_;
    }
}

bool change_journal::read_since(std::uint64_t since,
                                std::function<bool(changed_row const&)> const& keep,
                                std::vector<changed_row>& out, std::uint64_t& upto) const {
    std::size_t const first = out.size();
    {
        std::scoped_lock lock{mutex_};
        if (!recording_ || since < lost_upto_ || since > seq_) {
            return false;
        }
        upto = seq_;
        // Newest first, back to the first row at or before `since`.
        for (std::size_t n = 0; n < size_; ++n) {
            entry const& e = ring_[(next_ + capacity_ - 1 - n) % capacity_];
            if (e.seq <= since) {
                break;
            }
            if (keep(e.row)) {
                out.push_back(e.row);
            }
        }
    }
    // One row per (hour, key): sums only grow, so the larger value of each is the newest.
    auto const key_of = [](changed_row const& r) {
        return std::tie(r.hour, r.key.src, r.key.dest, r.key.vpc);
    };
    std::sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
              [&](changed_row const& a, changed_row const& b) { return key_of(a) < key_of(b); });
    std::size_t w = first;
    for (std::size_t i = first; i < out.size(); ++i) {
        if (w != first && key_of(out[w - 1]) == key_of(out[i])) {
            out[w - 1].counters.bytes_tx =
                std::max(out[w - 1].counters.bytes_tx, out[i].counters.bytes_tx);
            out[w - 1].counters.bytes_rx =
                std::max(out[w - 1].counters.bytes_rx, out[i].counters.bytes_rx);
        } else {
            out[w++] = out[i];
        }
    }
    out.resize(w);
    return true;
}

}  // namespace flowd
