#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/logger.h>

#include "flowd/durable/wal_format.hpp"
#include "flowd/store/flow_store.hpp"
#include "flowd/store/idempotency_table.hpp"

// The files of a data directory: the lock, snapshots (write, verify, load), the synced
// marker, removing what a checkpoint covers (recovery.hpp reads them back at start).
// Functions, not threads: the log writer (durable_ingest) and the checkpointer call them.
namespace flowd::wal {

// An I/O error on a data file; what() names the file and the call.
class io_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Start-up must stop: corruption that was durable, a missing piece of log. what() is the
// one line an operator reads.
class recovery_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A read-only mapping of a whole file. Movable.
class mapped_file {
public:
    explicit mapped_file(std::filesystem::path const& path);  // throws io_error
    mapped_file(mapped_file&& other) noexcept;
    mapped_file& operator=(mapped_file&&) = delete;
    mapped_file(mapped_file const&) = delete;
    ~mapped_file();
    [[nodiscard]] std::string_view bytes() const noexcept { return {data_, size_}; }

private:
    char const* data_ = nullptr;
    std::size_t size_ = 0;
};

// One flowd per data directory: an exclusive flock on DIR/LOCK, held for the object's life.
// Creates the directory (one level) when missing. Throws recovery_error when another
// process holds the lock, io_error when the directory cannot be created or opened.
class directory_lock {
public:
    explicit directory_lock(std::filesystem::path const& dir);
    directory_lock(directory_lock const&) = delete;
    directory_lock& operator=(directory_lock const&) = delete;
    ~directory_lock();

private:
    int fd_ = -1;
};

void write_all(int fd, std::string_view bytes, std::string const& what);  // throws io_error
void sync_file(int fd, std::string const& what);                          // throws io_error
void sync_directory(std::filesystem::path const& dir);                    // throws io_error

struct snapshot_info {
    std::uint64_t covered_seq = 0;
    std::uint64_t keys = 0;
    std::uint64_t idempotency_keys = 0;
    std::uint64_t bytes = 0;
};

// Writes snapshot-<covered_seq>.snap: a .tmp file, fsync, rename, fsync the directory.
// Throws io_error (the .tmp file is removed).
snapshot_info write_snapshot(std::filesystem::path const& dir, std::uint64_t covered_seq,
                             std::vector<flow_store::exported_key> const& keys,
                             flow_store const& names,
                             std::vector<idempotency_table::entry> const& idempotency,
                             std::uint64_t now_unix_ms);

// Checks a snapshot whole (magic, version, CRC, layout) without applying it; on failure
// returns nothing and says why.
[[nodiscard]] std::optional<snapshot_info> verify_snapshot(std::string_view bytes,
                                                           std::string* why);
// Applies a verified snapshot to an empty store and table.
void load_snapshot(std::string_view bytes, flow_store& store, idempotency_table& idempotency,
                   std::uint64_t now_unix_ms);

// The synced marker: the log end last known to be fsynced. Nothing when absent or unreadable.
[[nodiscard]] std::optional<synced_position> read_marker(std::filesystem::path const& dir);

// After a checkpoint: keeps the two newest snapshots, removes older ones, and removes
// every segment whose records are all covered by the older kept snapshot. Returns the
// number of files removed. Never removes the newest segment.
std::size_t remove_covered_files(std::filesystem::path const& dir, spdlog::logger& log);

}  // namespace flowd::wal
