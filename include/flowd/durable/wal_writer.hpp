#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string_view>

#include "flowd/durable/wal_format.hpp"

namespace flowd::wal {

// The appending end of the log: the open segment, its rotation, and the synced marker
// (wal.synced) that names the log end last known to be fsynced. Knows bytes and files, not
// batches: the caller frames records (append_frame) and decides when to sync. Not
// thread-safe: one owner (the log thread, and start-up before it runs). Every failure
// throws io_error naming the file and the call.
class wal_writer {
public:
    struct options {
        std::filesystem::path dir;
        std::uint64_t segment_bytes = 67'108'864;  // a segment past this is rotated
        // fsync the marker after each segment fsync. Off under fsync always, which would
        // otherwise pay two fsyncs per group; the marker may then lag the log, and recovery
        // treats damage past it as a torn tail.
        bool sync_marker = true;
    };
    // Called with the seconds each segment fsync took (not the marker's, not heal()'s).
    using fsync_observer = std::function<void(double seconds)>;

    wal_writer(options o, fsync_observer on_fsync);
    ~wal_writer();
    wal_writer(wal_writer const&) = delete;
    wal_writer& operator=(wal_writer const&) = delete;

    // Opens the marker (both slots rewritten, so no older slot can outrank them) and the
    // segment to append to: `resume` (what recovery found: a segment and its whole length),
    // fsynced first since it may sit only in the page cache, or else a new one whose first
    // record is `next_seq`.
    void open(std::optional<synced_position> resume, std::uint64_t next_seq);

    // Whether `bytes` more must go into a new segment: the current one has records and would
    // pass segment_bytes.
    [[nodiscard]] bool needs_rotation(std::uint64_t bytes) const noexcept;
    // Syncs what is dirty, then switches to a new segment whose first record is `first_seq`.
    // The switch happens only once the new segment is whole: a failure leaves the current
    // one in use.
    void rotate(std::uint64_t first_seq);

    // Writes whole frames at the end of the segment and, with `sync_now`, fsyncs them. On a
    // failure none of them stays counted and the file is cut back to where it was (heal()
    // retries the cut if that fails too), then io_error is thrown.
    void append(std::string_view frames, bool sync_now);
    // The same for frames in pieces (headers and payloads), written in order with writev
    // rather than first copied into one buffer.
    void append(std::span<std::string_view const> pieces, bool sync_now);
    // fsyncs the segment, then records the new end in the marker.
    void sync();
    // After a failure: cuts the segment back to what was written whole and proves the disk
    // takes an fsync again. False when it still fails.
    [[nodiscard]] bool heal();

    [[nodiscard]] bool dirty() const noexcept { return dirty_; }  // written since the last fsync
    [[nodiscard]] std::uint64_t segment_first() const noexcept { return segment_first_; }
    [[nodiscard]] std::uint64_t segment_size() const noexcept { return segment_size_; }

private:
    void open_segment(std::uint64_t first_seq, std::uint64_t size, bool create);
    void write_marker(bool durable);

    options const options_;
    fsync_observer on_fsync_;
    int fd_ = -1;
    int marker_fd_ = -1;
    std::uint64_t segment_first_ = 0;
    std::uint64_t segment_size_ = 0;  // bytes written and kept
    std::uint64_t marker_generation_ = 0;
    bool dirty_ = false;
};

}  // namespace flowd::wal
