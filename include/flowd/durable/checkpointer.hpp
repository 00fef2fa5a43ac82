#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/logger.h>

#include "flowd/durable/data_files.hpp"
#include "flowd/store/flow_store.hpp"
#include "flowd/store/idempotency_table.hpp"

namespace flowd::wal {

// A copy of the store (and the completed Idempotency-Keys) exactly as of one position: a
// log sequence, or a stream sequence in cluster mode. Taken by the store's only writer
// (the log thread, the apply thread) between batches.
struct checkpoint_job {
    std::uint64_t seq = 0;
    std::vector<flow_store::exported_key> keys;
    std::vector<idempotency_table::entry> idempotency;
};

// What one written checkpoint was: for the owner's log line and metrics.
struct checkpoint_written {
    snapshot_info info;
    double seconds = 0;
    std::size_t files_removed = 0;
};

// The checkpoint thread both the local log and cluster mode use: it writes one job at a
// time as a snapshot in `dir` and then removes the log segments and snapshots it covers,
// so the store's writer only pays for the copy. A failed write is reported and left for
// the next period (the log or the stream still holds everything). Thread-safe.
class checkpointer {
public:
    using written_fn = std::function<void(checkpoint_job const&, checkpoint_written const&)>;
    using failed_fn = std::function<void(std::string const& what)>;

    checkpointer(std::filesystem::path dir, flow_store const& names,
                 std::shared_ptr<spdlog::logger> log, written_fn written, failed_fn failed);
    checkpointer(checkpointer const&) = delete;
    checkpointer& operator=(checkpointer const&) = delete;
    ~checkpointer() { stop(); }

    void start();
    // True while a job waits or is being written: the owner skips this period's copy.
    [[nodiscard]] bool busy() const;
    // Hands a job to the thread; false (and the job dropped) when busy.
    bool offer(checkpoint_job job);
    // Waits until no job waits or is being written.
    void wait_idle();
    // Writes a job on the calling thread: the last one at a clean stop, once idle.
    void write_now(checkpoint_job const& job);
    // Writes what it holds, then ends the thread. Idempotent.
    void stop();

private:
    void loop();

    std::filesystem::path dir_;
    flow_store const& names_;
    std::shared_ptr<spdlog::logger> log_;
    written_fn written_;
    failed_fn failed_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::optional<checkpoint_job> pending_;  // guarded by mutex_
    bool writing_ = false;                   // guarded by mutex_
    bool stopping_ = false;                  // guarded by mutex_
    std::thread thread_;
};

}  // namespace flowd::wal
