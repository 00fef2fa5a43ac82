#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include <spdlog/logger.h>

#include "flowd/durable/checkpointer.hpp"
#include "flowd/durable/data_files.hpp"
#include "flowd/durable/recovery.hpp"
#include "flowd/durable/wal_format.hpp"
#include "flowd/durable/wal_writer.hpp"
#include "flowd/ingest/ingest.hpp"
#include "flowd/metrics/service_metrics.hpp"
#include "flowd/store/flow_store.hpp"
#include "flowd/store/idempotency_table.hpp"

namespace flowd {

struct durable_options {
    std::filesystem::path dir;
    bool fsync_always = false;  // else every fsync_interval
    std::chrono::milliseconds fsync_interval{1'000};
    std::chrono::milliseconds checkpoint_interval{300'000};
    std::uint64_t checkpoint_log_bytes = 268'435'456;
    std::uint64_t segment_bytes = 67'108'864;
};

// The ingest of a flowd with a data directory: log, then apply. submit() checks the batch
// against the store and encodes its log record on the calling I/O thread, then queues it;
// one log thread writes every queued record in one write (group commit), fsyncs per the
// policy, applies the records to the store in log order and completes them (the done
// callbacks run on the log thread, in order, before any later checkpoint is taken). A
// checkpoint copies the store on the log thread (so it matches a log position exactly)
// and writes it on a checkpoint thread. A write or fsync error makes the log unavailable
// (503 log-unavailable, healthy() false, nothing applied) until a retry, every second,
// succeeds. Thread-safe; recover() and start() once, from one thread.
class durable_ingest : public ingest {
public:
    durable_ingest(flow_store& store, idempotency_table& idempotency, service_metrics& metrics,
                   durable_options options, std::shared_ptr<spdlog::logger> log);
    ~durable_ingest() override;
    durable_ingest(durable_ingest const&) = delete;
    durable_ingest& operator=(durable_ingest const&) = delete;

    // Loads the data directory into the (empty) store. Throws wal::recovery_error or
    // wal::io_error.
    wal::recovery_result recover(bool truncate_corrupt);
    // Opens the log for appending and starts the threads. Throws wal::io_error.
    void start();
    void submit(flow_batch batch, ingest_request info, completion done) override;
    [[nodiscard]] bool healthy() const noexcept { return healthy_.load(std::memory_order_acquire); }
    // Completes what is queued, fsyncs, writes a last checkpoint and joins the threads.
    void stop();

private:
    struct item {
        wal::encoded_payload payload;
        std::optional<prepared_batch> prepared;
        completion done;
        std::size_t records = 0;
        ingest_source source = ingest_source::post;
    };
    using clock = std::chrono::steady_clock;

    void log_loop();
    void write_group(std::vector<item>& items);
    void fail_all(std::vector<item>& items);
    void mark_failed(std::string const& why);
    void try_heal();
    [[nodiscard]] std::optional<wal::checkpoint_job> take_checkpoint();

    flow_store& store_;
    idempotency_table& idempotency_;
    service_metrics& metrics_;
    durable_options const options_;
    std::shared_ptr<spdlog::logger> log_;
    std::atomic<bool> healthy_{true};

    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<item> queue_;      // guarded by mutex_
    bool stopping_ = false;        // guarded by mutex_
    bool writer_waiting_ = false;  // guarded by mutex_

    // Owned by the log thread (and by recover()/start() before it runs).
    wal::wal_writer wal_;
    std::optional<wal::synced_position> resume_;  // the segment recovery ended in
    bool resume_older_version_ = false;           // ... written by an earlier release
    // write_group()'s frame headers and the pieces it hands to writev, kept between groups.
    std::vector<std::array<char, wal::frame_header_size>> headers_;
    std::vector<std::string_view> pieces_;
    std::uint64_t next_seq_ = 1;
    clock::time_point next_sync_;
    clock::time_point next_heal_;
    clock::time_point last_checkpoint_;
    std::uint64_t log_bytes_since_checkpoint_ = 0;
    std::uint64_t checkpointed_seq_ = 0;

    wal::checkpointer checkpoints_;
    std::thread log_thread_;
    bool stopped_ = false;
};

}  // namespace flowd
