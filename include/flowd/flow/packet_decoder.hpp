#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "flowd/flow/ip_address.hpp"

namespace flowd {

// One flow as an exporter reported it, sampling already applied.
struct decoded_flow {
    ip_address src;
    ip_address dst;
    std::uint64_t octets = 0;          // src -> dst
    std::uint64_t reverse_octets = 0;  // dst -> src (RFC 5103 biflows), else 0
    std::uint64_t end_unix_ms = 0;     // the flow's end, else the export time
};

// What became of one datagram (SPEC: flowd_flow_packets_total{result}).
enum class datagram_result { decoded, malformed, unknown_version, no_template, not_allowed };

struct decode_outcome {
    datagram_result result = datagram_result::malformed;
    unsigned version = 0;      // 5, 9 or 10 when the header said so
    std::uint32_t domain = 0;  // observation domain, v9 source id, v5 engine id
    std::uint64_t gap = 0;     // sequence gap this datagram revealed, in the version's unit
    std::size_t templates_refused = 0;  // past flow_max_templates
};

struct decoder_limits {
    std::size_t max_exporters = 1024;       // (address, domain) pairs tracked
    std::size_t max_templates = 256;        // templates per (address, domain)
    std::size_t pending_sets = 8;           // data sets kept per exporter before a template
    std::size_t pending_bytes = 64 * 1024;  // their bytes
};

// What /flow-exporters shows of one (address, domain).
struct exporter_info {
    ip_address address;
    std::uint32_t domain = 0;
    unsigned version = 0;
    std::uint64_t last_seen_unix_ms = 0;
    std::uint64_t packets = 0;
    std::uint64_t records = 0;
    std::size_t templates = 0;
    std::uint64_t sequence_gaps = 0;
};

// Decodes NetFlow v5, v9 and IPFIX datagrams into flows, keeping the templates (and
// options: sampling intervals) of each (exporter address, observation domain). Every
// length is checked against the datagram before it is read: a datagram that lies is
// dropped whole, nothing it said is kept. Memory is bounded by the limits. Not
// thread-safe: one owner calls it.
class packet_decoder {
public:
    explicit packet_decoder(decoder_limits limits = {}) : limits_(limits) {}

    // Appends the flows of one datagram from `exporter` to `out` (also flows of data sets
    // held earlier that this datagram's templates decode). `now_unix_ms`: when it arrived.
    decode_outcome decode(ip_address const& exporter, std::span<std::uint8_t const> datagram,
                          std::uint64_t now_unix_ms, std::vector<decoded_flow>& out);

    [[nodiscard]] std::vector<exporter_info> exporters() const;
    [[nodiscard]] std::size_t exporter_count() const noexcept { return exporters_.size(); }
    [[nodiscard]] std::size_t template_count() const noexcept { return templates_; }

    struct field {
        std::uint16_t id = 0;
        std::uint16_t length = 0;  // 65535: variable length (IPFIX)
        std::uint32_t enterprise = 0;
    };
    struct flow_template {
        std::vector<field> fields;
        std::size_t min_length = 0;  // fixed bytes plus one per variable-length field
        bool options = false;
    };
    struct held_set {
        std::uint16_t id = 0;
        std::vector<std::uint8_t> bytes;
        std::uint64_t export_ms = 0;
        std::uint32_t uptime_ms = 0;
    };
    struct exporter_state {
        unsigned version = 0;
        std::map<std::uint16_t, flow_template> templates;
        std::uint64_t sampling = 1;        // from options data; 1: unsampled
        std::uint64_t system_init_ms = 0;  // IPFIX systemInitTimeMilliseconds, 0: unknown
        bool have_sequence = false;
        std::uint32_t next_sequence = 0;
        std::vector<held_set> held;
        std::size_t held_bytes = 0;
        exporter_info info;
    };

private:
    struct key {
        ip_address address;
        std::uint32_t domain = 0;
        friend bool operator==(key const&, key const&) = default;
    };
    struct key_hash {
        std::size_t operator()(key const& k) const noexcept {
            return ip_address_hash{}(k.address) ^ (std::size_t{k.domain} * 0x9e3779b97f4a7c15ULL);
        }
    };

    exporter_state* state_of(ip_address const& exporter, std::uint32_t domain, unsigned version,
                             std::uint64_t now_unix_ms);
    decode_outcome decode_v5(ip_address const& exporter, std::span<std::uint8_t const> d,
                             std::uint64_t now_unix_ms, std::vector<decoded_flow>& out);
    decode_outcome decode_templated(ip_address const& exporter, std::span<std::uint8_t const> d,
                                    unsigned version, std::uint64_t now_unix_ms,
                                    std::vector<decoded_flow>& out);

    decoder_limits limits_;
    std::unordered_map<key, exporter_state, key_hash> exporters_;
    std::size_t templates_ = 0;
};

}  // namespace flowd
