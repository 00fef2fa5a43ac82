#include "flowd/http/flows_body.hpp"

#include "flowd/codec/flow_json.hpp"
#include "flowd/codec/json_writer.hpp"

namespace flowd {

void append_snapshot_json(std::string& out, hour_snapshot const& snapshot, std::size_t first,
                          std::size_t last, bool first_in_array) {
    for (std::size_t i = first; i < last; ++i) {
        if (i != first || !first_in_array) {
            out.push_back(',');
        }
        hour_snapshot::entry const& e = snapshot[i];
        append_flow_json(out, snapshot.name(e.key.src), snapshot.name(e.key.dest),
                         snapshot.name(e.key.vpc), e.counters, snapshot.hour());
    }
}

std::size_t append_snapshot_json_upto(std::string& out, hour_snapshot const& snapshot,
                                      std::size_t first, std::size_t bytes, bool first_in_array) {
    std::size_t i = first;
    for (; i < snapshot.size() && out.size() < bytes; ++i) {
        append_snapshot_json(out, snapshot, i, i + 1, first_in_array && i == first);
    }
    return i;
}

flows_serializer::flows_serializer(hour_snapshot const& snapshot, bool gzip,
                                   std::string_view prefix, std::size_t next)
    : snapshot_(&snapshot), prefix_(prefix), next_(prefix.empty() ? 0 : next) {
    if (gzip) {
        gzip_.emplace();
    }
    json_.reserve(chunk_bytes + 1024);
}

flows_serializer::flows_serializer(answer_writer& writer, bool gzip, std::string_view prefix)
    : writer_(&writer), prefix_(prefix) {
    if (gzip) {
        gzip_.emplace();
    }
    json_.reserve(chunk_bytes + 1024);
}

bool flows_serializer::next(std::string& out) {
    out.clear();
    for (;;) {
        json_.clear();
        if (writer_ != nullptr) {
            json_.assign(prefix_);
            prefix_ = {};
            bool const last = writer_->write(json_, chunk_bytes);
            if (hand_on(out, last)) {
                return !last;
            }
            continue;
        }
        if (!prefix_.empty()) {
            json_.assign(prefix_);
            prefix_ = {};
            started_ = true;
        } else if (!started_) {
            json_.push_back('[');
        }
        bool const first_in_array = !started_;
        started_ = true;
        next_ = append_snapshot_json_upto(json_, *snapshot_, next_, chunk_bytes, first_in_array);
        bool const last = next_ == snapshot_->size();
        if (last) {
            json_.push_back(']');
        }
        if (hand_on(out, last)) {
            return !last;
        }
    }
}

bool flows_serializer::hand_on(std::string& out, bool last) {
    if (!gzip_) {
        out.swap(json_);
        return true;
    }
    gzip_->write(json_, out, last);
    // Deflate may hold a small piece back; an empty chunk would end the chunked body.
    return !out.empty() || last;
}

boost::optional<std::pair<flows_body::writer::const_buffers_type, bool>> flows_body::writer::get(
    boost::beast::error_code& ec) {
    ec = {};
    if (done_) {
        return boost::none;
    }
    bool const more = serializer_.next(buffer_);
    done_ = !more;
    return std::make_pair(const_buffers_type(buffer_.data(), buffer_.size()), more);
}

}  // namespace flowd
