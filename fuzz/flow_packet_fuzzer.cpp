// libFuzzer harness: a run of NetFlow v5/v9 and IPFIX datagrams through one packet_decoder,
// so templates learned from one datagram decode (and are attacked by) the next. The input
// is framed as [exporter byte][length, 2 bytes big-endian][datagram] repeated. Beyond
// "no crash, no leak, no UB", the decoder's bounds must hold after every datagram.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "flowd/flow/packet_decoder.hpp"

namespace {

void require(bool ok, char const* what) {
    if (!ok) {
        std::fprintf(stderr, "invariant violated: %s\n", what);
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    flowd::decoder_limits const limits{3, 4, 2, 2048};
    flowd::packet_decoder decoder{limits};
    std::vector<flowd::decoded_flow> flows;
    std::size_t pos = 0;
    while (size - pos >= 3) {
        auto const exporter = flowd::ip_address::from_v4(0x7f000001U + (data[pos] & 3U));
        std::size_t const len = std::size_t{data[pos + 1]} << 8 | data[pos + 2];
        pos += 3;
        std::size_t const n = std::min(len, size - pos);
        flows.clear();
        auto const o =
            decoder.decode(exporter, std::span(data + pos, n), 1'700'000'000'000ULL, flows);
        pos += n;
        if (o.result != flowd::datagram_result::decoded &&
            o.result != flowd::datagram_result::no_template) {
            require(flows.empty(), "a dropped datagram yielded flows");
        }
        require(decoder.exporter_count() <= limits.max_exporters, "exporters past the limit");
        std::size_t templates = 0;
        for (flowd::exporter_info const& e : decoder.exporters()) {
            require(e.templates <= limits.max_templates, "templates past the limit");
            templates += e.templates;
        }
        require(templates == decoder.template_count(), "template count out of step");
        // A flow needs two addresses (8 bytes at least) of this datagram or of the held
        // sets (pending_bytes at most): flows stay within what those bytes can hold.
        require(flows.size() <= (n + limits.pending_bytes) / 8 + 30,
                "more flows than the bytes can hold");
    }
    return 0;
}
