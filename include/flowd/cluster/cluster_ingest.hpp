#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/logger.h>

#include "flowd/http/ingest.hpp"
#include "flowd/store/flow_store.hpp"

// Opaque nats.c types: only cluster_ingest.cpp includes <nats/nats.h>.
struct __natsConnection;
struct __natsSubscription;
struct __jsCtx;

namespace flowd {

struct cluster_options {
    std::vector<std::string> urls;  // nats://HOST:PORT each
    std::string node_name;
    std::string stream = "FLOWD";
    std::uint32_t replicas = 3;
    // The stream's duplicate window: a message id seen within it is acknowledged again with
    // the first one's sequence and not stored twice (SPEC: idempotency_window).
    std::chrono::milliseconds duplicate_window{600'000};
    // How long a POST waits for the stream's acknowledgement before 503.
    std::chrono::milliseconds publish_timeout{5'000};
    // Checkpoints (empty data_dir: none): a snapshot of the store at an applied stream
    // sequence, written by the apply thread this often and at stop, in the local log's
    // snapshot format with the stream sequence as its covered seq.
    std::filesystem::path data_dir;
    std::chrono::milliseconds checkpoint_interval{300'000};
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
};

// The ingest of a flowd in cluster mode: submit() encodes the batch as a write-ahead log
// record (wal::encode_payload) and publishes it asynchronously to the JetStream stream, with
// the Idempotency-Key (scope-prefixed) or a generated id as message id; `done` runs on a
// NATS thread once the stream acknowledged it (durable on a quorum of replicas) and applies
// nothing. One apply thread consumes the whole stream in order (an ordered consumer) and
// replays every record into the store; GET's min_seq waits on it (wait_applied()). The NATS
// client reconnects by itself; while it is not connected POST answers 503
// cluster-unavailable. Thread-safe; start() and stop() once, from one thread.
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
    // True once the node applied everything the stream held when it first reached it.
    [[nodiscard]] bool caught_up() const noexcept {
        return caught_up_.load(std::memory_order_acquire);
    }
    [[nodiscard]] bool connected() const noexcept;
    // Fails what waits for an ack, stops the apply thread and closes the connection.
    void stop();

    // For the NATS callbacks (cluster_ingest.cpp): the ack (or error) of the publish whose
    // message is `key`, and the connection going down or up.
    void complete_publish(void const* key, std::uint64_t seq, bool duplicate, std::string error);
    void on_connection_change(bool up);

private:
    struct pending {
        completion done;
        std::size_t records = 0;
        std::chrono::steady_clock::time_point deadline;
    };
    struct waiter {
        std::uint64_t seq = 0;
        std::chrono::steady_clock::time_point deadline;
        wait_done done;
    };

    void apply_loop();
    bool set_up_stream_and_consumer();
    void note_setup_failure(std::string why);
    void apply_message(void* msg);
    void release_waiters(bool stopping);
    void expire_publishes();
    void checkpoint();
    void check_for_stall();

    flow_store& store_;
    cluster_metrics& metrics_;
    cluster_options const options_;
    std::string const subject_;
    std::shared_ptr<spdlog::logger> log_;

    __natsConnection* conn_ = nullptr;
    __jsCtx* js_ = nullptr;
    __natsSubscription* sub_ = nullptr;  // owned by the apply thread

    std::atomic<std::uint64_t> applied_{0};
    std::atomic<bool> caught_up_{false};
    std::atomic<bool> closing_{false};
    std::atomic<std::uint64_t> next_id_{0};
    std::uint64_t catch_up_target_ = 0;   // owned by the apply thread
    bool have_target_ = false;            // owned by the apply thread
    std::string last_setup_error_;        // owned by the apply thread
    std::uint64_t checkpointed_seq_ = 0;  // owned by the apply thread
    // The stall watchdog's view (apply thread only): when a message last arrived, when the
    // stream was last asked for its last sequence.
    std::chrono::steady_clock::time_point last_message_at_{};
    std::chrono::steady_clock::time_point next_stall_check_{};
    // The highest stream sequence a publish of this node was acknowledged at.
    std::atomic<std::uint64_t> highest_acked_{0};

    std::mutex pending_mutex_;
    std::unordered_map<void const*, pending> pending_;  // guarded by pending_mutex_

    std::mutex wait_mutex_;
    std::condition_variable wake_;
    std::vector<waiter> waiters_;  // guarded by wait_mutex_
    bool stopping_ = false;        // guarded by wait_mutex_

    std::thread apply_thread_;
    bool started_ = false;
    bool stopped_ = false;
};

}  // namespace flowd
