#pragma once

// File helpers the data-directory code shares (src/durable only: this header is private,
// so its names may sit in flowd::wal beside the public ones).

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>

#include <unistd.h>

#include "flowd/durable/data_files.hpp"
#include "flowd/durable/wal_format.hpp"

namespace flowd::wal {

namespace fs = std::filesystem;

inline std::string errno_text(std::string const& what) {
    return what + ": " + std::strerror(errno);
}

// A file descriptor closed on scope exit.
class fd_guard {
public:
    explicit fd_guard(int fd) noexcept : fd_(fd) {}
    fd_guard(fd_guard const&) = delete;
    fd_guard& operator=(fd_guard const&) = delete;
    ~fd_guard() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    [[nodiscard]] int get() const noexcept { return fd_; }

private:
    int fd_;
};

struct dir_listing {
    std::map<std::uint64_t, fs::path> segments;   // by first seq
    std::map<std::uint64_t, fs::path> snapshots;  // by covered seq
};

inline dir_listing list_dir(fs::path const& dir) {
    dir_listing out;
    std::error_code ec;
    for (auto const& e : fs::directory_iterator(dir, ec)) {
        std::string const name = e.path().filename().string();
        if (auto s = parse_segment_name(name)) {
            out.segments.emplace(*s, e.path());
        } else if (auto n = parse_snapshot_name(name)) {
            out.snapshots.emplace(*n, e.path());
        }
    }
    if (ec) {
        throw io_error("cannot list " + dir.string() + ": " + ec.message());
    }
    return out;
}

}  // namespace flowd::wal
