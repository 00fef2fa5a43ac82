#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>

#include <boost/asio/thread_pool.hpp>

#include "flowd/codec/flow_json.hpp"
#include "flowd/http/router.hpp"
#include "flowd/ingest/ingest.hpp"
#include "flowd/metrics/service_metrics.hpp"
#include "flowd/query/execute.hpp"
#include "flowd/query/plan.hpp"
#include "flowd/store/flow_store.hpp"

namespace flowd {

struct flows_options {
    std::size_t max_body_bytes = 16 * 1024 * 1024;
    decode_limits limits;
    // The rate-limit identity a POST's records are charged to (admission does the
    // charging); empty: records are not charged.
    std::function<std::string(request_context const&)> records_client{};
    // SPEC retention (0: off), for Cache-Control of sealed answers; admission refuses POSTs.
    std::uint32_t retention_hours = 0;
    // Unix milliseconds; tests pass their own.
    std::function<std::uint64_t()> clock = wall_clock_ms;
    // False while the data directory is being recovered: /flows answers 503. Null: always.
    std::atomic<bool> const* serving = nullptr;
    // Cluster mode: GET takes min_seq, handed to wait_applied with min_seq_wait (POST
    // answers carry the stream sequence the ingest returns). Empty: not in cluster mode.
    std::function<void(std::uint64_t seq, std::chrono::milliseconds wait,
                       std::function<void(bool applied)> done)>
        wait_applied{};
    std::chrono::milliseconds min_seq_wait{2'000};
    // The query routes' cost bounds (SPEC: 422 query-too-large).
    query_limits query{};
    // At most this many heavy queries (a range over one hour, a grouping, an order, a
    // summary) at once; more: 503 overloaded. 0: no bound.
    std::size_t max_concurrent_queries = 0;
    // Mixed into every ETag: 0 when the data survives restarts (a data directory, a
    // cluster stream), a random number drawn at start otherwise.
    std::uint64_t etag_seed = 0;
    // Threads that compute range, grouping and summary answers, off the I/O threads.
    // 0: compute them on the I/O thread that received the request.
    std::size_t query_threads = 0;
    // SPEC sealing (0: off), for ETags, /hours and Cache-Control; admission refuses POSTs.
    std::chrono::milliseconds seal_after{0};
    // Cluster mode (SPEC): the node that receives a POST decides sealing by its clock, but
    // treats an hour as sealed for caching only once it applied the stream past a message
    // stamped after the hour's seal time: this returns the stamp (Unix ms) of the last
    // message applied, so that nodes at the same stream sequence agree. Empty: clock.
    std::function<std::uint64_t()> seal_clock{};
};

// A 64-bit fingerprint of a request body, telling a retry from a reused Idempotency-Key.
[[nodiscard]] std::uint64_t body_fingerprint(std::string_view body) noexcept;

// POST /flows and GET /flows: codec + ingest + store, no sockets. Holds references to
// long-lived services only; thread-safe.
class flows_handler {
public:
    // Answers up to this size are sent whole; larger ones are streamed (SPEC: 64 KiB).
    static constexpr std::size_t stream_threshold = 64 * 1024;

    flows_handler(flow_store const& store, ingest& sink, service_metrics& metrics,
                  flows_options options)
        : store_(store), sink_(sink), metrics_(metrics), options_(std::move(options)) {
        if (options_.query_threads != 0) {
            pool_ = std::make_unique<boost::asio::thread_pool>(options_.query_threads);
        }
    }
    flows_handler(flows_handler const&) = delete;
    flows_handler& operator=(flows_handler const&) = delete;
    // Waits for the queries in flight (the server drains requests before this).
    ~flows_handler() {
        if (pool_) {
            pool_->join();
        }
    }

    handler_result post(request_context& ctx);
    // What post() would answer from the head alone (503 while recovering, 415), for a
    // request that waits on `Expect: 100-continue`: nothing means send 100 and read.
    std::optional<response> precheck_post(request_context& ctx);
    // GET /flows, GET /flows/summary and GET /hours.
    handler_result get(request_context& ctx) { return query(ctx, query_route::flows); }
    handler_result summary(request_context& ctx) { return query(ctx, query_route::summary); }
    handler_result hours(request_context& ctx) { return query(ctx, query_route::hours); }

private:
    handler_result reject(problem const& p, request_context const& ctx);
    // 503 starting, while the data directory is recovered (POST and GET alike).
    [[nodiscard]] static string_response recovering_response(std::string_view request_id);
    // Content-Type and Content-Encoding of a POST: the body format and the coding, or 415.
    [[nodiscard]] static std::optional<problem> check_post_headers(request const& req,
                                                                   body_format& format,
                                                                   std::string& encoding);
    class query_slot;
    struct query_request {
        query_plan plan;
        answer_format format = answer_format::json;
        bool gzip = false;
        std::string if_none_match;
        std::string request_id;
    };
    handler_result query(request_context& ctx, query_route route);
    // The plan with what the request's headers ask of the answer (format, gzip, ETag).
    [[nodiscard]] static query_request query_request_of(request_context const& ctx,
                                                        query_plan plan);
    // The rows stored in the plan's hours, from the hours' totals (no row is read).
    [[nodiscard]] std::uint64_t stored_rows(query_plan const& plan) const;
    // 422 when the plan's range holds more stored rows than max_query_scan_rows.
    [[nodiscard]] std::optional<response> refuse_scan(query_request const& q) const;
    // min_seq: answers once this node applied the stream to it, else 503 past min_seq_wait.
    handler_result answer_when_applied(query_request q, std::shared_ptr<query_slot> slot);
    [[nodiscard]] response answer_query(query_request const& q);
    [[nodiscard]] response answer_plain_hour(query_request const& q, std::uint32_t sealed) const;
    // 304, with the caching headers a 200 would carry.
    [[nodiscard]] response not_modified(std::string const& etag, query_plan const& plan,
                                        std::uint32_t sealed) const;
    // The 200's caching headers (SPEC: ETag, Vary, Cache-Control on every 200): an answer
    // whose whole range is sealed is immutable for a year, or until its first hour leaves
    // the retention window; any other no-cache.
    void set_cache_headers(boost::beast::http::response_header<>& h, std::string const& etag,
                           query_plan const& plan, std::uint32_t sealed_before) const;
    // The same for ETags, /hours and Cache-Control: at seal_clock() when there is one.
    [[nodiscard]] std::uint32_t sealed_for_caching() const;
    [[nodiscard]] bool cluster() const noexcept { return static_cast<bool>(options_.wait_applied); }
    // The answer to a POST the ingest finished (200, or its problem), counted.
    [[nodiscard]] string_response answer_post(ingest_outcome const& o, std::string_view request_id);
    [[nodiscard]] bool serving() const noexcept {
        return options_.serving == nullptr || options_.serving->load(std::memory_order_acquire);
    }

    flow_store const& store_;
    ingest& sink_;
    service_metrics& metrics_;
    flows_options options_;
    std::atomic<std::size_t> queries_running_{0};
    std::unique_ptr<boost::asio::thread_pool> pool_;
};

// True when an Accept-Encoding header value accepts gzip (q absent or above 0).
[[nodiscard]] bool accepts_gzip(std::string_view accept_encoding) noexcept;

}  // namespace flowd
