#pragma once

#include <cstddef>
#include <functional>
#include <optional>

#include "flowd/codec/flow_json.hpp"
#include "flowd/http/ingest.hpp"
#include "flowd/http/router.hpp"
#include "flowd/metrics/service_metrics.hpp"
#include "flowd/store/flow_store.hpp"

namespace flowd {

struct flows_options {
    std::size_t max_body_bytes = 16 * 1024 * 1024;
    decode_limits limits;
    // Asked once a POST body is decoded, with its record count: an answer (429 over the
    // client's records budget) refuses the batch before anything is applied. Empty: no limit.
    std::function<std::optional<response>(request_context const&, std::size_t records)>
        admit_records{};
};

// POST /flows and GET /flows: codec + ingest + store, no sockets. Holds references to
// long-lived services only; thread-safe.
class flows_handler {
public:
    // Answers up to this size are sent whole; larger ones are streamed (SPEC: 64 KiB).
    static constexpr std::size_t stream_threshold = 64 * 1024;

    flows_handler(flow_store const& store, ingest& sink, service_metrics& metrics,
                  flows_options options)
        : store_(store), sink_(sink), metrics_(metrics), options_(options) {}

    handler_result post(request_context& ctx);
    handler_result get(request_context& ctx);

private:
    handler_result reject(problem const& p, request_context const& ctx);

    flow_store const& store_;
    ingest& sink_;
    service_metrics& metrics_;
    flows_options options_;
};

// True when an Accept-Encoding header value accepts gzip (q absent or above 0).
[[nodiscard]] bool accepts_gzip(std::string_view accept_encoding) noexcept;

}  // namespace flowd
