#include "flowd/flow/packet_decoder.hpp"

#include <algorithm>

#include "flow_wire.hpp"

namespace flowd {

using namespace flow_wire;

packet_decoder::exporter_state* packet_decoder::state_of(ip_address const& exporter,
                                                         std::uint32_t domain, unsigned version,
                                                         std::uint64_t now_unix_ms) {
    key const k{exporter, domain};
    auto it = exporters_.find(k);
    if (it == exporters_.end()) {
        if (exporters_.size() >= limits_.max_exporters) {
            return nullptr;
        }
        it = exporters_.emplace(k, exporter_state{}).first;
        it->second.info.address = exporter;
        it->second.info.domain = domain;
    }
    exporter_state& s = it->second;
    if (s.version != version && s.version != 0) {
        // A device that changed version starts afresh: templates of one are not the other's.
        templates_ -= s.templates.size();
        s.templates.clear();
        s.held.clear();
        s.held_bytes = 0;
        s.have_sequence = false;
        s.sampling = 1;
    }
    s.version = version;
    s.info.version = version;
    s.info.last_seen_unix_ms = now_unix_ms;
    ++s.info.packets;
    return &s;
}

decode_outcome packet_decoder::decode(ip_address const& exporter,
                                      std::span<std::uint8_t const> datagram,
                                      std::uint64_t now_unix_ms, std::vector<decoded_flow>& out) {
    if (datagram.size() < 2) {
        return decode_outcome{datagram_result::malformed, 0, 0, 0, 0};
    }
    unsigned const version = be16(datagram.data());
    if (version == 5) {
        return decode_v5(exporter, datagram, now_unix_ms, out);
    }
    if (version == 9 || version == 10) {
        return decode_templated(exporter, datagram, version, now_unix_ms, out);
    }
    return decode_outcome{datagram_result::unknown_version, 0, 0, 0, 0};
}

decode_outcome packet_decoder::decode_v5(ip_address const& exporter,
                                         std::span<std::uint8_t const> d, std::uint64_t now_unix_ms,
                                         std::vector<decoded_flow>& out) {
    constexpr std::size_t header = 24;
    constexpr std::size_t record = 48;
    decode_outcome o{datagram_result::malformed, 5, 0, 0, 0};
    if (d.size() < header) {
        return o;
    }
    std::uint8_t const* p = d.data();
    std::size_t const count = be16(p + 2);
    if (count == 0 || count > 30 || d.size() < header + count * record) {
        return o;
    }
    std::uint32_t const uptime = be32(p + 4);
    std::uint64_t const export_ms = std::uint64_t{be32(p + 8)} * 1000 + be32(p + 12) / 1'000'000;
    std::uint32_t const sequence = be32(p + 16);
    o.domain = p[21];
    std::uint64_t sampling = be16(p + 22) & 0x3fffU;
    sampling = sampling == 0 ? 1 : sampling;
    exporter_state* s = state_of(exporter, o.domain, 5, now_unix_ms);
    if (s == nullptr) {
        o.result = datagram_result::not_allowed;
        return o;
    }
    o.gap = gap_of(s->have_sequence, s->next_sequence, sequence);
    s->have_sequence = true;
    s->next_sequence = sequence + static_cast<std::uint32_t>(count);
    s->info.sequence_gaps += o.gap;
    s->info.records += count;
    for (std::size_t i = 0; i < count; ++i) {
        std::uint8_t const* r = p + header + i * record;
        decoded_flow f;
        f.src = ip_address::from_v4(be32(r));
        f.dst = ip_address::from_v4(be32(r + 4));
        f.octets = saturating_mul(be32(r + 20), sampling);
        f.end_unix_ms = before_export(export_ms, uptime, be32(r + 28));
        out.push_back(f);
    }
    o.result = datagram_result::decoded;
    return o;
}

std::vector<exporter_info> packet_decoder::exporters() const {
    std::vector<exporter_info> v;
    v.reserve(exporters_.size());
    for (auto const& [k, s] : exporters_) {
        v.push_back(s.info);
        v.back().templates = s.templates.size();
    }
    std::sort(v.begin(), v.end(), [](exporter_info const& a, exporter_info const& b) {
        return a.address != b.address ? a.address < b.address : a.domain < b.domain;
    });
    return v;
}

}  // namespace flowd
