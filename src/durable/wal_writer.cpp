#include "flowd/durable/wal_writer.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "file_support.hpp"
#include "flowd/durable/data_files.hpp"

namespace flowd::wal {

namespace fs = std::filesystem;

wal_writer::wal_writer(options o, fsync_observer on_fsync)
    : options_(std::move(o)), on_fsync_(std::move(on_fsync)) {}

wal_writer::~wal_writer() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
    if (marker_fd_ >= 0) {
        ::close(marker_fd_);
    }
}

void wal_writer::open(std::optional<synced_position> resume, std::uint64_t next_seq) {
    fs::path const marker = options_.dir / "wal.synced";
    marker_fd_ = ::open(marker.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (marker_fd_ < 0) {
        throw io_error(errno_text("open " + marker.string()));
    }
    if (::ftruncate(marker_fd_, 0) != 0) {
        throw io_error(errno_text("truncate wal.synced"));
    }
    marker_generation_ = 0;
    if (resume) {
        open_segment(resume->segment, resume->offset, false);
        // What recovery read may sit only in the page cache (a crash under `interval`).
        sync_file(fd_, segment_name(segment_first_));
    } else {
        open_segment(next_seq, 0, true);
    }
    write_marker(false);
    write_marker(true);
}

void wal_writer::open_segment(std::uint64_t first_seq, std::uint64_t size, bool create) {
    fs::path const path = options_.dir / segment_name(first_seq);
    int const flags = O_WRONLY | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0);
    int const fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) {
        throw io_error(errno_text("open " + path.string()));
    }
    // Switch only once the new segment is whole: a failure leaves the current one in use.
    std::uint64_t new_size = size;
    try {
        if (create) {
            std::string const header = segment_header(first_seq);
            write_all(fd, header, path.string());
            sync_file(fd, path.string());
            sync_directory(options_.dir);
            new_size = header.size();
        }
        if (::lseek(fd, static_cast<off_t>(new_size), SEEK_SET) < 0) {
            throw io_error(errno_text("seek " + path.string()));
        }
    } catch (...) {
        ::close(fd);
        if (create) {
            ::unlink(path.c_str());
        }
        throw;
    }
    if (fd_ >= 0) {
        ::close(fd_);
    }
    fd_ = fd;
    segment_first_ = first_seq;
    segment_size_ = new_size;
}

bool wal_writer::needs_rotation(std::uint64_t bytes) const noexcept {
    return segment_size_ > segment_header_size && segment_size_ + bytes > options_.segment_bytes;
}

void wal_writer::rotate(std::uint64_t first_seq) {
    if (dirty_) {
        sync();
    }
    open_segment(first_seq, 0, true);
    write_marker(true);
}

namespace {

// writev until every piece is written, IOV_MAX pieces at a time, resuming after a short write.
void write_all(int fd, std::span<std::string_view const> pieces, std::string const& what) {
    std::vector<iovec> iov;
    iov.reserve(std::min<std::size_t>(pieces.size(), IOV_MAX));
    std::size_t next = 0;
    std::size_t skip = 0;  // bytes of pieces[next] already written
    while (next < pieces.size()) {
        iov.clear();
        for (std::size_t i = next; i < pieces.size() && iov.size() < IOV_MAX; ++i) {
            std::string_view const p = i == next ? pieces[i].substr(skip) : pieces[i];
            iov.push_back(iovec{const_cast<char*>(p.data()), p.size()});
        }
        ssize_t const n = ::writev(fd, iov.data(), static_cast<int>(iov.size()));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw io_error(errno_text("write " + what));
        }
        auto left = static_cast<std::size_t>(n);
        while (next < pieces.size() && left >= pieces[next].size() - skip) {
            left -= pieces[next].size() - skip;
            skip = 0;
            ++next;
        }
        skip += left;
    }
}

}  // namespace

void wal_writer::append(std::string_view frames, bool sync_now) {
    append(std::span<std::string_view const>(&frames, 1), sync_now);
}

void wal_writer::append(std::span<std::string_view const> pieces, bool sync_now) {
    std::uint64_t const size_before = segment_size_;
    try {
        write_all(fd_, pieces, segment_name(segment_first_));
        for (std::string_view const p : pieces) {
            segment_size_ += p.size();
        }
        dirty_ = true;
        if (sync_now) {
            sync();
        }
    } catch (io_error const&) {
        segment_size_ = size_before;
        (void)::ftruncate(fd_, static_cast<off_t>(segment_size_));
        throw;
    }
}

void wal_writer::sync() {
    auto const started = std::chrono::steady_clock::now();
    sync_file(fd_, segment_name(segment_first_));
    if (on_fsync_) {
        on_fsync_(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
    dirty_ = false;
    write_marker(options_.sync_marker);
}

bool wal_writer::heal() {
    if (::ftruncate(fd_, static_cast<off_t>(segment_size_)) != 0 ||
        ::lseek(fd_, static_cast<off_t>(segment_size_), SEEK_SET) < 0) {
        return false;
    }
    try {
        sync_file(fd_, segment_name(segment_first_));
        write_marker(true);
    } catch (io_error const&) {
        return false;
    }
    dirty_ = false;
    return true;
}

void wal_writer::write_marker(bool durable) {
    ++marker_generation_;
    std::string const slot =
        marker_slot(marker_generation_, synced_position{segment_first_, segment_size_});
    auto const offset = static_cast<off_t>((marker_generation_ % 2) * marker_slot_stride);
    if (::pwrite(marker_fd_, slot.data(), slot.size(), offset) !=
        static_cast<ssize_t>(slot.size())) {
        throw io_error(errno_text("write wal.synced"));
    }
    if (durable) {
        sync_file(marker_fd_, "wal.synced");
    }
}

}  // namespace flowd::wal
