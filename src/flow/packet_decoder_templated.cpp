#include <algorithm>
#include <span>
#include <vector>

#include "flow_wire.hpp"
#include "flowd/flow/packet_decoder.hpp"

// packet_decoder's NetFlow v9 and IPFIX half: template sets, options, data sets, data held
// until its template comes. v5 and the exporters' state are packet_decoder.cpp.
namespace flowd {

using namespace flow_wire;

namespace {

// One pass over a template or options template set; `apply` sees each parsed template
// (withdrawals have no fields). Throws malformed when a record does not fit.
template <class Apply>
void parse_template_set(std::uint8_t const* p, std::size_t n, unsigned version, bool options,
                        Apply&& apply) {
    std::size_t pos = 0;
    // What is left shorter than a template header is padding.
    while (n - pos >= 4) {
        std::uint16_t const id = be16(p + pos);
        std::size_t fields = 0;
        std::size_t scope_fields = 0;
        std::size_t head = 4;
        if (options && version == 9) {
            if (n - pos < 6) {
                break;
            }
            std::size_t const scope_bytes = be16(p + pos + 2);
            std::size_t const option_bytes = be16(p + pos + 4);
            if (scope_bytes % 4 != 0 || option_bytes % 4 != 0) {
                throw malformed{};
            }
            scope_fields = scope_bytes / 4;
            fields = scope_fields + option_bytes / 4;
            head = 6;
        } else {
            fields = be16(p + pos + 2);
            if (options && fields != 0) {
                if (n - pos < 6) {
                    throw malformed{};
                }
                scope_fields = be16(p + pos + 4);
                head = 6;
                if (scope_fields > fields) {
                    throw malformed{};
                }
            }
        }
        // v9 padding may look like a template header of zeros.
        if (version == 9 && id == 0 && fields == 0) {
            break;
        }
        if (id < 256 && !(version == 10 && fields == 0)) {
            throw malformed{};
        }
        pos += head;
        packet_decoder::flow_template t;
        t.options = options;
        t.fields.reserve(std::min<std::size_t>(fields, (n - pos) / 4));
        for (std::size_t i = 0; i < fields; ++i) {
            if (n - pos < 4) {
                throw malformed{};
            }
            packet_decoder::field f;
            std::uint16_t const type = be16(p + pos);
            f.length = be16(p + pos + 2);
            pos += 4;
            f.id = type;
            if (version == 10 && (type & 0x8000U) != 0) {
                if (n - pos < 4) {
                    throw malformed{};
                }
                f.id = static_cast<std::uint16_t>(type & 0x7fffU);
                f.enterprise = be32(p + pos);
                pos += 4;
            }
            bool const var = version == 10 && f.length == variable_length;
            t.min_length += var ? 1 : f.length;
            t.fields.push_back(f);
        }
        // A record of no bytes would never advance through a data set.
        if (fields != 0 && t.min_length == 0) {
            throw malformed{};
        }
        apply(id, std::move(t), fields == 0);
    }
}

struct record_values {
    bool have_src = false;
    bool have_dst = false;
    ip_address src;
    ip_address dst;
    std::uint64_t octets = 0;
    bool have_octets = false;
    std::uint64_t total_octets = 0;
    std::uint64_t reverse_octets = 0;
    std::uint64_t end_ms = 0;
    bool have_end_uptime = false;
    std::uint32_t end_uptime = 0;
    std::uint64_t sampling = 0;
    std::uint64_t sampling_space = 0;  // RFC 5476 samplingPacketSpace: packets not selected
    std::uint64_t system_init_ms = 0;
};

void read_field(packet_decoder::field const& f, std::uint8_t const* v, std::size_t len,
                record_values& r) {
    if (f.enterprise == reverse_pen) {
        if ((f.id == 1 || f.id == 85) && len >= 1 && len <= 8) {
            r.reverse_octets = be_uint(v, len);
        }
        return;
    }
    if (f.enterprise != 0) {
        return;
    }
    switch (f.id) {
        case 1:  // octetDeltaCount / IN_BYTES
            if (len >= 1 && len <= 8) {
                r.octets = be_uint(v, len);
                r.have_octets = true;
            }
            break;
        case 85:  // octetTotalCount
            if (len >= 1 && len <= 8) {
                r.total_octets = be_uint(v, len);
            }
            break;
        case 8:
        case 12:
            if (len == 4) {
                (f.id == 8 ? r.src : r.dst) = ip_address::from_v4(be32(v));
                (f.id == 8 ? r.have_src : r.have_dst) = true;
            }
            break;
        case 27:
        case 28:
            if (len == 16) {
                (f.id == 27 ? r.src : r.dst) = ip_address::from_v6(v);
                (f.id == 27 ? r.have_src : r.have_dst) = true;
            }
            break;
        case 21:  // flowEndSysUpTime / LAST_SWITCHED
            if (len == 4) {
                r.end_uptime = be32(v);
                r.have_end_uptime = true;
            }
            break;
        case 151:  // flowEndSeconds
            if (len == 4) {
                r.end_ms = std::uint64_t{be32(v)} * 1000;
            }
            break;
        case 153:  // flowEndMilliseconds
            if (len == 8) {
                r.end_ms = be_uint(v, 8);
            }
            break;
        case 155:  // flowEndMicroseconds
        case 157:  // flowEndNanoseconds
            if (len == 8) {
                r.end_ms = ntp_to_unix_ms(be_uint(v, 8));
            }
            break;
        case 160:  // systemInitTimeMilliseconds
            if (len == 8) {
                r.system_init_ms = be_uint(v, 8);
            }
            break;
        case 306:  // samplingPacketSpace
            if (len >= 1 && len <= 4) {
                r.sampling_space = be_uint(v, len);
            }
            break;
        case 34:   // samplingInterval
        case 50:   // samplerRandomInterval
        case 305:  // samplingPacketInterval
            if (len >= 1 && len <= 4) {
                r.sampling = be_uint(v, len);
            }
            break;
        default:
            break;
    }
}

// Decodes the records of one data set. Returns how many records it held. Throws malformed
// when a variable-length field runs past the set.
std::size_t decode_data_set(packet_decoder::flow_template const& t,
                            packet_decoder::exporter_state& s, std::uint8_t const* p, std::size_t n,
                            record_context const& ctx, std::vector<decoded_flow>& out) {
    std::size_t pos = 0;
    std::size_t records = 0;
    while (n - pos >= t.min_length && n - pos > 0) {
        record_values r;
        for (packet_decoder::field const& f : t.fields) {
            std::size_t len = f.length;
            if (ctx.version == 10 && f.length == variable_length) {
                if (n - pos < 1) {
                    throw malformed{};
                }
                len = p[pos++];
                if (len == 255) {
                    if (n - pos < 2) {
                        throw malformed{};
                    }
                    len = be16(p + pos);
                    pos += 2;
                }
            }
            if (n - pos < len) {
                throw malformed{};
            }
            read_field(f, p + pos, len, r);
            pos += len;
        }
        ++records;
        if (r.sampling != 0 && r.sampling_space != 0) {
            // One packet in (interval + space) / interval was counted.
            r.sampling = (r.sampling + r.sampling_space) / r.sampling;
        }
        if (t.options) {
            if (r.sampling != 0) {
                s.sampling = r.sampling;
            }
            if (r.system_init_ms != 0) {
                s.system_init_ms = r.system_init_ms;
            }
            continue;
        }
        if (!r.have_src || !r.have_dst) {
            continue;
        }
        std::uint64_t const sampling = r.sampling != 0 ? r.sampling : s.sampling;
        decoded_flow f;
        f.src = r.src;
        f.dst = r.dst;
        f.octets = saturating_mul(r.have_octets ? r.octets : r.total_octets, sampling);
        f.reverse_octets = saturating_mul(r.reverse_octets, sampling);
        if (r.end_ms != 0) {
            f.end_unix_ms = r.end_ms;
        } else if (r.have_end_uptime && ctx.version == 9) {
            f.end_unix_ms = before_export(ctx.export_ms, ctx.uptime_ms, r.end_uptime);
        } else if (r.have_end_uptime && (r.system_init_ms != 0 || s.system_init_ms != 0)) {
            // As v9: back from the export by the uptimes' difference, modulo 2^32, so an
            // uptime that wrapped (or an exporter replaying old packets) still lands right.
            std::uint64_t const init = r.system_init_ms != 0 ? r.system_init_ms : s.system_init_ms;
            auto const uptime_at_export = static_cast<std::uint32_t>(ctx.export_ms - init);
            f.end_unix_ms = before_export(ctx.export_ms, uptime_at_export, r.end_uptime);
        } else {
            f.end_unix_ms = ctx.export_ms;
        }
        out.push_back(f);
    }
    return records;
}

// The set ids of template and options template sets.
constexpr std::size_t template_set_id(unsigned version) noexcept {
    return version == 9 ? 0 : 2;
}
constexpr std::size_t options_set_id(unsigned version) noexcept {
    return version == 9 ? 1 : 3;
}

// Every set's bounds, and every template record's, checked before any state changes.
bool sets_fit(std::span<std::uint8_t const> d, std::size_t header, unsigned version) {
    std::uint8_t const* p = d.data();
    std::size_t const template_set = template_set_id(version);
    std::size_t const options_set = options_set_id(version);
    for (std::size_t pos = header; pos < d.size();) {
        if (d.size() - pos < 4) {
            return version == 9;  // v9: trailing padding
        }
        std::size_t const id = be16(p + pos);
        std::size_t const len = be16(p + pos + 2);
        if (len < 4 || len > d.size() - pos) {
            return false;
        }
        if (id == template_set || id == options_set) {
            try {
                parse_template_set(p + pos + 4, len - 4, version, id == options_set,
                                   [](std::uint16_t, packet_decoder::flow_template&&, bool) {});
            } catch (malformed const&) {
                return false;
            }
        }
        pos += len;
    }
    return true;
}

// One datagram's sets applied to its exporter's state, in order: templates learnt or
// withdrawn (data held for a template decoded once it comes), data sets decoded, or held
// until their template comes, or dropped past the limits. Throws malformed.
class set_walk {
public:
    set_walk(packet_decoder::exporter_state& s, record_context const& ctx,
             decoder_limits const& limits, decode_outcome& o)
        : s_(s), ctx_(ctx), limits_(limits), o_(o) {}

    void set(std::size_t id, std::uint8_t const* body, std::size_t body_len) {
        if (id == template_set_id(ctx_.version) || id == options_set_id(ctx_.version)) {
            parse_template_set(body, body_len, ctx_.version, id == options_set_id(ctx_.version),
                               [&](std::uint16_t tid, packet_decoder::flow_template&& t,
                                   bool withdraw) { learn(id, tid, std::move(t), withdraw); });
            return;
        }
        if (id < 256) {
            return;  // reserved set ids
        }
        auto const it = s_.templates.find(static_cast<std::uint16_t>(id));
        if (it != s_.templates.end()) {
            records += decode_data_set(it->second, s_, body, body_len, ctx_, flows);
            return;
        }
        unknown_count = true;
        if (s_.held.size() < limits_.pending_sets &&
            s_.held_bytes + body_len <= limits_.pending_bytes) {
            s_.held.push_back(packet_decoder::held_set{
                static_cast<std::uint16_t>(id), std::vector<std::uint8_t>(body, body + body_len),
                ctx_.export_ms, ctx_.uptime_ms});
            s_.held_bytes += body_len;
        } else {
            dropped_set = true;
        }
    }

    std::vector<decoded_flow> flows;
    std::size_t records = 0;
    std::size_t held_records = 0;  // of earlier datagrams: not in this one's sequence count
    bool unknown_count = false;
    bool dropped_set = false;

private:
    void learn(std::size_t set_id, std::uint16_t tid, packet_decoder::flow_template&& t,
               bool withdraw) {
        std::size_t const options_set = options_set_id(ctx_.version);
        if (withdraw) {
            // RFC 7011 8.1: the set's own id withdraws every template.
            if (tid == template_set_id(ctx_.version) || tid == options_set) {
                std::erase_if(s_.templates, [&](auto const& kv) {
                    return kv.second.options == (set_id == options_set);
                });
            } else {
                s_.templates.erase(tid);
            }
            return;
        }
        auto it = s_.templates.find(tid);
        if (it == s_.templates.end()) {
            if (s_.templates.size() >= limits_.max_templates) {
                ++o_.templates_refused;
                return;
            }
            it = s_.templates.emplace(tid, packet_decoder::flow_template{}).first;
        }
        it->second = std::move(t);
        // Data that came before this template: decode it now.
        for (auto h = s_.held.begin(); h != s_.held.end();) {
            if (h->id != tid) {
                ++h;
                continue;
            }
            record_context const held_ctx{ctx_.version, h->export_ms, h->uptime_ms};
            try {
                held_records += decode_data_set(it->second, s_, h->bytes.data(), h->bytes.size(),
                                                held_ctx, flows);
            } catch (malformed const&) {
                dropped_set = true;
            }
            s_.held_bytes -= h->bytes.size();
            h = s_.held.erase(h);
        }
    }

    packet_decoder::exporter_state& s_;
    record_context const& ctx_;
    decoder_limits const& limits_;
    decode_outcome& o_;
};

}  // namespace

decode_outcome packet_decoder::decode_templated(ip_address const& exporter,
                                                std::span<std::uint8_t const> d, unsigned version,
                                                std::uint64_t now_unix_ms,
                                                std::vector<decoded_flow>& out) {
    decode_outcome o{datagram_result::malformed, version, 0, 0, 0};
    std::size_t const header = version == 9 ? 20 : 16;
    if (d.size() < header) {
        return o;
    }
    std::uint8_t const* p = d.data();
    record_context ctx;
    ctx.version = version;
    std::uint32_t sequence = 0;
    if (version == 9) {
        ctx.uptime_ms = be32(p + 4);
        ctx.export_ms = std::uint64_t{be32(p + 8)} * 1000;
        sequence = be32(p + 12);
        o.domain = be32(p + 16);
    } else {
        std::size_t const length = be16(p + 2);
        if (length < header || length > d.size()) {
            return o;
        }
        d = d.first(length);
        ctx.export_ms = std::uint64_t{be32(p + 4)} * 1000;
        sequence = be32(p + 8);
        o.domain = be32(p + 12);
    }
    if (!sets_fit(d, header, version)) {
        return o;
    }
    exporter_state* s = state_of(exporter, o.domain, version, now_unix_ms);
    if (s == nullptr) {
        o.result = datagram_result::not_allowed;
        return o;
    }
    std::size_t const templates_before = s->templates.size();
    set_walk walk{*s, ctx, limits_, o};
    try {
        for (std::size_t pos = header; d.size() - pos >= 4;) {
            std::size_t const id = be16(p + pos);
            std::size_t const len = be16(p + pos + 2);
            std::uint8_t const* body = p + pos + 4;
            pos += len;
            walk.set(id, body, len - 4);
        }
    } catch (malformed const&) {
        // Templates it defined before the bad set stay (each was whole); its flows go.
        templates_ = templates_ + s->templates.size() - templates_before;
        s->info.templates = s->templates.size();
        s->have_sequence = false;
        return o;
    }
    templates_ = templates_ + s->templates.size() - templates_before;
    s->info.templates = s->templates.size();
    s->info.records += walk.records + walk.held_records;
    // v9 counts packets; IPFIX counts data records, known only when every set was decoded.
    if (version == 9) {
        o.gap = gap_of(s->have_sequence, s->next_sequence, sequence);
        s->have_sequence = true;
        s->next_sequence = sequence + 1;
    } else {
        o.gap = gap_of(s->have_sequence, s->next_sequence, sequence);
        s->have_sequence = !walk.unknown_count;
        s->next_sequence = sequence + static_cast<std::uint32_t>(walk.records);
    }
    s->info.sequence_gaps += o.gap;
    out.insert(out.end(), walk.flows.begin(), walk.flows.end());
    o.result = walk.dropped_set ? datagram_result::no_template : datagram_result::decoded;
    return o;
}

}  // namespace flowd
