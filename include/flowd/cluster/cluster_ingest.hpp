#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/logger.h>

#include "flowd/durable/checkpointer.hpp"
#include "flowd/ingest/ingest.hpp"
#include "flowd/store/flow_store.hpp"
#include "flowd/store/idempotency_table.hpp"

// Opaque nats.c types: only src/cluster/ includes <nats/nats.h>.
struct __natsConnection;
struct __natsSubscription;
struct __jsCtx;
struct jsStreamInfo;

namespace flowd {

namespace wal {
struct log_record;
}

struct cluster_options {
    std::vector<std::string> urls;  // nats://HOST:PORT each
    std::string node_name;
    std::string stream = "FLOWD";
    std::uint32_t replicas = 3;
    // The stream's duplicate window: a message id seen within it is acknowledged again with
    // the first one's sequence and not stored twice (SPEC: idempotency_window).
    std::chrono::milliseconds duplicate_window{600'000};
    // How long a POST may wait, from its arrival, for the stream's acknowledgement before
    // 503 cluster-unavailable: a publish failing because the stream has no leader (an
    // election, a reconnect) is retried with the same message id until then.
    std::chrono::milliseconds publish_timeout{5'000};
    // Checkpoints (empty data_dir: none): a snapshot of the store at an applied stream
    // sequence, written by the apply thread this often and at stop, in the local log's
    // snapshot format with the stream sequence as its covered seq.
    std::filesystem::path data_dir;
    std::chrono::milliseconds checkpoint_interval{300'000};
    // SPEC retention_hours (0: off). Apply skips, and counts, the keys of a record whose hour
    // is before the window of this node's clock, so catching up from an old stream does not
    // build hours that retention would drop at once.
    std::uint32_t retention_hours = 0;
    // This node's Idempotency-Key memory (SPEC "Idempotent retries"). Apply fills it from the
    // claims the stream records carry, on every node, so a key reused with another body is
    // 422 whichever node took the first one, and a key in flight on this node is 409.
    // nullptr: the stream's duplicate window alone.
    idempotency_table* idempotency = nullptr;
    // Publishes awaiting their acknowledgement past which POST answers 503 overloaded at
    // once rather than queueing inside the NATS client.
    std::size_t max_pending_publishes = 16'384;
    // Limits of the stream when this node creates it (0: none; SPEC-style keys
    // cluster_max_bytes, cluster_max_age_hours). An existing stream keeps its own.
    std::uint64_t max_bytes = 0;
    std::chrono::hours max_age{0};
    // POSTs waiting for the stream to come back (between failed publishes and their retry)
    // past which a failing POST answers 503 cluster-unavailable at once (cluster_max_pending).
    std::size_t max_retrying_publishes = 4'096;
};

// The subject every batch is published on, for a stream name.
[[nodiscard]] std::string cluster_subject(std::string const& stream);

// Cluster-mode metrics, registered only when flowd runs in cluster mode. Thread-safe
// (prometheus-cpp).
struct cluster_metrics {
    explicit cluster_metrics(prometheus::Registry& registry);
    prometheus::Counter& flows_applied_stream;
    prometheus::Counter& records_applied;
    prometheus::Counter& publish_failures;
    prometheus::Gauge& apply_lag_records;
    prometheus::Gauge& apply_lag_seconds;
    prometheus::Gauge& applied_seq;
    prometheus::Gauge& connected;
    prometheus::Counter& skipped_outside_retention;
    prometheus::Counter& saturated_at_apply;
    prometheus::Gauge& halted;
    // Failover: publishes tried again after a retriable failure; consumers recreated after
    // an error or a stall; how long an outage lasted (first failure or stall to the first
    // acknowledged publish, or the first message applied after it), by path.
    prometheus::Counter& publish_retries;
    prometheus::Counter& consumer_restarts;
    prometheus::Family<prometheus::Histogram>& failover;
    prometheus::Histogram& failover_publish;
    prometheus::Histogram& failover_consume;
};

// The ingest of a flowd in cluster mode: submit() encodes the batch as a write-ahead log
// record (wal::encode_payload) and publishes it asynchronously to the JetStream stream, with
// the Idempotency-Key (scope-prefixed) or a generated id as message id; `done` runs on a
// NATS thread once the stream acknowledged it (durable on a quorum of replicas) and applies
// nothing. A publish that fails because the stream cannot take it now (no leader during an
// election, no connection during a reconnect, a timeout) is published again by the retry
// thread, with the same message id (the stream's duplicate window keeps it once), after a
// short backoff, until publish_timeout after submit(); only then 503 cluster-unavailable.
// One apply thread consumes the whole stream in order (an ordered consumer with idle
// heartbeats) and replays every record into the store; GET's min_seq waits on it
// (wait_applied()). Thread-safe; start() and stop() once, from one thread.
class cluster_ingest : public ingest {
public:
    using wait_done = std::function<void(bool applied)>;

    cluster_ingest(flow_store& store, cluster_metrics& metrics, cluster_options options,
                   std::shared_ptr<spdlog::logger> log);
    ~cluster_ingest() override;
    cluster_ingest(cluster_ingest const&) = delete;
    cluster_ingest& operator=(cluster_ingest const&) = delete;

    // The store holds a checkpoint covering stream sequences up to `covered_seq`: apply from
    // the next one. Before start().
    void resume_from(std::uint64_t covered_seq) noexcept {
        applied_.store(covered_seq, std::memory_order_release);
        checkpointed_seq_ = covered_seq;
    }
    // Starts connecting (retried in the background when no server answers) and the apply
    // thread. Throws std::runtime_error on a NATS set-up error (not on an unreachable server).
    void start();
    void submit(flow_batch batch, ingest_request info, completion done) override;
    // Calls `done(true)` once this node applied stream sequence `seq`, or `done(false)` after
    // `wait`; at once when already applied. From the calling or the apply thread.
    void wait_applied(std::uint64_t seq, std::chrono::milliseconds wait, wait_done done);
    [[nodiscard]] std::uint64_t applied_seq() const noexcept {
        return applied_.load(std::memory_order_acquire);
    }
    // The stream's stamp (Unix ms) of the last message applied (after a restart from a
    // checkpoint, read back from the stream); 0 while unknown. SPEC: the clock by which
    // a node treats hours as sealed for caching, the same on every node at one sequence.
    [[nodiscard]] std::uint64_t applied_stamp_ms() const noexcept {
        return applied_stamp_ms_.load(std::memory_order_acquire);
    }
    // True once the node applied everything the stream held when it first reached it.
    [[nodiscard]] bool caught_up() const noexcept {
        return caught_up_.load(std::memory_order_acquire);
    }
    [[nodiscard]] bool connected() const noexcept;
    // Empty while the node applies the stream; else why it stopped: the stream no longer
    // holds sequences the node never applied (limits or a purge removed them), or its
    // sequences went back (deleted and recreated). The node is then not ready: its totals
    // would silently differ from its peers'.
    [[nodiscard]] std::string halted_because() const;
    // Fails what waits for an ack, stops the apply thread and closes the connection.
    void stop();

    // For the NATS callbacks (src/cluster/): the ack (or error; `retriable`: the
    // stream may take it if published again) of the publish whose message is `msg`, and the
    // connection going down or up.
    void on_publish_result(void const* msg, std::uint64_t seq, bool duplicate, std::string error,
                           bool retriable);
    void on_connection_change(bool up);

private:
    struct pending {
        completion done;
        std::size_t records = 0;
        // publish_timeout after submit(): no attempt starts, and none is waited for, past it.
        std::chrono::steady_clock::time_point deadline;
        // What each attempt publishes: the same bytes under the same message id.
        std::string payload;
        std::string msg_id;
        unsigned attempts = 0;
        bool retrying = false;  // failed at least once: counts against max_retrying_publishes
        std::string last_error;
        // The Idempotency-Key this publish carries, and whether this node claimed it.
        std::optional<idempotency_claim> claim;
        bool owns_claim = false;
    };
    struct waiter {
        std::uint64_t seq = 0;
        std::chrono::steady_clock::time_point deadline;
        wait_done done;
    };

    void apply_loop();
    // On the apply thread: the stream (created when missing) and an ordered consumer from
    // the next sequence to apply; false (the reason noted, or the node halted) to retry later.
    bool set_up_stream_and_consumer();
    // The stream's info as its leader gives it (created first when missing); null, with the
    // reason noted, when it is not available yet.
    [[nodiscard]] jsStreamInfo* leader_stream_info();
    // Learns whether it allows direct gets; warns where its settings differ from this node's.
    void check_stream_settings(jsStreamInfo const& si);
    // Empty when the stream still holds every sequence after the one this node applied.
    [[nodiscard]] std::string why_stream_cannot_resume(jsStreamInfo const& si) const;
    void learn_applied_stamp();
    bool subscribe_from_next();
    void note_setup_failure(std::string why);
    // Applies what the consumer has (up to 4096 messages, the waiters woken once after);
    // false when it failed and was dropped.
    bool apply_from_consumer();
    void apply_message(void* msg);
    void apply_by_get();
    void release_waiters(bool stopping);
    void expire_publishes();
    void checkpoint();
    [[nodiscard]] wal::checkpoint_job checkpoint_job_at(std::uint64_t seq) const;
    void check_for_stall();
    void apply_record(wal::log_record const& record);
    void halt(std::string why);
    void finish_duplicate(idempotency_claim claim, std::uint64_t seq, pending p);
    // Publishes pending `token` once more (or answers it when its deadline passed).
    void publish_attempt(std::uint64_t token);
    // Answers pending `token`: acknowledged at `seq`, or refused with `error`.
    void complete_publish(std::uint64_t token, std::uint64_t seq, bool duplicate,
                          std::string error);
    void retry_loop();
    void note_outage(std::atomic<std::int64_t>& since);
    void note_recovery(std::atomic<std::int64_t>& since, prometheus::Histogram& histogram,
                       char const* what);

    flow_store& store_;
    cluster_metrics& metrics_;
    cluster_options const options_;
    std::string const subject_;
    std::shared_ptr<spdlog::logger> log_;

    __natsConnection* conn_ = nullptr;
    __jsCtx* js_ = nullptr;
    __natsSubscription* sub_ = nullptr;  // owned by the apply thread

    std::atomic<std::uint64_t> applied_{0};
    // The stream's stamp (Unix ms) of message applied_; 0 until known.
    std::atomic<std::uint64_t> applied_stamp_ms_{0};
    std::atomic<bool> caught_up_{false};
    std::atomic<bool> closing_{false};
    std::atomic<std::uint64_t> next_id_{0};
    std::uint64_t catch_up_target_ = 0;  // owned by the apply thread
    bool have_target_ = false;           // owned by the apply thread
    std::string last_setup_error_;       // owned by the apply thread
    // The stream allows direct gets (any replica answers a read by sequence); owned by the
    // apply thread, learnt from the stream's configuration.
    bool direct_get_ = false;
    bool told_no_direct_get_ = false;     // owned by the apply thread: its warning is logged once
    std::uint64_t checkpointed_seq_ = 0;  // owned by the apply thread: handed to a write
    // The stall watchdog's view (apply thread only): when a message last arrived, when the
    // stream was last asked for its last sequence.
    std::chrono::steady_clock::time_point last_message_at_{};
    std::chrono::steady_clock::time_point next_stall_check_{};
    // The highest stream sequence a publish of this node was acknowledged at.
    std::atomic<std::uint64_t> highest_acked_{0};

    std::mutex pending_mutex_;
    std::unordered_map<std::uint64_t, pending> pending_;  // by token; guarded by pending_mutex_
    // The NATS message of each attempt in flight, to its pending token; guarded likewise.
    std::unordered_map<void const*, std::uint64_t> in_flight_;
    std::size_t retrying_ = 0;      // pending_ entries with `retrying`; guarded likewise
    std::uint64_t next_token_ = 0;  // guarded likewise

    // Retries due, by time; the retry thread publishes them.
    std::mutex retry_mutex_;
    std::condition_variable retry_wake_;
    std::multimap<std::chrono::steady_clock::time_point, std::uint64_t>
        retry_due_;            // guarded by retry_mutex_
    bool retry_stop_ = false;  // guarded by retry_mutex_
    std::thread retry_thread_;
    std::atomic<bool> refusing_retries_{false};  // stop() began: failures are final

    // Since when (steady clock, ns; 0: none) publishes fail / the consumer is stalled.
    std::atomic<std::int64_t> publish_outage_since_{0};
    std::atomic<std::int64_t> consume_outage_since_{0};

    std::mutex wait_mutex_;
    std::condition_variable wake_;
    std::vector<waiter> waiters_;  // guarded by wait_mutex_
    bool stopping_ = false;        // guarded by wait_mutex_

    mutable std::mutex halt_mutex_;
    std::string halted_because_;  // guarded by halt_mutex_
    std::atomic<bool> halted_{false};

    // Checkpoints: the apply thread copies the store (so the copy is exactly the stream up
    // to a sequence) and hands it to the checkpoint thread, which writes it; applying goes
    // on meanwhile. One write at a time: no copy is made while one is in progress.
    wal::checkpointer checkpoints_;

    std::thread apply_thread_;
    bool started_ = false;
    bool stopped_ = false;
};

}  // namespace flowd
