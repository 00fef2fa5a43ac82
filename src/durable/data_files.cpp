#include "flowd/durable/data_files.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_support.hpp"
#include "flowd/durable/crc32c.hpp"

namespace flowd::wal {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view snapshot_magic{"FLOWDSNP", 8};
constexpr std::string_view snapshot_end{"FLOWDEND", 8};
constexpr std::size_t snapshot_header_size = 8 + 4 + 4 + 8 + 8 + 8 + 8;
constexpr std::size_t snapshot_trailer_size = 4 + 8;
constexpr std::size_t replay_chunk = 65'536;  // snapshot keys applied per store call

// Streams a file out through a buffer, keeping the CRC of everything written.
class file_writer {
public:
    file_writer(int fd, std::string what) : fd_(fd), what_(std::move(what)) { buf_.reserve(cap); }
    void append(std::string_view s) {
        buf_ += s;
        if (buf_.size() >= cap) {
            flush();
        }
    }
    std::string& buffer() noexcept { return buf_; }
    void maybe_flush() {
        if (buf_.size() >= cap) {
            flush();
        }
    }
    void flush() {
        crc_ = crc32c(crc_, buf_);
        write_all(fd_, buf_, what_);
        bytes_ += buf_.size();
        buf_.clear();
    }
    [[nodiscard]] std::uint32_t crc() const noexcept { return crc_; }
    [[nodiscard]] std::uint64_t bytes() const noexcept { return bytes_; }

private:
    static constexpr std::size_t cap = 1 << 20;
    int fd_;
    std::string what_;
    std::string buf_;
    std::uint32_t crc_ = 0;
    std::uint64_t bytes_ = 0;
};

bool read_idempotency_entry(reader& in, idempotency_table::entry& e) {
    e.claim.scope = std::string(in.bytes(in.u8()));
    e.claim.key = std::string(in.bytes(in.u8()));
    e.claim.fingerprint = in.u64();
    e.accepted = in.u64();
    e.accepted_unix_ms = in.u64();
    return in.ok();
}

}  // namespace

directory_lock::directory_lock(fs::path const& dir) {
    // mkdir -p: missing parents as the umask allows, the directory itself 0750.
    if (fs::path const parent = dir.parent_path(); !parent.empty()) {
        std::error_code ec;
        fs::create_directories(parent, ec);
        if (ec) {
            throw io_error("create data directory " + dir.string() + ": cannot create " +
                           parent.string() + ": " + ec.message());
        }
    }
    if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
        throw io_error(errno_text("create data directory " + dir.string()));
    }
    fs::path const path = dir / "LOCK";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
        throw io_error(errno_text("open " + path.string()));
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        int const err = errno;
        ::close(fd_);
        fd_ = -1;
        if (err == EWOULDBLOCK) {
            throw recovery_error("data directory " + dir.string() +
                                 " is in use by another flowd (lock " + path.string() + ")");
        }
        errno = err;
        throw io_error(errno_text("lock " + path.string()));
    }
    std::string const pid = std::to_string(::getpid()) + "\n";
    (void)::ftruncate(fd_, 0);
    (void)::pwrite(fd_, pid.data(), pid.size(), 0);
}

directory_lock::~directory_lock() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

mapped_file::mapped_file(fs::path const& path) {
    fd_guard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (fd.get() < 0) {
        throw io_error(errno_text("open " + path.string()));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        throw io_error(errno_text("stat " + path.string()));
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ == 0) {
        return;
    }
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) {
        throw io_error(errno_text("mmap " + path.string()));
    }
    ::madvise(p, size_, MADV_SEQUENTIAL);
    data_ = static_cast<char const*>(p);
}

mapped_file::mapped_file(mapped_file&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

mapped_file::~mapped_file() {
    if (data_ != nullptr) {
        ::munmap(const_cast<char*>(data_), size_);
    }
}

void write_all(int fd, std::string_view bytes, std::string const& what) {
    while (!bytes.empty()) {
        ssize_t const n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw io_error(errno_text("write " + what));
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

void sync_file(int fd, std::string const& what) {
    if (::fdatasync(fd) != 0) {
        throw io_error(errno_text("fsync " + what));
    }
}

void sync_directory(fs::path const& dir) {
    fd_guard fd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (fd.get() < 0 || ::fsync(fd.get()) != 0) {
        throw io_error(errno_text("fsync directory " + dir.string()));
    }
}

snapshot_info write_snapshot(fs::path const& dir, std::uint64_t covered_seq,
                             std::vector<flow_store::exported_key> const& keys,
                             flow_store const& names,
                             std::vector<idempotency_table::entry> const& idempotency,
                             std::uint64_t now_unix_ms) {
    fs::path const final_path = dir / snapshot_name(covered_seq);
    fs::path const tmp = fs::path(final_path.string() + ".tmp");
    snapshot_info info{covered_seq, keys.size(), idempotency.size(), 0};
    try {
        fd_guard fd{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
        if (fd.get() < 0) {
            throw io_error(errno_text("create " + tmp.string()));
        }
        file_writer out{fd.get(), tmp.string()};
        std::string& b = out.buffer();
        b += snapshot_magic;
        put_u32(b, snapshot_version);
        put_u32(b, 0);
        put_u64(b, covered_seq);
        put_u64(b, now_unix_ms);
        put_u64(b, keys.size());
        put_u64(b, idempotency.size());
        for (flow_store::exported_key const& k : keys) {
            put_entry(b, names.name(k.key.src), names.name(k.key.dest), names.name(k.key.vpc),
                      k.hour, k.counters);
            out.maybe_flush();
        }
        for (idempotency_table::entry const& e : idempotency) {
            put_u8(b, static_cast<std::uint8_t>(e.claim.scope.size()));
            b += e.claim.scope;
            put_u8(b, static_cast<std::uint8_t>(e.claim.key.size()));
            b += e.claim.key;
            put_u64(b, e.claim.fingerprint);
            put_u64(b, e.accepted);
            put_u64(b, e.accepted_unix_ms);
            out.maybe_flush();
        }
        out.flush();
        std::string trailer;
        put_u32(trailer, out.crc());
        trailer += snapshot_end;
        write_all(fd.get(), trailer, tmp.string());
        sync_file(fd.get(), tmp.string());
        info.bytes = out.bytes() + trailer.size();
    } catch (...) {
        std::error_code ec;
        fs::remove(tmp, ec);
        throw;
    }
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
        throw io_error(errno_text("rename " + tmp.string()));
    }
    sync_directory(dir);
    return info;
}

std::optional<snapshot_info> verify_snapshot(std::string_view bytes, std::string* why) {
    auto fail = [why](std::string reason) -> std::optional<snapshot_info> {
        if (why != nullptr) {
            *why = std::move(reason);
        }
        return std::nullopt;
    };
    if (bytes.size() < snapshot_header_size + snapshot_trailer_size ||
        bytes.substr(0, 8) != snapshot_magic) {
        return fail("not a flowd snapshot (no magic number)");
    }
    reader head{bytes.substr(8, snapshot_header_size - 8)};
    std::uint32_t const version = head.u32();
    (void)head.u32();
    snapshot_info info;
    info.covered_seq = head.u64();
    (void)head.u64();
    info.keys = head.u64();
    info.idempotency_keys = head.u64();
    info.bytes = bytes.size();
    if (version != snapshot_version) {
        return fail("format version " + std::to_string(version) + ", this flowd reads " +
                    std::to_string(snapshot_version));
    }
    std::string_view const body = bytes.substr(0, bytes.size() - snapshot_trailer_size);
    reader tail{bytes.substr(body.size())};
    std::uint32_t const crc = tail.u32();
    if (tail.bytes(8) != snapshot_end || crc32c(0, body) != crc) {
        return fail("checksum mismatch (torn or corrupt)");
    }
    // The layout must account for every byte.
    reader in{body.substr(snapshot_header_size)};
    for (std::uint64_t i = 0; i < info.keys && in.ok(); ++i) {
        (void)in.u32();
        std::uint8_t const ls = in.u8();
        std::uint8_t const ld = in.u8();
        std::uint8_t const lv = in.u8();
        (void)in.bytes(std::size_t{ls} + ld + lv + 16);
    }
    for (std::uint64_t i = 0; i < info.idempotency_keys && in.ok(); ++i) {
        idempotency_table::entry e;
        (void)read_idempotency_entry(in, e);
    }
    if (!in.ok() || in.remaining() != 0) {
        return fail("layout does not match its header");
    }
    return info;
}

void load_snapshot(std::string_view bytes, flow_store& store, idempotency_table& idempotency,
                   std::uint64_t now_unix_ms) {
    std::string why;
    auto const info = verify_snapshot(bytes, &why);
    if (!info) {
        throw recovery_error("snapshot: " + why);
    }
    reader in{bytes.substr(snapshot_header_size,
                           bytes.size() - snapshot_header_size - snapshot_trailer_size)};
    std::uint64_t left = info->keys;
    while (left > 0) {
        std::size_t const n = static_cast<std::size_t>(std::min<std::uint64_t>(left, replay_chunk));
        flow_batch chunk;
        chunk.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            if (!read_entry(in, chunk, i)) {
                throw recovery_error("snapshot: a key entry is malformed");
            }
        }
        store.replay(chunk);
        left -= n;
    }
    for (std::uint64_t i = 0; i < info->idempotency_keys; ++i) {
        idempotency_table::entry e;
        if (!read_idempotency_entry(in, e)) {
            throw recovery_error("snapshot: an idempotency entry is malformed");
        }
        idempotency.restore(e, now_unix_ms);
    }
}

std::optional<synced_position> read_marker(fs::path const& dir) {
    fs::path const path = dir / "wal.synced";
    std::error_code ec;
    if (!fs::exists(path, ec)) {
        return std::nullopt;
    }
    mapped_file const f{path};
    std::string_view const b = f.bytes();
    std::optional<std::pair<std::uint64_t, synced_position>> best;
    for (std::size_t off : {std::size_t{0}, marker_slot_stride}) {
        if (b.size() >= off + marker_slot_size) {
            auto slot = read_marker_slot(b.substr(off, marker_slot_size));
            if (slot && (!best || slot->first > best->first)) {
                best = slot;
            }
        }
    }
    if (!best) {
        return std::nullopt;
    }
    return best->second;
}

std::size_t remove_covered_files(fs::path const& dir, spdlog::logger& log) {
    dir_listing const files = list_dir(dir);
    if (files.snapshots.size() < 2) {
        return 0;  // the first snapshot keeps the whole log behind it as its fallback
    }
    std::size_t removed = 0;
    std::error_code ec;
    auto keep = files.snapshots.rbegin();
    std::uint64_t const older_kept = std::next(keep)->first;
    for (auto it = files.snapshots.begin(); it->first < older_kept; ++it) {
        if (fs::remove(it->second, ec)) {
            ++removed;
        }
    }
    for (auto it = files.segments.begin(); it != files.segments.end(); ++it) {
        auto next = std::next(it);
        // A segment's records end where the next segment's begin.
        if (next == files.segments.end() || next->first > older_kept + 1) {
            break;
        }
        if (fs::remove(it->second, ec)) {
            ++removed;
        }
    }
    if (ec) {
        log.warn("checkpoint: could not remove an old file: {}", ec.message());
    }
    return removed;
}

}  // namespace flowd::wal
