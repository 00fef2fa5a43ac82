#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <spdlog/logger.h>

#include "flowd/durable/data_files.hpp"
#include "flowd/store/flow_store.hpp"
#include "flowd/store/idempotency_table.hpp"

namespace flowd::wal {

struct recovery_options {
    std::filesystem::path dir;
    bool truncate_corrupt = false;  // --truncate-corrupt-log
    std::uint64_t now_unix_ms = 0;
};

struct recovery_result {
    std::string snapshot;  // file loaded; empty: none
    std::uint64_t snapshot_seq = 0;
    std::uint64_t snapshot_keys = 0;
    std::uint64_t records_replayed = 0;  // log records after the snapshot
    std::uint64_t flows_replayed = 0;    // the flow records they carried
    std::uint64_t log_bytes = 0;         // log bytes after the snapshot
    // Cut by --truncate-corrupt-log and kept in *.discarded files: records (the corrupt
    // one included) and bytes.
    std::uint64_t records_set_aside = 0;
    std::uint64_t bytes_set_aside = 0;
    std::uint64_t next_seq = 1;
    // The segment to append to (its first seq) and its valid size; nothing: start a new one.
    std::optional<std::uint64_t> last_segment;
    std::uint64_t last_segment_size = 0;
    std::uint32_t last_segment_version = 0;  // its header's (0: torn or bad)
};

// Loads the newest valid snapshot into `store` and `idempotency` (both empty), replays
// the log after it, cuts a torn or corrupt tail past the synced marker (with a warning)
// and returns where the log goes on. Throws recovery_error on corruption before the
// marker (unless truncate_corrupt), on a gap in the log, or when no snapshot and log
// reach back to the first record; io_error on I/O errors.
recovery_result recover(recovery_options const& options, flow_store& store,
                        idempotency_table& idempotency, spdlog::logger& log);

}  // namespace flowd::wal
